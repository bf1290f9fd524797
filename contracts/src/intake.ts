import { z } from 'zod';
import { callerNumberSchema, callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';

/** The backend's id of one intake case. */
export const caseIdSchema = z.string().min(1).max(64);

/** Which intake form a call filled in (the enterprise's own names). */
export const intakeTypeSchema = z.string().min(1).max(64);

export const intakeCaseStatusSchema = z.enum(['draft', 'submitted', 'forwarded', 'closed']);

/**
 * How far the number a case was saved from was trusted at that save: `attested` when the call's attestation met the
 * caller trust policy's `revealCasesAt`, `verified` when the caller had proved their identity (verify_caller) on that
 * call, else `unverified` (anyone can present a spoofed number and file a case under it).
 */
export const caseCallerTrustSchema = z.enum(['attested', 'verified', 'unverified']);

/**
 * An intake case: what a call produces for the enterprise's backend. Created by the MCP server's
 * `save_intake_progress` / `submit_intake`; the call id makes submission idempotent.
 */
export const intakeCaseSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  caseId: caseIdSchema,
  callId: callIdSchema,
  callerNumber: callerNumberSchema,
  intakeType: intakeTypeSchema,
  fields: z.record(z.string(), z.string().max(4_000)),
  status: intakeCaseStatusSchema,
  createdAt: isoTimestampSchema,
  updatedAt: isoTimestampSchema,
  submittedAt: isoTimestampSchema.optional(),
  /** When the enterprise backend took the case (status `forwarded`); unset while it waits for delivery. */
  forwardedAt: isoTimestampSchema.optional(),
  source: z.literal('voice'),
  /** Set on every save; a case stored without it (saved before it existed) counts as `unverified`. */
  callerTrust: caseCallerTrustSchema.optional(),
});

/**
 * The cases table's secondary indexes (single table: cases, callbacks, transfers), as the data stack defines them and
 * the MCP server queries them. Both are sparse: an item is in an index only while it carries the partition key.
 * `awaitingForward` is the outbox: submitted cases the backend has not taken yet, by when their next attempt is due.
 */
export const CASE_TABLE_INDEXES = {
  byPhone: { name: 'byPhone', partitionKey: 'gsi1pk', sortKey: 'gsi1sk' },
  awaitingForward: { name: 'awaitingForward', partitionKey: 'awaitingForward', sortKey: 'forwardDueAt' },
} as const;

export type IntakeCaseStatus = z.infer<typeof intakeCaseStatusSchema>;
export type IntakeCase = z.infer<typeof intakeCaseSchema>;
export type CaseCallerTrust = z.infer<typeof caseCallerTrustSchema>;

/**
 * Whether a case may stand as evidence of who owns its number (identity proof, the name a caller is greeted with):
 * only when it was saved from an attested number or by a caller who had proved their identity. Fails closed: a case
 * without `callerTrust` does not count.
 */
export function caseVouchesForCaller(intakeCase: Pick<IntakeCase, 'callerTrust'>): boolean {
  return intakeCase.callerTrust === 'attested' || intakeCase.callerTrust === 'verified';
}
