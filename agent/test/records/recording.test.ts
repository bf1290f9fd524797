import { recordingPartKeys, sessionRecordingSchema, transcriptRecordingSchema } from '@voice-intake/contracts';
import { describe, expect, it } from 'vitest';
import {
  CallRecording,
  type CallRecordingOptions,
  encodeStereoWav,
  recordingPartKey,
  resample,
} from '../../src/records/recording';
import { storedParts } from '../../src/records/stored-parts';

/** A WAV file read back: format fields and both channels. */
function readWav(body: Buffer) {
  expect(body.toString('ascii', 0, 4)).toBe('RIFF');
  expect(body.toString('ascii', 8, 12)).toBe('WAVE');
  const channels = body.readUInt16LE(22);
  const sampleRate = body.readUInt32LE(24);
  const bits = body.readUInt16LE(34);
  const dataBytes = body.readUInt32LE(40);
  expect(body.length).toBe(44 + dataBytes);
  const left: number[] = [];
  const right: number[] = [];
  for (let offset = 44; offset < body.length; offset += 4) {
    left.push(body.readInt16LE(offset));
    right.push(body.readInt16LE(offset + 2));
  }
  return { channels, sampleRate, bits, left, right };
}

function harness(overrides: Partial<CallRecordingOptions> = {}) {
  const stored = new Map<string, Buffer>();
  const writes: string[] = [];
  const audit: [string, Record<string, unknown>][] = [];
  const recording = new CallRecording({
    mode: 'announce',
    sampleRate: 8_000,
    callId: 'call-rec-1',
    holdbackMs: 1_000,
    put: async (key, body) => {
      writes.push(key);
      stored.set(key, body);
    },
    audit: (subject, payload) => void audit.push([subject, payload]),
    ...overrides,
  });
  return { recording, stored, writes, audit };
}

/** `ms` of a constant level at `rate` Hz. */
const level = (value: number, ms: number, rate = 8_000) => new Int16Array((rate * ms) / 1000).fill(value);

describe('call recording', () => {
  it('writes stereo parts during the call: caller left, agent right, at the configured rate', async () => {
    const { recording, stored, writes, audit } = harness();
    // 48 kHz in (LiveKit's rate) → 8 kHz out; the caller speaks 0–1 s, the agent answers 1–2 s.
    recording.callerAudio(level(1000, 1000, 48_000), 48_000, 0);
    recording.agentAudio(level(-2000, 1000, 48_000), 48_000, 1000);
    await recording.flush(2_500); // hold-back 1 s: 0–1.5 s is written
    expect(writes).toEqual([recordingPartKey('call-rec-1', 1)]);
    const first = readWav(stored.get(writes[0])!);
    expect(first).toMatchObject({ channels: 2, sampleRate: 8_000, bits: 16 });
    expect(first.left).toHaveLength(12_000);
    expect(first.left.slice(0, 8_000).every((s) => s === 1000)).toBe(true);
    expect(first.left.slice(8_000).every((s) => s === 0)).toBe(true);
    expect(first.right.slice(0, 8_000).every((s) => s === 0)).toBe(true);
    expect(first.right.slice(8_000).every((s) => s === -2000)).toBe(true);

    const { parts } = await recording.stop(2_000);
    expect(parts).toEqual([recordingPartKey('call-rec-1', 1), recordingPartKey('call-rec-1', 2)]);
    const second = readWav(stored.get(parts[1])!);
    expect(second.left).toHaveLength(4_000);
    expect(second.right.every((s) => s === -2000)).toBe(true);
    expect(audit.map(([subject]) => subject)).toEqual(['started', 'stopped']);
    expect(audit[0][1]).toMatchObject({
      mode: 'announce',
      sampleRate: 8_000,
      channels: { left: 'caller', right: 'agent' },
    });
    expect(audit[1][1]).toMatchObject({ parts, failedParts: [], consentRefused: false });
  });

  it('stores nothing when the caller refuses consent, or never answers', async () => {
    for (const answer of [false, undefined]) {
      const { recording, writes, audit } = harness({ mode: 'consent' });
      expect(recording.state).toBe('awaiting_consent');
      recording.callerAudio(level(1000, 2000), 8_000, 0);
      await recording.flush(10_000); // nothing is written while consent is pending
      expect(writes).toEqual([]);
      if (answer !== undefined) recording.consent(answer);
      recording.callerAudio(level(1000, 2000), 8_000, 2000);
      expect(await recording.stop(10_000)).toEqual({ parts: [], failedParts: [], unverifiedParts: [] });
      expect(writes).toEqual([]);
      expect(audit.find(([subject]) => subject === 'consent')?.[1]).toEqual({ granted: false });
      expect(audit.at(-1)).toEqual(['stopped', { parts: [], failedParts: [], consentRefused: true }]);
    }
  });

  it('records from the start once the caller agrees (the question and answer included)', async () => {
    const { recording, stored } = harness({ mode: 'consent', sampleRate: 16_000 });
    recording.agentAudio(level(500, 1000, 16_000), 16_000, 0);
    recording.consent(true);
    const [key] = (await recording.stop(1000)).parts;
    const wav = readWav(stored.get(key)!);
    expect(wav.sampleRate).toBe(16_000);
    expect(wav.right.every((s) => s === 500)).toBe(true);
  });

  it('silences PII spans in stored audio: held back, or rewritten in a part already stored', async () => {
    const { recording, stored, writes } = harness();
    recording.callerAudio(level(1000, 4000), 8_000, 0);
    recording.agentAudio(level(700, 4000), 8_000, 0);
    // Transcribe marks 0.5–1.0 s as PII before that audio is written (within the hold-back).
    await recording.silence(500, 1000);
    await recording.flush(3_000); // writes 0–2 s
    // A late span (2.5–3.0 s) for audio not yet written, and one (1.5–2.5 s) reaching into the stored part.
    await recording.silence(1500, 2500);
    await recording.silence(2500, 3000);
    await recording.stop(4_000);
    const first = readWav(stored.get(recordingPartKey('call-rec-1', 1))!);
    const second = readWav(stored.get(recordingPartKey('call-rec-1', 2))!);
    const silent = (samples: number[], from: number, to: number) => samples.slice(from, to).every((s) => s === 0);
    const loud = (samples: number[], from: number, to: number) => samples.slice(from, to).every((s) => s !== 0);
    for (const channel of [first.left, first.right]) {
      expect(loud(channel, 0, 4_000)).toBe(true);
      expect(silent(channel, 4_000, 8_000)).toBe(true);
      expect(loud(channel, 8_000, 12_000)).toBe(true);
      expect(silent(channel, 12_000, 16_000)).toBe(true);
    }
    for (const channel of [second.left, second.right]) {
      expect(silent(channel, 0, 8_000)).toBe(true); // 2.0–3.0 s
      expect(loud(channel, 8_000, 16_000)).toBe(true);
    }
    // The first part was written, then rewritten silenced.
    expect(writes.filter((key) => key === recordingPartKey('call-rec-1', 1))).toHaveLength(2);
  });

  it('rewrites parts as far back as its rewrite window, and names a span older than that in the stop record', async () => {
    const { recording, stored, audit } = harness({ rewriteWindowMs: 3_000 });
    for (let second = 0; second < 6; second += 1) {
      recording.callerAudio(level(1000, 1000), 8_000, second * 1000);
      await recording.flush(second * 1000 + 2_000); // a part per second: 0–1, 1–2, … 5–6 s
    }
    // 1.2–1.4 s: its part is out of the window (no longer held); 3.2–3.4 s: still held, rewritten.
    await recording.silence(1200, 1400);
    await recording.silence(3200, 3400);
    await recording.stop(6_000);
    const part = (n: number) => readWav(stored.get(recordingPartKey('call-rec-1', n))!).left;
    expect(
      part(2)
        .slice(1_600, 3_200)
        .every((sample) => sample !== 0),
    ).toBe(true);
    expect(
      part(4)
        .slice(1_600, 3_200)
        .every((sample) => sample === 0),
    ).toBe(true);
    expect(audit.at(-1)).toEqual([
      'stopped',
      expect.objectContaining({ unsilencedSpans: [{ startMs: 1200, endMs: 1400 }] }),
    ]);
  });

  it('names a part it could not store as failed, never as stored, and keeps writing the next ones', async () => {
    let failNext = true;
    const { recording, audit, stored } = harness({
      put: async (key, body) => {
        if (failNext) {
          failNext = false;
          throw new Error('Service Unavailable');
        }
        stored.set(key, body);
      },
    });
    recording.callerAudio(level(1, 3000), 8_000, 0);
    await recording.flush(2_000);
    const { parts, failedParts } = await recording.stop(3_000);
    const [first, second] = [recordingPartKey('call-rec-1', 1), recordingPartKey('call-rec-1', 2)];
    expect([...stored.keys()]).toEqual([second]);
    expect(parts).toEqual([second]);
    expect(failedParts).toEqual([first]);
    expect(audit.at(-1)?.[1]).toMatchObject({ parts: [second], failedParts: [first] });
  });

  it('a part whose rewrite failed is stored but named failed; one whose last write landed is not', async () => {
    const outcomes = [true, false, false, true]; // part 1 lands, its rewrite fails; part 2 fails, its rewrite lands
    const { recording } = harness({
      rewriteWindowMs: 10_000,
      put: async () => {
        if (!outcomes.shift()) throw new Error('Service Unavailable');
      },
    });
    recording.callerAudio(level(1, 4000), 8_000, 0);
    await recording.flush(2_000); // part 1: 0–1 s
    await recording.silence(200, 300); // rewrites part 1
    await recording.flush(3_000); // part 2: 1–2 s
    await recording.silence(1_200, 1_300); // rewrites part 2
    const { parts, failedParts } = await recording.stop(2_000);
    expect(outcomes).toEqual([]);
    const [first, second] = [recordingPartKey('call-rec-1', 1), recordingPartKey('call-rec-1', 2)];
    expect(parts).toEqual([first, second]);
    expect(failedParts).toEqual([first]);
  });

  it('a part whose only write failed on our side but landed is named stored at stop; a rewritten one is not', async () => {
    const bucket = new Map<string, Buffer>();
    // Part 1: stored, then the answer is lost. Part 2: never stored. Part 3: stored, its rewrite stored and answer lost.
    const outcomes: ('stored' | 'lost answer' | 'failed')[] = ['lost answer', 'failed', 'stored', 'lost answer'];
    let listings = 0;
    const { recording, audit } = harness({
      rewriteWindowMs: 10_000,
      put: async (key, body) => {
        const outcome = outcomes.shift();
        if (outcome !== 'failed') bucket.set(key, body);
        if (outcome !== 'stored') throw new Error(`${outcome}: TimeoutError`);
      },
      listStored: () => {
        listings += 1;
        return storedParts('call-rec-1', async () => [...bucket.keys()]);
      },
    });
    recording.callerAudio(level(1, 5000), 8_000, 0);
    await recording.flush(2_000); // part 1: 0–1 s
    await recording.flush(3_000); // part 2: 1–2 s
    await recording.flush(4_000); // part 3: 2–3 s
    await recording.silence(2_200, 2_300); // rewrites part 3
    const [first, second, third] = [1, 2, 3].map((n) => recordingPartKey('call-rec-1', n));
    expect(outcomes).toEqual([]);
    expect(recording.failedPartKeys).toEqual([first, second, third]);
    const { parts, failedParts } = await recording.stop(3_000);
    expect(listings).toBe(1);
    // Part 3 was stored, but whether its silencing rewrite landed cannot be told: named stored and failed, as before.
    expect(parts).toEqual([first, third]);
    expect(failedParts).toEqual([second, third]);
    expect(audit.find(([subject]) => subject === 'failed_writes_landed')?.[1]).toEqual({ parts: [first] });
  });

  it('the bucket cannot be listed at stop: a part whose write failed stays failed', async () => {
    const { recording, audit } = harness({
      put: async () => {
        throw new Error('TimeoutError');
      },
      listStored: async () => {
        throw new Error('AccessDenied');
      },
    });
    recording.callerAudio(level(1, 1000), 8_000, 0);
    const { parts, failedParts } = await recording.stop(1_000);
    expect(parts).toEqual([]);
    expect(failedParts).toEqual([recordingPartKey('call-rec-1', 1)]);
    expect(audit.find(([subject]) => subject === 'failed_parts_unlisted')?.[1]).toMatchObject({
      parts: failedParts,
      error: expect.stringMatching(/AccessDenied/),
    });
  });

  it('encodes and resamples as WAV players and the channel layout expect', () => {
    const wav = encodeStereoWav(Int16Array.from([1, 2]), Int16Array.from([-1, -2]), 8_000);
    expect(wav.readUInt32LE(28)).toBe(32_000); // byte rate: 8000 frames × 2 channels × 2 bytes
    expect([...wav.subarray(44)]).toEqual([1, 0, 255, 255, 2, 0, 254, 255]);
    expect([...resample(Int16Array.from([0, 6, 3, 3, 9, 0]), 48_000, 16_000)]).toEqual([3, 4]);
  });
});

describe('recording part keys', () => {
  it('names a takeover segment apart and refuses a segment it cannot name', () => {
    expect(recordingPartKey('c-1', 7)).toBe('recordings/c-1/part-000007.wav');
    expect(recordingPartKey('c-1', 7, 2)).toBe('recordings/c-1/part-r2-000007.wav');
    expect(transcriptRecordingSchema.shape.parts.parse([recordingPartKey('c-1', 1, 999)])).toHaveLength(1);
    for (const segment of [-1, 1.5, 1000]) {
      expect(() => recordingPartKey('c-1', 1, segment)).toThrow(/recordingPartKey segment: .* got /);
    }
    expect(() => transcriptRecordingSchema.shape.parts.parse(['recordings/c-1/part-r1000-000001.wav'])).toThrow();
  });

  it('the session state keeps counts per segment, one per segment, and expands them to the keys in order', () => {
    expect(recordingPartKeys('c-1', [2, 0, 1])).toEqual([
      'recordings/c-1/part-000001.wav',
      'recordings/c-1/part-000002.wav',
      'recordings/c-1/part-r2-000001.wav',
    ]);
    const recording = { mode: 'announce', segment: 2, startedAt: '2026-11-30T10:00:00.000Z', partsPerSegment: [2, 0] };
    const refused = sessionRecordingSchema.safeParse(recording);
    expect(refused.success).toBe(false);
    expect(refused.error?.issues[0]).toMatchObject({
      path: ['partsPerSegment'],
      message: expect.stringMatching(/one count per segment/),
    });
    expect(sessionRecordingSchema.parse({ ...recording, partsPerSegment: [2, 0, 1] }).resumedAt).toEqual([]);
  });

  it('a consent-mode recording resumes only after a yes', () => {
    const options = {
      mode: 'consent' as const,
      sampleRate: 8_000 as const,
      callId: 'c-1',
      put: async () => undefined,
      audit: () => undefined,
    };
    expect(() => new CallRecording({ ...options, resume: { segment: 1, earlierParts: [] } })).toThrow(
      /options\.resume\.consent/,
    );
    const resumed = new CallRecording({ ...options, resume: { segment: 1, earlierParts: [], consent: true } });
    expect(resumed.state).toBe('recording');
    expect(resumed.consentGiven).toBe(true);
  });
});
