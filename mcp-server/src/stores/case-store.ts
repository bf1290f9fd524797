import { createHash } from 'node:crypto';
import type { CallerNumber, IntakeCase } from '@voice-intake/contracts';

/** A request for a person to call the caller back within a time window. */
export interface CallbackRequest {
  callbackId: string;
  callId: string;
  callerNumber: CallerNumber;
  windowStart: string;
  windowEnd: string;
  reason?: string;
  createdAt: string;
}

/** Why a call was handed to a person, and to whom. */
export interface TransferRecord {
  callId: string;
  callerNumber: CallerNumber;
  queue: string;
  target: string;
  reason: string;
  at: string;
}

/** One call has one case: the case id is derived from the call id, so retries and duplicates land on the same case. */
export function caseIdForCall(callId: string): string {
  return `C-${createHash('sha256').update(callId).digest('hex').slice(0, 12).toUpperCase()}`;
}

export type SubmitResult = { case: IntakeCase; created: boolean };

/**
 * A submitted case's way to the enterprise backend, as the store records it (the outbox): `pending` until the backend
 * takes it (`dueAt`: when the next delivery attempt may start), `forwarded` once it did (status `forwarded`),
 * `refused` when the backend refused it for good (a 4xx other than 429; never retried on its own), `none` for a case
 * submitted while no backend was configured.
 */
export type Forwarding =
  | { state: 'none' }
  | { state: 'pending'; dueAt: string; attempts: number; lastError?: string }
  | { state: 'forwarded'; at: string }
  | { state: 'refused'; status: number; at: string; error: string };

/** A case waiting for delivery, as the redrive finds it. */
export interface PendingForward {
  case: IntakeCase;
  /** When its next delivery attempt may start (ISO 8601). */
  dueAt: string;
  /** Delivery attempts started so far by redrives (the attempts right after submit count as one). */
  attempts: number;
}

/** A permanent refusal by the backend: the HTTP status, when, and what it said (truncated). */
export interface ForwardRefusal {
  status: number;
  at: string;
  error: string;
}

/** Where intake cases, callbacks and transfers live: DynamoDB in AWS, a file on disk locally. */
export interface CaseStore {
  getCase(caseId: string): Promise<IntakeCase | undefined>;
  /** The case and where it stands on its way to the backend, from one (consistent) read. */
  getCaseForwarding(caseId: string): Promise<{ case: IntakeCase; forwarding: Forwarding } | undefined>;
  /** Creates or updates the draft of a call's case; a submitted case is never changed by this. */
  saveDraft(draft: IntakeCase): Promise<IntakeCase>;
  /**
   * Submits a call's case once: a second submit returns the first result with `created: false`. With `forwardDueAt`
   * the same write marks the case pending delivery to the backend, first due then (the outbox entry).
   */
  submit(submitted: IntakeCase, options?: { forwardDueAt?: string }): Promise<SubmitResult>;
  /** Pending cases whose next attempt is due at `now`, earliest due first, at most `limit`. */
  listDueForwards(now: string, limit: number): Promise<PendingForward[]>;
  /**
   * Takes a pending case for one delivery attempt: only if its due time is still `seenDueAt` (no other task took it
   * since), sets its attempts and the time it is next due should this attempt not deliver it. False when another task
   * took it first, or it is no longer pending.
   */
  claimForward(caseId: string, claim: { seenDueAt: string; attempts: number; nextDueAt: string }): Promise<boolean>;
  /** Records why the last attempt did not deliver a pending case (for operators); no-op when no longer pending. */
  noteForwardError(caseId: string, error: string): Promise<void>;
  /** The backend took the case: submitted → forwarded, `forwardedAt` set, no longer pending. False if not submitted. */
  markForwarded(caseId: string, at: string): Promise<boolean>;
  /** The backend refused the case for good: no longer pending, the refusal kept on it. False if not submitted. */
  markForwardRefused(caseId: string, refusal: ForwardRefusal): Promise<boolean>;
  listCasesByPhone(callerNumber: string): Promise<IntakeCase[]>;
  saveCallback(request: CallbackRequest): Promise<void>;
  saveTransfer(record: TransferRecord): Promise<void>;
}

export class CaseAlreadySubmittedError extends Error {
  constructor(readonly existing: IntakeCase) {
    super(`case ${existing.caseId} was already submitted`);
  }
}
