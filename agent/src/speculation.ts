/**
 * Speculative replies, kept out of the records until they count.
 *
 * LiveKit's preemptive generation starts the LLM on a transcript before the caller's turn is committed: on
 * Transcribe's stable partial (the plugin's PREFLIGHT_TRANSCRIPT) and on the final before endpointing commits the
 * turn. When the turn commits, LiveKit keeps the reply only if the committed words are the same as the ones it
 * answered (case and punctuation aside; the plugin leaves fillers out of both), and cancels it otherwise. The reply's
 * user message joins the conversation only when it is kept, and its tools only run then (LiveKit executes tool calls
 * after the reply is scheduled). What the reply sent to and got from the model, though, is observed as it happens;
 * this ledger holds those records back until the message the reply answers is committed, and drops them when it never
 * is — so a cancelled speculation leaves nothing in the transcript, the audit log or the tools.
 */

/** The user message a reply answers, as LiveKit's chat context holds it. */
export interface AnsweredMessage {
  id: string;
  createdAt: number;
}

export interface SpeculationOutcomes {
  /** A reply started before its turn was committed was kept: the caller hears it. */
  kept?: () => void;
  /** Replies started on words the committed turn did not say (or the call ended first): their records are dropped. */
  cancelled?: (count: number) => void;
}

interface Pending {
  message: AnsweredMessage;
  records: Array<() => void>;
}

export class SpeculationLedger {
  readonly #committed = new Set<string>();
  readonly #pending = new Map<string, Pending>();
  readonly #outcomes: SpeculationOutcomes;

  constructor(outcomes: SpeculationOutcomes = {}) {
    this.#outcomes = outcomes;
  }

  /** Whether `message` (the newest user message of a request) is already part of the conversation. */
  isCommitted(message: AnsweredMessage | undefined): boolean {
    return message === undefined || this.#committed.has(message.id);
  }

  /** Messages already in the conversation when the call started (a call taken over) count as committed. */
  seed(messageIds: Iterable<string>): void {
    for (const id of messageIds) this.#committed.add(id);
  }

  /** A reply was started on `message` before its turn was committed (counted as kept or cancelled later). */
  started(message: AnsweredMessage): void {
    if (this.isCommitted(message) || this.#pending.has(message.id)) return;
    this.#pending.set(message.id, { message, records: [] });
  }

  /**
   * Runs `record` now when the reply answers a committed message (or none: a greeting), else once that message is
   * committed; never, when the turn commits with other words.
   */
  whenCommitted(message: AnsweredMessage | undefined, record: () => void): void {
    if (this.isCommitted(message)) {
      record();
      return;
    }
    const pending = this.#pending.get(message!.id);
    if (pending) pending.records.push(record);
    else this.#pending.set(message!.id, { message: message!, records: [record] });
  }

  /** A user message joined the conversation: its held records go out; speculations it superseded are dropped. */
  committed(message: AnsweredMessage): void {
    if (this.#committed.has(message.id)) return;
    this.#committed.add(message.id);
    const kept = this.#pending.get(message.id);
    this.#pending.delete(message.id);
    let cancelled = 0;
    for (const [id, pending] of this.#pending) {
      // Only what was started for this turn or earlier: a speculation on the next turn may already be under way.
      if (pending.message.createdAt > message.createdAt) continue;
      this.#pending.delete(id);
      cancelled += 1;
    }
    if (kept) {
      for (const record of kept.records) record();
      this.#outcomes.kept?.();
    }
    if (cancelled > 0) this.#outcomes.cancelled?.(cancelled);
  }

  /** The call is over: whatever is still held was never confirmed. */
  close(): void {
    const cancelled = this.#pending.size;
    this.#pending.clear();
    if (cancelled > 0) this.#outcomes.cancelled?.(cancelled);
  }

  /** Speculative replies waiting for their turn to commit. */
  get pending(): number {
    return this.#pending.size;
  }
}
