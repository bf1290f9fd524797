import {
  type Alternative,
  type AudioStream,
  type Result,
  StartStreamTranscriptionCommand,
  type StartStreamTranscriptionCommandInput,
  type LanguageCode as TranscribeLanguageCode,
  TranscribeStreamingClient,
  type TranscriptResultStream,
  type VocabularyFilterMethod,
} from '@aws-sdk/client-transcribe-streaming';
import {
  type APIConnectOptions,
  type AudioBuffer,
  asLanguageCode,
  DEFAULT_API_CONNECT_OPTIONS,
  log,
  stt,
  voice,
} from '@livekit/agents';
import type { AudioFrame } from '@livekit/rtc-node';
import { type BackoffOptions, backoffDelayMs, DEFAULT_BACKOFF, sleep } from '@voice-intake/contracts';
import { isRetryableAwsError, toAPIError } from './errors.js';
import { StallWatch } from './stall.js';
import { stripUndefined, warmUpClient } from './util.js';

export interface TranscribeSTTOptions {
  /** Transcribe language code. Default `en-US`. */
  language: string;
  /** Sample rate sent to Transcribe (input frames are resampled to it). Default 16000. */
  sampleRate: number;
  /** AWS region for the client this plugin creates. Default: the SDK's resolution. */
  region?: string;
  /** A pre-built client (shared, custom credentials, tests). Default: one is created. */
  client?: TranscribeStreamingClient;
  /**
   * Partial-results stabilisation: `low` stabilises words soonest, `high` is most accurate;
   * `off` disables it. Default `medium`.
   */
  partialResultsStability: 'low' | 'medium' | 'high' | 'off';
  /** Custom vocabulary name. Default none. */
  vocabularyName?: string;
  /** Vocabulary filter name. Default none. */
  vocabularyFilterName?: string;
  /** How filtered words are treated. Default `mask` when a filter is set. */
  vocabularyFilterMethod?: VocabularyFilterMethod;
  /** Custom language model name. Default none. */
  languageModelName?: string;
  /**
   * Live PII handling: `identify` tags PII entities, `redact` replaces them with `[PII]` in the
   * transcript itself (what reaches the LLM and the records). Default off.
   */
  pii?: 'identify' | 'redact';
  /** PII entity types (e.g. `SSN`, `CREDIT_DEBIT_NUMBER`); needs `pii`. Default: all types. */
  piiEntityTypes?: string[];
  /** Audio per AudioEvent sent to Transcribe, in ms (AWS recommends 50–200). Default 50. */
  chunkDurationMs: number;
  /** How much audio between RECOGNITION_USAGE events, in seconds. Default 5. */
  usageIntervalSeconds: number;
  /**
   * Reconnects in a row after a dropped or stalled stream before giving up (idle timeouts are free): at most
   * 1 + this many sessions fail in a row. This plugin is the only owner of reconnects: its final error is not
   * retryable, so the framework's retry loop (`connOptions.maxRetry`) does not open more. Default 3.
   */
  maxReconnectAttempts: number;
  /** Backoff between reconnects after a drop. Default up to 200 ms doubling to 2 s (full jitter). */
  reconnectBackoff: BackoffOptions;
  /**
   * Emit a PREFLIGHT_TRANSCRIPT when Transcribe has stabilised every word of the utterance so far (needs
   * `partialResultsStability`), so the session can start answering before the final arrives. Default true.
   */
  preflight: boolean;
  /**
   * Hesitations left out of every transcript (partials, preflights and finals alike), so that a final that only adds
   * or drops an "um" still confirms the answer started on its stable partial. Matched as whole words, any case.
   * `[]` keeps the transcript verbatim. Default {@link DEFAULT_FILLER_WORDS}.
   */
  fillerWords: readonly string[];
  /**
   * Called when the final of an utterance arrives whose words were stabilised earlier (a preflight went out): how
   * long the final came after that preflight, and whether it says the same (normalised) thing.
   */
  onPreflightSettled?: (outcome: PreflightOutcome) => void;
}

export interface PreflightOutcome {
  /** From the last preflight of the utterance to its final, in ms. */
  waitMs: number;
  /** The final's normalised words equal the preflight's. */
  confirmed: boolean;
}

/** Hesitation sounds Transcribe writes out; never words that carry meaning ("like", "mm-hmm", "uh-huh"). */
export const DEFAULT_FILLER_WORDS: readonly string[] = ['um', 'umm', 'uh', 'uhh', 'uhm', 'er', 'erm', 'ah', 'hmm'];

export const DEFAULT_TRANSCRIBE_STT_OPTIONS: TranscribeSTTOptions = {
  language: 'en-US',
  sampleRate: 16000,
  partialResultsStability: 'medium',
  chunkDurationMs: 50,
  usageIntervalSeconds: 5,
  maxReconnectAttempts: 3,
  reconnectBackoff: DEFAULT_BACKOFF,
  preflight: true,
  fillerWords: DEFAULT_FILLER_WORDS,
};

const PUNCTUATION = /[\p{P}\p{S}]+/gu;

/**
 * A transcript reduced to what it says: lower case, no punctuation, no fillers, single spaces. Two transcripts say
 * the same thing when their normalised forms are equal (the comparison LiveKit makes before it keeps a preemptive
 * reply is the same, minus the fillers, which the plugin drops from everything it emits).
 */
export function normaliseTranscript(text: string, fillerWords: readonly string[] = DEFAULT_FILLER_WORDS): string {
  const fillers = new Set(fillerWords.map((word) => word.toLowerCase()));
  return text
    .split(/\s+/)
    .map((word) => word.replace(PUNCTUATION, '').toLowerCase())
    .filter((word) => word && !fillers.has(word))
    .join(' ');
}

/** A matcher for filler words as whole tokens, with the punctuation Transcribe attaches to them ("Um," "uh..."). */
function fillerPattern(fillerWords: readonly string[]): RegExp | undefined {
  if (fillerWords.length === 0) return undefined;
  const alternatives = fillerWords.map((word) => word.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')).join('|');
  return new RegExp(`(^|\\s)(?:${alternatives})[,.!?;:…-]*(?=\\s|$)`, 'giu');
}

/** `text` without its filler words, tidied (no doubled spaces, no comma left leading). */
export function dropFillers(text: string, pattern: RegExp | undefined): string {
  if (!pattern) return text;
  return text
    .replace(pattern, '$1')
    .replace(/\s{2,}/g, ' ')
    .replace(/^[\s,;:]+/, '')
    .trim();
}

/** Transcribe closes a stream that received no audio for ~15 s with this BadRequestException. */
export function isIdleTimeout(error: unknown): boolean {
  const e = error as { name?: string; message?: string } | undefined;
  return e?.name === 'BadRequestException' && /timed out/i.test(e.message ?? '');
}

/** Amazon Transcribe streaming STT for LiveKit Agents. */
export class TranscribeSTT extends stt.STT {
  label = 'aws.TranscribeSTT';
  readonly #opts: TranscribeSTTOptions;
  readonly #client: TranscribeStreamingClient;
  readonly #ownsClient: boolean;

  constructor(opts: Partial<TranscribeSTTOptions> = {}) {
    super({ streaming: true, interimResults: true, alignedTranscript: 'word' });
    this.#opts = { ...DEFAULT_TRANSCRIBE_STT_OPTIONS, ...stripUndefined(opts) };
    validateSTTOptions(this.#opts);
    this.#ownsClient = !opts.client;
    // Reconnects are ours: SDK retries cannot replay an event stream anyway.
    this.#client = opts.client ?? new TranscribeStreamingClient({ region: opts.region, maxAttempts: 1 });
  }

  override get model(): string {
    return this.#opts.languageModelName ?? 'transcribe-streaming';
  }

  override get provider(): string {
    return 'aws.transcribe';
  }

  get options(): Readonly<TranscribeSTTOptions> {
    return this.#opts;
  }

  protected async _recognize(_frame: AudioBuffer, _abortSignal?: AbortSignal): Promise<stt.SpeechEvent> {
    throw new Error('TranscribeSTT is streaming only: use stream()');
  }

  stream(options?: { connOptions?: APIConnectOptions }): TranscribeSpeechStream {
    return new TranscribeSpeechStream(this, this.#client, this.#opts, options?.connOptions);
  }

  #prewarm?: Promise<void>;
  readonly #closing = new AbortController();

  /** Credentials and region resolved before the caller first speaks (best effort, once). */
  prewarm(): void {
    this.#prewarm ??= warmUpClient(this.#client, this.#closing.signal).catch(() => undefined);
  }

  override async close(): Promise<void> {
    this.#closing.abort();
    await this.#prewarm;
    if (this.#ownsClient) this.#client.destroy();
  }
}

/** The request fields that stay the same for every session of a stream. */
export function transcribeRequest(
  opts: TranscribeSTTOptions,
): Omit<StartStreamTranscriptionCommandInput, 'AudioStream'> {
  const stabilise = opts.partialResultsStability !== 'off';
  return stripUndefined({
    LanguageCode: opts.language as TranscribeLanguageCode,
    MediaEncoding: 'pcm' as const,
    MediaSampleRateHertz: opts.sampleRate,
    EnablePartialResultsStabilization: stabilise || undefined,
    PartialResultsStability: stabilise ? (opts.partialResultsStability as 'low' | 'medium' | 'high') : undefined,
    VocabularyName: opts.vocabularyName,
    VocabularyFilterName: opts.vocabularyFilterName,
    VocabularyFilterMethod: opts.vocabularyFilterName ? (opts.vocabularyFilterMethod ?? 'mask') : undefined,
    LanguageModelName: opts.languageModelName,
    ContentIdentificationType: opts.pii === 'identify' ? ('PII' as const) : undefined,
    ContentRedactionType: opts.pii === 'redact' ? ('PII' as const) : undefined,
    PiiEntityTypes: opts.pii && opts.piiEntityTypes?.length ? opts.piiEntityTypes.join(',') : undefined,
  });
}

/**
 * Audio waiting to be sent, shared by the successive Transcribe sessions of one stream: whatever a
 * session did not take (including audio that arrived while reconnecting) goes to the next one.
 */
class AudioBacklog {
  #chunks: Uint8Array[] = [];
  #waiters: Array<{ resolve: (chunk: Uint8Array | undefined) => void; signal: AbortSignal }> = [];
  #ended = false;

  put(chunk: Uint8Array): void {
    while (this.#waiters.length > 0) {
      const waiter = this.#waiters.shift()!;
      if (waiter.signal.aborted) continue;
      waiter.resolve(chunk);
      return;
    }
    this.#chunks.push(chunk);
  }

  /** Give a chunk back (a session ended before it could send it). */
  unshift(chunk: Uint8Array): void {
    this.#chunks.unshift(chunk);
  }

  end(): void {
    this.#ended = true;
    for (const waiter of this.#waiters.splice(0)) waiter.resolve(undefined);
  }

  get ended(): boolean {
    return this.#ended && this.#chunks.length === 0;
  }

  get size(): number {
    return this.#chunks.length;
  }

  /** Next chunk, or undefined once the input ended (or `signal` aborted). */
  take(signal: AbortSignal): Promise<Uint8Array | undefined> {
    const next = this.#chunks.shift();
    if (next !== undefined) return Promise.resolve(next);
    if (this.#ended || signal.aborted) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const onAbort = () => {
        const index = this.#waiters.indexOf(waiter);
        if (index >= 0) this.#waiters.splice(index, 1);
        resolve(undefined);
      };
      // The listener goes as soon as the wait ends: a stream waits for every chunk, so one left behind per chunk
      // would pile up on the session's signal for the whole call.
      const waiter = {
        signal,
        resolve: (chunk: Uint8Array | undefined) => {
          signal.removeEventListener('abort', onAbort);
          resolve(chunk);
        },
      };
      this.#waiters.push(waiter);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** Resolves when audio is waiting (true) or the input ended (false). */
  async waitForAudio(signal: AbortSignal): Promise<boolean> {
    const chunk = await this.take(signal);
    if (chunk === undefined) return false;
    this.unshift(chunk);
    return true;
  }
}

interface Session {
  /** Aborts the session's request; fires by itself when Transcribe goes quiet while audio flows. */
  watch: StallWatch;
  /** Seconds of audio sent by earlier sessions: Transcribe's times restart at 0 on each session. */
  timeOffset: number;
  delivered: boolean;
  /** Audio was sent since Transcribe's last event. */
  audioSinceEvent: boolean;
}

export class TranscribeSpeechStream extends stt.SpeechStream {
  label = 'aws.TranscribeSpeechStream';
  readonly #owner: TranscribeSTT;
  readonly #client: TranscribeStreamingClient;
  readonly #opts: TranscribeSTTOptions;
  readonly #backlog = new AudioBacklog();
  readonly #logger = log().child({ stt: 'aws.TranscribeSTT' });
  readonly #bytesPerSecond: number;
  #pumpStarted = false;
  #bytesSent = 0;
  #bytesReported = 0;
  #speaking = false;
  /** The latest partial of the utterance in progress, finalised if its session dies. */
  #pendingPartial: stt.SpeechData | undefined;
  #partialsWithheld = 0;
  #requestId = '';
  #sessionsStarted = 0;
  readonly #timeoutMs: number;
  /** Preflights on: stabilisation is on, and partials carry no PII Transcribe would redact only in the final. */
  readonly #preflight: boolean;
  readonly #fillers: RegExp | undefined;
  readonly #fillerSet: ReadonlySet<string>;
  /** The utterance's last preflight: its text, its normalised words and when it went out. */
  #preflightSent: { text: string; wording: string; at: number } | undefined;

  constructor(
    owner: TranscribeSTT,
    client: TranscribeStreamingClient,
    opts: TranscribeSTTOptions,
    connOptions: APIConnectOptions = DEFAULT_API_CONNECT_OPTIONS,
  ) {
    super(owner, opts.sampleRate, connOptions);
    this.#owner = owner;
    this.#client = client;
    this.#opts = opts;
    this.#bytesPerSecond = opts.sampleRate * 2;
    this.#timeoutMs = connOptions.timeoutMs;
    this.#preflight = opts.preflight && opts.partialResultsStability !== 'off' && opts.pii !== 'redact';
    this.#fillers = fillerPattern(opts.fillerWords);
    this.#fillerSet = new Set(opts.fillerWords.map((word) => word.toLowerCase()));
  }

  /** How many Transcribe sessions this stream opened (1 + reconnects). */
  get sessionsStarted(): number {
    return this.#sessionsStarted;
  }

  protected async run(): Promise<void> {
    this.#startPump();
    let failures = 0;
    while (!this.abortSignal.aborted) {
      // No audio, no session: an idle stream costs nothing and cannot time out.
      if (!(await this.#backlog.waitForAudio(this.abortSignal))) break;
      // Transcribe answers the audio it gets (with empty results during silence): audio sent and no event for the
      // timeout means the session stalled. While no audio flows it owes nothing.
      const session: Session = {
        watch: new StallWatch(this.#timeoutMs, 'transcribe', this.abortSignal, () => session.audioSinceEvent),
        timeOffset: this.#bytesSent / this.#bytesPerSecond,
        delivered: false,
        audioSinceEvent: false,
      };
      try {
        await this.#runSession(session);
        if (this.#backlog.ended || this.abortSignal.aborted) break;
        // Transcribe ended the stream by itself with audio still to send: treat it as a drop, so a
        // service that keeps closing at once is backed off from and eventually given up on.
        const ended = new Error('transcribe stream ended before the audio did');
        ended.name = 'ServiceUnavailableException';
        throw ended;
      } catch (error) {
        if (this.abortSignal.aborted) break;
        if (isIdleTimeout(error)) {
          this.#logger.info('transcribe closed an idle stream, reconnecting on next audio');
          continue;
        }
        failures = session.delivered ? 1 : failures + 1;
        const failure = session.watch.timedOut ? session.watch.error() : error;
        if (!isRetryableAwsError(failure) || failures > this.#opts.maxReconnectAttempts) {
          // Final: this plugin already reconnected as often as it may.
          throw toAPIError(failure, 'transcribe', { retryable: false });
        }
        const delayMs = backoffDelayMs(failures - 1, this.#opts.reconnectBackoff);
        const fields = { attempt: failures, delayMs, error: String(failure) };
        this.#logger.warn(fields, 'transcribe stream dropped, reconnecting');
        try {
          await sleep(delayMs, this.abortSignal);
        } catch {
          break;
        }
      } finally {
        session.watch.stop();
        session.watch.abort();
        this.#finishPendingUtterance(session);
      }
    }
    this.#reportUsage(true);
  }

  /** Move frames from LiveKit's input queue into the backlog, in chunks of `chunkDurationMs`. */
  #startPump(): void {
    if (this.#pumpStarted) return;
    this.#pumpStarted = true;
    const chunkBytes = Math.max(2, Math.round((this.#bytesPerSecond * this.#opts.chunkDurationMs) / 1000) & ~1);
    void (async () => {
      let pending: Uint8Array[] = [];
      let pendingBytes = 0;
      const flush = () => {
        if (pendingBytes === 0) return;
        this.#backlog.put(concat(pending, pendingBytes));
        pending = [];
        pendingBytes = 0;
      };
      for await (const item of this.input) {
        if (item === stt.SpeechStream.FLUSH_SENTINEL) {
          flush();
          continue;
        }
        const bytes = frameBytes(item);
        if (bytes.byteLength === 0) continue;
        pending.push(bytes);
        pendingBytes += bytes.byteLength;
        if (pendingBytes >= chunkBytes) flush();
      }
      flush();
      this.#backlog.end();
    })();
  }

  async #runSession(session: Session): Promise<void> {
    this.#sessionsStarted += 1;
    const { watch } = session;
    const response = await watch.race(
      this.#client.send(
        new StartStreamTranscriptionCommand({ ...transcribeRequest(this.#opts), AudioStream: this.#audioFor(session) }),
        { abortSignal: watch.signal },
      ),
    );
    this.#requestId = response.SessionId ?? response.RequestId ?? this.#requestId;
    for await (const event of watch.events(response.TranscriptResultStream ?? [])) {
      if (this.abortSignal.aborted) return;
      this.#handleEvent(event, session);
    }
    // An aborted HTTP/2 stream can end the event stream quietly rather than throw.
    if (watch.timedOut) throw watch.error();
  }

  async *#audioFor(session: Session): AsyncGenerator<AudioStream> {
    const signal = session.watch.signal;
    while (true) {
      const chunk = await this.#backlog.take(signal);
      if (chunk === undefined) return;
      if (signal.aborted) {
        // The session died while this chunk was on its way: it belongs to the next session.
        this.#backlog.unshift(chunk);
        return;
      }
      this.#bytesSent += chunk.byteLength;
      session.audioSinceEvent = true;
      this.#reportUsage(false);
      yield { AudioEvent: { AudioChunk: chunk } };
    }
  }

  #handleEvent(event: TranscriptResultStream, session: Session): void {
    session.audioSinceEvent = false;
    // Modelled stream exceptions are thrown by the SDK's event-stream reader, not yielded; unknown members are skipped.
    if (!event.TranscriptEvent) return;
    session.delivered = true;
    for (const result of event.TranscriptEvent.Transcript?.Results ?? []) this.#handleResult(result, session);
  }

  #handleResult(result: Result, session: Session): void {
    const alternative = result.Alternatives?.[0];
    const text = dropFillers(alternative?.Transcript ?? '', this.#fillers);
    if (!text.trim()) {
      // Nothing but hesitation (or nothing at all): no words to answer. A final still closes the utterance.
      if (!result.IsPartial) this.#endUtterance();
      return;
    }
    const isFiller = (content: string | undefined) =>
      this.#fillerSet.has((content ?? '').replace(PUNCTUATION, '').toLowerCase());
    const items = (alternative?.Items ?? []).filter(
      (item) => !(item.Type === 'pronunciation' && isFiller(item.Content)),
    );
    const confidences = items.map((i) => i.Confidence).filter((c): c is number => typeof c === 'number');
    // Transcribe's times restart at 0 with each session: the audio earlier sessions took comes first.
    const offset = session.timeOffset + this.startTimeOffset;
    const spoken = items.filter((item) => item.Type === 'pronunciation' && item.Content);
    const stableText = dropFillers(
      items
        .filter((i) => i.Stable)
        .map((i) => i.Content)
        .join(' ')
        .replace(/ ([.,?!])/g, '$1'),
      this.#fillers,
    );
    const data: stt.SpeechData = {
      language: asLanguageCode(result.LanguageCode ?? this.#opts.language),
      text,
      startTime: (result.StartTime ?? 0) + offset,
      endTime: (result.EndTime ?? 0) + offset,
      confidence: confidences.length ? confidences.reduce((a, b) => a + b, 0) / confidences.length : 0,
      words: spoken.map((item) =>
        voice.createTimedString({
          text: item.Content!,
          startTime: (item.StartTime ?? 0) + offset,
          endTime: (item.EndTime ?? 0) + offset,
          confidence: item.Confidence,
        }),
      ),
      metadata: {
        resultId: result.ResultId,
        stableText,
        ...(alternative?.Entities?.length ? { piiEntities: alternative.Entities } : {}),
        ...piiAudioSpans(alternative, result, session.timeOffset),
      },
    };
    if (!this.#speaking) {
      this.#speaking = true;
      this.#put({ type: stt.SpeechEventType.START_OF_SPEECH });
    }
    if (result.IsPartial) {
      this.#pendingPartial = data;
      // Covered: Transcribe has stabilised every word of the utterance so far, so they will not change before the
      // final (which may still add words, if the caller goes on). Sent once per new wording, in place of the
      // interim it also is to LiveKit.
      const covered = this.#preflight && spoken.length > 0 && spoken.every((item) => item.Stable);
      const wording = covered ? normaliseTranscript(stableText, this.#opts.fillerWords) : '';
      if (covered && wording && wording !== this.#preflightSent?.wording) {
        this.#preflightSent = { text: stableText, wording, at: performance.now() };
        this.#put({ type: stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, alternatives: [{ ...data, text: stableText }] });
        return;
      }
      this.#put({ type: stt.SpeechEventType.INTERIM_TRANSCRIPT, alternatives: [data] });
      return;
    }
    this.#pendingPartial = undefined;
    const confirmed = this.#settlePreflight(text);
    // A final that says what the preflight said is sent in the preflight's very words: LiveKit starts another
    // preemptive reply when the final's text differs from the preflight's at all (a full stop added), and it keeps
    // the one it has only for the same words. The final's own spelling stays in the metadata.
    const final = confirmed ? { ...data, text: confirmed.text, metadata: { ...data.metadata, finalText: text } } : data;
    this.#put({ type: stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives: [final] });
    this.#endUtterance();
  }

  /**
   * Tells the owner how long the final took after the utterance's last preflight, and whether it confirmed it;
   * returns the confirmed preflight.
   */
  #settlePreflight(finalText: string): { text: string } | undefined {
    const sent = this.#preflightSent;
    this.#preflightSent = undefined;
    if (!sent) return undefined;
    const confirmed = normaliseTranscript(finalText, this.#opts.fillerWords) === sent.wording;
    this.#opts.onPreflightSettled?.({ waitMs: performance.now() - sent.at, confirmed });
    return confirmed ? sent : undefined;
  }

  #endUtterance(): void {
    this.#pendingPartial = undefined;
    this.#preflightSent = undefined;
    if (this.#speaking) {
      this.#speaking = false;
      this.#put({ type: stt.SpeechEventType.END_OF_SPEECH });
    }
  }

  /**
   * A session that dies mid-utterance never finalises it: keep what was heard rather than lose it. With `pii:
   * 'redact'` what was heard is a partial Transcribe has not redacted (it redacts complete segments only): it is never
   * finalised; the final says the words were lost instead (`UNHEARD_UTTERANCE`, so the model asks the caller to say
   * them again), with the whole utterance as a PII span (a recording silences it), and the withholding is counted and
   * logged.
   */
  #finishPendingUtterance(_session: Session): void {
    const partial = this.#pendingPartial;
    this.#pendingPartial = undefined;
    if (partial && this.#opts.pii === 'redact') {
      this.#partialsWithheld += 1;
      this.#logger.warn(
        { words: partial.words?.length ?? 0, partialsWithheld: this.#partialsWithheld },
        'transcribe stream dropped mid-utterance; its unredacted partial is withheld',
      );
      const utterance = {
        start: partial.startTime - this.startTimeOffset,
        end: partial.endTime - this.startTimeOffset,
      };
      const withheld: stt.SpeechData = {
        language: partial.language,
        text: UNHEARD_UTTERANCE,
        startTime: partial.startTime,
        endTime: partial.endTime,
        confidence: 0,
        metadata: { unheard: true, piiAudioSpans: [utterance] },
      };
      this.#put({ type: stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives: [withheld] });
    } else if (partial) {
      const confirmed = this.#settlePreflight(partial.text);
      const final = confirmed ? { ...partial, text: confirmed.text } : partial;
      this.#put({ type: stt.SpeechEventType.FINAL_TRANSCRIPT, alternatives: [final] });
    }
    this.#endUtterance();
  }

  /** Utterances cut off by a dropped stream whose unredacted partial was withheld (`pii: 'redact'` only). */
  get partialsWithheld(): number {
    return this.#partialsWithheld;
  }

  /** RECOGNITION_USAGE every `usageIntervalSeconds` of audio sent, and the remainder at the end. */
  #reportUsage(final: boolean): void {
    const unreported = (this.#bytesSent - this.#bytesReported) / this.#bytesPerSecond;
    if (unreported <= 0 || (!final && unreported < this.#opts.usageIntervalSeconds)) return;
    this.#bytesReported = this.#bytesSent;
    this.#put({ type: stt.SpeechEventType.RECOGNITION_USAGE, recognitionUsage: { audioDuration: unreported } });
  }

  #put(event: stt.SpeechEvent): void {
    if (this.queue.closed) return;
    this.queue.put({ requestId: this.#requestId, ...event });
  }

  /** The STT that owns this stream. */
  get stt(): TranscribeSTT {
    return this.#owner;
  }
}

/**
 * The final of an utterance a dropped stream cut off, under `pii: 'redact'`: its words were heard only as an
 * unredacted partial, which is never passed on. Written for the model, which reads it as the caller's turn.
 */
export const UNHEARD_UTTERANCE =
  '(the line dropped while the caller was speaking and their words were lost: ask them to say it again)';

type TimedSpan = { StartTime?: number; EndTime?: number };

/** A PII span in seconds of the stream's own audio: from its first frame, across reconnects, not startTimeOffset. */
export interface PiiAudioSpan {
  start: number;
  end: number;
}

/**
 * `metadata.piiAudioSpans`: where Transcribe found PII, on the clock of the audio this stream was given (each
 * session's times shifted by the audio earlier sessions took), so a recording of that audio can silence it exactly.
 * The entities, and the words redaction replaced with `[PII]`. An entity without usable times stands for the whole
 * result: PII that cannot be placed is silenced wider, not kept.
 */
export function piiAudioSpans(
  alternative: Pick<Alternative, 'Entities' | 'Items'> | undefined,
  result: TimedSpan,
  sessionOffset: number,
): { piiAudioSpans?: PiiAudioSpan[] } {
  const usable = (span: TimedSpan) =>
    Number.isFinite(span.StartTime) && Number.isFinite(span.EndTime) && span.EndTime! >= span.StartTime!;
  const redactedWords = (alternative?.Items ?? []).filter((item) => item.Content === '[PII]');
  const spans = [...(alternative?.Entities ?? []), ...redactedWords]
    .map((entity) => (usable(entity) ? entity : result))
    .filter(usable)
    .map((span) => ({ start: span.StartTime! + sessionOffset, end: span.EndTime! + sessionOffset }));
  return spans.length ? { piiAudioSpans: spans } : {};
}

function frameBytes(frame: AudioFrame): Uint8Array {
  return new Uint8Array(frame.data.buffer, frame.data.byteOffset, frame.data.byteLength);
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  if (parts.length === 1) return parts[0].slice();
  const out = new Uint8Array(total);
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.byteLength;
  }
  return out;
}

function validateSTTOptions(opts: TranscribeSTTOptions): void {
  if (!/^[a-z]{2,3}-[A-Z]{2}$/.test(opts.language)) {
    throw new Error(
      `TranscribeSTT options.language: must be a Transcribe language code such as en-US, got "${opts.language}"`,
    );
  }
  if (![8000, 16000, 22050, 24000, 32000, 44100, 48000].includes(opts.sampleRate)) {
    throw new Error(`TranscribeSTT options.sampleRate: unsupported PCM sample rate ${opts.sampleRate}`);
  }
  if (!['low', 'medium', 'high', 'off'].includes(opts.partialResultsStability)) {
    throw new Error(`TranscribeSTT options.partialResultsStability: must be low, medium, high or off`);
  }
  if (opts.pii !== undefined && opts.pii !== 'identify' && opts.pii !== 'redact') {
    throw new Error(`TranscribeSTT options.pii: must be "identify" or "redact"`);
  }
  if (opts.piiEntityTypes?.length && !opts.pii) {
    throw new Error('TranscribeSTT options.piiEntityTypes: set options.pii to "identify" or "redact" as well');
  }
  if (opts.vocabularyFilterMethod && !opts.vocabularyFilterName) {
    throw new Error('TranscribeSTT options.vocabularyFilterMethod: needs options.vocabularyFilterName');
  }
  if (!(opts.chunkDurationMs >= 10 && opts.chunkDurationMs <= 500)) {
    throw new Error(`TranscribeSTT options.chunkDurationMs: must be between 10 and 500, got ${opts.chunkDurationMs}`);
  }
  if (!(opts.usageIntervalSeconds > 0)) {
    throw new Error('TranscribeSTT options.usageIntervalSeconds: must be positive');
  }
  if (!Number.isInteger(opts.maxReconnectAttempts) || opts.maxReconnectAttempts < 0) {
    throw new Error('TranscribeSTT options.maxReconnectAttempts: must be a non-negative integer');
  }
  if (typeof opts.preflight !== 'boolean') {
    throw new Error('TranscribeSTT options.preflight: must be true or false');
  }
  if (!Array.isArray(opts.fillerWords) || !opts.fillerWords.every((word) => /^[\p{L}'-]+$/u.test(word))) {
    throw new Error('TranscribeSTT options.fillerWords: must be a list of single words (letters only)');
  }
}
