import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { describeIssues } from '@voice-intake/contracts';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { SipClient } from 'livekit-server-sdk';
import { z } from 'zod';
import { type DesiredSipSetup, type RetryOptions, reconcileSip, removeSip } from './sip-provisioning';

const secrets = new SecretsManagerClient({});

/** The custom resource's properties (CloudFormation passes every value as a string or list of strings). */
const propertiesSchema = z.object({
  LiveKitUrl: z.url(),
  /** Secrets Manager secret holding `{"apiKey": "...", "apiSecret": "..."}`. */
  ApiKeySecretArn: z.string().min(1),
  TrunkName: z.string().min(1).max(128),
  DispatchRuleName: z.string().min(1).max(128),
  Numbers: z.array(z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be E.164')).default([]),
  AllowedAddresses: z.array(z.string().min(1)).min(1, 'at least one edge address'),
  AgentName: z.string().min(1),
  RoomPrefix: z.string().min(1).max(64),
});

const apiKeySchema = z.object({ apiKey: z.string().min(1), apiSecret: z.string().min(1) });

/** LiveKit may still be starting when CloudFormation creates this resource: retry 5xx and connection errors. */
const RETRY: RetryOptions = {
  attempts: Number(process.env.LIVEKIT_RETRY_ATTEMPTS ?? 6),
  baseDelayMs: Number(process.env.LIVEKIT_RETRY_BASE_MS ?? 2_000),
};

/**
 * The API key from its secret. What is wrong with it is said without a byte of it: the error reaches the stack's
 * events and logs, and JSON.parse's own message quotes the start of the text (the secret).
 */
export function apiKeyFrom(secretString: string | undefined, secretArn: string): z.infer<typeof apiKeySchema> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(secretString ?? '');
  } catch {
    throw new Error(`secret ${secretArn} is not JSON: it must hold {"apiKey": "...", "apiSecret": "..."}`);
  }
  const credentials = apiKeySchema.safeParse(parsed);
  if (!credentials.success) {
    const fields = [...new Set(credentials.error.issues.map((issue) => issue.path.join('.') || '(the value)'))];
    throw new Error(`secret ${secretArn} must hold {"apiKey": "...", "apiSecret": "..."}: check ${fields.join(', ')}`);
  }
  return credentials.data;
}

async function clientFor(url: string, secretArn: string): Promise<SipClient> {
  const { SecretString } = await secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const credentials = apiKeyFrom(SecretString, secretArn);
  return new SipClient(url, credentials.apiKey, credentials.apiSecret);
}

function desiredFrom(properties: z.infer<typeof propertiesSchema>): DesiredSipSetup {
  return {
    trunkName: properties.TrunkName,
    dispatchRuleName: properties.DispatchRuleName,
    numbers: properties.Numbers,
    allowedAddresses: properties.AllowedAddresses,
    agentName: properties.AgentName,
    roomPrefix: properties.RoomPrefix,
  };
}

/**
 * Custom resource (CDK provider framework `onEvent`): Create/Update reconcile the LiveKit inbound trunk and dispatch
 * rule to the desired state; Delete removes them. Idempotent, so CloudFormation retries and rollbacks are safe.
 */
export async function onEvent(
  event: CloudFormationCustomResourceEvent,
): Promise<{ PhysicalResourceId: string; Data?: Record<string, string> }> {
  const parsed = propertiesSchema.safeParse(event.ResourceProperties);
  if (!parsed.success) {
    throw new Error(`invalid LiveKit SIP properties: ${describeIssues(parsed.error.issues)}`);
  }
  const properties = parsed.data;
  const desired = desiredFrom(properties);
  const physicalId = `livekit-sip:${desired.trunkName}:${desired.dispatchRuleName}`;
  const client = await clientFor(properties.LiveKitUrl, properties.ApiKeySecretArn);

  if (event.RequestType === 'Delete') {
    await removeSip(client, desired, RETRY);
    return { PhysicalResourceId: event.PhysicalResourceId };
  }
  const result = await reconcileSip(client, desired, RETRY);
  console.log(JSON.stringify({ message: 'LiveKit SIP reconciled', ...result }));
  return { PhysicalResourceId: physicalId, Data: { TrunkId: result.trunkId, DispatchRuleId: result.dispatchRuleId } };
}
