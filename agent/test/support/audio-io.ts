import { ReadableStream } from 'node:stream/web';
import { voice } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';

const FRAME_MS = 20;

/**
 * A phone line into the session: a 20 ms frame every 20 ms of wall-clock time, silence unless something is being
 * said, as LiveKit delivers a caller's audio. `say` queues speech and resolves when its last frame has gone out.
 */
export class PhoneLineInput extends voice.AudioInput {
  readonly #controller: ReadableStreamDefaultController<AudioFrame>;
  readonly #samplesPerFrame: number;
  #queue: {
    samples: Int16Array;
    offset: number;
    done: () => void;
    startedAt?: number;
    onStart?: (at: number) => void;
  }[] = [];
  #timer?: NodeJS.Timeout;
  #closed = false;

  constructor(private readonly sampleRate = 16_000) {
    super();
    this.#samplesPerFrame = (sampleRate * FRAME_MS) / 1000;
    let controller!: ReadableStreamDefaultController<AudioFrame>;
    this.multiStream.addInputStream(
      new ReadableStream<AudioFrame>({
        start: (c) => {
          controller = c;
        },
      }),
    );
    this.#controller = controller;
  }

  /** Starts the line clock. */
  open(): void {
    const startedAt = performance.now();
    let sent = 0;
    const tick = () => {
      if (this.#closed) return;
      // A frame leaves once its 20 ms have been spoken; catch up if the event loop was late, as a jitter buffer would.
      while (startedAt + (sent + 1) * FRAME_MS <= performance.now()) {
        this.#controller.enqueue(this.#nextFrame());
        sent += 1;
      }
      this.#timer = setTimeout(tick, Math.max(1, startedAt + (sent + 1) * FRAME_MS - performance.now()));
    };
    tick();
  }

  #nextFrame(): AudioFrame {
    const frame = new Int16Array(this.#samplesPerFrame);
    const current = this.#queue[0];
    if (current) {
      if (current.startedAt === undefined) {
        // The frame leaving now began one frame ago: that is when the caller started saying it.
        current.startedAt = Date.now() - FRAME_MS;
        current.onStart?.(current.startedAt);
      }
      const chunk = current.samples.subarray(current.offset, current.offset + this.#samplesPerFrame);
      frame.set(chunk);
      current.offset += chunk.length;
      if (current.offset >= current.samples.length) {
        this.#queue.shift();
        current.done();
      }
    }
    return new AudioFrame(frame, this.sampleRate, 1, this.#samplesPerFrame);
  }

  /** Plays `samples` down the line; `onStart` gets the wall-clock time the first sample was spoken; resolves when the last frame has left. */
  say(samples: Int16Array, onStart?: (at: number) => void): Promise<number> {
    return new Promise((resolve) => this.#queue.push({ samples, offset: 0, done: () => resolve(Date.now()), onStart }));
  }

  override async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#timer);
    try {
      this.#controller.close();
    } catch {
      // already closed by the session
    }
    await super.close();
  }
}

export interface PlayedSegment {
  startedAt: number;
  capturedMs: number;
  frames: number;
  /** How much was heard before the segment ended or was cut. */
  playedMs?: number;
  interrupted?: boolean;
  finishedAt?: number;
  /** Peak absolute sample: proves the frames carry audio, not silence. */
  peak: number;
}

/**
 * The caller's earpiece: plays what the agent says in real time (a segment ends when its audio has had time to play)
 * and records every segment, so a test can see audio came out and that barge-in cut it short.
 */
export class EarpieceOutput extends voice.AudioOutput {
  readonly segments: PlayedSegment[] = [];
  clearCalls = 0;
  firstFrameAt?: number;
  #current?: PlayedSegment;
  #finishTimer?: NodeJS.Timeout;
  #listeners: ((segment: PlayedSegment) => void)[] = [];

  constructor(sampleRate = 16_000) {
    super(sampleRate);
  }

  override async captureFrame(frame: AudioFrame): Promise<void> {
    await super.captureFrame(frame);
    if (!this.#current) {
      this.#current = { startedAt: Date.now(), capturedMs: 0, frames: 0, peak: 0 };
      this.segments.push(this.#current);
      this.firstFrameAt ??= this.#current.startedAt;
      this.onPlaybackStarted(this.#current.startedAt);
      for (const listener of this.#listeners) listener(this.#current);
    }
    this.#current.frames += 1;
    this.#current.capturedMs += (frame.samplesPerChannel / frame.sampleRate) * 1000;
    for (const sample of frame.data) this.#current.peak = Math.max(this.#current.peak, Math.abs(sample));
  }

  override flush(): void {
    super.flush();
    const segment = this.#current;
    if (!segment) return;
    const remaining = Math.max(0, segment.startedAt + segment.capturedMs - Date.now());
    this.#finishTimer = setTimeout(() => this.#finish(segment, false), remaining);
  }

  override clearBuffer(): void {
    this.clearCalls += 1;
    const segment = this.#current;
    if (!segment) return;
    clearTimeout(this.#finishTimer);
    this.#finish(segment, true);
  }

  #finish(segment: PlayedSegment, interrupted: boolean): void {
    if (this.#current !== segment) return;
    this.#current = undefined;
    segment.finishedAt = Date.now();
    segment.playedMs = Math.min(segment.capturedMs, segment.finishedAt - segment.startedAt);
    segment.interrupted = interrupted;
    this.onPlaybackFinished({ playbackPosition: segment.playedMs / 1000, interrupted });
  }

  /** Resolves when the next segment starts playing. */
  nextSegment(): Promise<PlayedSegment> {
    return new Promise((resolve) => {
      const listener = (segment: PlayedSegment) => {
        this.#listeners = this.#listeners.filter((candidate) => candidate !== listener);
        resolve(segment);
      };
      this.#listeners.push(listener);
    });
  }
}
