import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { PollyClient } from '@aws-sdk/client-polly';
import { S3Client } from '@aws-sdk/client-s3';
import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import type { VAD } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { type AuditRecord, auditChainPrefix, LocalHmacSealKey, verifyAuditTrail } from '@voice-intake/contracts';
import { type AwsClientStub, mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, expect } from 'vitest';
import { type RunningServer, startServer } from '../../../mcp-server/test/support/server-process';
import type { AgentEnv } from '../../src/config';
import { AwsWire } from './aws-wire';
import { localAgentEnv, type OpenCall, type OpenCallOptions, openCall } from './call-harness';
import { inMemoryS3 } from './fake-aws';
import { startRedis } from './redis-server';

export interface CallBackendsOptions {
  /** Bedrock on the wire (the real SDK client against an `AwsWire`) instead of the SDK mock. */
  bedrockOnTheWire?: boolean;
}

/** What a call needs around it: the agent's env, the caller's line, the model's VAD and the backing services. */
export interface CallBackends {
  /** The SDK mocks every call's clients go through (Bedrock's only when it is not on the wire). */
  readonly transcribe: AwsClientStub<TranscribeStreamingClient>;
  readonly bedrock: AwsClientStub<BedrockRuntimeClient>;
  readonly polly: AwsClientStub<PollyClient>;
  readonly s3: AwsClientStub<S3Client>;
  /** A real MCP server process, a real redis-server, the real Silero VAD (set once the suite started). */
  readonly mcp: RunningServer;
  readonly redis: Awaited<ReturnType<typeof startRedis>>;
  readonly vad: VAD;
  /** Bedrock's fake on the wire (with `bedrockOnTheWire`). */
  readonly wire: AwsWire;
  /** The worker environment pointing at these services. */
  env(overrides?: Record<string, string>): AgentEnv;
  /** Resets every SDK mock and gives S3 a new, empty in-memory store: a call's fakes start from nothing. */
  freshAws(): ReturnType<typeof inMemoryS3>;
  /** Opens a call against these services (`env` holds overrides of the worker environment). */
  openCall(
    options: Omit<OpenCallOptions, 'env' | 'vad' | 'redis'> & { env?: Record<string, string> },
  ): Promise<OpenCall>;
}

/**
 * Registers a suite's hooks for the services a whole call runs against: the MCP server, Redis and the VAD start
 * before the suite (S3 in memory, the other AWS services mocked at the SDK boundary, or Bedrock on the wire) and end
 * after it, even after a failed start. Call it in a `describe` before the suite's own `beforeAll`.
 */
export function useCallBackends(options: CallBackendsOptions = {}): CallBackends {
  const transcribe = mockClient(TranscribeStreamingClient);
  // A mock stubs every client of its class, so Bedrock is mocked only when the call does not reach it on the wire.
  const bedrock = options.bedrockOnTheWire ? undefined : mockClient(BedrockRuntimeClient);
  const polly = mockClient(PollyClient);
  const s3 = mockClient(S3Client);
  const dataDir = mkdtempSync(join(tmpdir(), 'agent-call-'));
  let started: { mcp: RunningServer; redis: CallBackends['redis']; vad: VAD; wire?: AwsWire } | undefined;
  let mcp: RunningServer | undefined;
  let redis: CallBackends['redis'] | undefined;
  let wire: AwsWire | undefined;

  beforeAll(async () => {
    let vad: VAD | undefined;
    // All settled before failing: a start still in flight would otherwise land after afterAll and outlive the suite.
    const starts = await Promise.allSettled([
      silero.VAD.load({ minSilenceDuration: 0.45 }).then((loaded) => (vad = loaded)),
      startServer({ DATA_DIR: dataDir }).then((server) => (mcp = server)),
      startRedis().then((server) => (redis = server)),
      options.bedrockOnTheWire && AwsWire.start().then((server) => (wire = server)),
    ]);
    const failed = starts.find((start) => start.status === 'rejected');
    if (failed) throw failed.reason;
    started = { mcp: mcp!, redis: redis!, vad: vad!, wire };
  }, 60_000);
  afterAll(async () => {
    await mcp?.stop();
    await redis?.stop();
    await wire?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const running = () => {
    if (!started) throw new Error('the call backends are not started (use them inside a test or hook)');
    return started;
  };
  const backends: CallBackends = {
    transcribe,
    get bedrock() {
      if (!bedrock) throw new Error('Bedrock is on the wire here, not mocked');
      return bedrock;
    },
    polly,
    s3,
    get mcp() {
      return running().mcp;
    },
    get redis() {
      return running().redis;
    },
    get vad() {
      return running().vad;
    },
    get wire() {
      const { wire } = running();
      if (!wire) throw new Error('Bedrock is mocked here, not on the wire');
      return wire;
    },
    env: (overrides = {}) => localAgentEnv(running().redis.port, running().mcp.url, overrides),
    freshAws() {
      for (const mock of [transcribe, bedrock, polly, s3]) mock?.reset();
      return inMemoryS3(s3);
    },
    openCall({ env, ...call }) {
      const { redis, vad, wire } = running();
      const onTheWire = wire && { bedrock: new BedrockRuntimeClient({ ...wire.clientConfig(), maxAttempts: 1 }) };
      return openCall({ ...call, env: backends.env(env), vad, redis: redis.client(), aws: call.aws ?? onTheWire });
    },
  };
  return backends;
}

/** The agent's audit chain of a call from the in-memory S3, checked (hashes, seals, final seal): its records. */
export async function verifiedAuditRecords(objects: Map<string, string>, callId: string): Promise<AuditRecord[]> {
  const segments = [...objects.entries()]
    .filter(([key]) => key.startsWith(`audit/${auditChainPrefix('agent', callId)}`))
    .map(([key, body]) => ({ key: key.slice('audit/'.length), body }));
  const verdict = await verifyAuditTrail(
    segments,
    new LocalHmacSealKey(localAgentEnv(0, 'http://127.0.0.1').AUDIT_SEAL_SECRET!),
  );
  expect(verdict).toMatchObject({ ok: true });
  return verdict.records;
}

/** Waits, polling, until `condition` holds; fails after `timeoutMs`. */
export async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
