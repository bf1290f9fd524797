import { IdempotencyConfig, makeIdempotent } from '@aws-lambda-powertools/idempotency';
import { DynamoDBPersistenceLayer } from '@aws-lambda-powertools/idempotency/dynamodb';
import { Logger } from '@aws-lambda-powertools/logger';
import { Metrics, MetricUnit } from '@aws-lambda-powertools/metrics';
import { Tracer } from '@aws-lambda-powertools/tracer';
import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { EventBridgeClient } from '@aws-sdk/client-eventbridge';
import { S3Client } from '@aws-sdk/client-s3';
import type { Context } from 'aws-lambda';
import { z } from 'zod';
import { readEnrichmentEnv } from './config';
import { Enricher, type EnrichmentOutcome } from './enrich';

const SERVICE = 'voice-intake-enrichment';
const env = readEnrichmentEnv();

const logger = new Logger({ serviceName: SERVICE });
// Namespace from POWERTOOLS_METRICS_NAMESPACE: the deployment's own (set by the enrichment stack).
const metrics = new Metrics({ serviceName: SERVICE });
const tracer = new Tracer({ serviceName: SERVICE });

// The SDK's own retries stay off for Bedrock: withBackoff owns them, so attempts are counted once.
const enricher = new Enricher({
  s3: tracer.captureAWSv3Client(new S3Client({})),
  bedrock: tracer.captureAWSv3Client(new BedrockRuntimeClient({ maxAttempts: 1 })),
  eventBridge: tracer.captureAWSv3Client(new EventBridgeClient({})),
  modelId: env.MODEL_ID,
  eventBusName: env.EVENT_BUS_NAME,
  maxTranscriptBytes: env.MAX_TRANSCRIPT_BYTES,
  backoff: {
    maxAttempts: env.BEDROCK_MAX_ATTEMPTS,
    baseDelayMs: env.BEDROCK_RETRY_BASE_MS,
    onRetry: (attempt, error, delayMs) => {
      metrics.addMetric('BedrockThrottled', MetricUnit.Count, 1);
      logger.warn('Bedrock busy, backing off', { attempt, delayMs, error: (error as Error).name });
    },
  },
  log: (level, message, fields) => logger[level](message, fields),
});

/** The part of EventBridge's S3 "Object Created" event this function relies on. */
const objectCreatedEventSchema = z.object({
  source: z.literal('aws.s3'),
  'detail-type': z.literal('Object Created'),
  detail: z.object({
    bucket: z.object({ name: z.string().min(1) }),
    object: z.object({
      key: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      // Required: it pins the read to the version this event announced, and is part of the idempotency key.
      etag: z.string().min(1),
    }),
  }),
});

const persistenceStore = new DynamoDBPersistenceLayer({ tableName: env.IDEMPOTENCY_TABLE_NAME });
const idempotencyConfig = new IdempotencyConfig({
  // One enrichment per object version: a redelivered event (same bucket, key, ETag) returns the stored outcome.
  eventKeyJmesPath: 'detail.[bucket.name, object.key, object.etag]',
  expiresAfterSeconds: env.IDEMPOTENCY_TTL_SECONDS,
  throwOnNoIdempotencyKey: true,
});

type ObjectCreatedEvent = z.infer<typeof objectCreatedEventSchema>;

// Takes the context so makeIdempotent sees it: the in-progress lock then lasts only the invocation's remaining time.
async function enrichObject(event: ObjectCreatedEvent, _context: Context): Promise<EnrichmentOutcome> {
  const { bucket, object } = event.detail;
  try {
    const outcome = await enricher.enrich({
      bucket: bucket.name,
      key: object.key,
      etag: object.etag,
      size: object.size,
    });
    metrics.addMetric(
      outcome.status === 'enriched'
        ? 'TranscriptsEnriched'
        : outcome.status === 'rejected'
          ? 'TranscriptsRejected'
          : 'EventsIgnored',
      MetricUnit.Count,
      1,
    );
    return outcome;
  } catch (error) {
    metrics.addMetric('EnrichmentFailures', MetricUnit.Count, 1);
    logger.error('enrichment failed; the invocation will be retried or dead-lettered', {
      error: error as Error,
      key: object.key,
    });
    throw error;
  } finally {
    metrics.publishStoredMetrics();
  }
}

const enrichObjectOnce = makeIdempotent(enrichObject, { persistenceStore, config: idempotencyConfig });

/** An event refused before idempotency still counts as ignored. */
function ignored(outcome: EnrichmentOutcome & { status: 'ignored' }): EnrichmentOutcome {
  metrics.addMetric('EventsIgnored', MetricUnit.Count, 1);
  metrics.publishStoredMetrics();
  return outcome;
}

export async function handler(event: unknown, context: Context): Promise<EnrichmentOutcome> {
  logger.addContext(context);
  // Checked before idempotency: an event without bucket and key has no idempotency key, and retrying cannot fix it.
  const parsed = objectCreatedEventSchema.safeParse(event);
  if (!parsed.success) {
    logger.error('unexpected event shape', { issues: parsed.error.issues.slice(0, 5) });
    return ignored({ status: 'ignored', reason: 'not an S3 Object Created event' });
  }
  // Only the transcripts bucket: its records are written beside the transcript, so another bucket's object is not ours
  // to read or write next to, whatever routed its event here.
  if (parsed.data.detail.bucket.name !== env.TRANSCRIPTS_BUCKET_NAME) {
    logger.warn('event for another bucket ignored', { bucket: parsed.data.detail.bucket.name });
    return ignored({ status: 'ignored', reason: 'not an object of the transcripts bucket' });
  }
  return enrichObjectOnce(parsed.data, context);
}
