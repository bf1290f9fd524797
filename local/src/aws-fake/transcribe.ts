import { randomUUID } from 'node:crypto';
import {
  type FakeRequest,
  type HandlerContext,
  respondFault,
  respondValidation,
  sessionHeader,
  streamException,
  streamFault,
  waitUntil,
} from './context';
import { EventStreamProtocolError, encodeEvent, inboundEvents, respondEventStream, writeMessage } from './event-stream';
import { findPii, type PiiSpan, piiTypesOf, redactPii } from './pii';
import { finalWords } from './scenario';
import type { FakeSession } from './sessions';
import { samplesOf, UtteranceDetector } from './speech';

const SAMPLE_RATES = new Set([8000, 16000, 22050, 24000, 32000, 44100, 48000]);
const UUID = /^[a-fA-F0-9]{8}(-[a-fA-F0-9]{4}){3}-[a-fA-F0-9]{12}$/;
/** A partial every this much speech, one more word each time, as Transcribe's grow. */
const PARTIAL_EVERY_MS = 250;
/** Transcribe answers audio even when nothing is said: an event with no results at least this often. */
const EMPTY_EVENT_EVERY_MS = 500;

interface Word {
  Content: string;
  Type: 'pronunciation' | 'punctuation';
  StartTime: number;
  EndTime: number;
  Confidence?: number;
  Stable?: boolean;
}

const TOKEN = /\[PII\]|[^\s.,?!]+(?:[.@][^\s.,?!]+)*|[.,?!]/gu;

/** Items over [start, end], each word's share of the time by its length (punctuation takes none), with offsets. */
function timedItems(text: string, start: number, end: number): { item: Word; from: number; to: number }[] {
  const tokens = [...text.matchAll(TOKEN)];
  const weight = (token: string) => (/^[.,?!]$/.test(token) ? 0 : token.length + 1);
  const total = tokens.reduce((sum, token) => sum + weight(token[0]), 0) || 1;
  let at = start;
  return tokens.map((token) => {
    const content = token[0];
    const duration = ((end - start) * weight(content)) / total;
    const punctuation = weight(content) === 0;
    const item: Word = {
      Content: content,
      Type: punctuation ? 'punctuation' : 'pronunciation',
      StartTime: round(at),
      EndTime: round(at + duration),
      ...(punctuation ? {} : { Confidence: 0.95 }),
    };
    at += duration;
    return { item, from: token.index, to: token.index + content.length };
  });
}

/** Word timings over [start, end], each word's share by its length (punctuation takes no time). */
export function wordItems(text: string, start: number, end: number): Word[] {
  return timedItems(text, start, end).map((timed) => timed.item);
}

/**
 * What a final says: the script line, with PII identified or redacted when the request asked for it; `stable`, what
 * the line's stable partial says where the final revises it.
 */
interface Spoken {
  text: string;
  spans: PiiSpan[];
  stable?: string;
}

const round = (seconds: number) => Math.round(seconds * 1000) / 1000;

interface Entity {
  Category: 'PII';
  Type: string;
  Content: string;
  StartTime: number;
  EndTime: number;
  Confidence: number;
}

function transcriptEvent(
  resultId: string,
  items: Word[],
  partial: boolean,
  start: number,
  end: number,
  language: string,
  entities: Entity[] = [],
) {
  const transcript = items
    .map((item) => item.Content)
    .join(' ')
    .replace(/ ([.,?!])/g, '$1');
  return {
    Transcript: {
      Results: [
        {
          ResultId: resultId,
          IsPartial: partial,
          StartTime: round(start),
          EndTime: round(end),
          ChannelId: 'ch_0',
          LanguageCode: language,
          Alternatives: [{ Transcript: transcript, Items: items, ...(entities.length ? { Entities: entities } : {}) }],
        },
      ],
    },
  };
}

/**
 * StartStreamTranscription (`POST /stream-transcription`): listens to the PCM it is sent, finds utterances by their
 * energy, sends growing partials while one is spoken (items marked Stable when stabilisation was asked for), a partial
 * whose every word is Stable `transcribeStableAfterMs` after the speech ended (when set and stabilisation was asked
 * for) and a final with word timings once it ends; the words are the session's script, line by line.
 */
export async function handleTranscribe(ctx: HandlerContext, request: FakeRequest): Promise<void> {
  const { stream, headers } = request;
  const language = String(headers['x-amzn-transcribe-language-code'] ?? '');
  const encoding = String(headers['x-amzn-transcribe-media-encoding'] ?? '');
  const sampleRate = Number(headers['x-amzn-transcribe-sample-rate']);
  const stabilise = headers['x-amzn-transcribe-enable-partial-results-stabilization'] === 'true';
  const stability = String(headers['x-amzn-transcribe-partial-results-stability'] ?? 'high');
  const given = headers['x-amzn-transcribe-session-id'];
  const identify = headers['x-amzn-transcribe-content-identification-type'];
  const redact = headers['x-amzn-transcribe-content-redaction-type'];
  const piiHeader = headers['x-amzn-transcribe-pii-entity-types'];
  const piiTypes = piiTypesOf(typeof piiHeader === 'string' ? piiHeader : undefined);
  // The service's own refusals, first one wins.
  const checks: [boolean, string][] = [
    [
      !/^[a-z]{2,3}-[A-Z]{2}$/.test(language),
      'x-amzn-transcribe-language-code: a language code such as en-US is required',
    ],
    [encoding !== 'pcm', `x-amzn-transcribe-media-encoding: this fake hears pcm only, got "${encoding}"`],
    [
      !SAMPLE_RATES.has(sampleRate),
      `x-amzn-transcribe-sample-rate: unsupported rate "${headers['x-amzn-transcribe-sample-rate']}"`,
    ],
    [
      !String(headers['content-type']).startsWith('application/vnd.amazon.eventstream'),
      'content-type: an event stream is required',
    ],
    [typeof given === 'string' && !UUID.test(given), 'x-amzn-transcribe-session-id: must be a UUID'],
    [!!identify && !!redact, 'ContentIdentificationType and ContentRedactionType cannot be used together'],
    [
      (identify ?? redact ?? 'PII') !== 'PII',
      `content identification/redaction type: only PII, got "${String(identify ?? redact)}"`,
    ],
    [!!piiHeader && !identify && !redact, 'PiiEntityTypes: needs ContentIdentificationType or ContentRedactionType'],
    [piiTypes.unknown.length > 0, `PiiEntityTypes: unknown ${piiTypes.unknown.join(', ')}`],
  ];
  const problem = checks.find(([failed]) => failed)?.[1];
  const sessionId = typeof given === 'string' ? given : randomUUID();
  const session = ctx.sessions.resolve({
    explicit: [...(typeof given === 'string' ? [given] : []), ...sessionHeader(headers)],
    texts: [],
    connection: stream.session,
  });
  if (problem) {
    session.record.rejected.push(problem);
    respondValidation(request, 'transcribe', problem);
    return;
  }
  const refused = session.takeFault('transcribe', 'stream-transcription', 'response');
  if (refused) return respondFault(request, refused);

  session.record.transcribe.streams += 1;
  session.record.transcribe.sampleRates.push(sampleRate);
  respondEventStream(stream, {
    'x-amzn-request-id': randomUUID(),
    'x-amzn-transcribe-session-id': sessionId,
    'x-amzn-transcribe-language-code': language,
    'x-amzn-transcribe-sample-rate': String(sampleRate),
    'x-amzn-transcribe-media-encoding': encoding,
    ...(stabilise
      ? {
          'x-amzn-transcribe-enable-partial-results-stabilization': 'true',
          'x-amzn-transcribe-partial-results-stability': stability,
        }
      : {}),
    ...(identify ? { 'x-amzn-transcribe-content-identification-type': 'PII' } : {}),
    ...(redact ? { 'x-amzn-transcribe-content-redaction-type': 'PII' } : {}),
    ...(typeof piiHeader === 'string' ? { 'x-amzn-transcribe-pii-entity-types': piiHeader } : {}),
  });
  const pii = identify ? ('identify' as const) : redact ? ('redact' as const) : undefined;
  await new TranscribeListener(ctx, request, session, {
    sampleRate,
    language,
    stabilise,
    pii,
    piiTypes: piiTypes.types,
  }).run();
}

class TranscribeListener {
  readonly #detector: UtteranceDetector;
  /** Results go out in order: a final waiting out its delay holds back what comes after it. */
  #out: Promise<unknown> = Promise.resolve();
  #utterance = 0;
  #line: Spoken | undefined;
  #partialWords = 0;
  /** What the utterance's all-stable partial said, once it went out. */
  #stableSent: string | undefined;
  #failed = false;
  /** Audio received since the last event went out, in ms. */
  #audioSinceEventMs = 0;

  constructor(
    private readonly ctx: HandlerContext,
    private readonly request: FakeRequest,
    private readonly session: FakeSession,
    private readonly opts: {
      sampleRate: number;
      language: string;
      stabilise: boolean;
      pii?: 'identify' | 'redact';
      piiTypes?: Set<string>;
    },
  ) {
    const latency = ctx.latency();
    this.#detector = new UtteranceDetector(opts.sampleRate, {
      endSilenceMs: latency.transcribeEndSilenceMs,
      minSpeechMs: ctx.minSpeechMs,
      speechLevel: ctx.speechLevel,
    });
  }

  async run(): Promise<void> {
    const { stream } = this.request;
    const idle = new IdleTimer(this.ctx.transcribeIdleTimeoutMs, () => {
      this.#failed = true;
      void streamException(
        stream,
        'transcribe',
        'BadRequestException',
        'Your request timed out because no new audio was received for 15 seconds.',
      );
    });
    try {
      for await (const event of inboundEvents(stream as AsyncIterable<Buffer>)) {
        if (this.#failed || stream.destroyed) return;
        idle.reset();
        if (event.type === 'ConfigurationEvent') continue;
        if (event.type !== 'AudioEvent')
          throw new EventStreamProtocolError(`unexpected ${event.type} in an AudioStream`);
        const fault = this.session.takeFault('transcribe', 'stream-transcription', 'stream');
        if (fault) {
          this.#failed = true;
          await streamFault(stream, fault);
          return;
        }
        this.#hear(samplesOf(event.body));
      }
      const last = this.#detector.end();
      if (last) this.#final(last.start, last.end);
      await this.#out;
      if (!stream.destroyed && !this.#failed) stream.end();
    } catch (error) {
      if (stream.destroyed || this.#failed) return;
      const message = error instanceof EventStreamProtocolError ? error.message : 'the audio stream broke off';
      this.session.record.rejected.push(message);
      this.#failed = true;
      await this.#out;
      await streamException(stream, 'transcribe', 'BadRequestException', message);
    } finally {
      idle.stop();
    }
  }

  #hear(samples: Int16Array): void {
    const seconds = samples.length / this.opts.sampleRate;
    this.session.record.transcribe.audioSeconds += seconds;
    this.#audioSinceEventMs += seconds * 1000;
    for (const ended of this.#detector.push(samples)) this.#final(ended.start, ended.end);
    this.#partial();
    const current = this.#detector.current;
    const stableAfterMs = this.#stableAfterMs();
    if (current && stableAfterMs !== undefined && current.quietMs >= stableAfterMs) this.#stablePartial(current, 0);
    // Silence still gets answers, as from the service: a client may take a quiet stream for a stalled one.
    if (this.#audioSinceEventMs >= EMPTY_EVENT_EVERY_MS) {
      this.session.record.transcribe.emptyEvents += 1;
      this.#send({ Transcript: { Results: [] } }, 0);
    }
  }

  #partial(): void {
    const current = this.#detector.current;
    if (!current || current.loudMs < this.ctx.minSpeechMs) return;
    const words = this.#words();
    const shown = Math.min(words.length, Math.floor((this.#detector.streamMs - current.startMs) / PARTIAL_EVERY_MS));
    if (shown <= this.#partialWords || shown === 0) return;
    this.#partialWords = shown;
    const start = current.startMs / 1000;
    const end = this.#detector.streamMs / 1000;
    const items = wordItems(words.slice(0, shown).join(' '), start, end).map((item, index, all) =>
      // Stabilisation marks the words Transcribe will not revise: all but the newest two here.
      this.opts.stabilise ? { ...item, Stable: index < all.length - 2 } : item,
    );
    this.session.record.transcribe.partials += 1;
    this.#send(transcriptEvent(this.#resultId(), items, true, start, end, this.opts.language), 0);
  }

  /** When the all-stable partial is due after the end of speech, if this stream gets one. */
  #stableAfterMs(): number | undefined {
    const ms = this.ctx.latency().transcribeStableAfterMs;
    return this.opts.stabilise && ms !== null ? ms : undefined;
  }

  /**
   * The utterance's words, every one Stable: its script line, or the line's `stable` words where the final revises
   * them. Once per utterance; no growing partial follows it.
   */
  #stablePartial(current: { startMs: number; loudMs: number; speechEndMs: number }, delayMs: number): void {
    if (this.#stableSent !== undefined || current.loudMs < this.ctx.minSpeechMs) return;
    const spoken = this.#spoken();
    const text = spoken.stable ?? spoken.text;
    this.#stableSent = text;
    this.#partialWords = Number.POSITIVE_INFINITY;
    const start = current.startMs / 1000;
    const end = current.speechEndMs / 1000;
    const items = wordItems(text, start, end).map((item) => ({ ...item, Stable: true }));
    this.session.record.transcribe.partials += 1;
    // The agent answers these words before the final: its model request must still find this session.
    this.ctx.sessions.remember(text, this.session.key);
    this.#send(transcriptEvent(this.#resultId(), items, true, start, end, this.opts.language), delayMs);
  }

  /** Redacted words are `[PII]` in partials too (nothing to un-say later). */
  #withPii(text: string): { text: string; spans: PiiSpan[] } {
    const spans = this.opts.pii ? findPii(text, this.opts.piiTypes) : [];
    return this.opts.pii === 'redact' ? redactPii(text, spans) : { text, spans };
  }

  /** The utterance's words as sent. */
  #spoken(): Spoken {
    if (!this.#line) {
      const line = this.session.nextCallerLine();
      this.#line = {
        ...this.#withPii(finalWords(line)),
        ...(typeof line === 'string' ? {} : { stable: this.#withPii(line.stable).text }),
      };
    }
    return this.#line;
  }

  #words(): string[] {
    return this.#spoken().text.split(/\s+/).filter(Boolean);
  }

  #resultId(): string {
    return `${this.session.key}-${this.session.record.transcribe.streams}-${this.#utterance}`;
  }

  #final(start: number, end: number): void {
    const stableAfterMs = this.#stableAfterMs();
    if (stableAfterMs !== undefined) {
      // Ended before its stable partial was due (a long stable delay, or the audio stopped): it still goes first.
      const quietMs = this.#detector.streamMs - end * 1000;
      const speech = { startMs: start * 1000, loudMs: Number.POSITIVE_INFINITY, speechEndMs: end * 1000 };
      this.#stablePartial(speech, Math.max(0, stableAfterMs - quietMs));
    }
    const { text, spans } = this.#spoken();
    const timed = timedItems(text, start, end);
    const items = timed.map(({ item }) => (this.opts.stabilise ? { ...item, Stable: true } : item));
    const entities = spans.map((span): Entity => {
      const covered = timed.filter((token) => token.from < span.end && token.to > span.start);
      return {
        Category: 'PII',
        Type: span.type,
        Content: text.slice(span.start, span.end),
        StartTime: covered[0]?.item.StartTime ?? round(start),
        EndTime: covered.at(-1)?.item.EndTime ?? round(end),
        Confidence: 0.99,
      };
    });
    const event = transcriptEvent(this.#resultId(), items, false, start, end, this.opts.language, entities);
    const stable = this.#stableSent;
    this.session.record.transcribe.utterances.push({
      start: round(start),
      end: round(end),
      text,
      ...(stable === undefined ? {} : { stable }),
    });
    this.ctx.sessions.remember(text, this.session.key);
    this.#utterance += 1;
    this.#line = undefined;
    this.#partialWords = 0;
    this.#stableSent = undefined;
    this.#send(event, this.ctx.latency().transcribeFinalDelayMs);
  }

  #send(event: object, delayMs: number): void {
    this.#audioSinceEventMs = 0;
    const at = performance.now() + delayMs;
    const { stream } = this.request;
    this.#out = this.#out.then(async () => {
      await waitUntil(at, stream);
      if (!this.#failed) await writeMessage(stream, encodeEvent('TranscriptEvent', event as Record<string, unknown>));
    });
  }
}

/** Transcribe ends a stream that got no audio for a while (15 s in the service). */
class IdleTimer {
  #timer: NodeJS.Timeout | undefined;
  constructor(
    private readonly ms: number,
    private readonly onIdle: () => void,
  ) {
    this.reset();
  }
  reset(): void {
    this.stop();
    if (this.ms > 0) this.#timer = setTimeout(this.onIdle, this.ms);
  }
  stop(): void {
    if (this.#timer) clearTimeout(this.#timer);
  }
}
