/**
 * The call's audio recording: stereo (caller left, agent right), 16-bit PCM WAV at 8 or 16 kHz, written in parts while
 * the call runs (a killed worker loses at most the flush interval plus the hold-back), each part its own object.
 *
 * Audio is held back `holdbackMs` before it is written, so a PII span Transcribe reports a little after the words were
 * spoken is silenced before the audio is stored; a span that arrives later still rewrites the part it falls in.
 * In consent mode nothing is written until the caller agreed; refused (or never answered): nothing is ever stored.
 */

import { parseRecordingPartKey, recordingPartKey, S3_PREFIXES } from '@voice-intake/contracts';
import { type EarlierParts, NO_EARLIER_PARTS, type StoredParts } from './stored-parts';

export type RecordingMode = 'off' | 'announce' | 'consent';
export type RecordingSampleRate = 8_000 | 16_000;
export type RecordingState = 'awaiting_consent' | 'recording' | 'refused' | 'stopped';

export interface CallRecordingOptions {
  readonly mode: Exclude<RecordingMode, 'off'>;
  readonly sampleRate: RecordingSampleRate;
  readonly callId: string;
  /** Stores one part (a complete WAV file) under `key`; called again with the same key when a part is re-silenced. */
  readonly put: (key: string, body: Buffer) => Promise<void>;
  /** Writes a record to the call's audit chain (start, consent, stop). */
  readonly audit: (subject: string, payload: Record<string, unknown>) => void;
  /** Default 3000 ms. */
  readonly holdbackMs?: number;
  /** How far back a late PII span can still rewrite stored parts. Default 30 s. */
  readonly rewriteWindowMs?: number;
  /** A worker that took the call over goes on with the recording the previous one(s) made. */
  readonly resume?: RecordingResume;
  /**
   * Lists the call's parts in the bucket. At stop, a part written once whose write failed on our side (a timeout after
   * S3 had stored it) is named stored if the bucket holds it. Without it, such a part stays failed.
   */
  readonly listStored?: () => Promise<StoredParts>;
}

/** Where the recording stood when this worker took the call over. */
export interface RecordingResume {
  /** This worker's segment (1 for the first takeover): its parts are named apart from every earlier one's. */
  readonly segment: number;
  /** Parts the earlier segments wrote as far as known at the takeover (the stop record names what is stored). */
  readonly earlierParts: readonly string[];
  /** Consent mode: the caller's answer, given to an earlier worker (only a yes is ever resumed). */
  readonly consent?: boolean;
}

/** Where a call's parts live in the transcripts bucket (its own prefix: its own lifecycle rule). */
export const RECORDINGS_PREFIX = S3_PREFIXES.recordings;
export { recordingPartKey };

/** What a stopped recording names: the parts stored, in call order, and those that are not (or may not be). */
export interface RecordingParts {
  /** Known to be in the bucket: the earlier segments' as listed, then this worker's that were stored. */
  readonly parts: readonly string[];
  /**
   * A write failed: not in the bucket (an earlier segment's part counted but not found, or one of this worker's never
   * stored), or stored but a rewrite that silenced a PII span did not land (then in `parts` too).
   */
  readonly failedParts: readonly string[];
  /** An earlier segment's parts that could not be checked (no listing): not in `parts`. */
  readonly unverifiedParts: readonly string[];
}

/**
 * Audio kept in memory after it was written, so a late PII span can still silence it: Transcribe finalises an
 * utterance (with its entities) after it ends, and utterances run for many seconds. 30 s stereo at 16 kHz is ~2 MB.
 */
const DEFAULT_REWRITE_WINDOW_MS = 30_000;

interface WrittenPart {
  readonly key: string;
  readonly start: number;
  readonly left: Int16Array;
  readonly right: Int16Array;
}

/** A 44-byte RIFF/WAVE header and interleaved 16-bit little-endian samples, left first. */
export function encodeStereoWav(left: Int16Array, right: Int16Array, sampleRate: number): Buffer {
  const frames = Math.min(left.length, right.length);
  const data = Buffer.alloc(frames * 4);
  for (let i = 0; i < frames; i += 1) {
    data.writeInt16LE(left[i], i * 4);
    data.writeInt16LE(right[i], i * 4 + 2);
  }
  const header = Buffer.alloc(44);
  header.write('RIFF', 0, 'ascii');
  header.writeUInt32LE(36 + data.length, 4);
  header.write('WAVE', 8, 'ascii');
  header.write('fmt ', 12, 'ascii');
  header.writeUInt32LE(16, 16);
  header.writeUInt16LE(1, 20); // PCM
  header.writeUInt16LE(2, 22); // channels
  header.writeUInt32LE(sampleRate, 24);
  header.writeUInt32LE(sampleRate * 4, 28);
  header.writeUInt16LE(4, 32);
  header.writeUInt16LE(16, 34);
  header.write('data', 36, 'ascii');
  header.writeUInt32LE(data.length, 40);
  return Buffer.concat([header, data]);
}

/** Mono 16-bit audio at `from` Hz to `to` Hz: mean of each output sample's input span (down), nearest sample (up). */
export function resample(samples: Int16Array, from: number, to: number): Int16Array {
  if (from === to) return samples;
  const out = new Int16Array(Math.floor((samples.length * to) / from));
  const ratio = from / to;
  for (let j = 0; j < out.length; j += 1) {
    const begin = Math.floor(j * ratio);
    const end = Math.max(begin + 1, Math.min(samples.length, Math.floor((j + 1) * ratio)));
    let sum = 0;
    for (let i = begin; i < end; i += 1) sum += samples[i];
    out[j] = Math.round(sum / (end - begin));
  }
  return out;
}

/** A growable channel of samples from `base` (the first sample not yet written out) on. */
class Channel {
  samples = new Int16Array(0);

  /** Mixes `audio` in at absolute sample `at` (sums, clipped): both sides may overlap their own earlier frames. */
  put(at: number, audio: Int16Array, base: number): void {
    let offset = at - base;
    let source = audio;
    if (offset < 0) {
      source = audio.subarray(-offset);
      offset = 0;
    }
    if (source.length === 0) return;
    const needed = offset + source.length;
    if (needed > this.samples.length) {
      const grown = new Int16Array(Math.max(needed, this.samples.length * 2));
      grown.set(this.samples);
      this.samples = grown;
    }
    for (let i = 0; i < source.length; i += 1) {
      this.samples[offset + i] = Math.max(-32768, Math.min(32767, this.samples[offset + i] + source[i]));
    }
  }

  /** Removes and returns the first `count` samples (zero-filled where nothing was heard). */
  take(count: number): Int16Array {
    const out = new Int16Array(count);
    out.set(this.samples.subarray(0, Math.min(count, this.samples.length)));
    this.samples = this.samples.slice(Math.min(count, this.samples.length));
    return out;
  }

  clear(): void {
    this.samples = new Int16Array(0);
  }
}

export class CallRecording {
  private stateNow: RecordingState;
  private readonly caller = new Channel();
  private readonly agent = new Channel();
  /** Absolute index (at sampleRate, from the recording's start) of the first sample not yet written. */
  private written = 0;
  private nextPart = 1;
  /** This worker's parts, in order; `stored`: those a write of which landed. */
  private readonly own: string[] = [];
  private readonly stored = new Set<string>();
  /** How many writes each of this worker's parts was given (the part, then each rewrite). */
  private readonly writes = new Map<string, number>();
  private readonly recent: WrittenPart[] = [];
  private readonly silenced: { start: number; end: number }[] = [];
  private writing: Promise<void> = Promise.resolve();
  private readonly failed: string[] = [];
  private answer?: boolean;
  /** Spans that reached back past the rewrite window: stored unsilenced, so named in the stop record. */
  private readonly missed: { startMs: number; endMs: number }[] = [];

  constructor(private readonly options: CallRecordingOptions) {
    const { resume } = options;
    if (resume && options.mode === 'consent' && resume.consent !== true) {
      throw new Error('CallRecording options.resume.consent: a consent-mode recording resumes only after a yes');
    }
    this.answer = resume?.consent;
    this.stateNow = options.mode === 'consent' && !resume ? 'awaiting_consent' : 'recording';
    options.audit('started', {
      mode: options.mode,
      sampleRate: options.sampleRate,
      channels: { left: 'caller', right: 'agent' },
      state: this.stateNow,
      ...(resume ? { resumedSegment: resume.segment, earlierParts: resume.earlierParts.length } : {}),
    });
  }

  /** Parts this worker wrote (the earlier segments' not counted). */
  get ownPartCount(): number {
    return this.nextPart - 1;
  }

  /** This worker's recording segment (0 unless it took the call over). */
  get segment(): number {
    return this.options.resume?.segment ?? 0;
  }

  get state(): RecordingState {
    return this.stateNow;
  }

  /** Keys of this worker's parts stored so far, in order. */
  get storedPartKeys(): readonly string[] {
    return this.own.filter((key) => this.stored.has(key));
  }

  /** The caller's answer in consent mode; undefined while (or if never) answered. */
  get consentGiven(): boolean | undefined {
    return this.answer;
  }

  /** This worker's parts whose last write failed (named at stop, and in the transcript). */
  get failedPartKeys(): readonly string[] {
    return [...this.failed];
  }

  private accepts(): boolean {
    return this.stateNow === 'recording' || this.stateNow === 'awaiting_consent';
  }

  private sampleAt(ms: number): number {
    return Math.round((ms * this.options.sampleRate) / 1000);
  }

  /** Caller audio, `atMs` after the recording started. */
  callerAudio(samples: Int16Array, sampleRate: number, atMs: number): void {
    if (!this.accepts()) return;
    this.caller.put(this.sampleAt(atMs), resample(samples, sampleRate, this.options.sampleRate), this.written);
  }

  /** Agent audio (what the caller hears from the agent), `atMs` after the recording started. */
  agentAudio(samples: Int16Array, sampleRate: number, atMs: number): void {
    if (!this.accepts()) return;
    this.agent.put(this.sampleAt(atMs), resample(samples, sampleRate, this.options.sampleRate), this.written);
  }

  /** The caller's answer to the recording question (consent mode). Refused: everything held is dropped, for good. */
  consent(granted: boolean): void {
    if (this.stateNow !== 'awaiting_consent') return;
    this.answer = granted;
    this.options.audit('consent', { granted });
    if (granted) {
      this.stateNow = 'recording';
      return;
    }
    this.stateNow = 'refused';
    this.caller.clear();
    this.agent.clear();
  }

  /**
   * Silences [startMs, endMs) on both channels (the agent may repeat what the caller said): in audio not yet
   * written, and in a recent part by rewriting it.
   */
  silence(startMs: number, endMs: number): Promise<void> {
    const span = { start: this.sampleAt(startMs), end: this.sampleAt(endMs) };
    if (span.end <= span.start) return this.writing;
    this.silenced.push(span);
    const kept = this.recent[0]?.start ?? this.written;
    if (span.start < Math.min(kept, this.written)) this.missed.push({ startMs, endMs });
    for (const part of this.recent) {
      const from = Math.max(span.start, part.start) - part.start;
      const to = Math.min(span.end, part.start + part.left.length) - part.start;
      if (to <= from) continue;
      part.left.fill(0, from, to);
      part.right.fill(0, from, to);
      this.enqueue(part.key, encodeStereoWav(part.left, part.right, this.options.sampleRate));
    }
    return this.writing;
  }

  /** Writes what is older than the hold-back as the next part (only while recording). */
  flush(nowMs: number): Promise<void> {
    if (this.stateNow !== 'recording') return this.writing;
    this.writeUpTo(this.sampleAt(nowMs - (this.options.holdbackMs ?? 3_000)));
    return this.writing;
  }

  /**
   * Writes everything left (consent never given: nothing) and records the stop: the parts stored — `earlier`, the
   * earlier segments' as the bucket has them, then this worker's — and those that are not (or are not known to be).
   */
  async stop(nowMs: number, earlier: EarlierParts = NO_EARLIER_PARTS): Promise<RecordingParts> {
    if (this.stateNow === 'stopped') return this.stoppedWith(earlier);
    if (this.stateNow === 'awaiting_consent') this.consent(false);
    if (this.stateNow === 'recording') this.writeUpTo(this.sampleAt(nowMs));
    await this.writing;
    await this.confirmLandedWrites();
    const state = this.stateNow;
    this.stateNow = 'stopped';
    const result = this.stoppedWith(earlier);
    this.options.audit('stopped', {
      parts: [...result.parts],
      failedParts: [...result.failedParts],
      ...(result.unverifiedParts.length ? { unverifiedParts: [...result.unverifiedParts] } : {}),
      consentRefused: state === 'refused',
      ...(this.missed.length ? { unsilencedSpans: [...this.missed] } : {}),
    });
    return result;
  }

  /**
   * A part written once whose write failed may still be in the bucket: S3 stored it, the answer never came back. The
   * listing decides; it holds the one body ever sent for that key. A part rewritten (re-silenced) stays failed: which
   * of its writes landed cannot be told from a listing, and the stored one may be the unsilenced.
   */
  private async confirmLandedWrites(): Promise<void> {
    const candidates = this.failed.filter((key) => this.writes.get(key) === 1);
    if (!candidates.length || !this.options.listStored) return;
    let stored: StoredParts;
    try {
      stored = await this.options.listStored();
    } catch (error) {
      this.options.audit('failed_parts_unlisted', { parts: candidates, error: String(error) });
      return;
    }
    const landed = candidates.filter((key) => {
      const named = parseRecordingPartKey(this.options.callId, key);
      return named !== undefined && stored.bySegment.get(named.segment)?.has(named.part) === true;
    });
    for (const key of landed) {
      this.stored.add(key);
      this.failed.splice(this.failed.indexOf(key), 1);
    }
    if (landed.length) this.options.audit('failed_writes_landed', { parts: landed });
  }

  private stoppedWith(earlier: EarlierParts): RecordingParts {
    return {
      parts: [...earlier.parts, ...this.storedPartKeys],
      failedParts: [...earlier.missing, ...this.failed],
      unverifiedParts: [...earlier.unverified],
    };
  }

  private writeUpTo(end: number): void {
    const count = end - this.written;
    if (count <= 0) return;
    const start = this.written;
    const left = this.caller.take(count);
    const right = this.agent.take(count);
    for (const span of this.silenced) {
      const from = Math.max(span.start, start) - start;
      const to = Math.min(span.end, end) - start;
      if (to > from) {
        left.fill(0, from, to);
        right.fill(0, from, to);
      }
    }
    this.written = end;
    const key = recordingPartKey(this.options.callId, this.nextPart, this.segment);
    this.nextPart += 1;
    this.own.push(key);
    this.recent.push({ key, start, left, right });
    const keepFrom = end - this.sampleAt(this.options.rewriteWindowMs ?? DEFAULT_REWRITE_WINDOW_MS);
    while (this.recent.length > 1 && this.recent[0].start + this.recent[0].left.length <= keepFrom) this.recent.shift();
    this.enqueue(key, encodeStereoWav(left, right, this.options.sampleRate));
  }

  /**
   * Writes in order: a rewrite of a part never lands before the part itself. A part whose last write failed is named
   * at stop (a later write that landed supersedes a failed one: each is the whole part).
   */
  private enqueue(key: string, body: Buffer): void {
    this.writes.set(key, (this.writes.get(key) ?? 0) + 1);
    this.writing = this.writing.then(() =>
      this.options.put(key, body).then(
        () => {
          this.stored.add(key);
          const at = this.failed.indexOf(key);
          if (at >= 0) this.failed.splice(at, 1);
        },
        () => {
          if (!this.failed.includes(key)) this.failed.push(key);
        },
      ),
    );
  }
}
