import { initializeLogger } from '@livekit/agents';
import { AGENT_METRICS } from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import type { PlayedSegment } from '../support/audio-io';
import { eventFrame, type WireExchange } from '../support/aws-wire';
import { until, useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import { listeningTranscribe, speakingPolly } from '../support/fake-aws';
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
const CALL_ID = 'pipeline-fallback';
const SAYS = 'Hello, I would like to report a broken water pipe in my kitchen.';
const LONG_GREETING =
  'Hello, thanks for calling. I am the intake assistant for the building management office, and I can take the ' +
  'details of any problem in your flat, book a visit from the caretaker, or put you through to the front desk.';
const ANSWER = 'I am sorry to hear that. Which room is the pipe in?';

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
  const backends = useCallBackends({ bedrockOnTheWire: true });
  const metricLines: string[] = [];
  let objects: Map<string, string>;
  let greeting: PlayedSegment;
  let answer: PlayedSegment;
  let primaryAfterGreeting = 0;
  let primaryAfterAnswer = 0;

  beforeAll(async () => {
    const { wire } = backends;
    wire.on(PRIMARY, async (exchange) => {
      await exchange.json();
      exchange.fail(429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
    });
    wire.on(FALLBACK, fallbackModel());
    ({ objects } = backends.freshAws());
    listeningTranscribe(backends.transcribe, { utterances: [SAYS] });
    speakingPolly(backends.polly);

    const call = await backends.openCall({
      env: { BEDROCK_MODEL_ID: 'primary-model', BEDROCK_FALLBACK_MODEL_ID: 'fallback-model' },
      callId: CALL_ID,
      callerNumber: '+14155550123',
      metricLines,
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

  it('answers from the fallback and does not ask the throttled primary again on the next turn', () => {
    expect(greeting.interrupted).toBe(true);
    expect(answer.frames).toBeGreaterThan(20);
    expect(backends.wire.count(FALLBACK)).toBe(2);
    // The greeting's attempt, plus the adapter's one background check whether it recovered.
    expect(primaryAfterGreeting).toBeGreaterThanOrEqual(1);
    expect(primaryAfterAnswer).toBe(primaryAfterGreeting);
  });

  it('records every response under the model that answered, the cut-off one as far as it got', async () => {
    const responses = (await verifiedAuditRecords(objects, CALL_ID)).filter((record) => record.kind === 'llm_response');
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
