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

/** Where intake cases, callbacks and transfers live: DynamoDB in AWS, a file on disk locally. */
export interface CaseStore {
  getCase(caseId: string): Promise<IntakeCase | undefined>;
  /** Creates or updates the draft of a call's case; a submitted case is never changed by this. */
  saveDraft(draft: IntakeCase): Promise<IntakeCase>;
  /** Submits a call's case once: a second submit returns the first result with `created: false`. */
  submit(submitted: IntakeCase): Promise<SubmitResult>;
  listCasesByPhone(callerNumber: string): Promise<IntakeCase[]>;
  saveCallback(request: CallbackRequest): Promise<void>;
  saveTransfer(record: TransferRecord): Promise<void>;
}

export class CaseAlreadySubmittedError extends Error {
  constructor(readonly existing: IntakeCase) {
    super(`case ${existing.caseId} was already submitted`);
  }
}
