import { ReadableStream, TransformStream } from 'node:stream/web';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { llm, stt, voice } from '@livekit/agents';
import type { AudioFrame } from '@livekit/rtc-node';
import {
  MAX_RECORDING_SEGMENT,
  recordingPartKeys,
  type SessionRecording,
  type TranscriptRecording,
} from '@voice-intake/contracts';
import { z } from 'zod';
import type { PiiAudioSpan } from '../plugins/aws/stt';
import { CallRecording, type RecordingSampleRate } from './recording';
import {
  type EarlierParts,
  earlierParts,
  highestStoredPart,
  highestStoredSegment,
  type ListKeys,
  NO_EARLIER_PARTS,
  type StoredParts,
  s3KeyLister,
  storedParts,
} from './stored-parts';

/**
 * Wires a call's audio into its `CallRecording`, on one call clock (milliseconds since the recording started):
 *
 * - the caller (left): the frames the session's STT receives, placed by counting their samples from where the first
 *   one arrived, so Transcribe's PII times (seconds of that same audio) land on exactly those samples;
 * - the agent (right): the frames the session's audio output is given, placed where the output plays them (one after
 *   the other from the start of a playback segment, never before the moment they were handed over), written only once
 *   their time has come, and cut where the output reports playback ended (barge-in): what the caller never heard is
 *   not in the recording.
 *
 * The output keeps its own class and segment bookkeeping: only its `captureFrame` is observed (wrapping the output in
 * another `AudioOutput` would add a layer whose segment counting must mirror the one below it, or `waitForPlayout`
 * hangs).
 */

export const DEFAULT_RECORDING_NOTICE = 'This call is recorded for quality and compliance.';
export const DEFAULT_RECORDING_CONSENT_QUESTION =
  'Hello, thanks for calling. May I record this call for quality and compliance? Please say yes or no.';

/** What the model is told in consent mode (added to its instructions); the tool is the only way to answer. */
export const RECORDING_CONSENT_INSTRUCTIONS = `The call opened with you asking whether the call may be recorded. As soon as
the caller answers that question, call record_consent once: granted true only for a clear yes, false for a no or anything
unclear. Then greet them. Never ask again and never say the call is recorded unless record_consent confirmed it.`;

/** A caller frame arriving this much later than its samples account for starts a new run (audio stopped meanwhile). */
const CALLER_GAP_MS = 300;
/** Silence this much around each PII span: Transcribe's word edges are estimates. */
const PII_PAD_MS = 120;
/** Consent mode: no answer by then counts as no (the held audio is dropped; memory stays bounded). */
const DEFAULT_CONSENT_TIMEOUT_MS = 120_000;

export interface CallAudioOptions {
  mode: 'announce' | 'consent';
  sampleRate: RecordingSampleRate;
  callId: string;
  /** Stores a part (a WAV file); the same key again when a part is re-silenced. */
  put: (key: string, body: Buffer) => Promise<void>;
  /** A record of kind `recording` in the call's audit chain. */
  audit: (subject: string, payload: Record<string, unknown>) => void;
  /** Silence the spans Transcribe marks as PII (PII_REDACTION). */
  silencePii: boolean;
  notice?: string;
  consentQuestion?: string;
  holdbackMs?: number;
  consentTimeoutMs?: number;
  /** Monotonic milliseconds. Default `performance.now()`. */
  now?: () => number;
  /** The call was taken over: the recording as the earlier worker(s) left it (consent mode: only after a yes). */
  resume?: SessionRecording;
  /**
   * Lists what the bucket holds of the call's recording: after a takeover, the earlier segments' parts (again at stop:
   * a late write counts); at stop, whether a part of this worker's whose write failed on our side landed anyway.
   */
  listStored?: () => Promise<StoredParts>;
  /** After a takeover: the listing taken then (used at stop if listing again fails). */
  storedAtTakeover?: StoredParts;
}

/** What the intake agent needs from the recording: the STT tap, and in consent mode a tool and instructions. */
export interface AgentRecordingHooks {
  sttNode: (
    audio: ReadableStream<AudioFrame> | AsyncIterable<AudioFrame>,
    recognise: (audio: ReadableStream<AudioFrame>) => Promise<ReadableStream<stt.SpeechEvent | string> | null>,
  ) => Promise<ReadableStream<stt.SpeechEvent | string> | null>;
  // biome-ignore lint/suspicious/noExplicitAny: a tool map of differently typed tools, as the framework's own
  tools: Record<string, llm.AnonFunctionTool<any, unknown, string>>;
  instructions?: string;
}

interface AgentFrame {
  samples: Int16Array;
  sampleRate: number;
  /** Where it sits in its segment's audio, and on the call clock. */
  offsetMs: number;
  atMs: number;
  durationMs: number;
}

interface AgentSegment {
  frames: AgentFrame[];
  committed: number;
  capturedMs: number;
}

/** Mono 16-bit samples of a frame (interleaved channels averaged). */
function monoSamples(frame: AudioFrame): Int16Array {
  if (frame.channels <= 1) return frame.data;
  const mono = new Int16Array(frame.samplesPerChannel);
  for (let i = 0; i < mono.length; i += 1) {
    let sum = 0;
    for (let channel = 0; channel < frame.channels; channel += 1) sum += frame.data[i * frame.channels + channel];
    mono[i] = Math.round(sum / frame.channels);
  }
  return mono;
}

function asStream<T>(source: ReadableStream<T> | AsyncIterable<T>): ReadableStream<T> {
  if (source instanceof ReadableStream) return source;
  const iterator = source[Symbol.asyncIterator]();
  return new ReadableStream<T>({
    async pull(controller) {
      const next = await iterator.next();
      if (next.done) controller.close();
      else controller.enqueue(next.value);
    },
    async cancel(reason) {
      await iterator.return?.(reason);
    },
  });
}

/**
 * One STT stream's audio on the call clock: runs of contiguous samples, each anchored where its first frame arrived.
 * Transcribe's times count the same samples, so a time maps through the run it falls in.
 */
class CallerTrack {
  readonly #runs: { streamMs: number; atMs: number }[] = [];
  #streamMs = 0;

  constructor(private readonly audio: CallAudio) {}

  /** Places `frame` (arrived now) and returns where it starts on the call clock. */
  place(frame: AudioFrame, nowMs: number): number {
    const durationMs = (frame.samplesPerChannel / frame.sampleRate) * 1000;
    const arrivedAt = nowMs - durationMs;
    const run = this.#runs.at(-1);
    const expected = run ? run.atMs + (this.#streamMs - run.streamMs) : undefined;
    if (expected === undefined || arrivedAt - expected > CALLER_GAP_MS) {
      this.#runs.push({ streamMs: this.#streamMs, atMs: arrivedAt });
    }
    const at = this.toCallMs(this.#streamMs / 1000);
    this.#streamMs += durationMs;
    return at;
  }

  /** Seconds of this stream's audio → milliseconds on the call clock. */
  toCallMs(streamSeconds: number): number {
    const streamMs = streamSeconds * 1000;
    let run = this.#runs[0];
    for (const candidate of this.#runs) if (candidate.streamMs <= streamMs) run = candidate;
    return run ? run.atMs + (streamMs - run.streamMs) : streamMs;
  }

  tap(audio: ReadableStream<AudioFrame> | AsyncIterable<AudioFrame>): ReadableStream<AudioFrame> {
    return asStream(audio).pipeThrough(
      new TransformStream<AudioFrame, AudioFrame>({
        transform: (frame, controller) => {
          this.audio.callerFrame(this, frame);
          controller.enqueue(frame);
        },
      }),
    );
  }

  watch(events: ReadableStream<stt.SpeechEvent | string>): ReadableStream<stt.SpeechEvent | string> {
    return events.pipeThrough(
      new TransformStream<stt.SpeechEvent | string, stt.SpeechEvent | string>({
        transform: (event, controller) => {
          if (typeof event !== 'string') this.audio.speechEvent(this, event);
          controller.enqueue(event);
        },
      }),
    );
  }
}

export class CallAudio {
  readonly recording: CallRecording;
  /** Sample 0 of the recording. */
  readonly startedAt = new Date();
  readonly #now: () => number;
  readonly #origin: number;
  readonly #silenced = new Set<string>();
  #segment?: AgentSegment;
  #lastAgentFrame?: AudioFrame;
  /** The output is paused (a possible barge-in): frames handed over meanwhile play once it resumes. */
  #paused = false;
  #parked: AudioFrame[] = [];
  #untap?: () => void;
  #consentTimer?: NodeJS.Timeout;
  #stopped?: Promise<TranscriptRecording>;
  #abandoned = false;

  constructor(private readonly options: CallAudioOptions) {
    this.#now = options.now ?? (() => performance.now());
    this.#origin = this.#now();
    const { resume } = options;
    this.recording = new CallRecording({
      mode: options.mode,
      sampleRate: options.sampleRate,
      callId: options.callId,
      put: options.put,
      audit: options.audit,
      holdbackMs: options.holdbackMs,
      listStored: options.listStored,
      resume: resume && {
        segment: resume.segment + 1,
        earlierParts: recordingPartKeys(options.callId, resume.partsPerSegment),
        consent: resume.consent,
      },
    });
    if (this.awaitsConsent) {
      this.#consentTimer = setTimeout(() => {
        if (this.recording.state !== 'awaiting_consent') return;
        options.audit('consent_timeout', { afterMs: options.consentTimeoutMs ?? DEFAULT_CONSENT_TIMEOUT_MS });
        this.recording.consent(false);
      }, options.consentTimeoutMs ?? DEFAULT_CONSENT_TIMEOUT_MS);
      this.#consentTimer.unref();
    }
  }

  /** Milliseconds on the call clock. */
  elapsed(): number {
    return this.#now() - this.#origin;
  }

  get mode(): 'announce' | 'consent' {
    return this.options.mode;
  }

  /** Consent mode on a new call: the question opens the call and the model takes the answer. */
  get awaitsConsent(): boolean {
    return this.options.mode === 'consent' && !this.options.resume;
  }

  /** What the session state keeps, so a worker taking the call over can go on with this recording. */
  get position(): SessionRecording {
    const { resume } = this.options;
    const consent = this.recording.consentGiven;
    return {
      mode: this.options.mode,
      sampleRate: this.options.sampleRate,
      segment: this.recording.segment,
      startedAt: resume?.startedAt ?? this.startedAt.toISOString(),
      resumedAt: resume ? [...resume.resumedAt, this.startedAt.toISOString()] : [],
      ...(consent !== undefined ? { consent } : {}),
      partsPerSegment: [...(resume?.partsPerSegment ?? []), this.recording.ownPartCount],
    };
  }

  /**
   * Opens the call once the session runs (its audio output exists then): observes the output, then says the notice
   * (announce, again after a takeover: the recording goes on) or asks the question (consent; not again after a
   * takeover, the yes stands), uninterruptible, and waits until it has played.
   */
  async open(session: voice.AgentSession): Promise<void> {
    if (session.output.audio) this.tapOutput(session.output.audio);
    if (this.options.mode === 'consent' && !this.awaitsConsent) return;
    await session.say(this.opening, { allowInterruptions: false }).waitForPlayout();
  }

  /** What the caller hears first: the notice (announce) or the question (consent). */
  get opening(): string {
    return this.options.mode === 'announce'
      ? (this.options.notice ?? DEFAULT_RECORDING_NOTICE)
      : (this.options.consentQuestion ?? DEFAULT_RECORDING_CONSENT_QUESTION);
  }

  /** The caller's answer (the `record_consent` tool); what the model is told back. */
  consent(granted: boolean): string {
    if (this.recording.state !== 'awaiting_consent') {
      return this.recording.consentGiven === undefined
        ? 'Recording needs no answer on this call.'
        : `The caller already answered (${this.recording.consentGiven ? 'recording' : 'not recording'}); it stands.`;
    }
    clearTimeout(this.#consentTimer);
    this.recording.consent(granted);
    return granted ? 'The call is being recorded.' : 'The call is not recorded. Carry on without recording.';
  }

  agentHooks(): AgentRecordingHooks {
    return {
      sttNode: async (audio, recognise) => {
        const track = new CallerTrack(this);
        const events = await recognise(track.tap(audio));
        return events ? track.watch(events) : events;
      },
      tools: this.awaitsConsent
        ? {
            record_consent: llm.tool({
              description:
                "Record the caller's answer to whether this call may be recorded. Call it once, as soon as they " +
                'answer the recording question.',
              parameters: z.object({
                granted: z.boolean().describe('true only if the caller clearly said yes to recording'),
              }),
              execute: async ({ granted }) => this.consent(granted),
            }),
          }
        : {},
      instructions: this.awaitsConsent ? RECORDING_CONSENT_INSTRUCTIONS : undefined,
    };
  }

  callerFrame(track: CallerTrack, frame: AudioFrame): void {
    if (this.#stopped || this.#abandoned) return;
    const at = track.place(frame, this.elapsed());
    this.recording.callerAudio(monoSamples(frame), frame.sampleRate, at);
  }

  speechEvent(track: CallerTrack, event: stt.SpeechEvent): void {
    if (!this.options.silencePii || this.#stopped || this.#abandoned) return;
    if (event.type !== stt.SpeechEventType.INTERIM_TRANSCRIPT && event.type !== stt.SpeechEventType.FINAL_TRANSCRIPT) {
      return;
    }
    const spans = event.alternatives?.[0]?.metadata?.piiAudioSpans as PiiAudioSpan[] | undefined;
    for (const span of spans ?? []) {
      const start = Math.max(0, track.toCallMs(span.start) - PII_PAD_MS);
      const end = track.toCallMs(span.end) + PII_PAD_MS;
      // Partials repeat a span until the final: silence (and rewrite a stored part) once.
      const key = `${Math.round(start)}-${Math.round(end)}`;
      if (this.#silenced.has(key)) continue;
      this.#silenced.add(key);
      void this.recording.silence(start, end);
    }
  }

  /**
   * Observes the session's audio output (once the session started: the room's output exists then): the frames it is
   * given, and where its playback segments start and end.
   */
  tapOutput(output: voice.AudioOutput): void {
    if (this.#untap || this.#stopped || this.#abandoned) return;
    const original = output.captureFrame;
    output.captureFrame = (frame: AudioFrame) => {
      this.#agentFrame(frame);
      return original.call(output, frame);
    };
    const pause = output.pause;
    const resume = output.resume;
    output.pause = () => {
      this.#commitDue();
      this.#paused = true;
      pause.call(output);
    };
    output.resume = () => {
      this.#agentResumed();
      resume.call(output);
    };
    const onStarted = () => this.#agentSegmentStarted();
    const onFinished = (event: voice.PlaybackFinishedEvent) => this.#agentSegmentFinished(event);
    output.on(voice.AudioOutput.EVENT_PLAYBACK_STARTED, onStarted);
    output.on(voice.AudioOutput.EVENT_PLAYBACK_FINISHED, onFinished);
    this.#untap = () => {
      output.captureFrame = original;
      output.pause = pause;
      output.resume = resume;
      output.off(voice.AudioOutput.EVENT_PLAYBACK_STARTED, onStarted);
      output.off(voice.AudioOutput.EVENT_PLAYBACK_FINISHED, onFinished);
    };
  }

  #agentFrame(frame: AudioFrame): void {
    this.#lastAgentFrame = frame;
    if (this.#segment && this.#paused) this.#parked.push(frame);
    else if (this.#segment) this.#append(this.#segment, frame);
    this.#commitDue();
  }

  /**
   * Frames parked while paused play from now. What the output still held when it paused (at most its queue, 200 ms
   * in a room) stays where it was scheduled: the output may play it out or drop it, and does not say which.
   */
  #agentResumed(): void {
    this.#paused = false;
    const parked = this.#parked.splice(0);
    if (this.#segment) for (const frame of parked) this.#append(this.#segment, frame);
  }

  #append(segment: AgentSegment, frame: AudioFrame): void {
    const durationMs = (frame.samplesPerChannel / frame.sampleRate) * 1000;
    const previous = segment.frames.at(-1);
    // Played right after the previous frame, or when handed over if the output had run dry.
    const atMs = previous ? Math.max(previous.atMs + previous.durationMs, this.elapsed()) : this.elapsed();
    segment.frames.push({
      samples: monoSamples(frame),
      sampleRate: frame.sampleRate,
      offsetMs: segment.capturedMs,
      atMs,
      durationMs,
    });
    segment.capturedMs += durationMs;
  }

  /** A playback segment starts with the frame being captured right now (the output says so from inside it). */
  #agentSegmentStarted(): void {
    const segment: AgentSegment = { frames: [], committed: 0, capturedMs: 0 };
    this.#segment = segment;
    if (this.#lastAgentFrame) this.#append(segment, this.#lastAgentFrame);
    this.#lastAgentFrame = undefined;
  }

  /** Writes the segment's audio up to where playback ended; the rest never reached the caller. */
  #agentSegmentFinished(event: voice.PlaybackFinishedEvent): void {
    const segment = this.#segment;
    this.#lastAgentFrame = undefined;
    this.#parked = [];
    if (!segment) return;
    this.#segment = undefined;
    const playedMs = event.playbackPosition * 1000;
    for (const frame of segment.frames.slice(segment.committed)) {
      if (frame.offsetMs >= playedMs) break;
      const keep = Math.min(frame.samples.length, Math.round(((playedMs - frame.offsetMs) / 1000) * frame.sampleRate));
      this.recording.agentAudio(frame.samples.subarray(0, keep), frame.sampleRate, frame.atMs);
    }
  }

  /** Writes the agent frames whose time has passed (they have played, or are playing). */
  #commitDue(): void {
    const segment = this.#segment;
    if (!segment) return;
    const now = this.elapsed();
    while (segment.committed < segment.frames.length) {
      const frame = segment.frames[segment.committed];
      if (frame.atMs + frame.durationMs > now) break;
      this.recording.agentAudio(frame.samples, frame.sampleRate, frame.atMs);
      segment.committed += 1;
    }
  }

  /** On the transcript's timer: what is older than the hold-back becomes the next part. */
  flush(): Promise<void> {
    if (this.#stopped || this.#abandoned) return Promise.resolve();
    this.#commitDue();
    return this.recording.flush(this.elapsed());
  }

  /**
   * Another worker holds the call now and goes on with the recording in a segment of its own: capture and write
   * nothing more here (parts not stored yet are lost, as a crash would lose them; the transcript names what is there).
   */
  abandon(): void {
    this.#abandoned = true;
    clearTimeout(this.#consentTimer);
    this.#untap?.();
  }

  /**
   * Call end: what has played is written, the rest of the audio stored, the stop recorded. Once. After a takeover the
   * earlier segments' parts are named as the bucket holds them, listed now: a part the earlier worker stored after it
   * last saved is named, a counted part that is not there is named failed, none is named stored unchecked.
   */
  stop(): Promise<TranscriptRecording> {
    if (this.#abandoned) return Promise.reject(new Error(`recording of call ${this.options.callId} was abandoned`));
    this.#stopped ??= (async () => {
      clearTimeout(this.#consentTimer);
      this.#commitDue();
      this.#untap?.();
      const endMs = this.elapsed();
      const { resume } = this.options;
      const earlier = resume ? await earlierPartsAtStop(this.options.callId, resume, this.options) : NO_EARLIER_PARTS;
      const { parts, failedParts, unverifiedParts } = await this.recording.stop(endMs, earlier);
      const { consent, startedAt, resumedAt } = this.position;
      return {
        mode: this.options.mode,
        sampleRate: this.options.sampleRate,
        startedAt,
        ...(resumedAt.length ? { resumedAt } : {}),
        ...(this.options.mode === 'consent' && consent !== undefined ? { consent } : {}),
        parts: [...parts],
        failedParts: [...failedParts],
        ...(unverifiedParts.length ? { unverifiedParts: [...unverifiedParts] } : {}),
      };
    })();
    return this.#stopped;
  }
}

/** The earlier segments' parts at the call's end: listed again (a late write counts), else as listed at takeover. */
async function earlierPartsAtStop(
  callId: string,
  resume: SessionRecording,
  options: Pick<CallAudioOptions, 'listStored' | 'storedAtTakeover' | 'audit'>,
): Promise<EarlierParts> {
  let stored = options.storedAtTakeover;
  if (options.listStored) {
    try {
      stored = await options.listStored();
    } catch (error) {
      options.audit('earlier_parts_unlisted', {
        at: 'stop',
        error: String(error),
        using: stored ? 'the listing at takeover' : 'nothing: the counted parts stay unverified',
      });
    }
  }
  return earlierParts(callId, resume.partsPerSegment, stored);
}

/**
 * A takeover that does not go on recording (consent not known to be yes, the mode changed, too many takeovers) when
 * earlier workers did store parts: nothing more is recorded, but the transcript still names theirs — as the bucket
 * holds them at the call's end — so the record of the call never silently misses audio that exists.
 */
export class EarlierRecording {
  #stopped?: Promise<TranscriptRecording>;

  constructor(
    private readonly options: {
      callId: string;
      sampleRate: RecordingSampleRate;
      /** Where the recording stood (saved, raised to what the bucket holds): kept as is for a later takeover. */
      resume: SessionRecording;
      listStored: () => Promise<StoredParts>;
      storedAtTakeover?: StoredParts;
      audit: (subject: string, payload: Record<string, unknown>) => void;
    },
  ) {}

  /** Unchanged: this worker adds no segment. */
  get position(): SessionRecording {
    return this.options.resume;
  }

  /** The earlier parts as the bucket holds them now, recorded in the audit chain too. Once. */
  stop(): Promise<TranscriptRecording> {
    this.#stopped ??= this.#stopWith();
    return this.#stopped;
  }

  async #stopWith(): Promise<TranscriptRecording> {
    const { callId, resume, audit } = this.options;
    const earlier = await earlierPartsAtStop(callId, resume, this.options);
    audit('stopped', {
      parts: [...earlier.parts],
      failedParts: [...earlier.missing],
      ...(earlier.unverified.length ? { unverifiedParts: [...earlier.unverified] } : {}),
      notResumed: true,
    });
    return {
      mode: resume.mode,
      sampleRate: this.options.sampleRate,
      startedAt: resume.startedAt,
      ...(resume.resumedAt.length ? { resumedAt: [...resume.resumedAt] } : {}),
      ...(resume.mode === 'consent' && resume.consent !== undefined ? { consent: resume.consent } : {}),
      parts: [...earlier.parts],
      failedParts: [...earlier.missing],
      ...(earlier.unverified.length ? { unverifiedParts: [...earlier.unverified] } : {}),
    };
  }
}

export interface CallAudioSetup {
  env: {
    RECORDING_MODE: 'off' | 'announce' | 'consent';
    RECORDING_SAMPLE_RATE: RecordingSampleRate;
    RECORDING_NOTICE?: string;
    RECORDING_CONSENT_QUESTION?: string;
    PII_REDACTION: boolean;
    TRANSCRIPTS_BUCKET: string;
  };
  callId: string;
  s3: S3Client;
  /** Writes a record of kind `recording` to the call's audit chain. */
  audit: (subject: string, payload: Record<string, unknown>) => void;
  /** A worker taking the call over: whether it did, and the recording as the session state has it. */
  resumed: boolean;
  resumeFrom?: SessionRecording;
  /** When the call started: the recording's start when the earlier worker died before saving where it stood. */
  callStartedAt?: string;
  /** How the bucket is listed after a takeover. Default: ListObjectsV2 on TRANSCRIPTS_BUCKET through `s3`. */
  listKeys?: ListKeys;
}

/** Why a call taken over does not go on recording; undefined when it does. */
function notResumedBecause(
  mode: 'off' | 'announce' | 'consent',
  saved: SessionRecording | undefined,
  soFar: SessionRecording,
): string | undefined {
  if (mode === 'off') return 'recording switched off during the call';
  if (saved && saved.mode !== mode) return `recording mode changed from ${saved.mode}`;
  if (soFar.segment >= MAX_RECORDING_SEGMENT) return 'too many takeovers';
  if (mode === 'announce') return undefined;
  if (!saved || saved.consent === undefined) return 'consent unknown: the caller had not answered, or it was not saved';
  if (!saved.consent) return 'consent refused';
  return undefined;
}

/**
 * Where the recording stands at a takeover: the session state as saved, raised to what the bucket holds (a listing):
 * a segment or part stored after the last save counts, so this worker's segment is above every stored one and no
 * part is ever written twice. Nothing saved (the earlier worker died before its first save): from the call start.
 */
function recordingSoFar(
  mode: 'announce' | 'consent',
  saved: SessionRecording | undefined,
  stored: StoredParts | undefined,
  callStartedAt: string | undefined,
): SessionRecording {
  const segment = Math.max(saved?.segment ?? 0, (stored && highestStoredSegment(stored)) ?? 0);
  return {
    mode: saved?.mode ?? mode,
    ...(saved?.sampleRate ? { sampleRate: saved.sampleRate } : {}),
    segment,
    startedAt: saved?.startedAt ?? callStartedAt ?? new Date().toISOString(),
    resumedAt: saved?.resumedAt ?? [],
    ...(saved?.consent !== undefined ? { consent: saved.consent } : {}),
    partsPerSegment: Array.from({ length: segment + 1 }, (_, index) =>
      Math.max(saved?.partsPerSegment[index] ?? 0, stored ? highestStoredPart(stored, index) : 0),
    ),
  };
}

/** What a listing at takeover found against the saved counts (an audit record). */
function listingRecord(saved: SessionRecording | undefined, stored: StoredParts): Record<string, unknown> {
  const savedSegment = saved?.segment ?? -1;
  const segments = [...stored.bySegment.keys()].sort((a, b) => a - b);
  return {
    storedParts: segments.reduce((sum, segment) => sum + (stored.bySegment.get(segment)?.size ?? 0), 0),
    savedParts: (saved?.partsPerSegment ?? []).reduce((sum, count) => sum + count, 0),
    ...(segments.some((segment) => segment > savedSegment)
      ? { unsavedSegments: segments.filter((segment) => segment > savedSegment) }
      : {}),
    ...(stored.foreign ? { foreignKeys: stored.foreign } : {}),
  };
}

/**
 * The call's recording, or none: recording off; or a worker that took the call over where going on cannot be shown
 * to be what the caller was told or agreed to (consent never saved as a yes, the mode changed) — recorded in the audit
 * chain, not guessed; then, if earlier workers stored parts, an `EarlierRecording` that only names them. In announce
 * mode a takeover goes on recording, the notice said again; in consent mode it goes on only after a saved yes,
 * without asking again. A takeover lists the call's parts in the bucket: its own segment is above every stored one,
 * so nothing stored is overwritten, and the transcript names every earlier part stored.
 */
export async function callAudioFor(setup: CallAudioSetup): Promise<CallAudio | EarlierRecording | undefined> {
  const { env } = setup;
  const saved = setup.resumeFrom;
  // Off, except for a call an earlier worker was recording (a deploy switched recording off during it): its parts are
  // still named, though nothing more is recorded.
  const callMode = env.RECORDING_MODE === 'off' ? (setup.resumed ? saved?.mode : undefined) : env.RECORDING_MODE;
  if (!callMode) return undefined;
  const list = setup.listKeys ?? s3KeyLister(setup.s3, env.TRANSCRIPTS_BUCKET);
  const listStored = () => storedParts(setup.callId, list);
  let resume: SessionRecording | undefined;
  let storedAtTakeover: StoredParts | undefined;
  if (setup.resumed) {
    try {
      storedAtTakeover = await listStored();
      setup.audit('earlier_parts_listed', listingRecord(saved, storedAtTakeover));
    } catch (error) {
      // The saved counts still name the segments to stay above; what is stored is checked again at stop.
      setup.audit('earlier_parts_unlisted', { at: 'takeover', error: String(error) });
    }
    resume = recordingSoFar(callMode, saved, storedAtTakeover, setup.callStartedAt);
    const reason = notResumedBecause(env.RECORDING_MODE, saved, resume);
    if (reason) {
      setup.audit('not_resumed', { mode: env.RECORDING_MODE, reason });
      // Parts earlier workers stored (or are counted as storing) are still named in the transcript.
      const earlier = resume.partsPerSegment.some((count) => count > 0);
      return earlier
        ? new EarlierRecording({
            callId: setup.callId,
            sampleRate: resume.sampleRate ?? env.RECORDING_SAMPLE_RATE,
            resume,
            listStored,
            storedAtTakeover,
            audit: setup.audit,
          })
        : undefined;
    }
  }
  // Reached with recording on only: a takeover with it off returned above.
  if (env.RECORDING_MODE === 'off') return undefined;
  return new CallAudio({
    mode: env.RECORDING_MODE,
    // A takeover goes on at the recording's own rate: one call's parts all play at one rate.
    sampleRate: resume?.sampleRate ?? env.RECORDING_SAMPLE_RATE,
    callId: setup.callId,
    silencePii: env.PII_REDACTION,
    notice: env.RECORDING_NOTICE,
    consentQuestion: env.RECORDING_CONSENT_QUESTION,
    audit: setup.audit,
    resume,
    listStored,
    ...(resume ? { storedAtTakeover } : {}),
    put: async (key, body) => {
      await setup.s3.send(
        new PutObjectCommand({ Bucket: env.TRANSCRIPTS_BUCKET, Key: key, Body: body, ContentType: 'audio/wav' }),
      );
    },
  });
}
