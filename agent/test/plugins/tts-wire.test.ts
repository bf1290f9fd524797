import { PollyClient } from '@aws-sdk/client-polly';
import { type APIError, DEFAULT_API_CONNECT_OPTIONS, initializeLogger, tts } from '@livekit/agents';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { PollyTTS } from '../../src/plugins/aws/tts.js';
import {
  eventFrame,
  exceptionFrame,
  requestEvents,
  useAwsWire,
  type WireExchange,
  type WireHandler,
} from '../support/aws-wire.js';

/** PollyTTS against Polly on the wire (the real SDK client over HTTP/2), under the framework's default connOptions. */

initializeLogger({ pretty: false, level: 'silent' });
const SPEECH = /\/v1\/speech$/;
const BYTES_PER_FRAME = 640; // 20 ms at 16 kHz, 16-bit mono
const aws = useAwsWire(PollyClient);

/** LiveKit's ChunkedStream re-throws a final error from a task nobody awaits; the job process logs such rejections. */
const rejections: unknown[] = [];
let vitestHandlers: NodeJS.UnhandledRejectionListener[] = [];
const onRejection = (reason: unknown) => rejections.push(reason);

beforeEach(() => {
  rejections.length = 0;
  vitestHandlers = process.listeners('unhandledRejection');
  process.removeAllListeners('unhandledRejection');
  process.on('unhandledRejection', onRejection);
});
afterEach(() => {
  process.off('unhandledRejection', onRejection);
  for (const handler of vitestHandlers) process.on('unhandledRejection', handler);
});

/** `count` frames of audio, frame k filled with the sample value `first + k`, so a repeated frame shows. */
function numberedAudio(first: number, count: number): Uint8Array {
  const samples = new Int16Array((BYTES_PER_FRAME / 2) * count);
  for (let k = 0; k < count; k++) samples.fill(first + k, (k * BYTES_PER_FRAME) / 2, ((k + 1) * BYTES_PER_FRAME) / 2);
  return new Uint8Array(samples.buffer);
}

function speaking(first: number, count: number, then: (exchange: WireExchange) => void = (x) => x.end()): WireHandler {
  return async (exchange) => {
    await exchange.json();
    const requestId = `polly-req-${aws.wire.requests.length}`;
    exchange.respond('audio/pcm', { 'x-amzn-requestid': requestId, 'x-amzn-requestcharacters': '12' });
    const audio = numberedAudio(first, count);
    // Piece by piece, as Polly streams it.
    for (let offset = 0; offset < audio.byteLength; offset += BYTES_PER_FRAME) {
      await exchange.write(audio.subarray(offset, offset + BYTES_PER_FRAME));
    }
    then(exchange);
  };
}

function script(...handlers: WireHandler[]): WireHandler {
  let served = 0;
  return (exchange) => handlers[Math.min(served++, handlers.length - 1)](exchange);
}

function newTTS() {
  return new PollyTTS({ client: aws.client, engine: 'neural' });
}

function errorsOf(plugin: PollyTTS): { error: APIError; recoverable: boolean }[] {
  const errors: { error: APIError; recoverable: boolean }[] = [];
  plugin.on('error', (event) => errors.push({ error: event.error as APIError, recoverable: event.recoverable }));
  return errors;
}

async function frames(stream: AsyncIterable<tts.SynthesizedAudio>): Promise<tts.SynthesizedAudio[]> {
  const out: tts.SynthesizedAudio[] = [];
  for await (const audio of stream) out.push(audio);
  return out;
}

const firstSample = (audio: tts.SynthesizedAudio) => audio.frame.data[0];

describe('PollyTTS on the wire, framework defaults', () => {
  it('never repeats a frame when Polly fails mid-audio: the failure is final once audio went out', async () => {
    aws.wire.on(
      SPEECH,
      speaking(1, 6, (exchange) => exchange.drop()),
    );
    const plugin = newTTS();
    const errors = errorsOf(plugin);

    const heard = await frames(plugin.synthesize('Thanks for calling, how can I help?', DEFAULT_API_CONNECT_OPTIONS));
    await new Promise((resolve) => setTimeout(resolve, 20));

    const order = heard.map(firstSample);
    expect(order.length).toBeGreaterThan(0);
    expect(new Set(order).size).toBe(order.length);
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(aws.wire.count(SPEECH)).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0].recoverable).toBe(false);
    expect(errors[0].error.retryable).toBe(false);
  });

  it('retries a failure before any audio, and plays the new attempt from its start', async () => {
    aws.wire.on(
      SPEECH,
      script(
        async (exchange) => {
          await exchange.json();
          exchange.fail(503, 'ServiceUnavailableException', 'try again');
        },
        speaking(100, 4),
      ),
    );
    const plugin = newTTS();
    const errors = errorsOf(plugin);
    const heard = await frames(plugin.synthesize('Hello.', DEFAULT_API_CONNECT_OPTIONS));
    expect(heard.map(firstSample)).toEqual([100, 101, 102, 103]);
    expect(heard.at(-1)?.final).toBe(true);
    expect(aws.wire.count(SPEECH)).toBe(2);
    expect(errors).toEqual([]);
  });

  it('detects a response that stalls after its headers within the timeout, and retries', async () => {
    let stalled: WireExchange | undefined;
    aws.wire.on(
      SPEECH,
      script(
        async (exchange) => {
          stalled = exchange;
          await exchange.json();
          exchange.respond('audio/pcm');
          await exchange.closed;
        },
        speaking(7, 3),
      ),
    );
    const timeoutMs = 300;
    const plugin = newTTS();
    errorsOf(plugin);
    const heard = await frames(plugin.synthesize('Hello.', { ...DEFAULT_API_CONNECT_OPTIONS, timeoutMs }));
    const retriedAfter = aws.wire.requests[1].at - aws.wire.requests[0].at;
    expect(heard.map(firstSample)).toEqual([7, 8, 9]);
    expect(retriedAfter).toBeGreaterThanOrEqual(timeoutMs);
    expect(retriedAfter).toBeLessThan(timeoutMs + 100 + 1_000);
    await stalled!.closed;
  });

  it("names the audio by Polly's request id", async () => {
    aws.wire.on(SPEECH, speaking(1, 2));
    const heard = await frames(newTTS().synthesize('Hi.', DEFAULT_API_CONNECT_OPTIONS));
    expect(new Set(heard.map((audio) => audio.requestId))).toEqual(new Set(['polly-req-1']));
  });

  it('keeps one sentence adapter for all streams and lets go of it on close', async () => {
    const plugin = newTTS();
    const before = plugin.listenerCount('metrics_collected');
    const streams = Array.from({ length: 12 }, () => plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS }));
    expect(plugin.listenerCount('metrics_collected')).toBe(before + 1);
    expect(plugin.listenerCount('error')).toBe(1);
    for (const stream of streams) stream.close();
    await plugin.close();
    expect(plugin.listenerCount('metrics_collected')).toBe(before);
    expect(plugin.listenerCount('error')).toBe(0);
  });
});

describe('PollyTTS streaming synthesis on the wire', () => {
  const STREAM = /\/v1\/synthesisStream$/;
  /** The text each Polly stream received, by request. */
  const received: string[] = [];
  beforeEach(() => {
    received.length = 0;
  });

  /**
   * Polly's bidirectional stream: each text event is answered with `framesPerText` numbered frames of audio. `then`:
   * `close` answers the close event; `drop` resets the stream after the second text; `throttle` and `stall` read all
   * the text and then fail or go quiet without a word of audio.
   */
  function streamingPolly(framesPerText: number, then: 'close' | 'drop' | 'throttle' | 'stall' = 'close'): WireHandler {
    return async (exchange) => {
      const index = received.push('') - 1;
      exchange.respond('application/vnd.amazon.eventstream', { 'x-amzn-requestid': `polly-stream-${index + 1}` });
      let next = 1;
      let texts = 0;
      for await (const message of requestEvents(exchange.stream)) {
        const { type } = message;
        if (type === 'TextEvent') {
          received[index] += (JSON.parse(Buffer.from(message.body).toString('utf8')) as { Text: string }).Text;
          texts += 1;
          if (then === 'throttle' || then === 'stall') continue;
          await exchange.write(eventFrame('AudioEvent', numberedAudio(next, framesPerText)));
          next += framesPerText;
          if (then === 'drop' && texts === 2) return exchange.drop();
        } else if (type === 'CloseStreamEvent') {
          if (then === 'stall') return void (await exchange.closed);
          if (then === 'throttle') {
            await exchange.write(exceptionFrame('ThrottlingException', 'Rate exceeded'));
            return exchange.end();
          }
          await exchange.write(eventFrame('StreamClosedEvent', { RequestCharacters: 20 }));
          return exchange.end();
        }
      }
    };
  }

  function streamingTTS() {
    return new PollyTTS({ client: aws.client, engine: 'generative', streaming: true });
  }

  async function speak(stream: tts.SynthesizeStream, ...texts: string[]): Promise<tts.SynthesizedAudio[]> {
    for (const text of texts) stream.pushText(text);
    stream.endInput();
    const out: tts.SynthesizedAudio[] = [];
    for await (const audio of stream) if (audio !== tts.SynthesizeStream.END_OF_STREAM) out.push(audio);
    return out;
  }

  it("speaks through the SDK's event stream and names the audio by Polly's request id", async () => {
    aws.wire.on(STREAM, streamingPolly(2));
    const stream = streamingTTS().stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    const heard = await speak(stream, 'Hello there, ', 'how are you?');
    expect(heard.map(firstSample)).toEqual([1, 2, 3, 4, 5, 6]);
    expect(new Set(heard.map((audio) => audio.requestId))).toEqual(new Set(['polly-stream-1']));
    expect(heard.at(-1)?.final).toBe(true);
    expect(received).toEqual(['Hello there, how are you?']);
  });

  it('replays the whole segment into a new stream when Polly fails before any audio', async () => {
    aws.wire.on(STREAM, script(streamingPolly(1, 'throttle'), streamingPolly(1)));
    const plugin = streamingTTS();
    const errors = errorsOf(plugin);
    const stream = plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    const heard = await speak(stream, 'Hello there, ', 'how are ', 'you?');
    expect(received).toEqual(['Hello there, how are you?', 'Hello there, how are you?']);
    expect(heard.map(firstSample)).toEqual([1, 2]);
    expect(new Set(heard.map((audio) => audio.requestId))).toEqual(new Set(['polly-stream-2']));
    expect(errors).toEqual([]);
  });

  it('never repeats audio when the stream drops mid-sentence: the failure is final', async () => {
    aws.wire.on(STREAM, streamingPolly(2, 'drop'));
    const plugin = streamingTTS();
    const errors = errorsOf(plugin);
    const stream = plugin.stream({ connOptions: DEFAULT_API_CONNECT_OPTIONS });
    const heard = await speak(stream, 'One two ', 'three four ', 'five.');
    const order = heard.map(firstSample);
    expect(new Set(order).size).toBe(order.length);
    expect(aws.wire.count(STREAM)).toBe(1);
    expect(errors.map((e) => [e.recoverable, e.error.retryable])).toEqual([[false, false]]);
  });

  it('detects Polly going quiet after the last text within the timeout, and tries again', async () => {
    aws.wire.on(STREAM, script(streamingPolly(1, 'stall'), streamingPolly(1)));
    const plugin = streamingTTS();
    const errors = errorsOf(plugin);
    const timeoutMs = 300;
    const heard = await speak(plugin.stream({ connOptions: { ...DEFAULT_API_CONNECT_OPTIONS, timeoutMs } }), 'Hello.');
    const retriedAfter = aws.wire.requests[1].at - aws.wire.requests[0].at;
    expect(heard.map(firstSample)).toEqual([1]);
    expect(retriedAfter).toBeGreaterThanOrEqual(timeoutMs);
    expect(retriedAfter).toBeLessThan(timeoutMs + 100 + 1_000);
    expect(errors).toEqual([]);
  });

  it('gives up after maxRetry attempts when Polly never answers', async () => {
    aws.wire.on(STREAM, streamingPolly(1, 'throttle'));
    const plugin = streamingTTS();
    const errors = errorsOf(plugin);
    const heard = await speak(
      plugin.stream({ connOptions: { ...DEFAULT_API_CONNECT_OPTIONS, retryIntervalMs: 10 } }),
      'Hi.',
    );
    expect(heard).toEqual([]);
    expect(aws.wire.count(STREAM)).toBe(4);
    expect(errors.map((e) => [e.recoverable, e.error.retryable])).toEqual([[false, false]]);
  });
});
