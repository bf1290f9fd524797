import { ReadableStream, type ReadableStreamDefaultController } from 'node:stream/web';
import { initializeLogger, stt, voice } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { describe, expect, it } from 'vitest';
import { CallAudio, type CallAudioOptions } from '../../src/records/call-audio';

/**
 * The taps on a fake clock: where caller and agent audio land on the call clock, what a barge-in cuts, how PII spans
 * map through a gap in the caller's audio, and that an unanswered consent question stores nothing.
 */

initializeLogger({ pretty: false, level: 'silent' });

const RATE = 8_000;
const FRAME_MS = 20;
const FRAME = (RATE * FRAME_MS) / 1000;

function tone(level: number): AudioFrame {
  return new AudioFrame(new Int16Array(FRAME).fill(level), RATE, 1, FRAME);
}

/** An output that plays in real time on the fake clock: started on its first frame, finished when cleared. */
class ClockOutput extends voice.AudioOutput {
  #startedAt?: number;
  constructor(private readonly clock: { now: number }) {
    super(RATE);
  }
  override async captureFrame(frame: AudioFrame): Promise<void> {
    await super.captureFrame(frame);
    if (this.#startedAt === undefined) {
      this.#startedAt = this.clock.now;
      this.onPlaybackStarted(Date.now());
    }
  }
  override clearBuffer(): void {
    if (this.#startedAt === undefined) return;
    const played = (this.clock.now - this.#startedAt) / 1000;
    this.#startedAt = undefined;
    this.onPlaybackFinished({ playbackPosition: played, interrupted: true });
  }
}

function recorder(overrides: Partial<CallAudioOptions> = {}) {
  const clock = { now: 1_000 };
  const stored = new Map<string, Buffer>();
  const audit: [string, Record<string, unknown>][] = [];
  const audio = new CallAudio({
    mode: 'announce',
    sampleRate: RATE,
    callId: 'unit-call',
    silencePii: true,
    holdbackMs: 500,
    put: async (key, body) => void stored.set(key, body),
    audit: (subject, payload) => void audit.push([subject, payload]),
    now: () => clock.now,
    ...overrides,
  });
  return { clock, stored, audit, audio };
}

function channels(stored: Map<string, Buffer>): { left: Int16Array; right: Int16Array } {
  const bodies = [...stored.keys()].sort().map((key) => stored.get(key)!);
  const frames = bodies.reduce((sum, body) => sum + (body.length - 44) / 4, 0);
  const left = new Int16Array(frames);
  const right = new Int16Array(frames);
  let at = 0;
  for (const body of bodies) {
    for (let i = 44; i < body.length; i += 4, at += 1) {
      left[at] = body.readInt16LE(i);
      right[at] = body.readInt16LE(i + 2);
    }
  }
  return { left, right };
}

const span = (channel: Int16Array, fromMs: number, toMs: number) =>
  channel.subarray(Math.round((fromMs * RATE) / 1000), Math.round((toMs * RATE) / 1000));
const silent = (samples: Int16Array) => samples.every((sample) => sample === 0);
const loud = (samples: Int16Array) => samples.length > 0 && samples.every((sample) => sample !== 0);

describe('CallAudio', () => {
  it('records what the agent played, where it played, and not what a barge-in cut off', async () => {
    const { clock, stored, audio } = recorder();
    const output = new ClockOutput(clock);
    audio.tapOutput(output);
    clock.now = 1_200; // 200 ms into the call
    // The TTS hands over a whole second at once; the output plays it in real time.
    for (let i = 0; i < 50; i += 1) await output.captureFrame(tone(3_000));
    clock.now = 1_600; // 400 ms of it played, then the caller barged in
    output.clearBuffer();
    clock.now = 3_000;
    await audio.stop();
    const { left, right } = channels(stored);
    expect(left.length).toBe((2_000 * RATE) / 1000);
    expect(silent(span(right, 0, 200))).toBe(true);
    expect(loud(span(right, 200, 600))).toBe(true);
    expect(silent(span(right, 600, 2_000))).toBe(true);
    expect(silent(left)).toBe(true);
    // The output is its own again: frames after the stop are not recorded (nor refused).
    await output.captureFrame(tone(3_000));
  });

  it('places audio handed over while the output was paused (a possible barge-in) where it plays: after the resume', async () => {
    const { clock, stored, audio } = recorder();
    const output = new ClockOutput(clock);
    audio.tapOutput(output);
    clock.now = 1_200;
    for (let i = 0; i < 25; i += 1) await output.captureFrame(tone(3_000)); // 200–700 ms
    clock.now = 1_400;
    output.pause(); // the caller made a noise
    for (let i = 0; i < 10; i += 1) await output.captureFrame(tone(3_000)); // parked by the output
    clock.now = 2_400;
    output.resume(); // a false interruption: playback carries on, 1.4–1.6 s
    clock.now = 3_000;
    output.onPlaybackFinished({ playbackPosition: 0.7, interrupted: false });
    await audio.stop();
    const { right } = channels(stored);
    expect(silent(span(right, 0, 200))).toBe(true);
    expect(loud(span(right, 200, 700))).toBe(true);
    expect(silent(span(right, 700, 1_400))).toBe(true);
    expect(loud(span(right, 1_400, 1_600))).toBe(true);
    expect(silent(span(right, 1_600, 2_000))).toBe(true);
  });

  it('maps PII times through a gap in the caller audio, so the right words are silenced', async () => {
    const { clock, stored, audio } = recorder();
    let audioIn!: ReadableStreamDefaultController<AudioFrame>;
    let eventsOut!: ReadableStreamDefaultController<stt.SpeechEvent>;
    const heard: AudioFrame[] = [];
    const events = await audio.agentHooks().sttNode(
      new ReadableStream<AudioFrame>({
        start: (controller) => {
          audioIn = controller;
        },
      }),
      async (tapped) => {
        void (async () => {
          for await (const frame of tapped) heard.push(frame);
        })();
        return new ReadableStream<stt.SpeechEvent>({
          start: (controller) => {
            eventsOut = controller;
          },
        });
      },
    );
    const reader = events!.getReader();
    const send = async (frames: number, level: number) => {
      for (let i = 0; i < frames; i += 1) {
        clock.now += FRAME_MS;
        audioIn.enqueue(tone(level));
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    await send(50, 1_000); // call 0–1 s, stream 0–1 s
    clock.now += 2_000; // the audio stopped for 2 s
    await send(50, 1_000); // call 3–4 s, stream 1–2 s
    expect(heard).toHaveLength(100);
    // Transcribe: PII at 1.4–1.6 s of the stream's audio (after the gap), on a final.
    const final = {
      type: stt.SpeechEventType.FINAL_TRANSCRIPT,
      alternatives: [
        { text: 'my name is [PII]', language: 'en', startTime: 1, endTime: 2, confidence: 1, metadata: {} },
      ],
    } as unknown as stt.SpeechEvent;
    final.alternatives![0].metadata = { piiAudioSpans: [{ start: 1.4, end: 1.6 }] };
    eventsOut.enqueue(final);
    expect((await reader.read()).value).toBe(final);
    await audio.stop();
    const { left } = channels(stored);
    // 3.4–3.6 s on the call clock, padded 120 ms each side; the rest of the caller's audio is intact.
    expect(silent(span(left, 3_280, 3_720))).toBe(true);
    expect(loud(span(left, 3_000, 3_270))).toBe(true);
    expect(loud(span(left, 3_730, 4_000))).toBe(true);
    expect(loud(span(left, 0, 1_000))).toBe(true);
    expect(silent(span(left, 1_000, 3_000))).toBe(true);
  });

  it('stores nothing when the consent question goes unanswered, and says so in the audit records', async () => {
    const { clock, stored, audit, audio } = recorder({ mode: 'consent', consentTimeoutMs: 30 });
    const output = new ClockOutput(clock);
    audio.tapOutput(output);
    for (let i = 0; i < 25; i += 1) await output.captureFrame(tone(2_000));
    clock.now += 3_000;
    await audio.flush();
    await new Promise((resolve) => setTimeout(resolve, 60));
    expect(audio.consent(true)).toMatch(/already answered \(not recording\)/);
    const summary = await audio.stop();
    expect(stored.size).toBe(0);
    expect(summary).toMatchObject({ mode: 'consent', consent: false, parts: [] });
    expect(audit.map(([subject]) => subject)).toEqual(['started', 'consent_timeout', 'consent', 'stopped']);
  });
});
