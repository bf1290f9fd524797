import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { CALLER_HEADERS_TO_ATTRIBUTES } from '@voice-intake/contracts';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { LiveKitTwirpStandIn } from './support/livekit-twirp';

const API_KEY = 'APIprovisioner';
const API_SECRET = 'a-long-livekit-api-secret-for-tests-0123456789';
const secrets = mockClient(SecretsManagerClient);
const livekit = new LiveKitTwirpStandIn(API_KEY, API_SECRET);
let url: string;
let onEvent: (
  event: CloudFormationCustomResourceEvent,
) => Promise<{ PhysicalResourceId: string; Data?: Record<string, string> }>;

const baseProperties = {
  ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:provider',
  ApiKeySecretArn: 'arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-api',
  TrunkName: 'voice-intake-edge',
  DispatchRuleName: 'voice-intake-per-call',
  Numbers: ['+14155550100'],
  AllowedAddresses: ['10.40.0.10', '10.40.1.10'],
  AgentName: 'intake-agent',
  RoomPrefix: 'call-',
};

function event(
  requestType: 'Create' | 'Update' | 'Delete',
  properties: Record<string, unknown>,
  physicalId?: string,
): CloudFormationCustomResourceEvent {
  const common = {
    ServiceToken: baseProperties.ServiceToken,
    ResponseURL: 'https://cloudformation-custom-resource-response.example/',
    StackId: 'arn:aws:cloudformation:us-east-1:123456789012:stack/app/1',
    RequestId: `req-${Math.random()}`,
    LogicalResourceId: 'LiveKitSip',
    ResourceType: 'Custom::LiveKitSip',
    ResourceProperties: { ...properties, LiveKitUrl: url } as never,
  };
  if (requestType === 'Create') return { ...common, RequestType: 'Create' };
  if (requestType === 'Update')
    return {
      ...common,
      RequestType: 'Update',
      PhysicalResourceId: physicalId!,
      OldResourceProperties: { ServiceToken: baseProperties.ServiceToken },
    };
  return { ...common, RequestType: 'Delete', PhysicalResourceId: physicalId! };
}

beforeAll(async () => {
  url = await livekit.start();
  vi.stubEnv('LIVEKIT_RETRY_BASE_MS', '5');
  vi.stubEnv('LIVEKIT_RETRY_ATTEMPTS', '4');
  ({ onEvent } = await import('../src/provisioner/handler'));
});

afterAll(async () => {
  vi.unstubAllEnvs();
  await livekit.stop();
});

beforeEach(() => {
  secrets.reset();
  secrets
    .on(GetSecretValueCommand)
    .resolves({ SecretString: JSON.stringify({ apiKey: API_KEY, apiSecret: API_SECRET }) });
});

describe('LiveKit SIP provisioning custom resource', () => {
  let physicalId: string;

  it('creates the inbound trunk (edge addresses only) and a one-room-per-call rule dispatching our agent', async () => {
    const result = await onEvent(event('Create', baseProperties));
    physicalId = result.PhysicalResourceId;
    expect(physicalId).toBe('livekit-sip:voice-intake-edge:voice-intake-per-call');
    const [trunk] = livekit.trunks.values();
    expect(trunk).toMatchObject({
      name: 'voice-intake-edge',
      numbers: ['+14155550100'],
      allowedAddresses: ['10.40.0.10', '10.40.1.10'],
    });
    // The edge's caller headers, and only they, become the caller's participant attributes.
    expect(trunk.headersToAttributes).toEqual({
      'X-Voice-Intake-Attestation': 'voiceintake.attestation',
      'X-Voice-Intake-Caller': 'voiceintake.caller',
    });
    const [rule] = livekit.rules.values();
    expect(rule).toMatchObject({
      name: 'voice-intake-per-call',
      trunkIds: [trunk.sipTrunkId],
      rule: { dispatchRuleIndividual: { roomPrefix: 'call-' } },
      roomConfig: { agents: [{ agentName: 'intake-agent' }] },
    });
    expect(result.Data).toEqual({ TrunkId: trunk.sipTrunkId, DispatchRuleId: rule.sipDispatchRuleId });
  });

  it('changes nothing when run again with the same properties', async () => {
    livekit.calls.length = 0;
    await onEvent(event('Update', baseProperties, physicalId));
    expect(livekit.calls).toEqual(['ListSIPInboundTrunk', 'ListSIPDispatchRule']);
    expect(livekit.trunks.size).toBe(1);
    expect(livekit.rules.size).toBe(1);
  });

  it('updates the trunk in place when the edge addresses or numbers change', async () => {
    const [before] = livekit.trunks.values();
    await onEvent(
      event(
        'Update',
        { ...baseProperties, AllowedAddresses: ['10.40.0.10', '10.40.1.10', '10.40.0.11'], Numbers: [] },
        physicalId,
      ),
    );
    expect(livekit.trunks.size).toBe(1);
    const [after] = livekit.trunks.values();
    expect(after.sipTrunkId).toBe(before.sipTrunkId);
    expect(after.allowedAddresses).toEqual(['10.40.0.10', '10.40.1.10', '10.40.0.11']);
    expect(after.numbers ?? []).toEqual([]);
  });

  it('restores the caller header mapping when the trunk lost it or maps more', async () => {
    const forged = { ...CALLER_HEADERS_TO_ATTRIBUTES, 'X-Forged': 'voiceintake.attestation' };
    for (const headersToAttributes of [{}, forged]) {
      const [before] = livekit.trunks.values();
      livekit.trunks.set(before.sipTrunkId, { ...before, headersToAttributes });
      await onEvent(event('Update', baseProperties, physicalId));
      const [after] = livekit.trunks.values();
      expect(after.sipTrunkId).toBe(before.sipTrunkId);
      expect(after.headersToAttributes).toEqual(CALLER_HEADERS_TO_ATTRIBUTES);
    }
  });

  it('updates the dispatch rule when the agent name changes', async () => {
    await onEvent(event('Update', { ...baseProperties, AgentName: 'intake-agent-v2' }, physicalId));
    const [rule] = livekit.rules.values();
    expect(rule.roomConfig.agents).toEqual([{ agentName: 'intake-agent-v2' }]);
    expect(livekit.rules.size).toBe(1);
  });

  it('retries while LiveKit answers 5xx', async () => {
    livekit.failNext(2);
    livekit.calls.length = 0;
    await onEvent(event('Update', baseProperties, physicalId));
    expect(livekit.calls.slice(0, 3)).toEqual(['ListSIPInboundTrunk', 'ListSIPInboundTrunk', 'ListSIPInboundTrunk']);
    expect(livekit.rules.size).toBe(1);
  });

  it('gives up after the last attempt with LiveKit still failing', async () => {
    livekit.failNext(10);
    await expect(onEvent(event('Update', baseProperties, physicalId))).rejects.toThrow();
    livekit.failNext(0);
  });

  it('deletes the rule and the trunk, and deleting again is harmless', async () => {
    await onEvent(event('Delete', baseProperties, physicalId));
    expect(livekit.trunks.size).toBe(0);
    expect(livekit.rules.size).toBe(0);
    await expect(onEvent(event('Delete', baseProperties, physicalId))).resolves.toEqual({
      PhysicalResourceId: physicalId,
    });
  });

  it('names the bad property', async () => {
    await expect(onEvent(event('Create', { ...baseProperties, Numbers: ['4155550100'] }))).rejects.toThrow(
      /Numbers\[0\]: must be E\.164/,
    );
  });
});

describe('the LiveKit API key secret', () => {
  const ARN = 'arn:aws:secretsmanager:us-east-1:123456789012:secret:livekit-api-AbCdEf';

  it('says what is wrong with a secret that is not the API key without quoting a byte of it', async () => {
    const { apiKeyFrom } = await import('../src/provisioner/handler');
    for (const [secretString, expected] of [
      ['s3cr3t-not-json-value', `secret ${ARN} is not JSON`],
      [undefined, `secret ${ARN} is not JSON`],
      [JSON.stringify({ apiKey: 'APIkey1', apiSecret: '' }), 'check apiSecret'],
      [JSON.stringify(['s3cr3t-in-a-list']), 'check (the value)'],
    ] as const) {
      let message = '';
      try {
        apiKeyFrom(secretString, ARN);
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message, String(secretString)).toContain(expected);
      for (const part of ['s3cr3t', 'APIkey1']) expect(message).not.toContain(part);
    }
  });

  it('fails the stack operation with that message', async () => {
    secrets.on(GetSecretValueCommand).resolves({ SecretString: 's3cr3t-not-json-value' });
    const failure = onEvent(event('Create', baseProperties));
    await expect(failure).rejects.toThrow(/is not JSON/);
    await expect(failure).rejects.not.toThrow(/s3cr3t/);
  });
});
