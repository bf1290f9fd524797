import { lookup } from 'node:dns/promises';
import {
  BedrockClient,
  GetFoundationModelAvailabilityCommand,
  GetInferenceProfileCommand,
} from '@aws-sdk/client-bedrock';
import { DescribeAddressesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetAccountSettingsCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DescribeVoicesCommand, type Engine, PollyClient } from '@aws-sdk/client-polly';
import { GetServiceQuotaCommand, ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import type { VoiceIntakeConfig } from './config';

/**
 * Checks a first deploy would otherwise fail on, late and far from the cause: account quotas, model access, voice and
 * speech availability in the region. Config alone tells some (`configFindings`); the account tells the rest
 * (`accountFindings`, with credentials). Each finding is one line that says what to change.
 */
export interface Finding {
  readonly level: 'problem' | 'warning';
  readonly check: string;
  readonly message: string;
}

/** The default EIP quota of an account (EC2-VPC Elastic IPs, per region). */
export const DEFAULT_EIP_QUOTA = 5;
export const EIP_QUOTA_CODE = 'L-0263D0A3';
/** Lambda keeps this much of the account's concurrency unreserved. */
export const MIN_UNRESERVED_CONCURRENCY = 100;
/** Functions with reserved concurrency besides enrichment: the edge node sync and the LiveKit SIP provisioner. */
const OTHER_RESERVED_FUNCTIONS = 2;

export function elasticIpsNeeded(config: VoiceIntakeConfig): number {
  return (config.network.natGateways ?? config.azCount) + config.azCount * config.edge.hostsPerAz;
}

export function reservedConcurrencyNeeded(config: VoiceIntakeConfig): number {
  return config.enrichment.reservedConcurrency + OTHER_RESERVED_FUNCTIONS;
}

/** The regions a cross-region inference profile's geography prefix can be called from. */
const PROFILE_GEOGRAPHIES: Record<string, RegExp> = {
  us: /^us-(east|west)-\d$/,
  'us-gov': /^us-gov-/,
  eu: /^eu-/,
  apac: /^ap-/,
  jp: /^ap-northeast-[13]$/,
  au: /^ap-southeast-[24]$/,
  ca: /^ca-/,
  global: /./,
};

/** The configured models, by the key that names them. */
function modelsByKey(config: VoiceIntakeConfig): [string, string][] {
  return [
    ['agent.bedrockModelId', config.agent.bedrockModelId],
    ...(config.agent.bedrockFallbackModelId
      ? [['agent.bedrockFallbackModelId', config.agent.bedrockFallbackModelId] as [string, string]]
      : []),
    ...(config.enrichment.modelId ? [['enrichment.modelId', config.enrichment.modelId] as [string, string]] : []),
  ];
}

/** What the config alone can tell. `region`: the deployment's (config.region, else the CLI's). */
export function configFindings(config: VoiceIntakeConfig, region: string | undefined): Finding[] {
  const findings: Finding[] = [];
  const eips = elasticIpsNeeded(config);
  if (eips > DEFAULT_EIP_QUOTA) {
    findings.push({
      level: 'warning',
      check: 'elastic-ips',
      message: `needs ${eips} Elastic IPs (${config.network.natGateways ?? config.azCount} NAT + ${config.azCount * config.edge.hostsPerAz} edge); a new account may have ${DEFAULT_EIP_QUOTA}: request more (Service Quotas ${EIP_QUOTA_CODE}) or lower network.natGateways / edge.hostsPerAz`,
    });
  }
  const reserved = reservedConcurrencyNeeded(config);
  findings.push({
    level: 'warning',
    check: 'lambda-concurrency',
    message: `reserves ${reserved} Lambda concurrency (enrichment.reservedConcurrency ${config.enrichment.reservedConcurrency} + ${OTHER_RESERVED_FUNCTIONS}): the account needs at least ${reserved + MIN_UNRESERVED_CONCURRENCY} (new accounts may have 10): request more or lower enrichment.reservedConcurrency`,
  });
  if (!region) {
    findings.push({
      level: 'warning',
      check: 'region',
      message: 'no region (set region in the config, or AWS_REGION): the region checks are skipped',
    });
    return findings;
  }
  for (const [key, modelId] of modelsByKey(config)) {
    if (modelId.startsWith('arn:')) {
      const arnRegion = modelId.split(':')[3];
      if (arnRegion && arnRegion !== region)
        findings.push({
          level: 'problem',
          check: 'bedrock-model',
          message: `${key}: ${modelId} lives in ${arnRegion}, the deployment in ${region}: use a profile or model of ${region}`,
        });
      continue;
    }
    const geography = /^([a-z-]+)\.[a-z]/.exec(modelId)?.[1];
    const allowed = geography ? PROFILE_GEOGRAPHIES[geography] : undefined;
    if (allowed && !allowed.test(region)) {
      findings.push({
        level: 'problem',
        check: 'bedrock-model',
        message: `${key}: the ${geography}. inference profile ${modelId} cannot be called from ${region}: use the profile of ${region}'s geography or the model id itself`,
      });
    }
  }
  return findings;
}

export interface PreflightClients {
  readonly serviceQuotas: ServiceQuotasClient;
  readonly ec2: EC2Client;
  readonly lambda: LambdaClient;
  readonly bedrock: BedrockClient;
  readonly polly: PollyClient;
  /** Whether a host name resolves (Transcribe streaming has an endpoint in the region or not). */
  readonly resolves: (host: string) => Promise<boolean>;
}

export function awsClients(region: string): PreflightClients {
  return {
    serviceQuotas: new ServiceQuotasClient({ region }),
    ec2: new EC2Client({ region }),
    lambda: new LambdaClient({ region }),
    bedrock: new BedrockClient({ region }),
    polly: new PollyClient({ region }),
    resolves: (host) =>
      lookup(host).then(
        () => true,
        () => false,
      ),
  };
}

const reason = (error: unknown) => `${(error as Error).name ?? 'Error'}: ${(error as Error).message}`;

/** What the account tells, with credentials. A check that cannot run says so (a problem: nothing is assumed fine). */
export async function accountFindings(
  config: VoiceIntakeConfig,
  region: string,
  clients: PreflightClients,
): Promise<Finding[]> {
  const findings: Finding[] = [];
  const problem = (check: string, message: string) => findings.push({ level: 'problem', check, message });

  try {
    const [{ Quota }, { Addresses = [] }] = await Promise.all([
      clients.serviceQuotas.send(new GetServiceQuotaCommand({ ServiceCode: 'ec2', QuotaCode: EIP_QUOTA_CODE })),
      clients.ec2.send(new DescribeAddressesCommand({})),
    ]);
    const quota = Quota?.Value ?? DEFAULT_EIP_QUOTA;
    const needed = elasticIpsNeeded(config);
    if (Addresses.length + needed > quota) {
      problem(
        'elastic-ips',
        `needs ${needed} Elastic IPs, ${Addresses.length} of ${quota} are in use in ${region}: request at least ${Addresses.length + needed} (Service Quotas ${EIP_QUOTA_CODE}) or lower network.natGateways / edge.hostsPerAz`,
      );
    }
  } catch (error) {
    problem('elastic-ips', `could not read the Elastic IP quota (${reason(error)})`);
  }

  try {
    const { AccountLimit } = await clients.lambda.send(new GetAccountSettingsCommand({}));
    const unreserved = AccountLimit?.UnreservedConcurrentExecutions ?? 0;
    const reserved = reservedConcurrencyNeeded(config);
    if (unreserved - reserved < MIN_UNRESERVED_CONCURRENCY) {
      problem(
        'lambda-concurrency',
        `reserves ${reserved} Lambda concurrency but only ${unreserved} is unreserved (Lambda keeps ${MIN_UNRESERVED_CONCURRENCY}): request an account concurrency of at least ${(AccountLimit?.ConcurrentExecutions ?? 0) - unreserved + reserved + MIN_UNRESERVED_CONCURRENCY}, or lower enrichment.reservedConcurrency`,
      );
    }
  } catch (error) {
    problem('lambda-concurrency', `could not read the Lambda account settings (${reason(error)})`);
  }

  for (const [key, modelId] of modelsByKey(config)) {
    try {
      let foundationModel = modelId;
      const isProfile = modelId.includes('inference-profile/') || /^[a-z-]+\.[a-z]+\./.test(modelId);
      if (isProfile) {
        const profile = await clients.bedrock.send(
          new GetInferenceProfileCommand({ inferenceProfileIdentifier: modelId }),
        );
        const first = profile.models?.[0]?.modelArn;
        if (!first) throw new Error('the profile names no model');
        foundationModel = first.split('/').pop()!;
      }
      const availability = await clients.bedrock.send(
        new GetFoundationModelAvailabilityCommand({ modelId: foundationModel }),
      );
      if (
        availability.authorizationStatus !== 'AUTHORIZED' ||
        availability.entitlementAvailability !== 'AVAILABLE' ||
        availability.regionAvailability !== 'AVAILABLE'
      ) {
        problem(
          'bedrock-model',
          `${key}: ${foundationModel} is not usable here (authorization ${availability.authorizationStatus}, entitlement ${availability.entitlementAvailability}, region ${availability.regionAvailability}): enable model access in the Bedrock console of ${region}`,
        );
      }
    } catch (error) {
      problem(
        'bedrock-model',
        `${key}: ${modelId} cannot be checked in ${region} (${reason(error)}): enable model access, or choose a model offered in ${region}`,
      );
    }
  }

  try {
    const { Voices = [] } = await clients.polly.send(
      new DescribeVoicesCommand({ Engine: config.agent.pollyEngine as Engine }),
    );
    if (!Voices.some((voice) => voice.Id === config.agent.pollyVoice)) {
      problem(
        'polly-voice',
        `agent.pollyVoice ${config.agent.pollyVoice} has no ${config.agent.pollyEngine} engine in ${region}: choose another voice or agent.pollyEngine`,
      );
    }
  } catch (error) {
    problem('polly-voice', `could not list Polly's ${config.agent.pollyEngine} voices in ${region} (${reason(error)})`);
  }

  const streaming = `transcribestreaming.${region}.amazonaws.com`;
  if (!(await clients.resolves(streaming))) {
    problem(
      'transcribe-streaming',
      `Transcribe streaming has no endpoint in ${region} (${streaming} does not resolve): deploy to a region that offers it`,
    );
  }
  return findings;
}

export function formatFindings(findings: readonly Finding[]): string[] {
  return findings.map(
    (finding) => `${finding.level === 'problem' ? 'PROBLEM' : 'warning'} ${finding.check}: ${finding.message}`,
  );
}
