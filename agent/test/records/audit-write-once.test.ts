import {
  CreateBucketCommand,
  GetObjectCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import {
  AuditChainForkError,
  type AuditSegmentObject,
  auditChainPrefix,
  LocalHmacSealKey,
  type TranscriptPart,
  transcriptPartKey,
  transcriptPartSchema,
  verifyAuditTrail,
} from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type MotoServer, startMoto } from '../../../test/support/moto';
import { CallRecorder, TranscriptPartForkError } from '../../src/records/call-recorder';

/**
 * The agent's audit segments and transcript parts against S3 in moto, through the real SDK client: each is written
 * once (`If-None-Match: *`), so a retry whose first write landed is recognised instead of overwriting it, and an
 * object another writer of the call stored is never overwritten: the recorder stops and says so.
 */

const sealKey = new LocalHmacSealKey('agent-recorder-test-secret-0123456789');
let moto: MotoServer | undefined;
let s3: S3Client;

beforeAll(async () => {
  moto = await startMoto();
  s3 = new S3Client({ ...moto.clientConfig, forcePathStyle: true });
  for (const Bucket of ['transcripts', 'audit']) await s3.send(new CreateBucketCommand({ Bucket }));
}, 90_000);

afterAll(async () => {
  s3?.destroy();
  await moto?.stop();
});

function recorder(
  callId: string,
  client: S3Client,
  extra: Partial<ConstructorParameters<typeof CallRecorder>[0]> = {},
) {
  return new CallRecorder({
    s3: client,
    transcriptsBucket: 'transcripts',
    auditBucket: 'audit',
    sealKey,
    call: { callId, roomName: `room-${callId}`, callerNumber: '+14155550123', startedAt: new Date() },
    ...extra,
  });
}

async function auditSegments(callId: string): Promise<AuditSegmentObject[]> {
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: 'audit', Prefix: auditChainPrefix('agent', callId) }),
  );
  return Promise.all(
    (listed.Contents ?? []).map(async ({ Key }) => {
      const object = await s3.send(new GetObjectCommand({ Bucket: 'audit', Key }));
      return { key: Key!, body: (await object.Body?.transformToString()) ?? '' };
    }),
  );
}

describe('audit segments are written once', () => {
  it('a segment whose write landed but timed out is taken as stored on the retry: one chain, nothing twice', async () => {
    const callId = 'write-once-1';
    let loseNextAnswer = true;
    const puts: string[] = [];
    // The real client, except that the first audit write lands and its answer is lost (a timeout).
    const answerLost = {
      send: async (command: unknown) => {
        const audit = command instanceof PutObjectCommand && command.input.Bucket === 'audit';
        if (audit) puts.push(command.input.Key!);
        const result = await s3.send(command as PutObjectCommand);
        if (audit) {
          if (loseNextAnswer) {
            loseNextAnswer = false;
            throw Object.assign(new Error('the request timed out after it was sent'), { name: 'TimeoutError' });
          }
        }
        return result;
      },
    } as unknown as S3Client;
    const rec = recorder(callId, answerLost);
    rec.audit('session_start', 'started', { workerId: 'worker-a' });
    await expect(rec.flush()).rejects.toThrow(/timed out/);
    rec.audit('llm_request', 'model', { said: 'hello' });
    await rec.flush();
    await rec.finish('caller_hangup');

    // The first segment's key was tried twice (the retry refused by S3 as existing), every other once.
    expect(puts[0]).toBe(puts[1]);
    expect(new Set(puts).size).toBe(puts.length - 1);
    const verdict = await verifyAuditTrail(await auditSegments(callId), sealKey);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.records.map((record) => record.kind)).toEqual(['session_start', 'llm_request', 'session_end']);
    // The retry was the landed segment unchanged: the record added since went into the next one.
    expect(verdict.ok && verdict.seals.map((seal) => seal.recordHashes.length)).toEqual([1, 1, 1, 0]);
  });

  it('a segment another writer of the chain stored is not overwritten: the recorder stops and reports it', async () => {
    const callId = 'write-once-2';
    const successor = recorder(callId, s3);
    successor.audit('session_start', 'resumed', { workerId: 'worker-b' });
    await successor.flush();
    const before = await auditSegments(callId);

    const forked: { objectKey: string }[] = [];
    const stale = recorder(callId, s3, { onForked: (error) => forked.push(error) });
    stale.audit('session_start', 'started', { workerId: 'worker-a' });
    await expect(stale.flush()).rejects.toBeInstanceOf(AuditChainForkError);
    expect(forked).toHaveLength(1);
    expect(forked[0].objectKey).toBe(before[0].key);
    expect(await auditSegments(callId)).toEqual(before);
  });

  it('transcript parts likewise: a landed retry is taken as stored, another writer’s part is left as it is', async () => {
    const callId = 'write-once-3';
    let loseNextAnswer = true;
    const answerLost = {
      send: async (command: unknown) => {
        const result = await s3.send(command as PutObjectCommand);
        if (
          command instanceof PutObjectCommand &&
          command.input.Key?.startsWith('transcript-parts/') &&
          loseNextAnswer
        ) {
          loseNextAnswer = false;
          throw Object.assign(new Error('the request timed out after it was sent'), { name: 'TimeoutError' });
        }
        return result;
      },
    } as unknown as S3Client;
    const first = recorder(callId, answerLost);
    first.addTurn(turn('my pipe burst'));
    await expect(first.flush()).rejects.toThrow(/timed out/);
    first.addTurn(turn('in the kitchen'));
    await first.flush();
    expect(first.position.nextTranscriptPart).toBe(2);
    expect((await transcriptParts(callId)).map((part) => part.turns.map((t) => t.text))).toEqual([
      ['my pipe burst'],
      ['in the kitchen'],
    ]);

    // A stale worker that resumed from before those parts tries part 0 again with words of its own.
    const forked: { objectKey: string }[] = [];
    const stale = recorder(callId, s3, { onForked: (error) => forked.push(error) });
    stale.addTurn(turn('a fork of part 0'));
    await expect(stale.flush()).rejects.toBeInstanceOf(TranscriptPartForkError);
    expect(forked.map((error) => error.objectKey)).toEqual([transcriptPartKey(callId, 0)]);
    expect((await transcriptParts(callId)).map((part) => part.turns.map((t) => t.text))).toEqual([
      ['my pipe burst'],
      ['in the kitchen'],
    ]);
  });

  it('a worker that dies right after a flush stored: the position it saved before writing keeps the chain whole', async () => {
    const callId = 'write-once-5';
    let saved: CallRecorder['position'] | undefined;
    // As the agent saves before each flush writes (the flush's audit segments sealed by then).
    const dead: CallRecorder = recorder(callId, s3, {
      beforeWrite: async () => {
        saved = dead.position;
      },
    });
    dead.addTurn(turn('my pipe burst'));
    dead.audit('llm_request', 'model', { said: 'my pipe burst' });
    await dead.flush();
    dead.addTurn(turn('in the kitchen'));
    dead.audit('llm_request', 'model', { said: 'in the kitchen' });
    await dead.flush(); // stored; the worker dies before saving after it

    const successor = recorder(callId, s3, { resume: saved, beforeWrite: async () => undefined });
    successor.addTurn(turn('it is still leaking'));
    successor.audit('llm_request', 'model', { said: 'it is still leaking' });
    const transcript = await successor.finish('caller_hangup');
    const verdict = await verifyAuditTrail(await auditSegments(callId), sealKey);
    expect(verdict).toMatchObject({ ok: true });
    const said = verdict.records.map((record) => (record.payload as { said?: string } | null)?.said).filter(Boolean);
    expect(said).toEqual(['my pipe burst', 'in the kitchen', 'it is still leaking']);
    // The transcript likewise: the successor's part goes after the one stored last, and every turn is in the end.
    expect((await transcriptParts(callId)).map((part) => [part.part, part.turns.map((t) => t.text)])).toEqual([
      [0, ['my pipe burst']],
      [1, ['in the kitchen']],
      [2, ['it is still leaking']],
    ]);
    expect(transcript.turns.map((t) => [t.seq, t.text])).toEqual([
      [0, 'my pipe burst'],
      [1, 'in the kitchen'],
      [2, 'it is still leaking'],
    ]);
    expect(transcript.missingParts).toBeUndefined();
    expect(verdict.records.some((record) => record.subject?.startsWith('earlier_transcript_part'))).toBe(false);
  });

  it('a worker that dies between saving and storing a part: the part is named missing, its number never reused', async () => {
    const callId = 'write-once-6';
    let saved: CallRecorder['position'] | undefined;
    let partPuts = 0;
    // The second part's put never reaches S3 (the worker dies with it in flight).
    const diesOnSecondPart = {
      send: async (command: unknown) => {
        if (command instanceof PutObjectCommand && command.input.Key?.startsWith('transcript-parts/')) {
          partPuts += 1;
          if (partPuts === 2) throw Object.assign(new Error('connection reset'), { name: 'AccessDenied' });
        }
        return s3.send(command as PutObjectCommand);
      },
    } as unknown as S3Client;
    const dead: CallRecorder = recorder(callId, diesOnSecondPart, {
      beforeWrite: async () => {
        saved = dead.position;
      },
    });
    dead.addTurn(turn('my pipe burst'));
    await dead.flush();
    dead.addTurn(turn('in the kitchen'));
    await expect(dead.flush()).rejects.toThrow(/connection reset/);
    expect(saved).toMatchObject({ nextTurnSeq: 2, nextTranscriptPart: 2 });

    const successor = recorder(callId, s3, { resume: saved, beforeWrite: async () => undefined });
    successor.addTurn(turn('it is still leaking'));
    await successor.flush();
    const transcript = await successor.finish('caller_hangup');

    expect((await transcriptParts(callId)).map((part) => [part.part, part.turns.map((t) => t.text)])).toEqual([
      [0, ['my pipe burst']],
      [2, ['it is still leaking']],
    ]);
    expect(transcript.turns.map((t) => [t.seq, t.text])).toEqual([
      [0, 'my pipe burst'],
      [2, 'it is still leaking'],
    ]);
    expect(transcript.missingParts).toEqual([transcriptPartKey(callId, 1)]);
    const verdict = await verifyAuditTrail(await auditSegments(callId), sealKey);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.records.find((record) => record.subject === 'earlier_transcript_part_missing')?.payload).toEqual({
      parts: [transcriptPartKey(callId, 1)],
      reason: 'numbered by an earlier worker of the call, never stored',
    });
  });

  it('an earlier part that cannot be read back is named, and the final transcript is written without it', async () => {
    const callId = 'write-once-7';
    const first = recorder(callId, s3);
    first.addTurn(turn('my pipe burst'));
    await first.flush();
    const unreadable = {
      send: async (command: unknown) => {
        if (command instanceof GetObjectCommand) throw Object.assign(new Error('denied'), { name: 'AccessDenied' });
        return s3.send(command as PutObjectCommand);
      },
    } as unknown as S3Client;
    const successor = recorder(callId, unreadable, { resume: first.position });
    successor.addTurn(turn('it is still leaking'));
    const transcript = await successor.finish('caller_hangup');
    expect(transcript.turns.map((t) => t.text)).toEqual(['it is still leaking']);
    expect(transcript.missingParts).toEqual([transcriptPartKey(callId, 0)]);
    const verdict = await verifyAuditTrail(await auditSegments(callId), sealKey);
    expect(verdict.records.find((record) => record.subject === 'earlier_transcript_part_unreadable')?.payload).toEqual({
      parts: [transcriptPartKey(callId, 0)],
      reason: 'could not be read back at the end of the call',
    });
  });

  it("an earlier worker's late writes (after its last save): its segment is replaced, its part kept", async () => {
    const callId = 'write-once-4';
    const stillHeld = { beforeWrite: async () => undefined };
    const dead = recorder(callId, s3, stillHeld);
    dead.addTurn(turn('my pipe burst'));
    dead.audit('llm_request', 'model', { said: 'my pipe burst' });
    await dead.flush();
    const saved = dead.position;
    // Stored after the position it saved, then it died.
    dead.addTurn(turn('in the kitchen'));
    dead.audit('llm_request', 'model', { said: 'in the kitchen' });
    await dead.flush();

    const successor = recorder(callId, s3, { ...stillHeld, resume: saved });
    successor.addTurn(turn('it is still leaking'));
    successor.audit('llm_request', 'model', { said: 'it is still leaking' });
    await successor.flush();
    const transcript = await successor.finish('caller_hangup');

    expect((await transcriptParts(callId)).map((part) => part.turns.map((t) => t.text))).toEqual([
      ['my pipe burst'],
      ['in the kitchen'],
      ['it is still leaking'],
    ]);
    expect(transcript.turns.map((t) => t.text)).toEqual(['my pipe burst', 'it is still leaking']);
    const verdict = await verifyAuditTrail(await auditSegments(callId), sealKey);
    expect(verdict).toMatchObject({ ok: true });
    const said = verdict.records.map((record) => (record.payload as { said?: string } | null)?.said).filter(Boolean);
    expect(said).toEqual(['my pipe burst', 'it is still leaking']);
    expect(verdict.records.find((record) => record.subject === 'earlier_transcript_part_kept')?.payload).toMatchObject({
      part: transcriptPartKey(callId, 1),
    });
  });
});

const at = () => new Date().toISOString();
const turn = (text: string) => ({ speaker: 'caller' as const, text, startedAt: at(), endedAt: at() });

async function transcriptParts(callId: string): Promise<TranscriptPart[]> {
  const listed = await s3.send(
    new ListObjectsV2Command({ Bucket: 'transcripts', Prefix: `transcript-parts/${callId}/` }),
  );
  return Promise.all(
    (listed.Contents ?? []).map(async ({ Key }) => {
      const object = await s3.send(new GetObjectCommand({ Bucket: 'transcripts', Key }));
      return transcriptPartSchema.parse(JSON.parse((await object.Body?.transformToString()) ?? 'null'));
    }),
  );
}
