import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { DEFAULT_API_CONNECT_OPTIONS, initializeLogger, stt } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import {
  dropFillers,
  normaliseTranscript,
  type PreflightOutcome,
  TranscribeSTT,
  type TranscribeSTTOptions,
} from '../../src/plugins/aws/stt.js';
import { eventFrame, exceptionFrame, requestEvents, useAwsWire, type WireExchange } from '../support/aws-wire.js';

/**
 * Preflight transcripts on the wire: the real SDK client streams audio to a fake Transcribe that answers each audio
 * chunk with a scripted result, framed with the SDK's own event-stream codec, Stable flags and all.
 */

initializeLogger({ pretty: false, level: 'silent' });
const EVENT_STREAM = 'application/vnd.amazon.eventstream';
const TRANSCRIBE = /\/stream-transcription$/;
const SAMPLES_PER_FRAME = 800; // 50 ms at 16 kHz: one AudioEvent per frame
const aws = useAwsWire(TranscribeStreamingClient);

interface Scripted {
  text: string;
  partial?: boolean;
  /** How many leading words Transcribe has stabilised (partials); default all. */
  stableWords?: number;
  id?: string;
}

/** A Transcribe result in the service's shape: pronunciation and punctuation items, Stable on the first N words. */
function result({ text, partial = true, stableWords, id = 'r1' }: Scripted): Uint8Array {
  const tokens = text.match(/[\p{L}\p{N}'-]+|[.,?!]/gu) ?? [];
  let word = 0;
  const items = tokens.map((token, index) => {
    const punctuation = /^[.,?!]$/.test(token);
    const stable = !partial || (stableWords ?? Number.POSITIVE_INFINITY) > (punctuation ? word - 1 : word);
    const item = {
      Content: token,
      Type: punctuation ? 'punctuation' : 'pronunciation',
      Confidence: 0.9,
      Stable: stable,
      ...(punctuation ? {} : { StartTime: index * 0.2, EndTime: index * 0.2 + 0.18 }),
    };
    if (!punctuation) word += 1;
    return item;
  });
  return eventFrame('TranscriptEvent', {
    Transcript: {
      Results: [
        {
          ResultId: id,
          IsPartial: partial,
          StartTime: 0,
          EndTime: tokens.length * 0.2,
          Alternatives: [{ Transcript: text, Items: items }],
        },
      ],
    },
  });
}

const EMPTY = eventFrame('TranscriptEvent', { Transcript: { Results: [] } });

/** Answers audio chunk i with script[i] (an empty result otherwise), as Transcribe answers every chunk. */
function scripted(script: Scripted[]) {
  return async (exchange: WireExchange) => {
    exchange.respond(EVENT_STREAM, { 'x-amzn-transcribe-session-id': 'preflight', 'x-amzn-request-id': 'req' });
    let chunk = 0;
    for await (const _ of requestEvents(exchange.stream)) {
      const next = script[chunk];
      await exchange.write(next ? result(next) : EMPTY);
      chunk += 1;
    }
    exchange.end();
  };
}

function frame(index: number): AudioFrame {
  return new AudioFrame(new Int16Array(SAMPLES_PER_FRAME).fill(index + 1), 16000, 1, SAMPLES_PER_FRAME);
}

/** Streams `chunks` frames of audio through a plugin against `script`; returns every event and preflight outcome. */
async function transcribe(script: Scripted[], opts: Partial<TranscribeSTTOptions> = {}) {
  aws.wire.on(TRANSCRIBE, scripted(script));
  const outcomes: PreflightOutcome[] = [];
  const plugin = new TranscribeSTT({
    client: aws.client,
    onPreflightSettled: (outcome) => outcomes.push(outcome),
    ...opts,
  });
  const stream = plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
  const events: stt.SpeechEvent[] = [];
  const done = (async () => {
    for await (const event of stream) events.push(event);
  })();
  for (let i = 0; i < script.length + 1; i += 1) {
    stream.pushFrame(frame(i));
    // Paced like audio, so each result is answered before the next chunk goes out.
    await new Promise((resolve) => setTimeout(resolve, 15));
  }
  stream.endInput();
  await done;
  await plugin.close();
  const texts = (type: stt.SpeechEventType) =>
    events.filter((event) => event.type === type).map((event) => event.alternatives![0].text);
  return {
    events,
    outcomes,
    types: events.map((event) => event.type),
    preflights: texts(stt.SpeechEventType.PREFLIGHT_TRANSCRIPT),
    interims: texts(stt.SpeechEventType.INTERIM_TRANSCRIPT),
    finals: texts(stt.SpeechEventType.FINAL_TRANSCRIPT),
  };
}

describe('TranscribeSTT preflight transcripts (stable partials)', () => {
  it('sends one preflight when every word is stable, then the final; the final confirms it', async () => {
    const heard = await transcribe([
      { text: 'I want', stableWords: 1 },
      { text: 'I want a refund', stableWords: 3 },
      { text: 'I want a refund', stableWords: 4 },
      // Punctuation arrives, the words do not change: no second preflight.
      { text: 'I want a refund.', stableWords: 4 },
      { text: 'I want a refund.', partial: false },
    ]);
    expect(heard.preflights).toEqual(['I want a refund']);
    expect(heard.interims).toEqual(['I want', 'I want a refund', 'I want a refund.']);
    // Confirmed: the final goes out in the preflight's words (LiveKit keeps its preemptive reply only for those), and
    // carries Transcribe's own spelling alongside.
    expect(heard.finals).toEqual(['I want a refund']);
    const final = heard.events.find((event) => event.type === stt.SpeechEventType.FINAL_TRANSCRIPT)!;
    expect(final.alternatives![0].metadata).toMatchObject({ finalText: 'I want a refund.' });
    const order = heard.types.filter((type) => type !== stt.SpeechEventType.RECOGNITION_USAGE);
    expect(order.indexOf(stt.SpeechEventType.PREFLIGHT_TRANSCRIPT)).toBeLessThan(
      order.indexOf(stt.SpeechEventType.FINAL_TRANSCRIPT),
    );
    expect(order.at(-1)).toBe(stt.SpeechEventType.END_OF_SPEECH);
    expect(heard.outcomes).toHaveLength(1);
    expect(heard.outcomes[0].confirmed).toBe(true);
    // The preflight went out two audio chunks (≥ 2 × 15 ms of pacing) before the final.
    expect(heard.outcomes[0].waitMs).toBeGreaterThanOrEqual(20);
  });

  it('sends a new preflight when the stable words change, and reports a final that says more as unconfirmed', async () => {
    const heard = await transcribe([
      { text: 'I want a refund', stableWords: 4 },
      { text: 'I want a refund for', stableWords: 4 },
      { text: 'I want a refund for my order', stableWords: 7 },
      // Transcribe revises the ending in the final: the last preflight is not what the caller said.
      { text: 'I want a refund for my daughter.', partial: false },
    ]);
    expect(heard.preflights).toEqual(['I want a refund', 'I want a refund for my order']);
    expect(heard.finals).toEqual(['I want a refund for my daughter.']);
    expect(heard.outcomes.map((outcome) => outcome.confirmed)).toEqual([false]);
  });

  it('leaves fillers out of partials, preflights and finals, so an added "uh" still confirms', async () => {
    const heard = await transcribe([
      { text: 'Um, I want a refund', stableWords: 5 },
      { text: 'I want, uh, a refund.', partial: false },
    ]);
    expect(heard.preflights).toEqual(['I want a refund']);
    expect(heard.finals).toEqual(['I want a refund']);
    expect(
      heard.events.find((event) => event.type === stt.SpeechEventType.FINAL_TRANSCRIPT)!.alternatives![0].metadata,
    ).toMatchObject({ finalText: 'I want, a refund.' });
    expect(heard.outcomes.map((outcome) => outcome.confirmed)).toEqual([true]);
    // The words carry no filler either (timings of what was said).
    const final = heard.events.find((event) => event.type === stt.SpeechEventType.FINAL_TRANSCRIPT)!;
    expect(final.alternatives![0].words?.map((word) => word.text)).toEqual(['I', 'want', 'a', 'refund']);
  });

  it('answers nothing to an utterance of fillers alone', async () => {
    const heard = await transcribe([
      { text: 'Uh', stableWords: 1 },
      { text: 'Uh, um.', partial: false },
    ]);
    expect(heard.preflights).toEqual([]);
    expect(heard.finals).toEqual([]);
    expect(heard.outcomes).toEqual([]);
  });

  it('sends no preflight with PII redaction: Transcribe redacts only finals, partials carry the PII', async () => {
    const heard = await transcribe(
      [
        { text: 'My card is 4111', stableWords: 4 },
        { text: 'My card is [PII].', partial: false },
      ],
      { pii: 'redact' },
    );
    expect(heard.preflights).toEqual([]);
    expect(heard.finals).toEqual(['My card is [PII].']);
  });

  it('sends no preflight without stabilisation, or when turned off', async () => {
    const script: Scripted[] = [
      { text: 'I want a refund', stableWords: 4 },
      { text: 'I want a refund.', partial: false },
    ];
    expect((await transcribe(script, { partialResultsStability: 'off' })).preflights).toEqual([]);
    expect((await transcribe(script, { preflight: false })).preflights).toEqual([]);
    expect((await transcribe(script, { fillerWords: [] })).preflights).toEqual(['I want a refund']);
  });

  it('keeps the transcript verbatim with no filler words configured', async () => {
    const heard = await transcribe([{ text: 'Um, I want a refund.', partial: false }], { fillerWords: [] });
    expect(heard.finals).toEqual(['Um, I want a refund.']);
  });

  it('finalises an utterance cut off after its preflight in the preflight’s words, once', async () => {
    let served = 0;
    aws.wire.on(TRANSCRIBE, async (exchange) => {
      served += 1;
      exchange.respond(EVENT_STREAM, { 'x-amzn-transcribe-session-id': `s${served}`, 'x-amzn-request-id': 'req' });
      let chunk = 0;
      for await (const _ of requestEvents(exchange.stream)) {
        if (served > 1) {
          await exchange.write(EMPTY);
          continue;
        }
        if (chunk === 0) await exchange.write(result({ text: 'Send someone tomorrow' }));
        if (chunk === 1) await exchange.write(result({ text: 'Send someone tomorrow.', stableWords: 3 }));
        if (chunk === 2) {
          // The session drops before Transcribe sent the final.
          await exchange.write(exceptionFrame('InternalFailureException', 'dropped'));
          exchange.end();
          return;
        }
        chunk += 1;
      }
      exchange.end();
    });
    const outcomes: PreflightOutcome[] = [];
    const plugin = new TranscribeSTT({
      client: aws.client,
      reconnectBackoff: { baseDelayMs: 1, maxDelayMs: 1 },
      onPreflightSettled: (outcome) => outcomes.push(outcome),
    });
    const stream = plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    const events: stt.SpeechEvent[] = [];
    const done = (async () => {
      for await (const event of stream) events.push(event);
    })();
    for (let i = 0; i < 6; i += 1) {
      stream.pushFrame(frame(i));
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    stream.endInput();
    await done;
    await plugin.close();
    const of = (type: stt.SpeechEventType) =>
      events.filter((event) => event.type === type).map((event) => event.alternatives![0].text);
    expect(of(stt.SpeechEventType.PREFLIGHT_TRANSCRIPT)).toEqual(['Send someone tomorrow']);
    expect(of(stt.SpeechEventType.FINAL_TRANSCRIPT)).toEqual(['Send someone tomorrow']);
    expect(outcomes.map((outcome) => outcome.confirmed)).toEqual([true]);
    expect(stream.sessionsStarted).toBeGreaterThanOrEqual(2);
  });

  it('rejects bad filler words naming the key', () => {
    expect(() => new TranscribeSTT({ client: aws.client, fillerWords: ['um', 'two words'] })).toThrow(
      /options\.fillerWords/,
    );
  });
});

describe('transcript normalisation', () => {
  it('compares words only: case, punctuation and fillers aside', () => {
    expect(normaliseTranscript('Um, I want a REFUND.')).toBe('i want a refund');
    expect(normaliseTranscript("It's 4 o'clock?")).toBe('its 4 oclock');
    expect(normaliseTranscript('I want a refund')).not.toBe(normaliseTranscript('I want no refund'));
  });

  it('drops fillers as whole words only', () => {
    const pattern = /(^|\s)(?:um|uh)[,.!?;:…-]*(?=\s|$)/giu;
    expect(dropFillers('Um, my number is, uh, five.', pattern)).toBe('my number is, five.');
    expect(dropFillers('The umbrella, uh-huh, yes', pattern)).toBe('The umbrella, uh-huh, yes');
    expect(dropFillers('Uh.', pattern)).toBe('');
  });
});
