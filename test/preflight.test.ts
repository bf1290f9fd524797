import {
  BedrockClient,
  GetFoundationModelAvailabilityCommand,
  GetInferenceProfileCommand,
} from '@aws-sdk/client-bedrock';
import { DescribeAddressesCommand, EC2Client } from '@aws-sdk/client-ec2';
import { GetAccountSettingsCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { DescribeVoicesCommand, PollyClient } from '@aws-sdk/client-polly';
import { GetServiceQuotaCommand, ServiceQuotasClient } from '@aws-sdk/client-service-quotas';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { parseConfig } from '../lib/config';
import { accountFindings, configFindings, formatFindings, type PreflightClients } from '../lib/preflight';
import { repoConfigInput } from './support/synth';

const config = (overrides = {}) => parseConfig(repoConfigInput(overrides));
const checks = (findings: { check: string; level: string }[]) =>
  findings.map((finding) => `${finding.level}:${finding.check}`);

describe('preflight from the config alone (no credentials)', () => {
  it('warns about the Elastic IPs and reserved Lambda concurrency the defaults need', () => {
    const lines = formatFindings(configFindings(config(), 'us-east-1'));
    expect(lines).toEqual([
      expect.stringMatching(
        /^warning elastic-ips: needs 6 Elastic IPs \(2 NAT \+ 4 edge\).*lower network\.natGateways \/ edge\.hostsPerAz$/,
      ),
      expect.stringMatching(
        /^warning lambda-concurrency: reserves 12 Lambda concurrency .* at least 112 .*enrichment\.reservedConcurrency$/,
      ),
    ]);
    expect(
      checks(configFindings(config({ network: { natGateways: 1 }, edge: { hostsPerAz: 1 } }), 'us-east-1')),
    ).not.toContain('warning:elastic-ips');
  });

  it('refuses an inference profile outside its geography, naming the key', () => {
    expect(formatFindings(configFindings(config(), 'eu-west-1'))).toContainEqual(
      expect.stringMatching(
        /^PROBLEM bedrock-model: agent\.bedrockModelId: the us\. inference profile .* cannot be called from eu-west-1/,
      ),
    );
    expect(
      checks(configFindings(config({ agent: { bedrockModelId: 'jp.anthropic.claude-x' } }), 'ap-northeast-1')),
    ).not.toContain('problem:bedrock-model');
    expect(
      checks(configFindings(config({ agent: { bedrockModelId: 'jp.anthropic.claude-x' } }), 'ap-southeast-1')),
    ).toContain('problem:bedrock-model');
    expect(
      checks(configFindings(config({ agent: { bedrockModelId: 'anthropic.claude-x' } }), 'eu-west-1')),
    ).not.toContain('problem:bedrock-model');
    const arn = 'arn:aws:bedrock:us-west-2:123456789012:application-inference-profile/abc';
    expect(formatFindings(configFindings(config({ enrichment: { modelId: arn } }), 'us-east-1'))).toContainEqual(
      expect.stringMatching(
        /^PROBLEM bedrock-model: enrichment\.modelId: .* lives in us-west-2, the deployment in us-east-1/,
      ),
    );
  });

  it('says the region checks are skipped without a region', () => {
    expect(checks(configFindings(config(), undefined))).toEqual([
      'warning:elastic-ips',
      'warning:lambda-concurrency',
      'warning:region',
    ]);
  });
});

describe('preflight with credentials (the account answers, mocked at the SDK)', () => {
  const serviceQuotas = mockClient(ServiceQuotasClient);
  const ec2 = mockClient(EC2Client);
  const lambda = mockClient(LambdaClient);
  const bedrock = mockClient(BedrockClient);
  const polly = mockClient(PollyClient);
  let resolvable: boolean;
  const clients: PreflightClients = {
    serviceQuotas: new ServiceQuotasClient({ region: 'us-east-1' }),
    ec2: new EC2Client({ region: 'us-east-1' }),
    lambda: new LambdaClient({ region: 'us-east-1' }),
    bedrock: new BedrockClient({ region: 'us-east-1' }),
    polly: new PollyClient({ region: 'us-east-1' }),
    resolves: async (host) => {
      expect(host).toBe('transcribestreaming.us-east-1.amazonaws.com');
      return resolvable;
    },
  };

  beforeEach(() => {
    for (const mock of [serviceQuotas, ec2, lambda, bedrock, polly]) mock.reset();
    resolvable = true;
    serviceQuotas
      .on(GetServiceQuotaCommand, { ServiceCode: 'ec2', QuotaCode: 'L-0263D0A3' })
      .resolves({ Quota: { Value: 20 } });
    ec2.on(DescribeAddressesCommand).resolves({ Addresses: [{ AllocationId: 'eipalloc-1' }] });
    lambda
      .on(GetAccountSettingsCommand)
      .resolves({ AccountLimit: { ConcurrentExecutions: 1000, UnreservedConcurrentExecutions: 1000 } });
    bedrock
      .on(GetInferenceProfileCommand, { inferenceProfileIdentifier: 'us.anthropic.claude-haiku-4-5-20251001-v1:0' })
      .resolves({
        models: [{ modelArn: 'arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0' }],
      });
    bedrock
      .on(GetFoundationModelAvailabilityCommand, { modelId: 'anthropic.claude-haiku-4-5-20251001-v1:0' })
      .resolves({
        authorizationStatus: 'AUTHORIZED',
        entitlementAvailability: 'AVAILABLE',
        regionAvailability: 'AVAILABLE',
      });
    polly.on(DescribeVoicesCommand, { Engine: 'generative' }).resolves({ Voices: [{ Id: 'Ruth' }, { Id: 'Matthew' }] });
  });

  it('finds nothing in an account that has what the config needs', async () => {
    expect(await accountFindings(config(), 'us-east-1', clients)).toEqual([]);
  });

  it('names each shortfall with what to change', async () => {
    serviceQuotas.on(GetServiceQuotaCommand).resolves({ Quota: { Value: 5 } });
    lambda
      .on(GetAccountSettingsCommand)
      .resolves({ AccountLimit: { ConcurrentExecutions: 10, UnreservedConcurrentExecutions: 10 } });
    bedrock.on(GetFoundationModelAvailabilityCommand).resolves({
      authorizationStatus: 'NOT_AUTHORIZED',
      entitlementAvailability: 'AVAILABLE',
      regionAvailability: 'AVAILABLE',
    });
    polly.on(DescribeVoicesCommand).resolves({ Voices: [{ Id: 'Matthew' }] });
    resolvable = false;
    const lines = formatFindings(await accountFindings(config(), 'us-east-1', clients));
    expect(lines).toEqual([
      'PROBLEM elastic-ips: needs 6 Elastic IPs, 1 of 5 are in use in us-east-1: request at least 7 (Service Quotas L-0263D0A3) or lower network.natGateways / edge.hostsPerAz',
      'PROBLEM lambda-concurrency: reserves 12 Lambda concurrency but only 10 is unreserved (Lambda keeps 100): request an account concurrency of at least 112, or lower enrichment.reservedConcurrency',
      expect.stringMatching(
        /^PROBLEM bedrock-model: agent\.bedrockModelId: anthropic\.claude-haiku-4-5-20251001-v1:0 is not usable here \(authorization NOT_AUTHORIZED.*enable model access/,
      ),
      'PROBLEM polly-voice: agent.pollyVoice Ruth has no generative engine in us-east-1: choose another voice or agent.pollyEngine',
      'PROBLEM transcribe-streaming: Transcribe streaming has no endpoint in us-east-1 (transcribestreaming.us-east-1.amazonaws.com does not resolve): deploy to a region that offers it',
    ]);
  });

  it('counts a check it cannot run as a problem, never as passed', async () => {
    serviceQuotas
      .on(GetServiceQuotaCommand)
      .rejects(Object.assign(new Error('not authorized'), { name: 'AccessDeniedException' }));
    bedrock
      .on(GetInferenceProfileCommand)
      .rejects(Object.assign(new Error('profile not found'), { name: 'ResourceNotFoundException' }));
    const lines = formatFindings(await accountFindings(config(), 'us-east-1', clients));
    expect(lines).toEqual([
      'PROBLEM elastic-ips: could not read the Elastic IP quota (AccessDeniedException: not authorized)',
      expect.stringMatching(
        /^PROBLEM bedrock-model: agent\.bedrockModelId: us\.anthropic\.claude-haiku-4-5-20251001-v1:0 cannot be checked in us-east-1 \(ResourceNotFoundException: profile not found\)/,
      ),
    ]);
  });
});
