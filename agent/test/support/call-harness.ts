import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { PollyClient } from '@aws-sdk/client-polly';
import { S3Client } from '@aws-sdk/client-s3';
import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import type { VAD } from '@livekit/agents';
import type { Redis } from 'ioredis';
import pino from 'pino';
import { TEST_TOKEN } from '../../../mcp-server/test/support/server-process';
import { type IntakeCall, type IntakeCallOptions, prepareIntakeCall } from '../../src/call-session';
import { type AgentEnv, agentEnvSchema } from '../../src/config';
import { MetricsEmitter } from '../../src/metrics';
import { EarpieceOutput, PhoneLineInput } from './audio-io';

/** A valid worker environment pointing at local stand-ins (AWS itself is mocked at the SDK boundary). */
export function localAgentEnv(redisPort: number, mcpUrl: string, overrides: Record<string, string> = {}): AgentEnv {
  return agentEnvSchema.parse({
    LIVEKIT_URL: 'ws://127.0.0.1:7880',
    LIVEKIT_API_KEY: 'devkey',
    LIVEKIT_API_SECRET: 'secret-secret-secret',
    REDIS_URL: `redis://127.0.0.1:${redisPort}`,
    TRANSCRIPTS_BUCKET: 'transcripts',
    AUDIT_BUCKET: 'audit',
    AUDIT_SEAL_SECRET: 'local-agent-audit-seal-secret-0123456789',
    MCP_URL: `${mcpUrl}/mcp`,
    MCP_TOKEN: TEST_TOKEN,
    BEDROCK_MODEL_ID: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
    // SynthesizeSpeech (not the bidirectional stream): the fake Polly speaks that API.
    POLLY_ENGINE: 'neural',
    RECORD_FLUSH_MS: '500',
    ...overrides,
  });
}

export interface OpenCallOptions {
  env: AgentEnv;
  callId: string;
  callerNumber: string;
  startedAt?: Date;
  vad: VAD;
  redis: Redis;
  metricLines?: string[];
  /** Collects the call's log lines (JSON), at info and above. Default: no logging. */
  logLines?: string[];
  /** Collects the targets the call was transferred to. */
  transfers?: string[];
  /** Turn-taking choices of the call (speculation, endpointing by text). Default: production's. */
  turnTaking?: Pick<IntakeCallOptions, 'speculate' | 'endpointingByText' | 'turnHandling'>;
  /** Clients to use instead of the SDK-mocked ones (e.g. one pointed at a fake on the wire). */
  aws?: { transcribe?: TranscribeStreamingClient; bedrock?: BedrockRuntimeClient; polly?: PollyClient };
}

export interface OpenCall {
  intake: IntakeCall;
  line: PhoneLineInput;
  earpiece: EarpieceOutput;
  /** Resolves with the agent's reason when it hangs up. */
  hungUp: Promise<string>;
  /** Resolves with the reason when the call is left to another worker (it was claimed away). */
  left: Promise<string>;
  /** Closes the session and the line, then writes the call's final records. */
  close(): Promise<void>;
}

/**
 * A call as the worker would run it (the production `prepareIntakeCall` wiring) with a paced phone line in and a
 * real-time earpiece out instead of a LiveKit room. The session is started; the line clock is running.
 */
export async function openCall(options: OpenCallOptions): Promise<OpenCall> {
  let hangUp!: (reason: string) => void;
  const hungUp = new Promise<string>((resolve) => (hangUp = resolve));
  let leave!: (reason: string) => void;
  const left = new Promise<string>((resolve) => (leave = resolve));
  const intake = await prepareIntakeCall({
    env: options.env,
    call: {
      callId: options.callId,
      roomName: `room-${options.callId}`,
      callerNumber: options.callerNumber,
      startedAt: options.startedAt ?? new Date(),
    },
    workerId: 'worker-local',
    vad: options.vad,
    redis: options.redis,
    s3: new S3Client({ region: 'us-east-1' }),
    aws: {
      transcribe: options.aws?.transcribe ?? new TranscribeStreamingClient({ region: 'us-east-1' }),
      bedrock: options.aws?.bedrock ?? new BedrockRuntimeClient({ region: 'us-east-1' }),
      polly: options.aws?.polly ?? new PollyClient({ region: 'us-east-1' }),
    },
    metrics: new MetricsEmitter({
      write: options.metricLines ? (line) => options.metricLines!.push(line) : () => undefined,
    }),
    logger: options.logLines
      ? pino({ level: 'info' }, { write: (line: string) => void options.logLines!.push(line) })
      : pino({ level: 'silent' }),
    transfer: async (target) => void options.transfers?.push(target),
    hangUp,
    leave,
    ...options.turnTaking,
  });
  const line = new PhoneLineInput();
  const earpiece = new EarpieceOutput();
  intake.session.input.audio = line;
  intake.session.output.audio = earpiece;
  await intake.session.start({ agent: intake.agent });
  line.open();
  return {
    intake,
    line,
    earpiece,
    hungUp,
    left,
    async close() {
      await intake.session.close();
      await line.close();
      await intake.finish();
    },
  };
}
