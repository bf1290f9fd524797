/** What the server process knows of one caller on one call: whether they proved who they are, and how often they failed. */
interface ProofState {
  proven: boolean;
  /** Failed proofs, plus proofs being checked right now (an attempt is counted before it is checked). */
  attempts: number;
  expiresAt: number;
}

export interface CallerProofsOptions {
  /** How long a call's proof and failed attempts are kept after their last change (longer than any call). */
  ttlMs?: number;
  /** The most calls kept; beyond it the least recently changed are dropped. */
  maxEntries?: number;
  now?: () => number;
}

/**
 * Identity proofs (verify_caller) and failed attempts, by call and number, shared by every MCP session of the server
 * process: an agent that reconnects, or opens a second MCP session for the same call, neither loses a proof nor gets
 * fresh attempts. Bounded in size and expiring, so it cannot grow without limit. Per process: with several server
 * tasks, each keeps its own.
 */
export class CallerProofs {
  private readonly entries = new Map<string, ProofState>();
  private readonly ttlMs: number;
  private readonly maxEntries: number;
  private readonly now: () => number;

  constructor(options: CallerProofsOptions = {}) {
    this.ttlMs = options.ttlMs ?? 4 * 3_600_000;
    this.maxEntries = options.maxEntries ?? 50_000;
    this.now = options.now ?? Date.now;
  }

  static keyOf(session: { callId: string; callerNumber: string }): string {
    return `${session.callId}|${session.callerNumber}`;
  }

  /** Entries kept right now (after dropping expired ones). */
  get size(): number {
    this.prune();
    return this.entries.size;
  }

  private get(key: string): ProofState | undefined {
    this.prune();
    return this.entries.get(key);
  }

  /** Stores the state as the most recently changed entry, then trims to the bound. */
  private put(key: string, state: ProofState): void {
    this.entries.delete(key);
    this.entries.set(key, { ...state, expiresAt: this.now() + this.ttlMs });
    this.prune();
  }

  /** Drops expired entries and, past the bound, the least recently changed ones (Map order is change order). */
  private prune(): void {
    const now = this.now();
    for (const [key, state] of this.entries) {
      if (state.expiresAt > now && this.entries.size <= this.maxEntries) break;
      this.entries.delete(key);
    }
  }

  isProven(key: string): boolean {
    return this.get(key)?.proven === true;
  }

  /** Attempts counted against the call (failed ones and those being checked). */
  attempts(key: string): number {
    return this.get(key)?.attempts ?? 0;
  }

  /**
   * Counts an attempt before it is checked, so concurrent attempts cannot all pass the limit while the first is still
   * being checked. False (nothing counted) when the call has used up its attempts.
   */
  reserveAttempt(key: string, maxAttempts: number): boolean {
    const state = this.get(key) ?? { proven: false, attempts: 0, expiresAt: 0 };
    if (state.attempts >= maxAttempts) return false;
    this.put(key, { ...state, attempts: state.attempts + 1 });
    return true;
  }

  /** Gives back an attempt that was not a failed proof (it succeeded, or could not be checked). */
  releaseAttempt(key: string): void {
    const state = this.get(key);
    if (state) this.put(key, { ...state, attempts: Math.max(0, state.attempts - 1) });
  }

  markProven(key: string): void {
    const state = this.get(key) ?? { proven: false, attempts: 0, expiresAt: 0 };
    this.put(key, { ...state, proven: true });
  }
}
