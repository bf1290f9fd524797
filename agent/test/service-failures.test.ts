import { EventEmitter } from 'node:events';
import { voice } from '@livekit/agents';
import { AGENT_METRICS } from '@voice-intake/contracts';
import pino from 'pino';
import { describe, expect, it } from 'vitest';
import { MetricsEmitter } from '../src/metrics';
import { HANDOVER_LINE, handleServiceFailures, UNANSWERED_AGAIN, UNANSWERED_APOLOGY } from '../src/service-failures';

/** The parts of an AgentSession the handler uses: its events and `say`, which records what the caller would hear. */
class SessionStandIn extends EventEmitter {
  readonly said: string[] = [];
  say(text: string) {
    this.said.push(text);
    this.answer(text);
    return { waitForPlayout: async () => undefined };
  }
  fail(type: 'llm_error' | 'stt_error' | 'tts_error', recoverable: boolean) {
    const error = { type, label: 'aws', error: new Error('down'), recoverable, timestamp: 0 };
    this.emit(voice.AgentSessionEventTypes.Error, { type: 'error', error });
  }
  answer(text: string) {
    const item = { type: 'message', role: 'assistant', textContent: text };
    this.emit(voice.AgentSessionEventTypes.ConversationItemAdded, { item });
  }
}

function setUp(canHandOver: boolean) {
  const session = new SessionStandIn();
  const metricLines: Record<string, unknown>[] = [];
  const logLines: { level: number; msg: string; service?: string }[] = [];
  const handOvers: { reason: string; speak: boolean }[] = [];
  const handler = handleServiceFailures({
    session: session as unknown as voice.AgentSession,
    metrics: new MetricsEmitter({ write: (line) => metricLines.push(JSON.parse(line)) }),
    properties: { callId: 'c1' },
    log: pino({ level: 'info' }, { write: (line: string) => void logLines.push(JSON.parse(line)) }),
    handOver: async (reason, speak) => {
      handOvers.push({ reason, speak });
      if (canHandOver && speak) session.say(HANDOVER_LINE);
      return canHandOver;
    },
  });
  const settled = () => new Promise((resolve) => setImmediate(resolve));
  return { session, metricLines, logLines, handOvers, handler, settled };
}

describe('handleServiceFailures', () => {
  it('counts and logs retried errors without a word to the caller', async () => {
    const { session, metricLines, logLines, settled } = setUp(true);
    session.fail('llm_error', true);
    session.fail('tts_error', true);
    await settled();
    expect(session.said).toEqual([]);
    expect(metricLines.map((line) => [line[AGENT_METRICS.serviceErrors], line.service, line.recoverable])).toEqual([
      [1, 'llm', 'true'],
      [1, 'tts', 'true'],
    ]);
    expect(logLines.map((line) => line.level)).toEqual([40, 40]);
  });

  it('apologises and offers a person on the first unanswerable turn, hands over on the next', async () => {
    const { session, handOvers, handler, metricLines, settled } = setUp(true);
    session.fail('llm_error', false);
    await settled();
    expect(session.said).toEqual([UNANSWERED_APOLOGY]);
    expect(handOvers).toEqual([]);
    session.fail('llm_error', false);
    await settled();
    expect(handOvers).toEqual([{ reason: 'the assistant could not answer the caller', speak: true }]);
    expect(session.said).toEqual([UNANSWERED_APOLOGY, HANDOVER_LINE]);
    expect(handler.unansweredInARow).toBe(2);
    expect(metricLines.filter((line) => line[AGENT_METRICS.unansweredTurns] === 1)).toHaveLength(2);
  });

  it('starts over after a real answer, and says so when nobody can take the call', async () => {
    const { session, handler, settled } = setUp(false);
    session.fail('llm_error', false);
    await settled();
    session.answer('Sorry about that, how can I help?');
    expect(handler.unansweredInARow).toBe(0);
    session.fail('llm_error', false);
    await settled();
    expect(session.said).toEqual([UNANSWERED_APOLOGY, UNANSWERED_APOLOGY]);
    session.fail('llm_error', false);
    await settled();
    expect(session.said.at(-1)).toBe(UNANSWERED_AGAIN);
  });

  it('hands the call over silently when speech recognition failed for good', async () => {
    const { session, handOvers, settled } = setUp(true);
    session.fail('stt_error', false);
    session.fail('stt_error', false);
    await settled();
    expect(handOvers).toEqual([{ reason: 'the speech recognition failed', speak: false }]);
    expect(session.said).toEqual([]);
  });

  it('hands the call over silently when speech synthesis failed twice with no audio in between', async () => {
    const { session, handOvers, settled } = setUp(true);
    session.fail('tts_error', false);
    session.emit(voice.AgentSessionEventTypes.MetricsCollected, {
      metrics: { type: 'tts_metrics', audioDurationMs: 800 },
    });
    session.fail('tts_error', false);
    await settled();
    expect(handOvers).toEqual([]);
    session.fail('tts_error', false);
    await settled();
    expect(handOvers).toEqual([{ reason: 'the speech synthesis failed', speak: false }]);
  });
});
