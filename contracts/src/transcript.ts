import { z } from 'zod';
import { callerNumberSchema, callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';
import { caseIdSchema, intakeTypeSchema } from './intake';
import { MAX_RECORDING_SEGMENT } from './keys';

export const speakerSchema = z.enum(['caller', 'agent']);

/** The longest text one transcript turn holds (the agent records a longer turn cut to this, marked). */
export const MAX_TURN_TEXT_CHARS = 20_000;

/** One turn of the conversation as spoken (caller) or said (agent). */
export const transcriptTurnSchema = z.object({
  /** 0-based, strictly increasing within a call. */
  seq: z.number().int().nonnegative(),
  speaker: speakerSchema,
  text: z.string().max(MAX_TURN_TEXT_CHARS),
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

export const transcriptPartKeySchema = z.string().regex(/^transcript-parts\/[^/]+\/\d{6,}\.json$/);

export const recordingPartKeySchema = z.string().regex(/^recordings\/[^/]+\/part-(?:r\d{1,3}-)?\d{6}\.wav$/);

/**
 * The call's audio recording, when one was made or asked for: stereo WAV parts (caller left, agent right) in call
 * order. Absent when recording is off; `parts` is empty when the caller refused or never answered.
 */
export const transcriptRecordingSchema = z.object({
  mode: z.enum(['announce', 'consent']),
  sampleRate: z.union([z.literal(8_000), z.literal(16_000)]),
  /** When the recording's clock started: sample 0 of the first part. */
  startedAt: isoTimestampSchema,
  /**
   * Consent mode: what the caller answered (absent: never answered, nothing stored — or, after a takeover that did not
   * go on recording, the answer was never saved: then `parts` names what the earlier worker stored after it).
   */
  consent: z.boolean().optional(),
  /**
   * Object keys in the transcripts bucket, in order: `recordings/<callId>/part-<n>.wav`, then, for each worker that
   * took the call over and went on recording, `part-r<segment>-<n>.wav`.
   */
  parts: z.array(recordingPartKeySchema).max(100_000),
  /** When each takeover's recording clock started (sample 0 of its first part), in order; absent: none. */
  resumedAt: z.array(isoTimestampSchema).max(MAX_RECORDING_SEGMENT).optional(),
  /**
   * Parts that are not in the bucket though they were written (named so a gap in the audio is explained, not silent):
   * this worker's failed writes, and an earlier worker's parts the session state counts but a listing did not find.
   */
  failedParts: z.array(z.string()).default([]),
  /**
   * An earlier worker's parts the session state counts but the bucket could not be listed to confirm (after a takeover):
   * not in `parts`, which holds only parts known to exist.
   */
  unverifiedParts: z.array(recordingPartKeySchema).max(100_000).optional(),
});

/** A sentence the caller hears about the recording (notice or consent question): spoken words, not markup. */
export const recordingSentenceSchema = z
  .string()
  .trim()
  .min(10, 'must be a sentence the caller hears (at least 10 characters)')
  .max(400, 'must be at most 400 characters (it is spoken before anything else)')
  .regex(/^[^<>{}]*$/, 'must be plain text (no markup)');

export const callEndReasonSchema = z.enum(['caller_hangup', 'agent_hangup', 'transferred', 'error', 'worker_shutdown']);

/**
 * Turns a final transcript holds at most: a bound for its readers (enrichment, reports). A call with more (a caller
 * keying in entries for hours) keeps the first ones there and the rest in its transcript parts (`omittedTurns`).
 */
export const MAX_TRANSCRIPT_TURNS = 5_000;

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
  intakeType: intakeTypeSchema.optional(),
  caseId: caseIdSchema.optional(),
  turns: z.array(transcriptTurnSchema).max(MAX_TRANSCRIPT_TURNS),
  /**
   * Turns of the call after the first `MAX_TRANSCRIPT_TURNS`: not in `turns`, still in the call's transcript parts
   * (`transcript-parts/<callId>/`). Absent: every turn is here.
   */
  omittedTurns: z.number().int().positive().optional(),
  /**
   * Transcript parts of workers that held the call before the one that ended it whose turns are not in `turns`: a
   * part numbered in the session state and never stored (its worker died between the two), or one that could not be
   * read back (the audit chain says which). Absent: none.
   */
  missingParts: z.array(transcriptPartKeySchema).max(100_000).optional(),
  recording: transcriptRecordingSchema.optional(),
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
export type TranscriptRecording = z.infer<typeof transcriptRecordingSchema>;
export type TranscriptPart = z.infer<typeof transcriptPartSchema>;
