import { parseEnvironment } from '@voice-intake/contracts';
import { z } from 'zod';

const positiveInt = z.coerce.number().int().positive();

/** The function's environment, validated once at cold start; an error names the variable. */
export const enrichmentEnvSchema = z.object({
  MODEL_ID: z.string().min(1),
  EVENT_BUS_NAME: z.string().min(1),
  IDEMPOTENCY_TABLE_NAME: z.string().min(1),
  /** The one bucket whose transcripts this function enriches: an event naming another is ignored. */
  TRANSCRIPTS_BUCKET_NAME: z.string().min(1),
  /** Transcripts larger than this are rejected with an error record, unread. */
  MAX_TRANSCRIPT_BYTES: positiveInt.default(1_048_576),
  /** Bedrock calls per model request before a throttled request gives up (then the event goes to the DLQ). */
  BEDROCK_MAX_ATTEMPTS: positiveInt.max(10).default(5),
  /** First backoff delay; doubles each attempt, with full jitter. */
  BEDROCK_RETRY_BASE_MS: positiveInt.default(400),
  /** How long a processed event is remembered against redelivery. */
  IDEMPOTENCY_TTL_SECONDS: positiveInt.default(7 * 24 * 3600),
});

export type EnrichmentEnv = z.infer<typeof enrichmentEnvSchema>;

export function readEnrichmentEnv(env: NodeJS.ProcessEnv = process.env): EnrichmentEnv {
  return parseEnvironment(enrichmentEnvSchema, env, 'enrichment environment');
}
