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

/** Which worker holds a call, and by which claim (see `claimEpoch` in the session state). */
export interface SessionHolder {
  workerId: string;
  claimEpoch: number;
}

/** Another worker has claimed the call since this one took it: this worker must write nothing more for it. */
export class SessionTakenOverError extends Error {
  override readonly name = 'SessionTakenOverError';

  constructor(
    readonly callId: string,
    readonly heldBy: SessionHolder,
  ) {
    super(`call ${callId} was taken over by ${heldBy.workerId} (claim ${heldBy.claimEpoch})`);
  }
}

export interface SessionUpdateOptions {
  /** Compare-and-set attempts before giving up. Default 5. */
  attempts?: number;
  /** Write only while the stored state is still held by this claim; else throw `SessionTakenOverError`. */
  heldBy?: SessionHolder;
}

/**
 * Per-call session state in Redis (the shared `sessionStateSchema`), written as the call goes with a TTL. Updates are
 * optimistic (compare-and-set in one script), so two writers never overwrite each other's progress. The worker that
 * starts a call holds it; a worker that takes it over after a crash `claim`s it and carries on from what is stored.
 * Workers write through their `SessionHold`, which refuses once the call has been claimed by another.
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
    initial: Omit<SessionState, 'schemaVersion' | 'updatedAt' | 'claimEpoch'>,
  ): Promise<{ state: SessionState; resumed: boolean }> {
    const state = sessionStateSchema.parse({
      ...initial,
      claimEpoch: 0,
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

  /**
   * Applies `change` to the stored state atomically; retries when another writer got there first. With `heldBy`, the
   * state is written only while that claim still holds the call (checked against what the compare-and-set writes
   * over, so a claim can never slip in between).
   */
  async update(
    callId: string,
    change: (state: SessionState) => SessionState,
    options: SessionUpdateOptions = {},
  ): Promise<SessionState> {
    const { attempts = 5, heldBy } = options;
    const key = this.key(callId);
    for (let attempt = 0; attempt < attempts; attempt += 1) {
      const raw = await this.redis.get(key);
      if (raw === null) throw new Error(`no session state for call ${callId}`);
      const current = sessionStateSchema.parse(JSON.parse(raw));
      if (heldBy) assertHeldBy(current, heldBy);
      const next = sessionStateSchema.parse({ ...change(current), updatedAt: new Date().toISOString() });
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

  /** The hold of the worker that started the call (`start` returned it not resumed). */
  hold(started: SessionState): SessionHold {
    return new SessionHold(this, started, this.options.maxTurns);
  }

  /**
   * A worker takes over a call (after the previous one died): the call is its own from here, and a worker that held it
   * before can write nothing more for it.
   */
  async claim(callId: string, workerId: string): Promise<SessionHold> {
    const claimed = await this.update(callId, (state) => ({
      ...state,
      workerId,
      claimEpoch: state.claimEpoch + 1,
      status: state.status === 'ended' ? 'ended' : 'active',
    }));
    return new SessionHold(this, claimed, this.options.maxTurns);
  }

  async delete(callId: string): Promise<void> {
    await this.redis.del(this.key(callId));
  }

  async ttl(callId: string): Promise<number> {
    return this.redis.ttl(this.key(callId));
  }
}

function assertHeldBy(state: SessionState, holder: SessionHolder): void {
  if (state.claimEpoch !== holder.claimEpoch || state.workerId !== holder.workerId)
    throw new SessionTakenOverError(state.callId, { workerId: state.workerId, claimEpoch: state.claimEpoch });
}

/**
 * One worker's hold on one call: every write of that worker's goes through it and is refused with
 * `SessionTakenOverError` once another worker has claimed the call.
 */
export class SessionHold {
  readonly holder: SessionHolder;

  constructor(
    private readonly store: RedisSessionStore,
    /** The state as this worker took the call (started it, or claimed it). */
    readonly state: SessionState,
    private readonly maxTurns: number,
  ) {
    this.holder = { workerId: state.workerId, claimEpoch: state.claimEpoch };
  }

  get callId(): string {
    return this.state.callId;
  }

  update(change: (state: SessionState) => SessionState): Promise<SessionState> {
    return this.store.update(this.callId, change, { heldBy: this.holder });
  }

  /**
   * Records a turn: kept among the last `maxTurns`, and the next sequence number moves on; `also` is written in the
   * same compare-and-set (e.g. where the records stand).
   */
  appendTurn(turn: TranscriptTurn, also: Partial<SessionState> = {}): Promise<SessionState> {
    return this.update((state) => ({
      ...state,
      ...also,
      lastTurns: [...state.lastTurns, turn].slice(-this.maxTurns),
      nextTurnSeq: Math.max(state.nextTurnSeq, turn.seq + 1),
    }));
  }

  /**
   * Throws `SessionTakenOverError` when another worker has claimed the call. State that is gone (expired) names no
   * other holder: nothing to refuse.
   */
  async check(): Promise<void> {
    const state = await this.store.load(this.callId);
    if (state) assertHeldBy(state, this.holder);
  }
}
