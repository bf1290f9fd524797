import { initializeLogger } from '@livekit/agents';
import { AGENT_METRICS } from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import { HANDOVER_LINE, UNANSWERED_APOLOGY } from '../../src/service-failures';
import type { PlayedSegment } from '../support/audio-io';
import { until, useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import { listeningTranscribe, speakingPolly } from '../support/fake-aws';
import { synthesizeSpeech } from '../support/speech';

/**
 * The call when Bedrock fails every attempt (throttled, on the wire, through the real SDK client), with the
 * framework's default retries: the caller is not left in silence. The first unanswerable turn gets an apology and the
 * offer of a person; the next one is handed to a person. Every error is logged and counted.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CONVERSE = /\/converse-stream$/;
const CALL_ID = 'pipeline-bedrock-down';
const SAYS = 'Hello, I would like to report a broken water pipe in my kitchen.';

describe('intake call while Bedrock is down', () => {
  const backends = useCallBackends({ bedrockOnTheWire: true });
  const metricLines: string[] = [];
  const logLines: string[] = [];
  const transfers: string[] = [];
  let spoken: ReturnType<typeof speakingPolly>;
  let objects: Map<string, string>;
  let apology: PlayedSegment;
  let handover: PlayedSegment;
  let requestsForGreeting = 0;

  beforeAll(async () => {
    const { wire } = backends;
    wire.on(CONVERSE, async (exchange) => {
      await exchange.json();
      exchange.fail(429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
    });
    ({ objects } = backends.freshAws());
    listeningTranscribe(backends.transcribe, { utterances: [SAYS] });
    spoken = speakingPolly(backends.polly);

    const call = await backends.openCall({
      callId: CALL_ID,
      callerNumber: '+14155550199',
      metricLines,
      logLines,
      transfers,
    });
    try {
      const apologyStarts = call.earpiece.nextSegment();
      await call.intake.greet();
      apology = await apologyStarts;
      await until(() => apology.finishedAt !== undefined);
      requestsForGreeting = wire.count(CONVERSE);

      const handoverStarts = call.earpiece.nextSegment();
      await call.line.say(synthesizeSpeech(SAYS));
      handover = await handoverStarts;
      // The transfer follows the handover line once it was heard.
      await until(() => transfers.length > 0);
    } finally {
      await call.close();
    }
  }, 120_000);

  it('retries each turn with the framework defaults (4 attempts), through the real SDK client', () => {
    expect(requestsForGreeting).toBe(4);
    expect(backends.wire.count(CONVERSE)).toBe(8);
  });

  it('says an apology that offers a person when a turn cannot be answered: the caller hears it', () => {
    // Polly gets it sentence by sentence (the engine does not stream).
    expect(spoken.texts.join(' ').startsWith(UNANSWERED_APOLOGY)).toBe(true);
    expect(UNANSWERED_APOLOGY).toMatch(/colleague/);
    expect(apology.frames).toBeGreaterThan(50);
    expect(apology.peak).toBeGreaterThan(1_000);
  });

  it('hands the call to a person when the next turn fails too, after the caller heard why', async () => {
    expect(spoken.texts.join(' ')).toBe(`${UNANSWERED_APOLOGY} ${HANDOVER_LINE}`);
    expect(handover.frames).toBeGreaterThan(50);
    // The MCP server's transfer queue for this deployment.
    expect(transfers).toEqual(['sip:front-desk@pbx.example.com']);
    const audit = await verifiedAuditRecords(objects, CALL_ID);
    const transfer = audit.find((record) => record.kind === 'transfer');
    expect(transfer?.subject).toBe('sip:front-desk@pbx.example.com');
  });

  it('logs every session error and counts it, retried or final', () => {
    type LogLine = { level: number; msg: string; service?: string; recoverable?: boolean };
    const logged = logLines.map((line) => JSON.parse(line) as LogLine);
    const failures = logged.filter((line) => line.service === 'llm');
    // Per turn: 3 retried attempts (warn) and the final failure (error).
    expect(failures.filter((line) => line.recoverable === true && line.level === 40)).toHaveLength(6);
    expect(failures.filter((line) => line.recoverable === false && line.level === 50)).toHaveLength(2);

    const emitted = metricLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    const errors = emitted.filter((line) => line[AGENT_METRICS.serviceErrors] === 1 && line.service === 'llm');
    expect(errors.filter((line) => line.recoverable === 'false')).toHaveLength(2);
    expect(errors.filter((line) => line.recoverable === 'true')).toHaveLength(6);
    const unanswered = emitted.filter((line) => line[AGENT_METRICS.unansweredTurns] === 1);
    expect(unanswered.map((line) => line.inARow)).toEqual([1, 2]);
    type Declared = { CloudWatchMetrics: { Metrics: { Name: string; Unit: string }[] }[] };
    const declared = (unanswered[0]._aws as Declared).CloudWatchMetrics[0].Metrics;
    expect(declared).toEqual([{ Name: AGENT_METRICS.unansweredTurns, Unit: 'Count' }]);
  });
});
