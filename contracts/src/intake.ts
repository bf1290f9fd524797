import { z } from 'zod';
import { callerNumberSchema, callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';

export const intakeCaseStatusSchema = z.enum(['draft', 'submitted', 'forwarded', 'closed']);

/**
 * An intake case: what a call produces for the enterprise's backend. Created by the MCP server's
 * `save_intake_progress` / `submit_intake`; the call id makes submission idempotent.
 */
export const intakeCaseSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  caseId: z.string().min(1).max(64),
  callId: callIdSchema,
  callerNumber: callerNumberSchema,
  intakeType: z.string().min(1).max(64),
  fields: z.record(z.string(), z.string().max(4_000)),
  status: intakeCaseStatusSchema,
  createdAt: isoTimestampSchema,
  updatedAt: isoTimestampSchema,
  submittedAt: isoTimestampSchema.optional(),
  source: z.literal('voice'),
});

export type IntakeCaseStatus = z.infer<typeof intakeCaseStatusSchema>;
export type IntakeCase = z.infer<typeof intakeCaseSchema>;
