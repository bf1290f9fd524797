import { PassThrough, Readable } from 'node:stream';
import {
  PollyClient,
  type StartSpeechSynthesisStreamActionStream,
  StartSpeechSynthesisStreamCommand,
  type StartSpeechSynthesisStreamEventStream,
  SynthesizeSpeechCommand,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-polly';
import { APIError, initializeLogger, tts } from '@livekit/agents';
import { sdkStreamMixin } from '@smithy/util-stream';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { PollyTTS, type PollyTTSOptions, splitForPolly } from '../../src/plugins/aws/tts.js';

initializeLogger({ pretty: false, level: 'silent' });
const polly = mockClient(PollyClient);
const noRetry = { maxRetry: 0, retryIntervalMs: 0, timeoutMs: 10_000 };
const BYTES_PER_20MS = 640; // 16 kHz, 16-bit mono

function pcm(bytes: number, value = 1): Uint8Array {
  return new Uint8Array(new Int16Array(bytes / 2).fill(value).buffer);
}

function newTTS(opts: Partial<PollyTTSOptions> = {}) {
  return new PollyTTS({ client: new PollyClient({ region: 'us-east-1' }), ...opts });
}

function sentSignal(call = 0): AbortSignal | undefined {
  return ((polly.send.getCall(call).args as unknown[])[1] as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
}

beforeEach(() => polly.reset());

describe('PollyTTS (SynthesizeSpeech)', () => {
  it('pushes frames while the audio is still arriving and marks the last one final', async () => {
    const body = new PassThrough();
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: sdkStreamMixin(body), $metadata: {} });
    const stream = newTTS().synthesize('Thanks for calling.', noRetry);

    // Three frames of audio: two go out now, the third waits to learn whether it is the last.
    body.write(pcm(BYTES_PER_20MS * 3));
    const first = await stream.next();
    const second = await stream.next();
    // Two frames reached us while Polly's response body is still open.
    expect(body.writableEnded).toBe(false);
    expect(first.value?.frame.samplesPerChannel).toBe(320);
    expect(first.value?.final).toBe(false);
    expect(second.done).toBe(false);

    body.end(pcm(BYTES_PER_20MS * 2 + 100));
    const rest = [];
    for await (const audio of stream) rest.push(audio);
    const all = [first.value!, second.value!, ...rest];
    const samples = all.reduce((n, a) => n + a.frame.samplesPerChannel, 0);
    expect(samples).toBe((BYTES_PER_20MS * 5 + 100) / 2);
    expect(all.filter((a) => a.final)).toHaveLength(1);
    expect(all.at(-1)?.final).toBe(true);
    expect(all.every((a) => a.frame.sampleRate === 16000)).toBe(true);
  });

  it('sends voice, engine, PCM format, language, lexicons and SSML', async () => {
    polly
      .on(SynthesizeSpeechCommand)
      .resolves({ AudioStream: sdkStreamMixin(Readable.from([Buffer.from(pcm(640))])), $metadata: {} });
    const plugin = newTTS({
      voice: 'Matthew',
      engine: 'neural',
      textType: 'ssml',
      language: 'en-US',
      lexiconNames: ['claims'],
      sampleRate: 8000,
    });
    await plugin.synthesize('<speak>Hello</speak>', noRetry).collect();
    expect(polly.commandCalls(SynthesizeSpeechCommand)[0].args[0].input).toEqual({
      Text: '<speak>Hello</speak>',
      TextType: 'ssml',
      VoiceId: 'Matthew',
      Engine: 'neural',
      LanguageCode: 'en-US',
      LexiconNames: ['claims'],
      OutputFormat: 'pcm',
      SampleRate: '8000',
    });
  });

  it('aborts the in-flight Polly request when the stream is closed (barge-in)', async () => {
    const body = new PassThrough();
    polly.on(SynthesizeSpeechCommand).resolves({ AudioStream: sdkStreamMixin(body), $metadata: {} });
    const stream = newTTS().synthesize('A long answer that the caller interrupts.', noRetry);
    body.write(pcm(BYTES_PER_20MS * 2));
    await stream.next();
    expect(sentSignal()?.aborted).toBe(false);

    stream.close();

    expect(sentSignal()?.aborted).toBe(true);
    body.destroy();
  });

  it('reports throttling as a retryable APIError and a bad voice as not retryable', async () => {
    polly
      .on(SynthesizeSpeechCommand)
      .rejectsOnce(new ThrottlingException({ message: 'Rate exceeded', $metadata: { httpStatusCode: 429 } }))
      .resolves({ AudioStream: sdkStreamMixin(Readable.from([Buffer.from(pcm(640))])), $metadata: {} });
    const plugin = newTTS();
    const errors: APIError[] = [];
    plugin.on('error', (e) => errors.push(e.error as APIError));
    const frame = await plugin.synthesize('Hi', { maxRetry: 1, retryIntervalMs: 1, timeoutMs: 10_000 }).collect();
    expect(frame.samplesPerChannel).toBe(320);
    expect(polly.commandCalls(SynthesizeSpeechCommand)).toHaveLength(2);
    expect(errors).toHaveLength(0);

    polly.reset();
    polly
      .on(SynthesizeSpeechCommand)
      .rejects(
        new ValidationException({ message: 'Voice Nope not found', $metadata: { httpStatusCode: 400 } } as never),
      );
    // LiveKit 1.9's ChunkedStream re-throws a non-retryable error after emitting it, as an
    // unhandled rejection of its internal task: catch that here so only the error event is judged.
    const vitestHandlers = process.listeners('unhandledRejection');
    const rejections: unknown[] = [];
    process.removeAllListeners('unhandledRejection');
    process.on('unhandledRejection', (reason) => rejections.push(reason));
    try {
      for await (const _ of plugin.synthesize('Hi', { maxRetry: 3, retryIntervalMs: 1, timeoutMs: 10_000 })) {
        // no audio expected
      }
      await new Promise((r) => setTimeout(r, 10));
    } finally {
      process.removeAllListeners('unhandledRejection');
      for (const handler of vitestHandlers) process.on('unhandledRejection', handler);
    }
    expect(rejections.every((r) => r instanceof APIError)).toBe(true);
    expect(polly.commandCalls(SynthesizeSpeechCommand)).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(APIError);
    expect(errors[0].retryable).toBe(false);
    expect(errors[0].message).toContain('Voice Nope not found');
  });

  it('splits long plain text at sentence boundaries and refuses over-long SSML', () => {
    const sentence = 'This sentence has some words in it. ';
    const parts = splitForPolly(sentence.repeat(10), 'text', 100);
    expect(parts.every((p) => p.length <= 100)).toBe(true);
    expect(parts.every((p) => p.endsWith('.'))).toBe(true);
    expect(parts.join(' ')).toBe(sentence.repeat(10).trim());
    expect(() => splitForPolly(`<speak>${'a'.repeat(200)}</speak>`, 'ssml', 100)).toThrow(APIError);
  });

  it('rejects bad options naming the key', () => {
    expect(() => newTTS({ sampleRate: 22050 as never })).toThrow(/options\.sampleRate/);
    expect(() => newTTS({ engine: 'turbo' as never })).toThrow(/options\.engine/);
  });
});

describe('PollyTTS streaming (StartSpeechSynthesisStream)', () => {
  /** Speaks each text event back as 20 ms of audio, like Polly would, until the close event. */
  function serveBidi(received: StartSpeechSynthesisStreamActionStream[]) {
    polly.on(StartSpeechSynthesisStreamCommand).callsFake(async (input) => ({
      EventStream: (async function* (): AsyncGenerator<StartSpeechSynthesisStreamEventStream> {
        for await (const action of input.ActionStream as AsyncIterable<StartSpeechSynthesisStreamActionStream>) {
          received.push(action);
          if (action.TextEvent) yield { AudioEvent: { AudioChunk: pcm(BYTES_PER_20MS * 2) } };
          if (action.CloseStreamEvent) {
            yield { StreamClosedEvent: { RequestCharacters: 20 } };
            return;
          }
        }
      })(),
      $metadata: {},
    }));
  }

  it('speaks while the text is still being written and closes the Polly stream at flush', async () => {
    const received: StartSpeechSynthesisStreamActionStream[] = [];
    serveBidi(received);
    const plugin = newTTS({ streaming: true });
    expect(plugin.capabilities.streaming).toBe(true);
    const stream = plugin.stream({ connOptions: noRetry });

    stream.pushText('Hello the');
    stream.pushText('re, how ');
    const first = await stream.next();
    // Audio before the sentence is complete: the LLM has not finished writing it.
    expect(first.value).not.toBe(tts.SynthesizeStream.END_OF_STREAM);
    // Whole words only: "the" waits for "re, how ".
    expect(received.map((a) => a.TextEvent?.Text)).toEqual(['Hello ', 'there, how ']);

    stream.pushText('are you?');
    stream.endInput();
    const rest = [];
    for await (const audio of stream) rest.push(audio);

    expect(received.map((a) => a.TextEvent?.Text).slice(2, 4)).toEqual(['are ', 'you?']);
    expect(received.at(-2)).toEqual({
      TextEvent: { Text: 'you?', TextType: 'text', FlushStreamConfiguration: { Force: true } },
    });
    expect(received.at(-1)).toEqual({ CloseStreamEvent: {} });
    const frames = [first.value, ...rest].filter(
      (a): a is tts.SynthesizedAudio => a !== tts.SynthesizeStream.END_OF_STREAM,
    );
    expect(frames).toHaveLength(8); // two frames per text event
    expect(frames.at(-1)?.final).toBe(true);
    expect(rest.at(-1)).toBe(tts.SynthesizeStream.END_OF_STREAM);
    expect(polly.commandCalls(StartSpeechSynthesisStreamCommand)[0].args[0].input).toMatchObject({
      Engine: 'generative',
      VoiceId: 'Ruth',
      OutputFormat: 'pcm',
      SampleRate: '16000',
    });
  });

  it('aborts the Polly stream when closed mid-sentence', async () => {
    const received: StartSpeechSynthesisStreamActionStream[] = [];
    serveBidi(received);
    const stream = newTTS({ streaming: true }).stream({ connOptions: noRetry });
    stream.pushText('I will keep talking ');
    await stream.next();
    stream.close();
    expect(sentSignal()?.aborted).toBe(true);
  });

  it('falls back to sentence chunking over SynthesizeSpeech when the engine cannot stream', async () => {
    polly.on(SynthesizeSpeechCommand).callsFake(async () => ({
      AudioStream: sdkStreamMixin(Readable.from([Buffer.from(pcm(BYTES_PER_20MS))])),
      $metadata: {},
    }));
    const plugin = newTTS({ streaming: true, engine: 'neural' });
    expect(plugin.capabilities.streaming).toBe(false);
    const stream = plugin.stream({ connOptions: noRetry });
    stream.pushText('First sentence here. Second one');
    stream.pushText(' follows now.');
    stream.endInput();
    for await (const _ of stream) {
      // drain
    }
    expect(polly.commandCalls(StartSpeechSynthesisStreamCommand)).toHaveLength(0);
    expect(polly.commandCalls(SynthesizeSpeechCommand).map((c) => c.args[0].input.Text)).toEqual([
      'First sentence here.',
      'Second one follows now.',
    ]);
  });
});
