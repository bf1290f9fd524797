import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { type APIError, DEFAULT_API_CONNECT_OPTIONS, initializeLogger, stt } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { TranscribeSTT, type TranscribeSTTOptions } from '../../src/plugins/aws/stt.js';
import {
  eventFrame,
  exceptionFrame,
  requestEvents,
  useAwsWire,
  type WireExchange,
  type WireHandler,
} from '../support/aws-wire.js';

/**
 * TranscribeSTT against Transcribe on the wire (the real SDK client sends signed event-stream audio over HTTP/2; the
 * fake answers with frames from the SDK's codec), under the framework's default connection options (3 retries).
 */

initializeLogger({ pretty: false, level: 'silent' });
const EVENT_STREAM = 'application/vnd.amazon.eventstream';
const TRANSCRIBE = /\/stream-transcription$/;
const SAMPLES_PER_FRAME = 800; // 50 ms at 16 kHz = one AudioEvent with the default chunking
const FRAME_SECONDS = 0.05;
const aws = useAwsWire(TranscribeStreamingClient);

function frame(index: number): AudioFrame {
  return new AudioFrame(new Int16Array(SAMPLES_PER_FRAME).fill(index), 16000, 1, SAMPLES_PER_FRAME);
}

/** A result for one word at [start, end) of this session's own clock, with the word's timing. */
function finalWord(word: string, start: number, end: number, partial = false) {
  return eventFrame('TranscriptEvent', {
    Transcript: {
      Results: [
        {
          ResultId: `r-${word}`,
          IsPartial: partial,
          StartTime: start,
          EndTime: end,
          Alternatives: [
            {
              Transcript: word,
              Items: [
                {
                  Content: word,
                  Type: 'pronunciation',
                  StartTime: start,
                  EndTime: end,
                  Confidence: 0.9,
                  Stable: !partial,
                },
              ],
            },
          ],
        },
      ],
    },
  });
}

const EMPTY_RESULTS = eventFrame('TranscriptEvent', { Transcript: { Results: [] } });

/** Each session is served by the next handler; the last one serves the rest. */
function sessions(...handlers: WireHandler[]): WireHandler {
  let served = 0;
  return (exchange) => handlers[Math.min(served++, handlers.length - 1)](exchange);
}

function open(exchange: WireExchange, id: string) {
  exchange.respond(EVENT_STREAM, { 'x-amzn-transcribe-session-id': id, 'x-amzn-request-id': `req-${id}` });
}

/** Answers every audio chunk with an empty result, as Transcribe does during silence; words on given chunks. */
function listening(words: Record<number, string> = {}): WireHandler {
  return async (exchange) => {
    open(exchange, `s${aws.wire.requests.length}`);
    let chunk = 0;
    for await (const _ of requestEvents(exchange.stream)) {
      const word = words[chunk];
      await exchange.write(word ? finalWord(word, chunk * FRAME_SECONDS, (chunk + 1) * FRAME_SECONDS) : EMPTY_RESULTS);
      chunk += 1;
    }
    exchange.end();
  };
}

function newSTT(opts: Partial<TranscribeSTTOptions> = {}) {
  return new TranscribeSTT({ client: aws.client, reconnectBackoff: { baseDelayMs: 1, maxDelayMs: 1 }, ...opts });
}

/** Collects the stream's events; `events` fills as they come, so a test can wait for one before ending the audio. */
function collect(stream: stt.SpeechStream, events: stt.SpeechEvent[] = []): Promise<stt.SpeechEvent[]> {
  return (async () => {
    for await (const event of stream) events.push(event);
    return events;
  })();
}

function finals(events: stt.SpeechEvent[]): stt.SpeechData[] {
  return events.filter((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT).map((e) => e.alternatives![0]);
}

function errorsOf(plugin: TranscribeSTT): { error: APIError; recoverable: boolean }[] {
  const errors: { error: APIError; recoverable: boolean }[] = [];
  plugin.on('error', (event) => errors.push({ error: event.error as APIError, recoverable: event.recoverable }));
  return errors;
}

const until = async (condition: () => boolean, timeoutMs = 5_000) => {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
};

describe('TranscribeSTT on the wire, framework defaults', () => {
  it('opens 1 + maxReconnectAttempts sessions against a failing service, then fails once, for good', async () => {
    aws.wire.on(TRANSCRIBE, async (exchange) => {
      open(exchange, 'failing');
      for await (const _ of requestEvents(exchange.stream)) {
        await exchange.write(exceptionFrame('InternalFailureException', 'internal failure'));
        exchange.end();
        return;
      }
    });
    const plugin = newSTT();
    const errors = errorsOf(plugin);
    const stream = plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    let finished = false;
    const done = collect(stream).finally(() => (finished = true));
    // The caller keeps talking: each new session has audio to send.
    for (let i = 0; !finished && i < 500; i++) {
      stream.pushFrame(frame(i));
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    await done;

    expect(plugin.options.maxReconnectAttempts).toBe(3);
    expect(stream.sessionsStarted).toBe(4);
    expect(aws.wire.count(TRANSCRIBE)).toBe(4);
    expect(errors).toHaveLength(1);
    expect(errors[0].recoverable).toBe(false);
    expect(errors[0].error.message).toContain('InternalFailureException');
  });

  it('keeps word timestamps exact and increasing across a reconnect', async () => {
    aws.wire.on(
      TRANSCRIBE,
      sessions(
        async (exchange) => {
          open(exchange, 'first');
          let chunk = 0;
          for await (const _ of requestEvents(exchange.stream)) {
            // Still a partial when the session drops: the plugin finalises it as the dead session is torn down.
            if (chunk === 1) await exchange.write(finalWord('alpha', 0.05, 0.1, true));
            if (++chunk === 3) {
              await exchange.write(exceptionFrame('InternalFailureException', 'dropped'));
              exchange.end();
              return;
            }
          }
        },
        listening({ 1: 'beta' }),
      ),
    );
    const sttPlugin = newSTT();
    errorsOf(sttPlugin);
    const stream = sttPlugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    // As the session does: the stream's time zero is 2 s into the call.
    stream.startTimeOffset = 2;
    const live: stt.SpeechEvent[] = [];
    const done = collect(stream, live);
    for (let i = 0; i < 3; i++) stream.pushFrame(frame(i));
    await until(() => finals(live).length === 1);
    // The first session is gone; the caller goes on: this audio opens the second one.
    for (let i = 3; i < 6; i++) stream.pushFrame(frame(i));
    await until(() => finals(live).length === 2);
    stream.endInput();
    const heard = finals(await done);

    expect(heard.map((data) => data.text)).toEqual(['alpha', 'beta']);
    expect(stream.sessionsStarted).toBe(2);
    // alpha: 0.05 s into the first session. beta: 0.05 s into the second, which starts after the first one's 3 chunks.
    expect(heard[0].startTime).toBeCloseTo(2 + 0.05, 2);
    expect(heard[0].words?.[0].startTime).toBeCloseTo(2 + 0.05, 2);
    expect(heard[1].startTime).toBeCloseTo(2 + 3 * FRAME_SECONDS + 0.05, 2);
    expect(heard[1].words?.[0]).toMatchObject({ text: 'beta' });
    expect(heard[1].words?.[0].endTime).toBeCloseTo(2 + 3 * FRAME_SECONDS + 0.1, 2);
    expect(heard[1].startTime).toBeGreaterThan(heard[0].endTime);
  });

  it('detects a session that stops answering while audio flows, within the timeout, and reconnects', async () => {
    aws.wire.on(
      TRANSCRIBE,
      sessions(
        async (exchange) => {
          open(exchange, 'stalled');
          for await (const _ of requestEvents(exchange.stream)) {
            // reads the audio, answers nothing
          }
        },
        listening({ 0: 'back' }),
      ),
    );
    const timeoutMs = 300;
    const plugin = newSTT({ reconnectBackoff: { baseDelayMs: 200, maxDelayMs: 2_000 } });
    const errors = errorsOf(plugin);
    const stream = plugin.stream({ connOptions: { ...DEFAULT_API_CONNECT_OPTIONS, timeoutMs } });
    const live: stt.SpeechEvent[] = [];
    const done = collect(stream, live);
    let index = 0;
    stream.pushFrame(frame(index++));
    const firstAudioAt = performance.now();
    while (aws.wire.count(TRANSCRIBE) < 2 && performance.now() - firstAudioAt < 5_000) {
      await new Promise((resolve) => setTimeout(resolve, 20));
      stream.pushFrame(frame(index++));
    }
    const reconnectedAfter = aws.wire.requests[1].at - aws.wire.requests[0].at;
    stream.pushFrame(frame(index++));
    await until(() => finals(live).length > 0);
    stream.endInput();
    const heard = finals(await done);

    expect(reconnectedAfter).toBeGreaterThanOrEqual(timeoutMs);
    // The timeout, the first backoff (at most 200 ms, full jitter), slack for a loaded machine.
    expect(reconnectedAfter).toBeLessThan(timeoutMs + 200 + 1_000);
    expect(heard.map((data) => data.text)).toContain('back');
    expect(errors).toEqual([]);
  });

  it('does not take a quiet line for a stall: no audio, nothing owed', async () => {
    aws.wire.on(TRANSCRIBE, listening());
    const plugin = newSTT();
    const errors = errorsOf(plugin);
    const stream = plugin.stream({ connOptions: { ...DEFAULT_API_CONNECT_OPTIONS, timeoutMs: 150 } });
    const done = collect(stream);
    stream.pushFrame(frame(0));
    await new Promise((resolve) => setTimeout(resolve, 600));
    stream.pushFrame(frame(1));
    stream.endInput();
    await done;
    expect(aws.wire.count(TRANSCRIBE)).toBe(1);
    expect(errors).toEqual([]);
  });

  it('reconnects for free after the idle timeout, thrown by the SDK as BadRequestException', async () => {
    aws.wire.on(
      TRANSCRIBE,
      sessions(
        async (exchange) => {
          open(exchange, 'idle');
          for await (const _ of requestEvents(exchange.stream)) {
            const idle = 'Your request timed out because no new audio was received for 15 seconds.';
            await exchange.write(exceptionFrame('BadRequestException', idle));
            exchange.end();
            return;
          }
        },
        listening({ 0: 'again' }),
      ),
    );
    const plugin = newSTT({ maxReconnectAttempts: 0 });
    const errors = errorsOf(plugin);
    const stream = plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    const live: stt.SpeechEvent[] = [];
    const done = collect(stream, live);
    stream.pushFrame(frame(0));
    await until(() => aws.wire.count(TRANSCRIBE) === 1);
    await new Promise((resolve) => setTimeout(resolve, 50));
    stream.pushFrame(frame(1));
    await until(() => finals(live).length > 0);
    stream.endInput();
    expect(finals(await done).map((data) => data.text)).toEqual(['again']);
    expect(stream.sessionsStarted).toBe(2);
    expect(errors).toEqual([]);
  });
});
