import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { PollyClient } from '@aws-sdk/client-polly';
import { S3Client } from '@aws-sdk/client-s3';
import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { initializeLogger } from '@livekit/agents';
import { mockClient } from 'aws-sdk-client-mock';
import { startServer } from '../../mcp-server/test/support/server-process';
import { inMemoryS3 } from '../test/support/fake-aws';
import { startRedis } from '../test/support/redis-server';

/** What a benchmark runs against: a real MCP server process and redis-server, AWS mocked at the SDK boundary. */
export async function startBenchBackends() {
  initializeLogger({ pretty: false, level: 'silent' });
  const dataDir = mkdtempSync(join(tmpdir(), 'agent-bench-'));
  const [mcp, redis] = await Promise.all([startServer({ DATA_DIR: dataDir }), startRedis()]);
  const mocks = {
    transcribe: mockClient(TranscribeStreamingClient),
    bedrock: mockClient(BedrockRuntimeClient),
    polly: mockClient(PollyClient),
    s3: mockClient(S3Client),
  };
  inMemoryS3(mocks.s3);
  return {
    mcp,
    redis,
    mocks,
    async stop() {
      await mcp.stop();
      await redis.stop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Nearest-rank percentile. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return Number.NaN;
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

export const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Sentences the simulated caller says, cycled. */
export const CALLER_LINES = [
  'I would like to report a broken water pipe in my kitchen.',
  'My name is Alex Morgan and I live on Main Street.',
  'It started yesterday evening and it is getting worse.',
  'Yes, that is correct, please go ahead.',
  'Can somebody come tomorrow morning?',
];

/** A seeded pseudo-random source (mulberry32): the same seed draws the same latencies, run after run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal draw (Box–Muller). */
function normal(random: () => number): number {
  const u = Math.max(random(), Number.EPSILON);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * random());
}

/** A lognormal latency with the given median and 99th percentile (a service's long tail). */
export function lognormal(random: () => number, p50: number, p99: number): number {
  const sigma = Math.log(p99 / p50) / 2.3263;
  return p50 * Math.exp(sigma * normal(random));
}
