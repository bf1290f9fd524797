import { type BackoffOptions, backoffCeilingMs, type IntakeCase, MCP_SERVER_LOG_EVENTS } from '@voice-intake/contracts';
import type { Logger } from 'pino';
import type { CaseStore, PendingForward } from '../stores/case-store';
import type { HttpCaseForwarder } from './http-forwarder';

/**
 * Where a submitted case stands on its way to the backend, as the case store says: taken by it (`delivered`), waiting
 * for a redrive (`queued`), refused by it for good (`failed`), or never sent because no backend was configured when
 * it was submitted (`not_configured`).
 */
export type ForwardState = 'delivered' | 'queued' | 'failed' | 'not_configured';

export interface CaseOutboxOptions {
  store: CaseStore;
  forwarder: HttpCaseForwarder;
  logger: Logger;
  /** Most pending cases one redrive takes on (oldest due first). Default 25. */
  redriveBatch?: number;
  /** Wait before a pending case's next redrive attempt, by attempts made. Default 1 min doubling, at most 1 h. */
  redriveBackoff?: BackoffOptions;
  /** A pending case older than this (since submit) is logged as overdue at each redrive that sees it. Default 15 min. */
  overdueAfterMs?: number;
  /** The clock. Default: the system's. */
  now?: () => Date;
}

export interface RedriveResult {
  /** Pending cases found due. */
  due: number;
  delivered: number;
  refused: number;
  /** Not delivered this time: due again after their backoff. */
  deferred: number;
  /** Taken by another task (or no longer pending) between the query and the claim. */
  skipped: number;
  /** Due cases pending longer than `overdueAfterMs`. */
  overdue: number;
}

export const DEFAULT_REDRIVE_BACKOFF: BackoffOptions = { baseDelayMs: 60_000, maxDelayMs: 3_600_000 };
const DEFAULT_OVERDUE_AFTER_MS = 15 * 60_000;
/** Room between the end of the attempts right after submit and the first redrive that may take the case. */
const SUBMIT_LEASE_MARGIN_MS = 30_000;

const later = (from: Date, ms: number) => new Date(from.getTime() + ms).toISOString();

/**
 * The transactional outbox of submitted cases, kept in the case store itself: a case is submitted already marked
 * pending (one conditional write), forwarded right away, and whatever the backend did not take stays pending in the
 * store, where every server task's redrive finds it — a task replaced, scaled in or dead between submit and forward
 * loses nothing. A delivery moves the case from `submitted` to `forwarded` (conditional), a permanent refusal (4xx
 * other than 429) takes it out of the pending index and keeps the refusal on the case, for an operator.
 *
 * Two tasks may post the same case (a claim lease that ran out, a delivery whose store update failed): the backend
 * gets the case id as `Idempotency-Key` every time, so that is one case to it.
 */
export class CaseOutbox {
  private running: Promise<RedriveResult> | undefined;

  constructor(private readonly options: CaseOutboxOptions) {}

  private now(): Date {
    return this.options.now ? this.options.now() : new Date();
  }

  private get backoff(): BackoffOptions {
    return this.options.redriveBackoff ?? DEFAULT_REDRIVE_BACKOFF;
  }

  /**
   * When a case submitted at `now` is first due for a redrive: after the attempts right after submit can have ended,
   * so no redrive posts it while they run.
   */
  firstDueAt(now: Date): string {
    return later(now, this.options.forwarder.forwardBudgetMs + SUBMIT_LEASE_MARGIN_MS);
  }

  /**
   * Forwards a case just submitted as pending with `dueAt` (firstDueAt) and records the outcome in the store. A
   * store error after the attempts leaves the case pending: a redrive sends it again (same idempotency key).
   */
  async forwardSubmitted(intakeCase: IntakeCase, dueAt: string): Promise<ForwardState> {
    const { store, forwarder, logger } = this.options;
    const { caseId } = intakeCase;
    const result = await forwarder.forward(intakeCase);
    try {
      if (result.outcome === 'delivered') {
        await store.markForwarded(caseId, this.now().toISOString());
        return 'delivered';
      }
      if (result.outcome === 'refused') {
        await this.refuse(intakeCase, result.status, result.error, this.now());
        return 'failed';
      }
      // The attempts right after submit count as the first; the next is due after the first redrive backoff.
      const at = this.now();
      await store.claimForward(caseId, {
        seenDueAt: dueAt,
        attempts: 1,
        nextDueAt: later(at, backoffCeilingMs(0, this.backoff)),
      });
      await store.noteForwardError(caseId, result.error);
      logger.warn(
        { event: 'case_forward_queued', caseId, error: result.error },
        'case pending in the store for redrive',
      );
    } catch (error) {
      logger.error({ event: 'case_forward_record_failed', caseId, err: error }, 'could not record the forward outcome');
      if (result.outcome === 'delivered') return 'delivered';
    }
    return result.outcome === 'refused' ? 'failed' : 'queued';
  }

  private async refuse(intakeCase: IntakeCase, status: number, error: string, at: Date): Promise<void> {
    await this.options.store.markForwardRefused(intakeCase.caseId, { status, at: at.toISOString(), error });
    this.options.logger.error(
      { event: MCP_SERVER_LOG_EVENTS.caseForwardRefused, caseId: intakeCase.caseId, status, error },
      'backend refused the case; it is not retried (see README: forwarding to your backend)',
    );
  }

  /** Where a case stands, from the store (any task's deliveries count); undefined for an unknown or draft case. */
  async stateOf(caseId: string): Promise<ForwardState | undefined> {
    const found = await this.options.store.getCaseForwarding(caseId);
    if (!found || found.case.status === 'draft') return undefined;
    return forwardStateOf(found.forwarding.state);
  }

  /**
   * Sends the pending cases that are due (one bounded page, earliest due first), one attempt each: each is claimed
   * first (conditional on its due time), so two tasks redriving at once post a case once; a claim also sets when the
   * case is next due, should this attempt fail (per-case backoff) or this task die. One redrive at a time per
   * outbox: a call while one runs gets that one's result. A case whose attempt throws (a store error) is logged and
   * left pending; the others go on.
   */
  redrive(): Promise<RedriveResult> {
    this.running ??= this.redriveOnce(this.now()).finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async redriveOnce(now: Date): Promise<RedriveResult> {
    const { store, logger } = this.options;
    const due = await store.listDueForwards(now.toISOString(), this.options.redriveBatch ?? 25);
    const result: RedriveResult = { due: due.length, delivered: 0, refused: 0, deferred: 0, skipped: 0, overdue: 0 };
    for (const pending of due) {
      try {
        await this.redriveCase(pending, now, result);
      } catch (error) {
        logger.error(
          { event: 'case_forward_redrive_failed', caseId: pending.case.caseId, err: error },
          'redrive failed',
        );
      }
    }
    if (result.due > 0) logger.info({ event: 'case_forward_redrive', ...result }, 'redrive of pending cases');
    return result;
  }

  private async redriveCase(pending: PendingForward, now: Date, result: RedriveResult): Promise<void> {
    const { store, forwarder } = this.options;
    const { caseId } = pending.case;
    if (this.isOverdue(pending, now)) result.overdue += 1;
    const attempts = pending.attempts + 1;
    const claimed = await store.claimForward(caseId, {
      seenDueAt: pending.dueAt,
      attempts,
      nextDueAt: later(now, backoffCeilingMs(attempts - 1, this.backoff)),
    });
    if (!claimed) {
      result.skipped += 1;
      return;
    }
    const posted = await forwarder.post(pending.case);
    if (posted.ok) {
      await store.markForwarded(caseId, this.now().toISOString());
      result.delivered += 1;
    } else if (!posted.retryable) {
      await this.refuse(pending.case, posted.status ?? 0, posted.error, this.now());
      result.refused += 1;
    } else {
      await store.noteForwardError(caseId, posted.error);
      result.deferred += 1;
    }
  }

  private isOverdue(pending: PendingForward, now: Date): boolean {
    const since = Date.parse(pending.case.submittedAt ?? pending.case.updatedAt);
    const pendingMs = now.getTime() - since;
    if (pendingMs <= (this.options.overdueAfterMs ?? DEFAULT_OVERDUE_AFTER_MS)) return false;
    this.options.logger.warn(
      {
        event: MCP_SERVER_LOG_EVENTS.caseForwardOverdue,
        caseId: pending.case.caseId,
        pendingMinutes: Math.floor(pendingMs / 60_000),
        attempts: pending.attempts,
      },
      'case still pending delivery to the backend',
    );
    return true;
  }
}

export function forwardStateOf(state: 'none' | 'pending' | 'forwarded' | 'refused'): ForwardState {
  switch (state) {
    case 'forwarded':
      return 'delivered';
    case 'pending':
      return 'queued';
    case 'refused':
      return 'failed';
    case 'none':
      return 'not_configured';
  }
}
