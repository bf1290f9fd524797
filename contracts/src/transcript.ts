import { z } from 'zod';
import { callerNumberSchema, callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';

export const speakerSchema = z.enum(['caller', 'agent']);

/** One turn of the conversation as spoken (caller) or said (agent). */
export const transcriptTurnSchema = z.object({
  /** 0-based, strictly increasing within a call. */
  seq: z.number().int().nonnegative(),
  speaker: speakerSchema,
  text: z.string().max(20_000),
  startedAt: isoTimestampSchema,
  endedAt: isoTimestampSchema,
  /** STT confidence 0..1 for caller turns; absent for agent turns. */
  confidence: z.number().min(0).max(1).optional(),
  /** The agent was cut off by the caller (barge-in) before it finished this turn. */
  interrupted: z.boolean().default(false),
  /** True when PII was redacted from `text` before it was recorded. */
  redacted: z.boolean().default(false),
  language: z.string().optional(),
});

export const callEndReasonSchema = z.enum(['caller_hangup', 'agent_hangup', 'transferred', 'error', 'worker_shutdown']);

/** The final transcript of one call: the object whose creation triggers enrichment. */
export const transcriptSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  callId: callIdSchema,
  roomName: z.string().min(1),
  callerNumber: callerNumberSchema,
  /** The number the caller dialled (our DID), when the trunk passes it. */
  calledNumber: z.string().optional(),
  startedAt: isoTimestampSchema,
  endedAt: isoTimestampSchema,
  endReason: callEndReasonSchema,
  intakeType: z.string().optional(),
  caseId: z.string().optional(),
  turns: z.array(transcriptTurnSchema).max(5_000),
});

/**
 * A slice of a call's turns written while the call is in progress, so a killed worker loses at most
 * the turns since its last flush. Parts live under the call's `parts/` prefix and never trigger enrichment.
 */
export const transcriptPartSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  callId: callIdSchema,
  part: z.number().int().nonnegative(),
  turns: z.array(transcriptTurnSchema),
});

export type Speaker = z.infer<typeof speakerSchema>;
export type TranscriptTurn = z.infer<typeof transcriptTurnSchema>;
export type TranscriptTurnInput = z.input<typeof transcriptTurnSchema>;
export type CallEndReason = z.infer<typeof callEndReasonSchema>;
export type Transcript = z.infer<typeof transcriptSchema>;
export type TranscriptPart = z.infer<typeof transcriptPartSchema>;
