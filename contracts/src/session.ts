import { z } from 'zod';
import { auditTrailPositionSchema } from './audit-seal';
import { callerNumberSchema, callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';
import { MAX_RECORDING_PARTS_PER_SEGMENT, MAX_RECORDING_SEGMENT } from './keys';
import { transcriptTurnSchema } from './transcript';

export const sessionStatusSchema = z.enum(['active', 'transferring', 'ended']);

/** How far the intake has come; the MCP server's form decides which field names are valid. */
export const intakeProgressSchema = z.object({
  intakeType: z.string().optional(),
  fields: z.record(z.string(), z.string()).default({}),
  /** The caller confirmed the collected fields when they were read back. */
  confirmed: z.boolean().default(false),
  caseId: z.string().optional(),
});

/** Where a call's recording stands (see the transcript's `recording`). */
export const sessionRecordingSchema = z
  .object({
    mode: z.enum(['announce', 'consent']),
    /**
     * The recording's sample rate: a worker taking the call over goes on at it, whatever its own configuration says
     * (absent in state saved before it was kept: the taking-over worker's).
     */
    sampleRate: z.union([z.literal(8_000), z.literal(16_000)]).optional(),
    /** The worker's recording segment: 0 for the first, one more for each takeover that went on recording. */
    segment: z.number().int().min(0).max(MAX_RECORDING_SEGMENT),
    /** The first segment's clock start, and each later one's. */
    startedAt: isoTimestampSchema,
    resumedAt: z.array(isoTimestampSchema).max(MAX_RECORDING_SEGMENT).default([]),
    /** Consent mode: the caller's answer (absent: not answered yet). */
    consent: z.boolean().optional(),
    /**
     * Parts written so far by each segment, in order (segment s wrote parts 1..n of `recordingPartKey(callId, n, s)`):
     * counts, not keys, so the state saved after every flush stays small on a long call. A part stored after the last
     * save is not counted: a worker taking the call over lists the bucket, and the transcript names what is there.
     */
    partsPerSegment: z
      .array(z.number().int().nonnegative().max(MAX_RECORDING_PARTS_PER_SEGMENT))
      .max(MAX_RECORDING_SEGMENT + 1),
  })
  .refine((recording) => recording.partsPerSegment.length === recording.segment + 1, {
    path: ['partsPerSegment'],
    message: 'must hold one count per segment, 0 to segment',
  });

/**
 * Per-call state kept in Redis while the call runs (with a TTL), written as the call goes,
 * so a worker that takes over a call can resume it.
 */
export const sessionStateSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  callId: callIdSchema,
  roomName: z.string().min(1),
  callerNumber: callerNumberSchema,
  calledNumber: z.string().optional(),
  /** The worker currently holding the call. */
  workerId: z.string().min(1),
  /**
   * Which claim holds the call: 0 for the worker that started it, one more with each takeover. A worker writes the
   * call's state and records only while the stored claim is its own, so a worker taken over stops instead of forking
   * the transcript, the audit chain and the recording (absent in state saved before it was kept: 0).
   */
  claimEpoch: z.number().int().nonnegative().default(0),
  status: sessionStatusSchema,
  startedAt: isoTimestampSchema,
  updatedAt: isoTimestampSchema,
  intake: intakeProgressSchema,
  /** The most recent turns (bounded), enough to give a resuming agent its context back. */
  lastTurns: z.array(transcriptTurnSchema).max(50),
  /** Next transcript turn sequence number and transcript part to write. */
  nextTurnSeq: z.number().int().nonnegative(),
  nextTranscriptPart: z.number().int().nonnegative(),
  /** Where the agent's audit chain and its seals stand, so a resuming worker continues them unbroken. */
  audit: auditTrailPositionSchema,
  /** The call's recording so far, so a worker taking the call over can go on with it (absent: not recording). */
  recording: sessionRecordingSchema.optional(),
});

export type SessionStatus = z.infer<typeof sessionStatusSchema>;
export type IntakeProgress = z.infer<typeof intakeProgressSchema>;
export type SessionState = z.infer<typeof sessionStateSchema>;
export type SessionRecording = z.infer<typeof sessionRecordingSchema>;
