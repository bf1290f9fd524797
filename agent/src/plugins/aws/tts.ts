import {
  type Engine,
  PollyClient,
  type LanguageCode as PollyLanguageCode,
  type StartSpeechSynthesisStreamActionStream,
  StartSpeechSynthesisStreamCommand,
  SynthesizeSpeechCommand,
  type VoiceId,
} from '@aws-sdk/client-polly';
import {
  APIConnectionError,
  type APIConnectOptions,
  APIError,
  AudioByteStream,
  DEFAULT_API_CONNECT_OPTIONS,
  log,
  shortuuid,
  tokenize,
  tts,
} from '@livekit/agents';
import type { AudioFrame } from '@livekit/rtc-node';
import { sleep } from '@voice-intake/contracts';
import { isAbortError, toAPIError } from './errors.js';
import { StallWatch } from './stall.js';
import { stripUndefined, warmUpClient } from './util.js';

export interface PollyTTSOptions {
  /** Polly voice ID. Default `Ruth`. */
  voice: string;
  /** Polly engine. Default `generative`. */
  engine: Engine;
  /** Language code, for bilingual voices only. Default: the voice's. */
  language?: string;
  /** PCM sample rate: 8000 or 16000. Default 16000. */
  sampleRate: 8000 | 16000;
  /** Whether input is plain text or SSML (`<speak>…</speak>`). Default `text`. */
  textType: 'text' | 'ssml';
  /** Pronunciation lexicons to apply. Default none. */
  lexiconNames?: string[];
  /**
   * Use StartSpeechSynthesisStream (text in as the LLM writes it, audio out as Polly speaks it).
   * Only the generative engine supports it; with other engines this falls back to sentence
   * chunking over SynthesizeSpeech. Default false.
   */
  streaming: boolean;
  /** Duration of each audio frame pushed to LiveKit, in ms. Default 20. */
  frameDurationMs: number;
  /** AWS region for the client this plugin creates. Default: the SDK's resolution. */
  region?: string;
  /** A pre-built client (shared, custom credentials, tests). Default: one is created. */
  client?: PollyClient;
}

export const DEFAULT_POLLY_TTS_OPTIONS: PollyTTSOptions = {
  voice: 'Ruth',
  engine: 'generative',
  sampleRate: 16000,
  textType: 'text',
  streaming: false,
  frameDurationMs: 20,
};

/** SynthesizeSpeech bills at most 3,000 characters of plain text per request. */
const MAX_TEXT_PER_REQUEST = 3000;

/** Amazon Polly TTS for LiveKit Agents. */
export class PollyTTS extends tts.TTS {
  label = 'aws.PollyTTS';
  readonly #opts: PollyTTSOptions;
  readonly #client: PollyClient;
  readonly #ownsClient: boolean;
  /** Sentence chunking for engines that cannot stream: one adapter for the plugin's life, closed with it. */
  #streamAdapter: tts.StreamAdapter | undefined;
  #prewarm?: Promise<void>;
  readonly #closing = new AbortController();

  constructor(opts: Partial<PollyTTSOptions> = {}) {
    const merged = { ...DEFAULT_POLLY_TTS_OPTIONS, ...stripUndefined(opts) };
    validateTTSOptions(merged);
    super(merged.sampleRate, 1, { streaming: merged.streaming && merged.engine === 'generative' });
    this.#opts = merged;
    if (merged.streaming && merged.engine !== 'generative') {
      log().warn(
        { engine: merged.engine },
        'Polly streaming synthesis needs the generative engine; using sentence chunking',
      );
    }
    this.#ownsClient = !opts.client;
    // One retry owner: the framework's (connOptions). SDK retries would multiply its attempts.
    this.#client = opts.client ?? new PollyClient({ region: opts.region, maxAttempts: 1 });
  }

  override get model(): string {
    return this.#opts.engine;
  }

  override get provider(): string {
    return 'aws.polly';
  }

  get options(): Readonly<PollyTTSOptions> {
    return this.#opts;
  }

  synthesize(text: string, connOptions?: APIConnectOptions, abortSignal?: AbortSignal): PollyChunkedStream {
    return new PollyChunkedStream(this, text, this.#client, this.#opts, connOptions, abortSignal);
  }

  stream(options?: { connOptions?: APIConnectOptions }): tts.SynthesizeStream {
    if (this.capabilities.streaming) {
      return new PollySynthesizeStream(this, this.#client, this.#opts, options?.connOptions);
    }
    this.#streamAdapter ??= new tts.StreamAdapter(this, new tokenize.basic.SentenceTokenizer());
    return this.#streamAdapter.stream(options);
  }

  /** Credentials and region resolved before the first reply (best effort, once). */
  prewarm(): void {
    this.#prewarm ??= warmUpClient(this.#client, this.#closing.signal).catch(() => undefined);
  }

  override async close(): Promise<void> {
    this.#closing.abort();
    await this.#prewarm;
    await this.#streamAdapter?.close();
    this.#streamAdapter = undefined;
    if (this.#ownsClient) this.#client.destroy();
  }
}

/** Turns PCM bytes into frames and holds the latest one back, so the last can be marked final. */
class FrameEmitter {
  readonly #bytes: AudioByteStream;
  #held: AudioFrame | undefined;

  constructor(
    opts: PollyTTSOptions,
    private readonly emit: (frame: AudioFrame, final: boolean) => void,
  ) {
    this.#bytes = new AudioByteStream(opts.sampleRate, 1, Math.round((opts.sampleRate * opts.frameDurationMs) / 1000));
  }

  write(chunk: Uint8Array): void {
    for (const frame of this.#bytes.write(chunk)) this.#push(frame);
  }

  end(): void {
    for (const frame of this.#bytes.flush()) this.#push(frame);
    if (this.#held) this.emit(this.#held, true);
    this.#held = undefined;
  }

  #push(frame: AudioFrame): void {
    if (this.#held) this.emit(this.#held, false);
    this.#held = frame;
  }
}

export class PollyChunkedStream extends tts.ChunkedStream {
  label = 'aws.PollyChunkedStream';
  readonly #client: PollyClient;
  readonly #opts: PollyTTSOptions;
  readonly #timeoutMs: number;

  constructor(
    owner: PollyTTS,
    text: string,
    client: PollyClient,
    opts: PollyTTSOptions,
    connOptions: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
    abortSignal?: AbortSignal,
  ) {
    super(text, owner, connOptions, abortSignal);
    this.#client = client;
    this.#opts = opts;
    this.#timeoutMs = connOptions.timeoutMs;
  }

  /**
   * One attempt. Retryable failures are retried by the framework's loop, which starts the text over: that is only
   * right while no audio went out. Once a frame was pushed a failure is final, or the caller would hear it twice.
   */
  protected async run(): Promise<void> {
    let requestId = shortuuid('polly_');
    let pushed = false;
    const frames = new FrameEmitter(this.#opts, (frame, final) => {
      if (this.queue.closed) return;
      pushed = true;
      this.queue.put({ requestId, segmentId: requestId, frame, final });
    });
    const voice = `polly ${this.#opts.voice}/${this.#opts.engine}`;
    const watch = new StallWatch(this.#timeoutMs, voice, this.abortSignal);
    try {
      for (const text of splitForPolly(this.inputText, this.#opts.textType)) {
        const response = await watch.race(
          this.#client.send(
            new SynthesizeSpeechCommand({
              Text: text,
              TextType: this.#opts.textType,
              VoiceId: this.#opts.voice as VoiceId,
              Engine: this.#opts.engine,
              LanguageCode: this.#opts.language as PollyLanguageCode | undefined,
              LexiconNames: this.#opts.lexiconNames,
              OutputFormat: 'pcm',
              SampleRate: String(this.#opts.sampleRate),
            }),
            { abortSignal: watch.signal },
          ),
        );
        watch.touch();
        if (!pushed) requestId = response.$metadata?.requestId ?? requestId;
        // Frames go out as Polly's bytes arrive, not once the whole clip is in.
        for await (const chunk of watch.events((response.AudioStream ?? []) as AsyncIterable<Uint8Array>)) {
          if (this.abortSignal.aborted) return;
          frames.write(chunk);
        }
        if (watch.timedOut) throw watch.error();
      }
      frames.end();
    } catch (error) {
      if (this.abortSignal.aborted) return;
      if (!watch.timedOut && isAbortError(error)) return;
      throw toAPIError(watch.timedOut ? watch.error() : error, voice, pushed ? { retryable: false } : {});
    } finally {
      watch.stop();
    }
  }
}

/**
 * Bidirectional streaming synthesis (generative engine): text goes to Polly as the LLM produces it
 * and audio comes back while the sentence is still being written. One Polly stream per segment
 * (a segment ends at flush / end of input).
 */
export class PollySynthesizeStream extends tts.SynthesizeStream {
  label = 'aws.PollySynthesizeStream';
  readonly #client: PollyClient;
  readonly #opts: PollyTTSOptions;

  constructor(owner: PollyTTS, client: PollyClient, opts: PollyTTSOptions, connOptions?: APIConnectOptions) {
    super(owner, connOptions);
    this.#client = client;
    this.#opts = opts;
  }

  protected async run(): Promise<void> {
    while (!this.abortSignal.aborted) {
      const first = await this.input.next();
      if (first.done) break;
      if (first.value === tts.SynthesizeStream.FLUSH_SENTINEL || !first.value) continue;
      await this.#runSegment(first.value);
    }
    if (!this.queue.closed) this.queue.put(tts.SynthesizeStream.END_OF_STREAM);
  }

  /**
   * One segment, retried here while no audio of it went out: the framework cannot retry a streaming synthesis (the
   * text it consumed is gone), so this plugin replays the segment's text into a new Polly stream, up to
   * `connOptions.maxRetry` times, 100 ms and then `retryIntervalMs` apart, as the framework's own loop would. Once
   * audio went out a failure is final: a retry would say it again.
   */
  async #runSegment(firstText: string): Promise<void> {
    const segmentId = shortuuid('polly_');
    const segment: SegmentText = { text: firstText, inputDone: false, attempts: 0 };
    let audioOut = false;
    let requestId = segmentId;
    const frames = new FrameEmitter(this.#opts, (frame, final) => {
      if (this.queue.closed) return;
      audioOut = true;
      this.queue.put({ requestId, segmentId, frame, final });
    });
    this.markStarted();
    const what = `polly stream ${this.#opts.voice}`;
    for (let attempt = 0; ; attempt++) {
      const watch = new StallWatch(this.connOptions.timeoutMs, what, this.abortSignal);
      try {
        const response = await watch.race(
          this.#client.send(
            new StartSpeechSynthesisStreamCommand({
              Engine: this.#opts.engine,
              VoiceId: this.#opts.voice as VoiceId,
              LanguageCode: this.#opts.language as PollyLanguageCode | undefined,
              LexiconNames: this.#opts.lexiconNames,
              OutputFormat: 'pcm',
              SampleRate: String(this.#opts.sampleRate),
              ActionStream: this.#textEvents(segment, watch),
            }),
            { abortSignal: watch.signal },
          ),
        );
        requestId = response.$metadata?.requestId ?? requestId;
        let closed = false;
        for await (const event of watch.events(response.EventStream ?? [])) {
          if (this.abortSignal.aborted) return;
          if (event.AudioEvent?.AudioChunk) frames.write(event.AudioEvent.AudioChunk);
          else if (event.StreamClosedEvent) {
            closed = true;
            break;
          }
          // Modelled stream exceptions are thrown by the SDK's event-stream reader; unknown members are skipped.
        }
        if (watch.timedOut) throw watch.error();
        if (!closed && !this.abortSignal.aborted) {
          throw new APIConnectionError({ message: `${what}: the stream ended before it was closed` });
        }
        frames.end();
        return;
      } catch (error) {
        if (this.abortSignal.aborted) return;
        if (!watch.timedOut && isAbortError(error)) return;
        const failure = toAPIError(watch.timedOut ? watch.error() : error, what);
        if (audioOut || !failure.retryable || attempt >= this.connOptions.maxRetry) {
          throw toAPIError(failure, what, { retryable: false });
        }
        const delayMs = attempt === 0 ? 100 : this.connOptions.retryIntervalMs;
        log().warn(
          { attempt: attempt + 1, delayMs, error: failure.message },
          'polly stream failed before audio, retrying',
        );
        try {
          await sleep(delayMs, this.abortSignal);
        } catch {
          return;
        }
      } finally {
        watch.stop();
      }
    }
  }

  /**
   * Text events for one segment: the segment's text so far (all of it again on a retry), then whole words as the
   * LLM writes them, then a forced flush and close.
   */
  async *#textEvents(segment: SegmentText, watch: StallWatch): AsyncGenerator<StartSpeechSynthesisStreamActionStream> {
    const textType = this.#opts.textType;
    const attempt = ++segment.attempts;
    let buffer = segment.text;
    const takeWords = (): string => {
      const cut = Math.max(buffer.lastIndexOf(' '), buffer.lastIndexOf('\n'));
      if (cut < 0) return '';
      const words = buffer.slice(0, cut + 1);
      buffer = buffer.slice(cut + 1);
      return words;
    };
    let words = takeWords();
    if (words.trim()) yield { TextEvent: { Text: words, TextType: textType } };
    while (!segment.inputDone && !this.abortSignal.aborted) {
      // Polly owes no audio while the LLM has not written more: the stall clock waits with it.
      watch.pause();
      // Shared by the attempts: the item a failed attempt was waiting for belongs to the one that replaced it.
      segment.pending ??= this.input.next();
      const next = await segment.pending;
      if (segment.attempts !== attempt) return;
      segment.pending = undefined;
      watch.resume();
      if (next.done || typeof next.value !== 'string') {
        segment.inputDone = true; // the end of input, or the flush sentinel
        break;
      }
      segment.text += next.value;
      buffer += next.value;
      words = takeWords();
      if (words.trim()) yield { TextEvent: { Text: words, TextType: textType } };
    }
    if (buffer.trim()) {
      yield { TextEvent: { Text: buffer, TextType: textType, FlushStreamConfiguration: { Force: true } } };
    }
    yield { CloseStreamEvent: {} };
  }
}

/** What a streaming segment has read from the LLM so far: a retry replays it. */
interface SegmentText {
  text: string;
  /** The segment's input ended (flush or end of input): a retry sends no more than `text`. */
  inputDone: boolean;
  attempts: number;
  /** The read from the LLM's text in progress. */
  pending?: Promise<IteratorResult<string | symbol>>;
}

/** Split plain text over Polly's per-request limit at sentence (else word) boundaries. */
export function splitForPolly(text: string, textType: 'text' | 'ssml', limit = MAX_TEXT_PER_REQUEST): string[] {
  if (text.length <= limit) return [text];
  if (textType === 'ssml') {
    throw new APIError(`polly: SSML input of ${text.length} characters is over the ${limit}-character limit`, {
      retryable: false,
    });
  }
  const parts: string[] = [];
  let rest = text;
  while (rest.length > limit) {
    const window = rest.slice(0, limit);
    const sentenceEnd = Math.max(window.lastIndexOf('. '), window.lastIndexOf('? '), window.lastIndexOf('! '));
    const cut = sentenceEnd > 0 ? sentenceEnd + 1 : window.lastIndexOf(' ') > 0 ? window.lastIndexOf(' ') : limit;
    parts.push(rest.slice(0, cut).trim());
    rest = rest.slice(cut).trimStart();
  }
  if (rest.trim()) parts.push(rest.trim());
  return parts;
}

function validateTTSOptions(opts: PollyTTSOptions): void {
  if (!opts.voice.trim()) throw new Error('PollyTTS options.voice: must be a Polly voice ID such as Ruth');
  if (!['standard', 'neural', 'long-form', 'generative'].includes(opts.engine)) {
    throw new Error(`PollyTTS options.engine: must be standard, neural, long-form or generative, got "${opts.engine}"`);
  }
  if (opts.sampleRate !== 8000 && opts.sampleRate !== 16000) {
    throw new Error(`PollyTTS options.sampleRate: PCM output is 8000 or 16000 Hz, got ${opts.sampleRate}`);
  }
  if (opts.textType !== 'text' && opts.textType !== 'ssml') {
    throw new Error(`PollyTTS options.textType: must be "text" or "ssml"`);
  }
  if (!(opts.frameDurationMs >= 10 && opts.frameDurationMs <= 100)) {
    throw new Error(`PollyTTS options.frameDurationMs: must be between 10 and 100, got ${opts.frameDurationMs}`);
  }
}
