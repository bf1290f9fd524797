/**
 * A caller that listens before it talks, like a person: it waits until the agent has spoken and gone quiet, then
 * says its next line (espeak-ng speech through the softphone's microphone), presses keys, waits for the hang-up.
 */
import { join } from 'node:path';
import { durationMs, readWavSamples, type SpeechSegment, speechSegments, writeUtterance } from './audio';
import type { Softphone } from './softphone';

export interface SaidLine {
  readonly text: string;
  /** Wall clock when the softphone switched to the line and when its speech ended (switch + speech length). */
  readonly startedAt: number;
  readonly endedAt: number;
  readonly speechMs: number;
}

export interface HeardSpeech extends SpeechSegment {
  /** Wall clock when the speech was first seen in the recording. */
  readonly firstSeenAt: number;
}

export class Caller {
  readonly said: SaidLine[] = [];
  private lines = 0;
  private eventsBefore = 0;
  /** Recordings of earlier calls of this softphone: what this call heard is only in files made after them. */
  private earlierRecordings: ReadonlySet<string> = new Set();

  constructor(
    readonly phone: Softphone,
    private readonly dir: string,
  ) {}

  /** Dials and waits until the call is answered. */
  async call(uri: string, timeoutMs = 60_000): Promise<void> {
    this.eventsBefore = this.phone.events.length;
    this.earlierRecordings = this.phone.recordingNames();
    // baresip keeps the last `/ausrc` as its microphone for new calls: without this a second call would open by
    // replaying the previous call's last line over the greeting.
    await this.phone.speakFrom(this.phone.silencePath);
    await this.phone.dial(uri);
    await this.phone.waitForEvent('CALL_ESTABLISHED', timeoutMs, this.eventsBefore);
  }

  /** What the caller has heard so far (the softphone's recording of the call). */
  heard(): Int16Array {
    const { heard } = this.phone.recordings(this.earlierRecordings);
    return heard ? readWavSamples(heard) : new Int16Array(0);
  }

  heardSegments(): SpeechSegment[] {
    return speechSegments(this.heard());
  }

  /**
   * Waits until the agent speaks (speech starting after `afterMs` of the recording) and then stays quiet for
   * `quietMs` of wall-clock time; returns that speech. The wall clock, not the recording's length, decides quiet:
   * a far end that sends no packets in silence must not stall the wait.
   */
  async listen(options: { afterMs?: number; quietMs?: number; timeoutMs?: number } = {}): Promise<HeardSpeech> {
    const afterMs = options.afterMs ?? 0;
    const quietMs = options.quietMs ?? 1_500;
    const deadline = Date.now() + (options.timeoutMs ?? 30_000);
    let lastEnd = -1;
    let lastChange = Date.now();
    let firstSeenAt = 0;
    for (;;) {
      const segments = this.heardSegments().filter((segment) => segment.endMs > afterMs);
      if (segments.length > 0) {
        if (!firstSeenAt) firstSeenAt = Date.now();
        const end = segments[segments.length - 1].endMs;
        if (end !== lastEnd) {
          lastEnd = end;
          lastChange = Date.now();
        } else if (Date.now() - lastChange >= quietMs) {
          return { startMs: Math.max(afterMs, segments[0].startMs), endMs: end, firstSeenAt };
        }
      }
      if (Date.now() > deadline) {
        const heard = durationMs(this.heard());
        throw new Error(`caller: the agent said nothing after ${afterMs} ms (heard ${Math.round(heard)} ms of audio)`);
      }
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  /** Says `text`: the microphone plays it, then silence. Resolves when the speech has been sent. */
  async say(text: string): Promise<SaidLine> {
    const path = join(this.dir, `line-${++this.lines}.wav`);
    // Long trailing silence: baresip ends the call when the microphone file ends.
    const { speechMs } = writeUtterance(path, text, 600);
    const startedAt = Date.now();
    await this.phone.speakFrom(path);
    await new Promise((resolve) => setTimeout(resolve, speechMs));
    const line = { text, startedAt, endedAt: startedAt + speechMs, speechMs };
    this.said.push(line);
    return line;
  }

  /** The length of the recording now, in ms (a mark to listen after). */
  heardMs(): number {
    return durationMs(this.heard());
  }

  pressKey(digit: string): Promise<string | undefined> {
    return this.phone.sendDigit(digit);
  }

  /** Waits for the far end to end the call (a BYE reached the softphone). */
  async waitForHangUp(timeoutMs = 30_000) {
    return this.phone.waitForEvent('CALL_CLOSED', timeoutMs, this.eventsBefore);
  }
}
