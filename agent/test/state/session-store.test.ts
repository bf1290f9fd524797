import { GENESIS_HASH, type TranscriptTurn } from '@voice-intake/contracts';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisSessionStore, SessionTakenOverError } from '../../src/state/session-store';
import { startRedis } from '../support/redis-server';

function newCall(callId: string) {
  return {
    callId,
    roomName: `call-${callId}`,
    callerNumber: '+14155550123',
    workerId: 'worker-a',
    status: 'active' as const,
    startedAt: '2026-11-24T10:00:00.000Z',
    intake: { fields: {}, confirmed: false },
    lastTurns: [],
    nextTurnSeq: 0,
    nextTranscriptPart: 0,
    audit: { seq: 0, prevHash: GENESIS_HASH },
  };
}

function turn(seq: number, text: string): TranscriptTurn {
  return {
    seq,
    speaker: seq % 2 ? 'caller' : 'agent',
    text,
    startedAt: '2026-11-24T10:00:01.000Z',
    endedAt: '2026-11-24T10:00:02.000Z',
    interrupted: false,
    redacted: false,
  };
}

describe('session state in a real Redis', () => {
  let redis: Awaited<ReturnType<typeof startRedis>>;
  let clientA: Redis;
  let clientB: Redis;

  beforeAll(async () => {
    redis = await startRedis();
    clientA = redis.client();
    clientB = redis.client();
  });
  afterAll(async () => redis?.stop());

  it('starts a call with a TTL and resumes it instead of starting over', async () => {
    const store = new RedisSessionStore(clientA, { ttlSeconds: 600 });
    const first = await store.start(newCall('c1'));
    expect(first.resumed).toBe(false);
    expect(await store.ttl('c1')).toBeGreaterThan(590);
    await store.update('c1', (state) => ({
      ...state,
      intake: { ...state.intake, intakeType: 'general_inquiry', fields: { full_name: 'Ada' } },
    }));
    const again = await store.start(newCall('c1'));
    expect(again.resumed).toBe(true);
    expect(again.state.intake.fields).toEqual({ full_name: 'Ada' });
  });

  it('lets a new worker take over a call and continue from the stored progress', async () => {
    const crashedStore = new RedisSessionStore(clientA);
    const crashed = crashedStore.hold((await crashedStore.start(newCall('c2'))).state);
    await crashed.appendTurn(turn(0, 'Hello, how can I help?'));
    await crashed.appendTurn(turn(1, 'My pipe burst.'));
    await crashed.update((state) => ({ ...state, audit: { seq: 4, prevHash: 'a'.repeat(64) } }));

    const successor = new RedisSessionStore(clientB);
    const { state: claimed, holder } = await successor.claim('c2', 'worker-b');
    expect(holder).toEqual({ workerId: 'worker-b', claimEpoch: 1 });
    expect(claimed.workerId).toBe('worker-b');
    expect(claimed.lastTurns.map((t) => t.text)).toEqual(['Hello, how can I help?', 'My pipe burst.']);
    expect(claimed.nextTurnSeq).toBe(2);
    expect(claimed.audit).toEqual({ seq: 4, prevHash: 'a'.repeat(64) });
  });

  it('writes a turn and where the records stand in one compare-and-set', async () => {
    const store = new RedisSessionStore(clientA);
    const held = store.hold((await store.start(newCall('c11'))).state);
    const written = await held.appendTurn(turn(0, 'Hello'), {
      nextTranscriptPart: 3,
      audit: { seq: 7, prevHash: 'b'.repeat(64) },
    });
    expect(written).toMatchObject({ nextTurnSeq: 1, nextTranscriptPart: 3, audit: { seq: 7 } });
    expect(await store.load('c11')).toMatchObject({ nextTurnSeq: 1, nextTranscriptPart: 3, audit: { seq: 7 } });
    expect((await store.load('c11'))!.lastTurns.map((t) => t.text)).toEqual(['Hello']);
  });

  it('keeps only the most recent turns', async () => {
    const store = new RedisSessionStore(clientA, { maxTurns: 3 });
    const held = store.hold((await store.start(newCall('c3'))).state);
    for (let seq = 0; seq < 6; seq += 1) await held.appendTurn(turn(seq, `turn ${seq}`));
    const state = await store.load('c3');
    expect(state!.lastTurns.map((t) => t.seq)).toEqual([3, 4, 5]);
    expect(state!.nextTurnSeq).toBe(6);
  });

  it('never loses a concurrent update from another worker', async () => {
    const a = new RedisSessionStore(clientA);
    const b = new RedisSessionStore(clientB);
    await a.start(newCall('c4'));
    await Promise.all(
      Array.from({ length: 10 }, (_, index) =>
        (index % 2 ? a : b).update(
          'c4',
          (state) => ({
            ...state,
            intake: { ...state.intake, fields: { ...state.intake.fields, [`f${index}`]: String(index) } },
          }),
          { attempts: 50 },
        ),
      ),
    );
    const state = await a.load('c4');
    expect(Object.keys(state!.intake.fields).sort()).toEqual([
      'f0',
      'f1',
      'f2',
      'f3',
      'f4',
      'f5',
      'f6',
      'f7',
      'f8',
      'f9',
    ]);
  });

  it('refuses state that does not fit the schema, naming the field', async () => {
    const store = new RedisSessionStore(clientA);
    await store.start(newCall('c5'));
    await expect(store.update('c5', (state) => ({ ...state, callerNumber: '555' }))).rejects.toThrow(/callerNumber/);
    await expect(store.update('missing', (state) => state)).rejects.toThrow(/no session state for call missing/);
  });

  it('a worker taken over writes nothing more: its updates are refused and the successor keeps its own', async () => {
    const firstStore = new RedisSessionStore(clientA);
    const first = firstStore.hold((await firstStore.start(newCall('c6'))).state);
    await first.appendTurn(turn(0, 'Hello, how can I help?'));
    const second = await new RedisSessionStore(clientB).claim('c6', 'worker-b');
    await second.appendTurn(turn(1, 'My pipe burst.'));

    const refused = await first.appendTurn(turn(1, 'a fork of turn 1')).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(SessionTakenOverError);
    expect(refused).toMatchObject({ callId: 'c6', heldBy: { workerId: 'worker-b', claimEpoch: 1 } });
    await expect(first.update((state) => ({ ...state, status: 'ended' }))).rejects.toThrow(
      /c6 was taken over by worker-b \(claim 1\)/,
    );
    await expect(first.check()).rejects.toBeInstanceOf(SessionTakenOverError);
    await expect(second.check()).resolves.toBeUndefined();

    const stored = await firstStore.load('c6');
    expect(stored).toMatchObject({ workerId: 'worker-b', claimEpoch: 1, status: 'active', nextTurnSeq: 2 });
    expect(stored!.lastTurns.map((t) => t.text)).toEqual(['Hello, how can I help?', 'My pipe burst.']);
  });

  it('two takeovers of one call at once: one claim wins each epoch, only the last claim may write', async () => {
    const store = new RedisSessionStore(clientA);
    await store.start(newCall('c7'));
    const claims = await Promise.all([
      new RedisSessionStore(clientA).claim('c7', 'worker-b'),
      new RedisSessionStore(clientB).claim('c7', 'worker-c'),
    ]);
    expect(claims.map((claim) => claim.holder.claimEpoch).sort()).toEqual([1, 2]);
    const [earlier, later] = [...claims].sort((a, b) => a.holder.claimEpoch - b.holder.claimEpoch);
    await expect(earlier.appendTurn(turn(0, 'from the earlier claim'))).rejects.toBeInstanceOf(SessionTakenOverError);
    await later.appendTurn(turn(0, 'from the later claim'));
    expect((await store.load('c7'))!.lastTurns.map((t) => t.text)).toEqual(['from the later claim']);
  });

  it('the same worker id claiming again is a new claim: the older hold of that id is refused too', async () => {
    const store = new RedisSessionStore(clientA);
    await store.start({ ...newCall('c8'), workerId: 'worker-b' });
    const before = store.hold((await store.load('c8'))!);
    const again = await store.claim('c8', 'worker-b');
    await expect(before.update((state) => state)).rejects.toBeInstanceOf(SessionTakenOverError);
    await expect(again.update((state) => state)).resolves.toMatchObject({ claimEpoch: 1 });
  });

  it('reads state saved before claims were kept as claim 0, held by the worker that saved it', async () => {
    const store = new RedisSessionStore(clientA);
    const { state } = await store.start(newCall('c9'));
    const { claimEpoch: _dropped, ...older } = state;
    await clientA.set('voice-intake:session:c9', JSON.stringify(older));
    const held = store.hold((await store.load('c9'))!);
    expect(held.holder).toEqual({ workerId: 'worker-a', claimEpoch: 0 });
    await expect(held.appendTurn(turn(0, 'still mine'))).resolves.toMatchObject({ claimEpoch: 0, nextTurnSeq: 1 });
  });

  it('a check finds nothing to refuse once the state has expired', async () => {
    const store = new RedisSessionStore(clientA);
    const held = store.hold((await store.start(newCall('c10'))).state);
    await store.delete('c10');
    await expect(held.check()).resolves.toBeUndefined();
  });
});
