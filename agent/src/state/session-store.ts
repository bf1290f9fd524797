import { SCHEMA_VERSION, type SessionState, sessionStateSchema, type TranscriptTurn } from '@voice-intake/contracts';
import type { Redis } from 'ioredis';

export interface SessionStoreOptions {
  /** A call's state outlives it by this much, then Redis drops it. */
  ttlSeconds?: number;
  keyPrefix?: string;
  /** How many recent turns to keep for a resuming worker. */
  maxTurns?: number;
}

const DEFAULTS = { ttlSeconds: 6 * 3_600, keyPrefix: 'voice-intake:session:', maxTurns: 20 };

/**
 * Compare-and-set: write the new state only if the stored one is still what we read. A script, not WATCH/MULTI,
 * because WATCH belongs to a connection and concurrent updates share one.
 */
const COMPARE_AND_SET = `
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0`;

export class SessionConflictError extends Error {
  override readonly name = 'SessionConflictError';
}

/**
 * Per-call session state in Redis (the shared `sessionStateSchema`), written as the call goes with a TTL. Updates are
 * optimistic (compare-and-set in one script), so two writers never overwrite each other's progress; a worker that takes over a call
 * after a crash `claim`s it and carries on from what is stored.
 */
export class RedisSessionStore {
  private readonly options: Required<SessionStoreOptions>;

  constructor(
    private readonly redis: Redis,
    options: SessionStoreOptions = {},
  ) {
    this.options = { ...DEFAULTS, ...options };
  }

  private key(callId: string): string {
    return `${this.options.keyPrefix}${callId}`;
  }

  async load(callId: string): Promise<SessionState | undefined> {
    const raw = await this.redis.get(this.key(callId));
    if (raw === null) return undefined;
    return sessionStateSchema.parse(JSON.parse(raw));
  }

  /** Starts a call's state, unless one exists (then the existing one is returned: the call is being resumed). */
  async start(
    initial: Omit<SessionState, 'schemaVersion' | 'updatedAt'>,
  ): Promise<{ state: SessionState; resumed: boolean }> {
    const state = sessionStateSchema.parse({
      ...initial,
      schemaVersion: SCHEMA_VERSION,
      updatedAt: new Date().toISOString(),
    });
    const created = await this.redis.set(
      this.key(state.callId),
      JSON.stringify(state),
      'EX',
      this.options.ttlSeconds,
      'NX',
    );
    if (created === 'OK') return { state, resumed: false };
    const existing = await this.load(state.callId);
    if (!existing) return this.start(initial);
    return { state: existing, resumed: true };
  }

  /** Applies `change` to the stored state atomically; retries when another writer got there first. */
  async update(callId: string, change: (state: SessionState) => SessionState, attempts = 5): Promise<SessionState> {
    const key = this.key(callId);
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const raw = await this.redis.get(key);
      if (raw === null) throw new Error(`no session state for call ${callId}`);
      const next = sessionStateSchema.parse({
        ...change(sessionStateSchema.parse(JSON.parse(raw))),
        updatedAt: new Date().toISOString(),
      });
      const written = await this.redis.eval(
        COMPARE_AND_SET,
        1,
        key,
        raw,
        JSON.stringify(next),
        this.options.ttlSeconds,
      );
      if (written === 1) return next;
    }
    throw new SessionConflictError(`session ${callId} kept changing under ${attempts} attempts`);
  }

  /** A worker takes over a call (after the previous one died). */
  claim(callId: string, workerId: string): Promise<SessionState> {
    return this.update(callId, (state) => ({
      ...state,
      workerId,
      status: state.status === 'ended' ? 'ended' : 'active',
    }));
  }

  /** Records a turn: kept among the last `maxTurns`, and the next sequence number moves on. */
  appendTurn(callId: string, turn: TranscriptTurn): Promise<SessionState> {
    return this.update(callId, (state) => ({
      ...state,
      lastTurns: [...state.lastTurns, turn].slice(-this.options.maxTurns),
      nextTurnSeq: Math.max(state.nextTurnSeq, turn.seq + 1),
    }));
  }

  async delete(callId: string): Promise<void> {
    await this.redis.del(this.key(callId));
  }

  async ttl(callId: string): Promise<number> {
    return this.redis.ttl(this.key(callId));
  }
}
