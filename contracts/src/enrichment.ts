import { z } from 'zod';
import { callerNumberSchema, callIdSchema, isoTimestampSchema, SCHEMA_VERSION, storedText } from './common';
import { caseIdSchema, intakeTypeSchema } from './intake';

/** The caller's main reason for calling, as a short phrase (model output, then routed on in the event). */
const intentSchema = storedText(
  z.string().min(1).max(200).describe("The caller's main reason for calling, as a short phrase."),
);

/** An S3 object key (S3 allows at most 1024 bytes; records name only our own keys). */
const objectKeySchema = z.string().min(1).max(1_024);

export const urgencySchema = z.enum(['low', 'normal', 'high', 'emergency']);
export const sentimentSchema = z.enum(['negative', 'neutral', 'positive', 'mixed']);

/**
 * What the model is asked to produce from a transcript (its structured tool-use output). Bounded everywhere, and
 * every text is `storedText` (no control, escape or bidi-override characters; NFC): the model's output is untrusted
 * until it fits. Its JSON Schema for a tool is the input side (`z.toJSONSchema(…, { io: 'input' })`).
 */
export const callInsightsSchema = z
  .object({
    summary: storedText(
      z.string().min(1).max(2_000).describe('Two to four sentences a case worker can read in ten seconds.'),
    ),
    intent: intentSchema,
    intakeFields: z
      .array(
        z
          .object({
            name: storedText(
              z.string().min(1).max(64).describe('Field name, snake_case, e.g. full_name, date_of_birth.'),
            ),
            value: storedText(
              z.string().max(1_000).describe('The value as the caller gave it, normalised where obvious.'),
            ),
            confidence: z.number().min(0).max(1).describe('0..1: how sure the transcript makes this value.'),
          })
          .strict(),
      )
      .max(50)
      .describe('Intake fields stated in the call.'),
    urgency: urgencySchema.describe('emergency only for risk to life or safety.'),
    sentiment: sentimentSchema,
    followUpActions: z
      .array(storedText(z.string().min(1).max(300)))
      .max(10)
      .describe('Concrete next steps for staff, imperative voice.'),
  })
  .strict();

/** The enriched record written beside the transcript (`enriched/…`). */
export const enrichedRecordSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  callId: callIdSchema,
  callerNumber: callerNumberSchema,
  transcriptKey: objectKeySchema,
  enrichedAt: isoTimestampSchema,
  modelId: z.string().min(1),
  /** 1 when the model's first answer fit the schema, 2 when it needed the one corrective retry. */
  modelAttempts: z.number().int().min(1).max(2),
  caseId: caseIdSchema.optional(),
  intakeType: intakeTypeSchema.optional(),
  insights: callInsightsSchema,
});

/** Written instead of an enriched record when a transcript cannot be enriched; never retried. */
export const enrichmentErrorRecordSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  transcriptKey: z.string().min(1),
  failedAt: isoTimestampSchema,
  /**
   * model_input_rejected: the model refused the request as invalid (Bedrock ValidationException, e.g. a transcript
   * too long for it); record_invalid: the enriched record or its event would not fit its contract (nothing was
   * written or sent).
   */
  reason: z.enum([
    'transcript_too_large',
    'transcript_malformed',
    'model_output_invalid',
    'model_input_rejected',
    'record_invalid',
  ]),
  detail: z.string().max(4_000),
});

export const INTAKE_ENRICHED_DETAIL_TYPE = 'IntakeEnriched' as const;
export const ENRICHMENT_EVENT_SOURCE = 'voice-intake.enrichment' as const;

/** The `detail` of the `IntakeEnriched` EventBridge event: enough to route on without reading S3. */
export const intakeEnrichedDetailSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  callId: callIdSchema,
  bucket: z.string().min(1).max(63),
  enrichedKey: objectKeySchema,
  transcriptKey: objectKeySchema,
  callerNumber: callerNumberSchema,
  intent: intentSchema,
  urgency: urgencySchema,
  sentiment: sentimentSchema,
  caseId: caseIdSchema.optional(),
  intakeType: intakeTypeSchema.optional(),
});

export type CallInsights = z.infer<typeof callInsightsSchema>;
export type EnrichedRecord = z.infer<typeof enrichedRecordSchema>;
export type EnrichmentErrorRecord = z.infer<typeof enrichmentErrorRecordSchema>;
export type IntakeEnrichedDetail = z.infer<typeof intakeEnrichedDetailSchema>;
