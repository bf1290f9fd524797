import { Readable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  type BedrockRuntimeClient,
  ConverseStreamCommand,
  type ConverseStreamCommandInput,
  type ConverseStreamOutput,
} from '@aws-sdk/client-bedrock-runtime';
import { type PollyClient, SynthesizeSpeechCommand, type SynthesizeSpeechCommandInput } from '@aws-sdk/client-polly';
import { GetObjectCommand, ListObjectsV2Command, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  StartStreamTranscriptionCommand,
  type StartStreamTranscriptionCommandInput,
  type TranscribeStreamingClient,
  type TranscriptResultStream,
} from '@aws-sdk/client-transcribe-streaming';
import { sdkStreamMixin } from '@smithy/util-stream';
import type { AwsClientStub } from 'aws-sdk-client-mock';
import { rms, SPEECH_RMS_LEVEL } from './speech';

/**
 * Stand-ins for the AWS voice services at the SDK boundary, in the SDK's own shapes (event streams in, event streams
 * out, an SDK stream mixin for Polly's body), that behave like the services over time: Transcribe listens to the
 * audio it is sent, Bedrock streams tokens, Polly streams audio. Latencies are parameters, so the benchmark can
 * simulate the real services' and measure what the pipeline adds on top.
 */

/** A push-based async iterable: what an SDK event stream looks like to its consumer. */
class EventQueue<T> implements AsyncIterable<T> {
  #items: T[] = [];
  #waiting?: (result: IteratorResult<T>) => void;
  #ended = false;
  #error?: unknown;

  push(item: T): void {
    if (this.#waiting) {
      const resolve = this.#waiting;
      this.#waiting = undefined;
      resolve({ value: item, done: false });
    } else this.#items.push(item);
  }

  end(error?: unknown): void {
    this.#ended = true;
    this.#error = error;
    if (this.#waiting) {
      const resolve = this.#waiting;
      this.#waiting = undefined;
      resolve({ value: undefined, done: true });
    }
  }

  async *[Symbol.asyncIterator](): AsyncIterator<T> {
    for (;;) {
      if (this.#items.length > 0) {
        yield this.#items.shift()!;
        continue;
      }
      if (this.#ended) {
        if (this.#error) throw this.#error;
        return;
      }
      const next = await new Promise<IteratorResult<T>>((resolve) => (this.#waiting = resolve));
      if (next.done) {
        if (this.#error) throw this.#error;
        return;
      }
      yield next.value;
    }
  }
}

/**
 * One utterance as Transcribe would report it, with its own timing (all ms after the utterance's real end): a stable
 * partial covering it (every word Stable) and the final. Timed from the end of the caller's speech, not from a
 * silence threshold, so the fake needs to know how long the utterance's speech is.
 */
export interface ScriptedUtterance {
  /** What the final says. */
  text: string;
  /** Length of the utterance's speech (first to last loud 10 ms window, as `speechSpanMs` measures it). */
  speechMs: number;
  /** When the final goes out. */
  finalAfterMs: number;
  /** When a partial with every word stable goes out; none when absent. */
  stableAfterMs?: number;
  /** What that stable partial says (Transcribe revised it in the final when it differs from `text`). Default text. */
  stableText?: string;
}

export interface ListeningTranscribeOptions {
  /** What the caller says, in order: each detected utterance is transcribed as the next entry. */
  utterances: Array<string | ScriptedUtterance>;
  /** Silence that ends an utterance. Default 300 ms. */
  endSilenceMs?: number;
  /** Simulated finalisation latency after the utterance ends (real Transcribe: hundreds of ms). Default 100 ms. */
  finalDelayMs?: number;
  /** RMS over 10 ms above which audio counts as speech. Default SPEECH_RMS_LEVEL. */
  speechLevel?: number;
  /**
   * PII in an utterance (index → [first word, end word)): its final carries an Entity over those words' times and,
   * as with ContentRedactionType, `[PII]` in their place.
   */
  pii?: Record<number, [number, number]>;
}

export interface TranscribeLog {
  sessions: number;
  /** Finals sent, with the stream time they cover and when they went out (`performance.now()`). */
  finals: { text: string; at: number; sentAt: number }[];
  /** Stable partials sent (scripted utterances), when they went out. */
  stables: { text: string; sentAt: number }[];
  /** PII spans reported (seconds of the session's audio) with the utterance's own span. */
  piiSpans: { utterance: number; start: number; end: number; speechStart: number; speechEnd: number }[];
  /** Utterances heard after the script ran out. */
  unscripted: number;
  audioMs: number;
}

function transcriptEvent(
  resultId: string,
  text: string,
  partial: boolean,
  start: number,
  end: number,
  stable = !partial,
): TranscriptResultStream {
  const words = text.split(/\s+/).filter(Boolean);
  const step = (end - start) / Math.max(words.length, 1);
  return {
    TranscriptEvent: {
      Transcript: {
        Results: [
          {
            ResultId: resultId,
            IsPartial: partial,
            StartTime: start,
            EndTime: end,
            Alternatives: [
              {
                Transcript: text,
                Items: words.map((word, index) => ({
                  Content: word,
                  Type: 'pronunciation',
                  Confidence: 0.93,
                  Stable: stable,
                  StartTime: start + index * step,
                  EndTime: start + (index + 1) * step,
                })),
              },
            ],
          },
        ],
      },
    },
  };
}

/**
 * Transcribe that listens: it reads the AudioStream the plugin sends, finds utterances by their energy, sends growing
 * partials while one is spoken and the scripted text as a final once it ends (after the simulated finalisation delay).
 */
export function listeningTranscribe(
  mock: AwsClientStub<TranscribeStreamingClient>,
  options: ListeningTranscribeOptions,
): TranscribeLog {
  const { endSilenceMs = 300, finalDelayMs = 100, speechLevel = SPEECH_RMS_LEVEL } = options;
  const log: TranscribeLog = { sessions: 0, finals: [], stables: [], piiSpans: [], unscripted: 0, audioMs: 0 };
  let next = 0;
  mock.on(StartStreamTranscriptionCommand).callsFake(async (input: StartStreamTranscriptionCommandInput) => {
    const session = log.sessions++;
    const sampleRate = input.MediaSampleRateHertz ?? 16_000;
    const results = new EventQueue<TranscriptResultStream>();
    void (async () => {
      let streamMs = 0;
      let speechStartedMs: number | undefined;
      let lastLoudMs = 0;
      let partials = 0;
      let lastEventMs = 0;
      let lastFinalSent: Promise<unknown> = Promise.resolve();
      for await (const event of input.AudioStream!) {
        const chunk = event.AudioEvent?.AudioChunk;
        if (!chunk || chunk.byteLength < 2) continue;
        const pcm = new Int16Array(
          chunk.buffer.slice(chunk.byteOffset, chunk.byteOffset + chunk.byteLength - (chunk.byteLength % 2)),
        );
        const chunkMs = (pcm.length / sampleRate) * 1000;
        // Listen in 10 ms windows, so speech boundaries do not depend on how the plugin chunks its audio.
        const window = sampleRate / 100;
        let loud = false;
        for (let offset = 0; offset < pcm.length; offset += window) {
          if (rms(pcm.subarray(offset, offset + window)) <= speechLevel) continue;
          loud = true;
          speechStartedMs ??= streamMs + (offset / sampleRate) * 1000;
          lastLoudMs = streamMs + (Math.min(pcm.length, offset + window) / sampleRate) * 1000;
        }
        streamMs += chunkMs;
        log.audioMs += chunkMs;
        if (streamMs - lastEventMs >= 500) {
          // Like the real service, it answers audio during silence too, with empty results.
          lastEventMs = streamMs;
          results.push({ TranscriptEvent: { Transcript: { Results: [] } } });
        }
        if (speechStartedMs === undefined) continue;
        const scripted = options.utterances[next];
        const text = typeof scripted === 'string' ? scripted : scripted?.text;
        const resultId = `s${session}-u${next}`;
        if (typeof scripted === 'object' && !loud && lastLoudMs - speechStartedMs >= scripted.speechMs - 60) {
          // A scripted utterance has all its speech: its stable partial and final go out at their times after its end.
          const [start, end] = [speechStartedMs / 1000, lastLoudMs / 1000];
          const endedAt = performance.now() - (streamMs - lastLoudMs);
          speechStartedMs = undefined;
          partials = 0;
          next += 1;
          // Results come in order, as Transcribe's do: nothing of this utterance before the previous one's final.
          const previous = lastFinalSent;
          const at = (afterMs: number) =>
            previous.then(() => sleep(Math.max(0, endedAt + afterMs - performance.now())));
          if (scripted.stableAfterMs !== undefined) {
            const stableText = scripted.stableText ?? scripted.text;
            void at(scripted.stableAfterMs).then(() => {
              log.stables.push({ text: stableText, sentAt: Date.now() });
              results.push(transcriptEvent(resultId, stableText, true, start, end, true));
            });
          }
          lastFinalSent = at(scripted.finalAfterMs).then(() => {
            log.finals.push({ text: scripted.text, at: end, sentAt: Date.now() });
            results.push(transcriptEvent(resultId, scripted.text, false, start, end));
          });
          continue;
        }
        if (typeof scripted !== 'object' && !loud && streamMs - lastLoudMs >= endSilenceMs) {
          // The chunk just arrived, so stream time `streamMs` is now: the final goes out `finalDelayMs` after the
          // utterance's silence threshold was crossed, however the audio happened to be chunked.
          const finalAt = Date.now() + Math.max(0, lastLoudMs + endSilenceMs + finalDelayMs - streamMs);
          const [start, end] = [speechStartedMs / 1000, lastLoudMs / 1000];
          speechStartedMs = undefined;
          partials = 0;
          if (text === undefined) {
            log.unscripted += 1;
            continue;
          }
          const utterance = next;
          next += 1;
          void sleep(Math.max(0, finalAt - Date.now())).then(() => {
            log.finals.push({ text, at: end, sentAt: Date.now() });
            const event = transcriptEvent(resultId, text, false, start, end);
            const pii = options.pii?.[utterance];
            if (pii) {
              const alternative = event.TranscriptEvent!.Transcript!.Results![0].Alternatives![0];
              const items = alternative.Items!.slice(pii[0], pii[1]);
              const span = { StartTime: items[0].StartTime!, EndTime: items.at(-1)!.EndTime! };
              for (const item of items) item.Content = '[PII]';
              alternative.Entities = [{ Category: 'PII', Type: 'NAME', Content: '[PII]', Confidence: 0.99, ...span }];
              log.piiSpans.push({
                utterance,
                start: span.StartTime,
                end: span.EndTime,
                speechStart: start,
                speechEnd: end,
              });
            }
            results.push(event);
          });
        } else if (text !== undefined && streamMs - speechStartedMs >= (partials + 1) * 400) {
          // A partial every 400 ms of speech, growing a word at a time, as Transcribe's do.
          partials += 1;
          const words = text.split(/\s+/);
          results.push(
            transcriptEvent(
              resultId,
              words.slice(0, Math.min(words.length, partials * 2)).join(' '),
              true,
              speechStartedMs / 1000,
              streamMs / 1000,
            ),
          );
        }
      }
      // The plugin ended the audio stream: finish after any pending final.
      const longest = Math.max(
        finalDelayMs,
        ...options.utterances.map((utterance) => (typeof utterance === 'object' ? utterance.finalAfterMs : 0)),
      );
      await sleep(longest + 10);
      results.end();
    })().catch((error: unknown) => results.end(error));
    return {
      SessionId: `session-${session}`,
      MediaSampleRateHertz: sampleRate,
      TranscriptResultStream: results,
      $metadata: {},
    };
  });
  return log;
}

/** What the model does on one request: say something, call a tool, or both. */
export interface ModelTurn {
  text?: string;
  toolUse?: { name: string; input: Record<string, unknown> };
}

export interface StreamingBedrockOptions {
  /** Simulated time to first token, or a draw per request (its index). Default 0. */
  ttftMs?: number | ((index: number) => number);
  /** Simulated time between tokens (a token = a word here). Default 0. */
  tokenIntervalMs?: number;
}

/** One ConverseStream request as the fake served it. */
export interface BedrockCall {
  /** When it came (Date.now()). */
  startedAt: number;
  ttftMs: number;
  /** Tokens produced before the reply was done or dropped. */
  outputTokens: number;
}

/** Bedrock ConverseStream that answers each request with `decide(request)`, streamed token by token. */
export function streamingBedrock(
  mock: AwsClientStub<BedrockRuntimeClient>,
  decide: (request: ConverseStreamCommandInput, index: number) => ModelTurn,
  options: StreamingBedrockOptions = {},
): { requests: ConverseStreamCommandInput[]; calls: BedrockCall[] } {
  const { tokenIntervalMs = 0 } = options;
  const requests: ConverseStreamCommandInput[] = [];
  // When each request came (Date.now()) and how many tokens the model produced for it before it was done or dropped.
  const calls: BedrockCall[] = [];
  mock.on(ConverseStreamCommand).callsFake(async (input: ConverseStreamCommandInput) => {
    const index = requests.push(structuredClone(input)) - 1;
    const ttftMs = typeof options.ttftMs === 'function' ? options.ttftMs(index) : (options.ttftMs ?? 0);
    const call: BedrockCall = { startedAt: Date.now(), ttftMs, outputTokens: 0 };
    calls.push(call);
    const turn = decide(input, index);
    const sentAt = performance.now();
    // Paced against the request time, not token to token, so timer slack does not accumulate into the figures.
    const until = (offsetMs: number) => sleep(Math.max(0, sentAt + offsetMs - performance.now()));
    async function* events(): AsyncGenerator<ConverseStreamOutput> {
      yield { messageStart: { role: 'assistant' } };
      if (ttftMs > 0) await until(ttftMs);
      let block = 0;
      let outputTokens = 0;
      if (turn.text) {
        const tokens = turn.text.match(/\S+\s*/g) ?? [];
        for (const [position, token] of tokens.entries()) {
          if (position > 0 && tokenIntervalMs > 0) await until(ttftMs + position * tokenIntervalMs);
          yield { contentBlockDelta: { contentBlockIndex: block, delta: { text: token } } };
          outputTokens += 1;
          call.outputTokens = outputTokens;
        }
        yield { contentBlockStop: { contentBlockIndex: block } };
        block += 1;
      }
      if (turn.toolUse) {
        const json = JSON.stringify(turn.toolUse.input);
        const half = Math.floor(json.length / 2);
        yield {
          contentBlockStart: {
            contentBlockIndex: block,
            start: { toolUse: { toolUseId: `tooluse-${index}`, name: turn.toolUse.name } },
          },
        };
        // Tool input arrives in pieces: the plugin must put them back together.
        yield { contentBlockDelta: { contentBlockIndex: block, delta: { toolUse: { input: json.slice(0, half) } } } };
        yield { contentBlockDelta: { contentBlockIndex: block, delta: { toolUse: { input: json.slice(half) } } } };
        yield { contentBlockStop: { contentBlockIndex: block } };
        outputTokens += 10;
      }
      yield { messageStop: { stopReason: turn.toolUse ? 'tool_use' : 'end_turn' } };
      yield {
        metadata: {
          usage: { inputTokens: 900, outputTokens, totalTokens: 900 + outputTokens },
          metrics: { latencyMs: ttftMs },
        },
      };
    }
    return { stream: events(), $metadata: {} };
  });
  return { requests, calls };
}

export interface SpeakingPollyOptions {
  /** Simulated time to first byte, or a draw per request (its index). Default 0. */
  ttfbMs?: number | ((index: number) => number);
  /** Audio length per character of text (speech is about 60 ms a character). Default 60. */
  msPerCharacter?: number;
}

/**
 * Polly SynthesizeSpeech returning 16-bit PCM (a voiced tone as long as the text would take to say), streamed in
 * 100 ms pieces after the simulated first-byte delay, as an SDK stream.
 */
export function speakingPolly(
  mock: AwsClientStub<PollyClient>,
  options: SpeakingPollyOptions = {},
): { texts: string[]; calls: { requestedAt: number; ttfbMs: number }[] } {
  const { msPerCharacter = 60 } = options;
  const texts: string[] = [];
  const calls: { requestedAt: number; ttfbMs: number }[] = [];
  // One second of a voiced tone, copied out as needed: Polly's work is not ours to spend CPU on.
  const tones = new Map<number, Int16Array>();
  const toneAt = (sampleRate: number) => {
    let tone = tones.get(sampleRate);
    if (!tone) {
      tone = new Int16Array(sampleRate);
      for (let i = 0; i < tone.length; i += 1)
        tone[i] = Math.round(6_000 * Math.sin((2 * Math.PI * 180 * i) / sampleRate));
      tones.set(sampleRate, tone);
    }
    return tone;
  };
  mock.on(SynthesizeSpeechCommand).callsFake(async (input: SynthesizeSpeechCommandInput) => {
    const ttfbMs = typeof options.ttfbMs === 'function' ? options.ttfbMs(texts.length) : (options.ttfbMs ?? 0);
    texts.push(input.Text ?? '');
    calls.push({ requestedAt: Date.now(), ttfbMs });
    const sampleRate = Number(input.SampleRate ?? 16_000);
    const totalSamples = Math.round(((input.Text ?? '').length * msPerCharacter * sampleRate) / 1000);
    const pieceSamples = sampleRate / 10; // 180 Hz repeats every 1/180 s: a 100 ms piece starts in phase
    const tone = toneAt(sampleRate);
    const requestedAt = performance.now();
    async function* pcm(): AsyncGenerator<Buffer> {
      if (ttfbMs > 0) await sleep(Math.max(0, requestedAt + ttfbMs - performance.now()));
      for (let offset = 0; offset < totalSamples; offset += pieceSamples) {
        const piece = tone.slice(0, Math.min(pieceSamples, totalSamples - offset));
        yield Buffer.from(piece.buffer);
      }
    }
    return {
      AudioStream: sdkStreamMixin(Readable.from(pcm())),
      ContentType: 'audio/pcm',
      RequestCharacters: (input.Text ?? '').length,
      $metadata: {},
    };
  });
  return { texts, calls };
}

/**
 * S3 as an in-memory map of `bucket/key` → body: objects are never overwritten (the audit bucket's Object Lock), except
 * call recording parts, which a late PII span rewrites (kept as bytes in `recordings`, with every version put).
 * ListObjectsV2 lists a bucket's keys under a prefix in key order, `MaxKeys` a page, continued by token.
 */
export function inMemoryS3(mock: AwsClientStub<S3Client>): {
  objects: Map<string, string>;
  recordings: Map<string, Buffer>;
  recordingPuts: string[];
  failNextPuts: (count: number) => void;
} {
  const objects = new Map<string, string>();
  const recordings = new Map<string, Buffer>();
  const recordingPuts: string[] = [];
  let failPuts = 0;
  mock.on(PutObjectCommand).callsFake((input) => {
    if (failPuts > 0) {
      failPuts -= 1;
      throw Object.assign(new Error('Service Unavailable'), { name: 'ServiceUnavailable' });
    }
    const key = `${input.Bucket}/${input.Key}`;
    // S3's conditional write: a key that exists is refused (412), not overwritten.
    if (input.IfNoneMatch === '*' && (objects.has(key) || recordings.has(key))) {
      throw Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), {
        name: 'PreconditionFailed',
        $metadata: { httpStatusCode: 412 },
      });
    }
    if (input.Key?.startsWith('recordings/')) {
      recordings.set(key, Buffer.from(input.Body as Uint8Array));
      recordingPuts.push(key);
      return {};
    }
    if (objects.has(key)) throw new Error(`overwrite of ${key}`);
    objects.set(key, String(input.Body));
    return {};
  });
  mock.on(ListObjectsV2Command).callsFake((input) => {
    const bucket = `${input.Bucket}/`;
    const keys = [...objects.keys(), ...recordings.keys()]
      .filter((key) => key.startsWith(bucket))
      .map((key) => key.slice(bucket.length))
      .filter(
        (key) => key.startsWith(input.Prefix ?? '') && (!input.ContinuationToken || key > input.ContinuationToken),
      )
      .sort();
    const page = keys.slice(0, input.MaxKeys ?? 1_000);
    const truncated = page.length < keys.length;
    return {
      Contents: page.map((Key) => ({ Key })),
      KeyCount: page.length,
      IsTruncated: truncated,
      ...(truncated ? { NextContinuationToken: page.at(-1) } : {}),
    };
  });
  mock.on(GetObjectCommand).callsFake((input) => {
    const body = objects.get(`${input.Bucket}/${input.Key}`);
    if (body === undefined) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
    return { Body: sdkStreamMixin(Readable.from([Buffer.from(body)])) };
  });
  return {
    objects,
    recordings,
    recordingPuts,
    failNextPuts: (count) => {
      failPuts = count;
    },
  };
}
