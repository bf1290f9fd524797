import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { type EventBridgeClient, PutEventsCommand, type PutEventsRequestEntry } from '@aws-sdk/client-eventbridge';
import { DeleteObjectCommand, GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  describeIssues,
  ENRICHMENT_EVENT_SOURCE,
  type EnrichedRecord,
  type EnrichmentErrorRecord,
  enrichedKeyForTranscript,
  enrichedRecordSchema,
  enrichmentErrorKeyForTranscript,
  INTAKE_ENRICHED_DETAIL_TYPE,
  type IntakeEnrichedDetail,
  intakeEnrichedDetailSchema,
  parseTranscriptKey,
  S3_PREFIXES,
  SCHEMA_VERSION,
  type Transcript,
  transcriptKey,
  transcriptSchema,
} from '@voice-intake/contracts';
import { requestInsights } from './insights';
import type { BackoffOptions } from './retry';

export interface TranscriptObject {
  readonly bucket: string;
  readonly key: string;
  /** The ETag of the version the event announced: the read is pinned to it (`If-Match`). */
  readonly etag: string;
  /** From the event; checked before the object is read. */
  readonly size?: number;
}

/** The outcome of an event whose object version was replaced before it was read: the newer version's event enriches. */
export const SUPERSEDED = 'superseded by a newer version of the transcript';

export type EnrichmentOutcome =
  | { status: 'enriched'; enrichedKey: string; callId: string; modelAttempts: number }
  | { status: 'rejected'; errorKey: string; reason: EnrichmentErrorRecord['reason'] }
  | { status: 'ignored'; reason: string };

export interface EnricherDeps {
  readonly s3: S3Client;
  readonly bedrock: BedrockRuntimeClient;
  readonly eventBridge: EventBridgeClient;
  readonly modelId: string;
  readonly eventBusName: string;
  readonly maxTranscriptBytes: number;
  readonly backoff: BackoffOptions;
  readonly now?: () => Date;
  readonly log?: (level: 'info' | 'warn' | 'error', message: string, fields: Record<string, unknown>) => void;
}

/** A bad input, not a bad moment: recorded once, never retried. */
class RejectedTranscript extends Error {
  constructor(
    readonly reason: EnrichmentErrorRecord['reason'],
    detail: string,
  ) {
    super(detail);
  }
}

/** A read pinned to an ETag that is no longer the object's: S3 answers 412 PreconditionFailed. */
function isPreconditionFailed(error: unknown): boolean {
  const failure = error as { name?: string; $metadata?: { httpStatusCode?: number } } | undefined;
  return failure?.name === 'PreconditionFailed' || failure?.$metadata?.httpStatusCode === 412;
}

/** `If-Match` takes the quoted form S3 returns as ETag; EventBridge's S3 events carry it unquoted. */
function quotedEtag(etag: string): string {
  return etag.startsWith('"') ? etag : `"${etag}"`;
}

/** EventBridge refuses a PutEvents entry larger than 256 KB (Source, DetailType, Detail and Resources, UTF-8). */
export const EVENT_ENTRY_MAX_BYTES = 256 * 1024;

/**
 * The IntakeEnriched entry for a detail, or why it cannot be sent: the detail must fit its contract and the entry
 * EventBridge's size limit (the problem names the field, for size the largest one). Checked before anything is
 * written, so a detail that could never be published leaves no record behind and is not retried.
 */
export function intakeEnrichedEntry(
  detail: IntakeEnrichedDetail,
  eventBusName: string,
  maxBytes = EVENT_ENTRY_MAX_BYTES,
): { ok: true; entry: PutEventsRequestEntry } | { ok: false; problem: string } {
  const parsed = intakeEnrichedDetailSchema.safeParse(detail);
  if (!parsed.success) {
    return { ok: false, problem: `IntakeEnriched detail: ${describeIssues(parsed.error.issues.slice(0, 10))}` };
  }
  const entry = {
    EventBusName: eventBusName,
    Source: ENRICHMENT_EVENT_SOURCE,
    DetailType: INTAKE_ENRICHED_DETAIL_TYPE,
    Resources: [],
    Detail: JSON.stringify(parsed.data),
  } satisfies PutEventsRequestEntry;
  const bytes = [entry.Source, entry.DetailType, entry.Detail].reduce((sum, part) => sum + Buffer.byteLength(part), 0);
  if (bytes > maxBytes) {
    const [largest] = Object.entries(parsed.data).sort(
      ([, a], [, b]) => Buffer.byteLength(JSON.stringify(b)) - Buffer.byteLength(JSON.stringify(a)),
    );
    return {
      ok: false,
      problem: `IntakeEnriched detail: ${largest[0]}: the event entry is ${bytes} bytes, over the ${maxBytes}-byte limit`,
    };
  }
  return { ok: true, entry };
}

/**
 * Why a body is not JSON, without what it says: the parser's message quotes the text around the error (a caller's
 * words, possibly personal data), so only the position it names is kept, else the body's size.
 */
function notJson(error: unknown, body: string): string {
  const position = /\bat position (\d+)\b/.exec(error instanceof Error ? error.message : '')?.[1];
  return position === undefined
    ? `not JSON (SyntaxError; ${Buffer.byteLength(body)} bytes)`
    : `not JSON (SyntaxError at position ${position})`;
}

/** Which of the transcript's callId and startedAt disagree with the call id and date its key names. */
function keyMismatch(transcript: Transcript, named: { callId: string; day: Date }): string {
  const problems: string[] = [];
  if (transcript.callId !== named.callId) {
    problems.push(`callId: ${transcript.callId} is not the key's call id ${named.callId}`);
  }
  const keyDay = named.day.toISOString().slice(0, 10);
  const startedDay = new Date(transcript.startedAt).toISOString().slice(0, 10);
  if (startedDay !== keyDay) {
    problems.push(`startedAt: ${transcript.startedAt} is not on the key's date ${keyDay} (UTC)`);
  }
  return problems.join('; ') || `callId, startedAt: do not name the key ${transcriptKey(named.callId, named.day)}`;
}

/** Turns one finished call's transcript into an enriched record and an IntakeEnriched event. */
export class Enricher {
  constructor(private readonly deps: EnricherDeps) {}

  private now(): Date {
    return this.deps.now?.() ?? new Date();
  }

  async enrich(object: TranscriptObject): Promise<EnrichmentOutcome> {
    if (!object.key.startsWith(S3_PREFIXES.transcripts)) {
      return { status: 'ignored', reason: `not under ${S3_PREFIXES.transcripts}` };
    }
    try {
      const transcript = await this.readTranscript(object);
      return await this.enrichTranscript(object, transcript);
    } catch (error) {
      if (isPreconditionFailed(error)) {
        // The object was replaced after this event: enriching what is there now would enrich the newer version
        // twice (here and under its own event), so this event has nothing left to do.
        this.deps.log?.('warn', 'transcript replaced before it was read; its newer version is enriched on its own', {
          transcriptKey: object.key,
          etag: object.etag,
        });
        return { status: 'ignored', reason: SUPERSEDED };
      }
      if (!(error instanceof RejectedTranscript)) throw error;
      return this.reject(object, error.reason, error.message);
    }
  }

  private async readTranscript(object: TranscriptObject): Promise<Transcript> {
    // Only the key the agent writes: the records are filed under the key's call id and date, never another's.
    const named = parseTranscriptKey(object.key);
    if (!named) {
      throw new RejectedTranscript(
        'transcript_malformed',
        `key: ${object.key} is not a transcript key (transcripts/YYYY/MM/DD/<callId>.json)`,
      );
    }
    const limit = this.deps.maxTranscriptBytes;
    if (object.size !== undefined && object.size > limit) {
      throw new RejectedTranscript('transcript_too_large', `${object.size} bytes exceeds the ${limit}-byte limit`);
    }
    const response = await this.deps.s3.send(
      new GetObjectCommand({ Bucket: object.bucket, Key: object.key, IfMatch: quotedEtag(object.etag) }),
    );
    if (response.ContentLength !== undefined && response.ContentLength > limit) {
      throw new RejectedTranscript(
        'transcript_too_large',
        `${response.ContentLength} bytes exceeds the ${limit}-byte limit`,
      );
    }
    const body = (await response.Body?.transformToString('utf-8')) ?? '';
    let json: unknown;
    try {
      json = JSON.parse(body);
    } catch (error) {
      throw new RejectedTranscript('transcript_malformed', notJson(error, body));
    }
    const parsed = transcriptSchema.safeParse(json);
    if (!parsed.success)
      throw new RejectedTranscript('transcript_malformed', describeIssues(parsed.error.issues.slice(0, 10)));
    const transcript = parsed.data;
    if (transcriptKey(transcript.callId, new Date(transcript.startedAt)) !== object.key) {
      throw new RejectedTranscript('transcript_malformed', keyMismatch(transcript, named));
    }
    return transcript;
  }

  private async enrichTranscript(object: TranscriptObject, transcript: Transcript): Promise<EnrichmentOutcome> {
    const result = await requestInsights(this.deps.bedrock, this.deps.modelId, transcript, this.deps.backoff);
    if (!result.ok) throw new RejectedTranscript(result.reason, result.detail);

    const enrichedKey = enrichedKeyForTranscript(object.key);
    const record = enrichedRecordSchema.safeParse({
      schemaVersion: SCHEMA_VERSION,
      callId: transcript.callId,
      callerNumber: transcript.callerNumber,
      transcriptKey: object.key,
      enrichedAt: this.now().toISOString(),
      modelId: this.deps.modelId,
      modelAttempts: result.attempts,
      caseId: transcript.caseId,
      intakeType: transcript.intakeType,
      insights: result.insights,
    } satisfies EnrichedRecord);
    if (!record.success) {
      throw new RejectedTranscript(
        'record_invalid',
        `enriched record: ${describeIssues(record.error.issues.slice(0, 10))}`,
      );
    }
    const event = intakeEnrichedEntry(
      {
        schemaVersion: SCHEMA_VERSION,
        callId: transcript.callId,
        bucket: object.bucket,
        enrichedKey,
        transcriptKey: object.key,
        callerNumber: transcript.callerNumber,
        intent: result.insights.intent,
        urgency: result.insights.urgency,
        sentiment: result.insights.sentiment,
        caseId: transcript.caseId,
        intakeType: transcript.intakeType,
      },
      this.deps.eventBusName,
    );
    if (!event.ok) throw new RejectedTranscript('record_invalid', event.problem);

    await this.putJson(object.bucket, enrichedKey, record.data);
    // An earlier version of this transcript may have left an error record: this enrichment supersedes it, and both
    // side by side would leave a reader to guess which is current. Removed before publishing, so a failed removal
    // is retried with the rest and no event goes out while the stale record is still there.
    await this.deps.s3.send(
      new DeleteObjectCommand({ Bucket: object.bucket, Key: enrichmentErrorKeyForTranscript(object.key) }),
    );
    const published = await this.deps.eventBridge.send(new PutEventsCommand({ Entries: [event.entry] }));
    if ((published.FailedEntryCount ?? 0) > 0) {
      const entry = published.Entries?.[0];
      // Retryable: the invocation fails, idempotency releases the key, the redelivery publishes again.
      throw new Error(
        `PutEvents rejected the IntakeEnriched event: ${entry?.ErrorCode ?? 'unknown'} ${entry?.ErrorMessage ?? ''}`.trim(),
      );
    }
    this.deps.log?.('info', 'transcript enriched', {
      callId: transcript.callId,
      enrichedKey,
      modelAttempts: result.attempts,
    });
    return { status: 'enriched', enrichedKey, callId: transcript.callId, modelAttempts: result.attempts };
  }

  private async reject(
    object: TranscriptObject,
    reason: EnrichmentErrorRecord['reason'],
    detail: string,
  ): Promise<EnrichmentOutcome> {
    const errorKey = enrichmentErrorKeyForTranscript(object.key);
    const record: EnrichmentErrorRecord = {
      schemaVersion: SCHEMA_VERSION,
      transcriptKey: object.key,
      failedAt: this.now().toISOString(),
      reason,
      detail: detail.slice(0, 4_000),
    };
    await this.putJson(object.bucket, errorKey, record);
    this.deps.log?.('error', 'transcript rejected', {
      transcriptKey: object.key,
      errorKey,
      reason,
      detail: record.detail,
    });
    return { status: 'rejected', errorKey, reason };
  }

  private async putJson(bucket: string, key: string, value: unknown): Promise<void> {
    await this.deps.s3.send(
      new PutObjectCommand({ Bucket: bucket, Key: key, Body: JSON.stringify(value), ContentType: 'application/json' }),
    );
  }
}
