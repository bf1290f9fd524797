import { GENESIS_HASH, type TranscriptTurn } from '@voice-intake/contracts';
import type { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { RedisSessionStore } from '../../src/state/session-store';
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
    const crashed = new RedisSessionStore(clientA);
    await crashed.start(newCall('c2'));
    await crashed.appendTurn('c2', turn(0, 'Hello, how can I help?'));
    await crashed.appendTurn('c2', turn(1, 'My pipe burst.'));
    await crashed.update('c2', (state) => ({ ...state, audit: { seq: 4, prevHash: 'a'.repeat(64) } }));

    const successor = new RedisSessionStore(clientB);
    const claimed = await successor.claim('c2', 'worker-b');
    expect(claimed.workerId).toBe('worker-b');
    expect(claimed.lastTurns.map((t) => t.text)).toEqual(['Hello, how can I help?', 'My pipe burst.']);
    expect(claimed.nextTurnSeq).toBe(2);
    expect(claimed.audit).toEqual({ seq: 4, prevHash: 'a'.repeat(64) });
  });

  it('keeps only the most recent turns', async () => {
    const store = new RedisSessionStore(clientA, { maxTurns: 3 });
    await store.start(newCall('c3'));
    for (let seq = 0; seq < 6; seq += 1) await store.appendTurn('c3', turn(seq, `turn ${seq}`));
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
          50,
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
});
