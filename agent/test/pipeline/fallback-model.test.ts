import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { PollyClient } from '@aws-sdk/client-polly';
import { S3Client } from '@aws-sdk/client-s3';
import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { initializeLogger } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { AGENT_METRICS, type AuditRecord, auditRecordSchema } from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type RunningServer, startServer } from '../../../mcp-server/test/support/server-process';
import type { PlayedSegment } from '../support/audio-io';
import { AwsWire, eventFrame, type WireExchange } from '../support/aws-wire';
import { localAgentEnv, openCall } from '../support/call-harness';
import { inMemoryS3, listeningTranscribe, speakingPolly } from '../support/fake-aws';
import { startRedis } from '../support/redis-server';
import { synthesizeSpeech } from '../support/speech';

/**
 * A call whose primary model is throttled and whose fallback answers (Bedrock on the wire, the production wiring's
 * FallbackAdapter): the records and metrics name the model that answered, the primary is not asked again on the next
 * turn, and a reply the caller talks over while the model is still writing it is recorded as far as it got.
 */

initializeLogger({ pretty: false, level: 'silent' });

const _CONVERSE = /\/converse-stream$/;
const PRIMARY = /\/model\/primary-model\//;
const FALLBACK = /\/model\/fallback-model\//;
const SAYS = 'Hello, I would like to report a broken water pipe in my kitchen.';
const LONG_GREETING =
  'Hello, thanks for calling. I am the intake assistant for the building management office, and I can take the ' +
  'details of any problem in your flat, book a visit from the caretaker, or put you through to the front desk.';
const ANSWER = 'I am sorry to hear that. Which room is the pipe in?';

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** The fallback model: the first request gets the long greeting slowly (a word every 150 ms), later ones the answer. */
function fallbackModel(): (exchange: WireExchange) => Promise<void> {
  let served = 0;
  return async (exchange) => {
    const request = await exchange.json();
    const reply = served++ === 0 ? LONG_GREETING : ANSWER;
    const pace = reply === LONG_GREETING ? 150 : 10;
    exchange.respond('application/vnd.amazon.eventstream', { 'x-amzn-requestid': `fallback-${served}` });
    await exchange.write(eventFrame('messageStart', { role: 'assistant' }));
    let gone = false;
    void exchange.closed.then(() => (gone = true));
    for (const word of reply.match(/\S+\s*/g) ?? []) {
      if (gone) return;
      await exchange.write(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: word } }));
      await new Promise((resolve) => setTimeout(resolve, pace));
    }
    await exchange.write(eventFrame('contentBlockStop', { contentBlockIndex: 0 }));
    await exchange.write(eventFrame('messageStop', { stopReason: 'end_turn' }));
    const messages = (request.messages as unknown[]).length;
    const usage = { inputTokens: 100 * messages, outputTokens: 20, totalTokens: 100 * messages + 20 };
    await exchange.write(eventFrame('metadata', { usage, metrics: { latencyMs: 50 } }));
    exchange.end();
  };
}

describe('intake call on the fallback model', () => {
  const transcribe = mockClient(TranscribeStreamingClient);
  const polly = mockClient(PollyClient);
  const s3 = mockClient(S3Client);
  const dataDir = mkdtempSync(join(tmpdir(), 'agent-fallback-'));
  const metricLines: string[] = [];
  let wire: AwsWire | undefined;
  let mcp: RunningServer | undefined;
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let objects: Map<string, string>;
  let greeting: PlayedSegment;
  let answer: PlayedSegment;
  let primaryAfterGreeting = 0;
  let primaryAfterAnswer = 0;

  beforeAll(async () => {
    [mcp, redis, wire] = await Promise.all([startServer({ DATA_DIR: dataDir }), startRedis(), AwsWire.start()]);
    wire.on(PRIMARY, async (exchange) => {
      await exchange.json();
      exchange.fail(429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
    });
    wire.on(FALLBACK, fallbackModel());
    ({ objects } = inMemoryS3(s3));
    listeningTranscribe(transcribe, { utterances: [SAYS] });
    speakingPolly(polly);

    const call = await openCall({
      env: localAgentEnv(redis.port, mcp.url, {
        BEDROCK_MODEL_ID: 'primary-model',
        BEDROCK_FALLBACK_MODEL_ID: 'fallback-model',
      }),
      callId: 'pipeline-fallback',
      callerNumber: '+14155550123',
      vad: await silero.VAD.load({ minSilenceDuration: 0.45 }),
      redis: redis.client(),
      metricLines,
      aws: { bedrock: new BedrockRuntimeClient({ ...wire.clientConfig(), maxAttempts: 1 }) },
    });
    try {
      const greetingStarts = call.earpiece.nextSegment();
      void call.intake.greet();
      greeting = await greetingStarts;
      // The caller talks over the greeting while the model is still writing it.
      const answerStarts = call.earpiece.nextSegment();
      await call.line.say(synthesizeSpeech(SAYS));
      await until(() => greeting.finishedAt !== undefined);
      primaryAfterGreeting = wire.count(PRIMARY);
      answer = await answerStarts;
      await until(() => answer.finishedAt !== undefined);
      primaryAfterAnswer = wire.count(PRIMARY);
    } finally {
      await call.close();
    }
  }, 120_000);

  afterAll(async () => {
    await mcp?.stop();
    await redis?.stop();
    await wire?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  function audit(): AuditRecord[] {
    return (
      [...objects.entries()]
        .filter(([key]) => key.startsWith('audit/'))
        .sort(([a], [b]) => a.localeCompare(b, 'en', { numeric: true }))
        .flatMap(([, body]) =>
          body
            .trim()
            .split('\n')
            .map((line) => JSON.parse(line)),
        )
        // Each flushed segment ends with its seal (contracts/audit-seal.ts): the records are the rest.
        .filter((entry) => entry.type !== 'audit_seal')
        .map((entry) => auditRecordSchema.parse(entry))
    );
  }

  it('answers from the fallback and does not ask the throttled primary again on the next turn', () => {
    expect(greeting.interrupted).toBe(true);
    expect(answer.frames).toBeGreaterThan(20);
    expect(wire!.count(FALLBACK)).toBe(2);
    // The greeting's attempt, plus the adapter's one background check whether it recovered.
    expect(primaryAfterGreeting).toBeGreaterThanOrEqual(1);
    expect(primaryAfterAnswer).toBe(primaryAfterGreeting);
  });

  it('records every response under the model that answered, the cut-off one as far as it got', () => {
    const responses = audit().filter((record) => record.kind === 'llm_response');
    expect(responses.map((record) => record.subject)).toEqual(['fallback-model', 'fallback-model']);
    type Response = { text: string; interrupted: boolean; model: string };
    const [cut, whole] = responses.map((record) => record.payload as Response);
    expect(cut.interrupted).toBe(true);
    expect(cut.text.length).toBeGreaterThan(0);
    expect(LONG_GREETING.startsWith(cut.text)).toBe(true);
    expect(cut.text.length).toBeLessThan(LONG_GREETING.length);
    expect(whole).toMatchObject({ text: ANSWER, interrupted: false, model: 'fallback-model' });
  });

  it('reports time to first token under the model that served it', () => {
    const emitted = metricLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const ttft = emitted.filter((line) => typeof line[AGENT_METRICS.llmTimeToFirstToken] === 'number');
    const served = ttft.filter((line) => (line[AGENT_METRICS.llmTimeToFirstToken] as number) >= 0);
    expect(served.map((line) => line.model)).toEqual(['fallback-model', 'fallback-model']);
  });
});
