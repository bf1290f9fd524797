import { CreateBucketCommand, GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { initializeLogger } from '@livekit/agents';
import {
  recordingPartKey,
  type SessionRecording,
  sessionRecordingSchema,
  transcriptRecordingSchema,
} from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MotoServer, startMoto } from '../../../test/support/moto';
import { CallAudio, type CallAudioSetup, callAudioFor, EarlierRecording } from '../../src/records/call-audio';
import { type ListKeys, s3KeyLister, storedParts } from '../../src/records/stored-parts';

/**
 * A worker taking a recorded call over, against S3 in moto: what it finds in the bucket decides which parts the
 * transcript names as stored — a part the earlier worker stored after its last save (or before its first) is named, a
 * part the state counts but the bucket lacks is named failed, keys that are not exactly this call's parts are ignored
 * and counted — and which segment it records under (above every stored one, so nothing stored is written again).
 */

initializeLogger({ pretty: false, level: 'silent' });

const BUCKET = 'transcripts';
const RATE = 8_000;
const CALL_STARTED_AT = '2026-11-30T09:59:59.000Z';

let moto: MotoServer | undefined;
let s3: S3Client;

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  await s3.send(new CreateBucketCommand({ Bucket: BUCKET }));
}, 90_000);

afterAll(async () => {
  s3?.destroy();
  await moto?.stop();
});

let calls = 0;
/** A call id of its own for each test: the bucket is shared. */
function newCall(): string {
  calls += 1;
  return `takeover-${calls}`;
}
const part = recordingPartKey;
const bodyOf = (key: string) => `stored by an earlier worker: ${key}`;

/** Parts an earlier worker stored (each body names its key, so a rewrite would show). */
async function earlierWorkerStored(keys: string[]): Promise<void> {
  for (const Key of keys) await s3.send(new PutObjectCommand({ Bucket: BUCKET, Key, Body: bodyOf(Key) }));
}

async function bodyInBucket(key: string): Promise<string | undefined> {
  const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: key }));
  return object.Body?.transformToString();
}

const keysInBucket = (callId: string) => s3KeyLister(s3, BUCKET)(`recordings/${callId}/`);

const saved = (overrides: Partial<SessionRecording> = {}): SessionRecording =>
  sessionRecordingSchema.parse({ mode: 'announce', segment: 0, startedAt: '2026-11-30T10:00:00.000Z', ...overrides });

async function takeOver(
  callId: string,
  resumeFrom: SessionRecording | undefined,
  overrides: Partial<CallAudioSetup> & { mode?: CallAudioSetup['env']['RECORDING_MODE'] } = {},
) {
  const audit: [string, Record<string, unknown>][] = [];
  const { mode = 'announce', ...setup } = overrides;
  const made = await callAudioFor({
    env: { RECORDING_MODE: mode, RECORDING_SAMPLE_RATE: RATE, PII_REDACTION: false, TRANSCRIPTS_BUCKET: BUCKET },
    callId,
    s3,
    audit: (subject, payload) => void audit.push([subject, payload]),
    resumed: true,
    resumeFrom,
    callStartedAt: CALL_STARTED_AT,
    ...setup,
  });
  const record = (subject: string) => audit.filter(([name]) => name === subject).map(([, payload]) => payload);
  // Recording on, or (not resumed) only the earlier workers' parts named.
  const audio = made instanceof CallAudio ? made : undefined;
  const earlierOnly = made instanceof EarlierRecording ? made : undefined;
  return { audio, earlierOnly, made, audit, record };
}

/** Records a little caller audio, stops, and returns the transcript's record and this worker's stored parts. */
async function recordAndStop(audio: CallAudio, callId: string) {
  audio.recording.callerAudio(new Int16Array(RATE).fill(1_000), RATE, 0);
  await new Promise((resolve) => setTimeout(resolve, 50));
  const summary = transcriptRecordingSchema.parse(await audio.stop());
  const own = (await keysInBucket(callId)).filter((key) => key.includes(`/part-r${audio.recording.segment}-`));
  expect(own.length).toBeGreaterThan(0);
  return { summary, own };
}

describe('a worker taking a recorded call over', () => {
  it('names a part the earlier worker stored after its last save, and records above it', async () => {
    const callId = newCall();
    const earlier = [part(callId, 1), part(callId, 2), part(callId, 3)];
    await earlierWorkerStored(earlier);
    const { audio, record } = await takeOver(callId, saved({ partsPerSegment: [2] }));
    expect(record('earlier_parts_listed')).toEqual([{ storedParts: 3, savedParts: 2 }]);
    expect(record('started')[0]).toMatchObject({ resumedSegment: 1, earlierParts: 3 });
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(summary.parts).toEqual([...earlier, ...own]);
    expect(summary.failedParts).toEqual([]);
    expect(summary.unverifiedParts).toBeUndefined();
    expect(audio!.position.partsPerSegment).toEqual([3, own.length]);
    for (const key of earlier) expect(await bodyInBucket(key)).toBe(bodyOf(key));
    expect(record('stopped')[0]).toMatchObject({ parts: summary.parts, failedParts: [] });
  });

  it('names the parts of an earlier worker that died before its first save, from the call start', async () => {
    const callId = newCall();
    const earlier = [part(callId, 1), part(callId, 2)];
    await earlierWorkerStored(earlier);
    const { audio, record } = await takeOver(callId, undefined);
    expect(audio!.recording.segment).toBe(1);
    expect(record('earlier_parts_listed')).toEqual([{ storedParts: 2, savedParts: 0, unsavedSegments: [0] }]);
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(summary.parts).toEqual([...earlier, ...own]);
    expect(summary.startedAt).toBe(CALL_STARTED_AT);
  });

  it('a takeover that died before saving its segment: the next records above it, never over it', async () => {
    const callId = newCall();
    const earlier = [part(callId, 1), part(callId, 2), part(callId, 1, 1), part(callId, 2, 1)];
    await earlierWorkerStored(earlier);
    const { audio, record } = await takeOver(callId, saved({ partsPerSegment: [2] }));
    expect(audio!.recording.segment).toBe(2);
    expect(record('earlier_parts_listed')[0]).toMatchObject({ storedParts: 4, savedParts: 2, unsavedSegments: [1] });
    const { summary, own } = await recordAndStop(audio!, callId);
    for (const key of own) expect(key).toMatch(/\/part-r2-\d{6}\.wav$/);
    expect(summary.parts).toEqual([...earlier, ...own]);
    expect(audio!.position.partsPerSegment).toEqual([2, 2, own.length]);
    for (const key of earlier) expect(await bodyInBucket(key)).toBe(bodyOf(key));
  });

  it('names a counted part the bucket lacks, and a gap below a stored part, as failed: never as stored', async () => {
    const callId = newCall();
    await earlierWorkerStored([part(callId, 1), part(callId, 3), part(callId, 5)]);
    const { audio } = await takeOver(callId, saved({ partsPerSegment: [3] }));
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(summary.parts).toEqual([part(callId, 1), part(callId, 3), part(callId, 5), ...own]);
    expect(summary.failedParts).toEqual([part(callId, 2), part(callId, 4)]);
  });

  it('ignores and counts keys that are not exactly this call’s parts', async () => {
    const callId = newCall();
    const prefix = `recordings/${callId}/`;
    const planted = [
      'part-r0-000001.wav',
      'part-r01-000002.wav',
      'part-000000.wav',
      'part-1.wav',
      'part-000002.WAV',
      'part-000002.wav.bak',
      'sub/part-000002.wav',
      'part-r1000-000001.wav',
      'part-100001.wav',
      '../part-000002.wav',
    ].map((name) => prefix + name);
    await earlierWorkerStored([part(callId, 1), ...planted, `recordings/${callId}-other/part-000002.wav`]);
    const { audio, record } = await takeOver(callId, saved({ partsPerSegment: [1] }));
    expect(record('earlier_parts_listed')).toEqual([{ storedParts: 1, savedParts: 1, foreignKeys: planted.length }]);
    expect(audio!.recording.segment).toBe(1);
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(summary.parts).toEqual([part(callId, 1), ...own]);
    expect(summary.failedParts).toEqual([]);
  });

  it('lists again at stop: a part the earlier worker’s last write landed after the takeover is named', async () => {
    const callId = newCall();
    await earlierWorkerStored([part(callId, 1)]);
    const { audio } = await takeOver(callId, saved({ partsPerSegment: [1] }));
    await earlierWorkerStored([part(callId, 2)]);
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(summary.parts).toEqual([part(callId, 1), part(callId, 2), ...own]);
  });

  it('the bucket cannot be listed: the counted parts are unverified, none named stored, the saved segment kept', async () => {
    const callId = newCall();
    await earlierWorkerStored([part(callId, 1), part(callId, 2), part(callId, 1, 1)]);
    const { audio, record } = await takeOver(
      callId,
      saved({ segment: 1, resumedAt: ['2026-11-30T10:05:00.000Z'], partsPerSegment: [2, 1] }),
      { listKeys: s3KeyLister(s3, 'no-such-bucket') },
    );
    expect(audio!.recording.segment).toBe(2);
    expect(record('earlier_parts_unlisted')[0]).toMatchObject({
      at: 'takeover',
      error: expect.stringMatching(/bucket/i),
    });
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(summary.parts).toEqual(own);
    expect(summary.unverifiedParts).toEqual([part(callId, 1), part(callId, 2), part(callId, 1, 1)]);
    expect(summary.failedParts).toEqual([]);
    expect(record('earlier_parts_unlisted')[1]).toMatchObject({ at: 'stop' });
    expect(record('stopped')[0]).toMatchObject({ unverifiedParts: summary.unverifiedParts });
  });

  it('listing fails at stop: the listing taken at the takeover stands', async () => {
    const callId = newCall();
    await earlierWorkerStored([part(callId, 1), part(callId, 2)]);
    const real = s3KeyLister(s3, BUCKET);
    let listings = 0;
    const failingAfterFirst: ListKeys = async (prefix) => {
      listings += 1;
      if (listings > 1) throw new Error('SlowDown: please reduce your request rate');
      return real(prefix);
    };
    const { audio, record } = await takeOver(callId, saved({ partsPerSegment: [1] }), { listKeys: failingAfterFirst });
    const { summary, own } = await recordAndStop(audio!, callId);
    expect(listings).toBe(2);
    expect(summary.parts).toEqual([part(callId, 1), part(callId, 2), ...own]);
    expect(summary.unverifiedParts).toBeUndefined();
    expect(record('earlier_parts_unlisted')).toEqual([
      { at: 'stop', error: expect.stringMatching(/SlowDown/), using: 'the listing at takeover' },
    ]);
  });

  it('goes on at the recording’s own sample rate, whatever its own configuration says', async () => {
    const callId = newCall();
    await earlierWorkerStored([part(callId, 1)]);
    const { audio } = await takeOver(callId, saved({ sampleRate: 16_000, partsPerSegment: [1] }));
    expect(audio!.position.sampleRate).toBe(16_000);
    audio!.recording.callerAudio(new Int16Array(16_000).fill(1_000), 16_000, 0);
    await new Promise((resolve) => setTimeout(resolve, 50));
    const summary = transcriptRecordingSchema.parse(await audio!.stop());
    expect(summary.sampleRate).toBe(16_000);
    const own = summary.parts.filter((key) => key.includes('/part-r1-'));
    expect(own.length).toBeGreaterThan(0);
    const object = await s3.send(new GetObjectCommand({ Bucket: BUCKET, Key: own[0] }));
    const wav = Buffer.from(await object.Body!.transformToByteArray());
    expect(wav.readUInt32LE(24)).toBe(16_000);
  });

  it('a new recording saves its sample rate with where it stands', async () => {
    const { audio } = await takeOver(newCall(), undefined, { resumed: false });
    expect(audio!.position).toMatchObject({ mode: 'announce', sampleRate: RATE, segment: 0 });
  });

  it('a second takeover takes the next segment and keeps every earlier resume time', async () => {
    const { audio } = await takeOver(
      newCall(),
      saved({ segment: 1, resumedAt: ['2026-11-30T10:05:00.000Z'], partsPerSegment: [2, 1] }),
    );
    expect(audio?.recording.segment).toBe(2);
    expect(audio?.position.resumedAt).toEqual(['2026-11-30T10:05:00.000Z', audio?.startedAt.toISOString()]);
  });

  it('consent mode goes on only after a saved yes, without asking again', async () => {
    const { audio, audit } = await takeOver(
      newCall(),
      saved({ mode: 'consent', consent: true, partsPerSegment: [2] }),
      {
        mode: 'consent',
      },
    );
    expect(audio?.awaitsConsent).toBe(false);
    expect(audio?.recording.state).toBe('recording');
    const hooks = audio!.agentHooks();
    expect(Object.keys(hooks.tools)).toEqual([]);
    expect(hooks.instructions).toBeUndefined();
    expect(audio?.consent(false)).toMatch(/already answered \(recording\)/);
    expect(audit.map(([subject]) => subject)).toEqual(['earlier_parts_listed', 'started']);
    expect(audit[1][1]).toMatchObject({ resumedSegment: 1, earlierParts: 2, state: 'recording' });
  });

  describe('does not go on recording, and says why in the audit chain', () => {
    for (const [label, mode, resumeFrom, reason] of [
      ['consent refused', 'consent', saved({ mode: 'consent', consent: false, partsPerSegment: [0] }), /refused/],
      ['consent never answered', 'consent', saved({ mode: 'consent', partsPerSegment: [0] }), /consent unknown/],
      ['nothing saved in consent mode', 'consent', undefined, /consent unknown/],
      ['the mode changed since', 'consent', saved({ mode: 'announce', partsPerSegment: [0] }), /changed from announce/],
      ['too many takeovers', 'announce', saved({ segment: 999, partsPerSegment: Array(1000).fill(0) }), /too many/],
    ] as const) {
      it(`${label} (nothing stored earlier: no recording record at all)`, async () => {
        const { made, audit } = await takeOver(newCall(), resumeFrom, { mode });
        expect(made).toBeUndefined();
        expect(audit.map(([subject]) => subject)).toEqual(['earlier_parts_listed', 'not_resumed']);
        expect(String(audit[1][1].reason)).toMatch(reason);
      });
    }

    it('too many takeovers as the bucket has them (a segment 999 part), though the state says fewer', async () => {
      const callId = newCall();
      await earlierWorkerStored([part(callId, 1, 999)]);
      const { audio, earlierOnly, record } = await takeOver(callId, saved({ partsPerSegment: [0] }));
      expect(audio).toBeUndefined();
      expect(String(record('not_resumed')[0].reason)).toMatch(/too many takeovers/);
      expect((await earlierOnly!.stop()).parts).toEqual([part(callId, 1, 999)]);
    });

    it('recording switched off during the call: the earlier parts are still named, nothing more is recorded', async () => {
      const callId = newCall();
      const earlier = [part(callId, 1), part(callId, 2), part(callId, 3)];
      await earlierWorkerStored(earlier);
      // Saved at its last flush, before its third part landed.
      const atSave = saved({ sampleRate: 16_000, partsPerSegment: [2] });
      const { made, earlierOnly, record } = await takeOver(callId, atSave, { mode: 'off' });
      expect(made).toBeInstanceOf(EarlierRecording);
      expect(record('not_resumed')).toEqual([{ mode: 'off', reason: 'recording switched off during the call' }]);
      const summary = transcriptRecordingSchema.parse(await earlierOnly!.stop());
      expect(summary).toMatchObject({ mode: 'announce', sampleRate: 16_000, parts: earlier, failedParts: [] });
      expect(await keysInBucket(callId)).toEqual(earlier);
    });

    it('switched off, the bucket not listable (no list grant without recording): the counted parts unverified', async () => {
      const callId = newCall();
      await earlierWorkerStored([part(callId, 1), part(callId, 2)]);
      const denied: ListKeys = async () => {
        throw new Error('AccessDenied: not authorized to perform s3:ListBucket');
      };
      const { earlierOnly, record } = await takeOver(callId, saved({ partsPerSegment: [2] }), {
        mode: 'off',
        listKeys: denied,
      });
      const summary = transcriptRecordingSchema.parse(await earlierOnly!.stop());
      expect(summary.parts).toEqual([]);
      expect(summary.unverifiedParts).toEqual([part(callId, 1), part(callId, 2)]);
      expect(record('earlier_parts_unlisted').map(({ at }) => at)).toEqual(['takeover', 'stop']);
    });

    it('off, and no recording saved or not a takeover: nothing, and the bucket is not asked', async () => {
      let listings = 0;
      const counting: ListKeys = async () => {
        listings += 1;
        return [];
      };
      for (const [resumed, resumeFrom] of [
        [true, undefined],
        [false, saved({ partsPerSegment: [2] })],
      ] as const) {
        const { made, audit } = await takeOver(newCall(), resumeFrom, { mode: 'off', resumed, listKeys: counting });
        expect(made).toBeUndefined();
        expect(audit).toEqual([]);
      }
      expect(listings).toBe(0);
    });

    it('consent mode, a yes the earlier worker stored parts after but never saved: its parts are still named', async () => {
      const callId = newCall();
      const earlier = [part(callId, 1), part(callId, 2)];
      await earlierWorkerStored(earlier);
      // Saved when its recording was set up, before the caller answered; died before a flush saved the yes.
      const atStart = saved({ mode: 'consent', partsPerSegment: [0] });
      const { audio, earlierOnly, audit, record } = await takeOver(callId, atStart, { mode: 'consent' });
      expect(audio).toBeUndefined();
      expect(String(record('not_resumed')[0].reason)).toMatch(/consent unknown/);
      expect(earlierOnly!.position).toEqual({ ...atStart, partsPerSegment: [2] });
      const summary = transcriptRecordingSchema.parse(await earlierOnly!.stop());
      expect(summary).toEqual({
        mode: 'consent',
        sampleRate: RATE,
        startedAt: atStart.startedAt,
        parts: earlier,
        failedParts: [],
      });
      expect(await earlierOnly!.stop()).toEqual(summary);
      expect(audit.map(([subject]) => subject)).toEqual(['earlier_parts_listed', 'not_resumed', 'stopped']);
      expect(record('stopped')[0]).toEqual({ parts: earlier, failedParts: [], notResumed: true });
      // Nothing more was stored for the call.
      expect(await keysInBucket(callId)).toEqual(earlier);
    });
  });
});

describe('a worker’s own part whose write failed on its side', () => {
  /** S3 in moto, except that every part write of the call lands and then fails (the answer lost: a timeout). */
  const answersLost = (callId: string): S3Client =>
    ({
      send: async (command: unknown) => {
        const result = await s3.send(command as PutObjectCommand);
        if (command instanceof PutObjectCommand && command.input.Key?.startsWith(`recordings/${callId}/`)) {
          throw new Error('TimeoutError: the request timed out after it was sent');
        }
        return result;
      },
    }) as unknown as S3Client;

  it('is named stored when the bucket holds it (no takeover: listed at stop)', async () => {
    const callId = newCall();
    const { audio, record } = await takeOver(callId, undefined, { resumed: false, s3: answersLost(callId) });
    audio!.recording.callerAudio(new Int16Array(RATE).fill(1_000), RATE, 0);
    // Some call time passes: the stop writes the audio up to now.
    await new Promise((resolve) => setTimeout(resolve, 50));
    const summary = transcriptRecordingSchema.parse(await audio!.stop());
    expect(summary.parts).toEqual([part(callId, 1)]);
    expect(summary.failedParts).toEqual([]);
    expect(await keysInBucket(callId)).toEqual([part(callId, 1)]);
    expect(record('failed_writes_landed')).toEqual([{ parts: [part(callId, 1)] }]);
  });
});

describe('listing a call’s recording prefix', () => {
  it('reads every page, in key order, and sorts parts per segment', async () => {
    const callId = newCall();
    const keys = [part(callId, 1), part(callId, 2), part(callId, 3), part(callId, 1, 1), part(callId, 1, 12)];
    await earlierWorkerStored(keys);
    const list = s3KeyLister(s3, BUCKET, 2);
    expect(await list(`recordings/${callId}/`)).toEqual([...keys].sort());
    const stored = await storedParts(callId, list);
    expect(stored.foreign).toBe(0);
    expect([...stored.bySegment.entries()].map(([segment, parts]) => [segment, [...parts].sort()])).toEqual([
      [0, [1, 2, 3]],
      [1, [1]],
      [12, [1]],
    ]);
  });
});
