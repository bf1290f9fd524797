import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  AuditChainForkError,
  type AuditKind,
  type AuditRecord,
  type AuditSealKey,
  type AuditTrailPosition,
  AuditTrailWriter,
  type CallEndReason,
  isRefusedAsExisting,
  putAuditSegment,
  SCHEMA_VERSION,
  type ToolCallOutcome,
  type Transcript,
  type TranscriptRecording,
  type TranscriptTurn,
  type TranscriptTurnInput,
  transcriptKey,
  transcriptPartKey,
  transcriptPartSchema,
  transcriptSchema,
  transcriptTurnSchema,
} from '@voice-intake/contracts';
import { redactDeep } from './redact';

export interface RecorderPosition {
  nextTurnSeq: number;
  nextTranscriptPart: number;
  audit: AuditTrailPosition;
}

/** One tool call as the agent made it: what the model asked for and how it ended. */
export interface RecordedToolCall {
  name: string;
  /** The arguments as the model gave them (any JSON: a model can send null or a list). */
  arguments: unknown;
  /** Argument names the tool's input schema does not have (the server drops them). */
  strippedArguments?: string[];
  outcome: ToolCallOutcome;
  isError: boolean;
  resultText?: string;
  /** A JSON-RPC error code, when the server refused the request itself. */
  errorCode?: number;
  durationMs: number;
}

export interface CallRecorderOptions {
  s3: S3Client;
  transcriptsBucket: string;
  auditBucket: string;
  /** Seals each flushed audit segment (KMS GenerateMac in AWS, an environment secret locally). */
  sealKey: AuditSealKey;
  call: { callId: string; roomName: string; callerNumber: string; calledNumber?: string; startedAt: Date };
  /** Applied to turn text and every string of an audit payload before it is written. */
  redact?: (text: string) => string;
  /** How often pending records go to S3 while the call runs: the most a killed worker can lose. */
  flushIntervalMs?: number;
  /** Where a previous worker left off (from the session state), when this one takes the call over. */
  resume?: RecorderPosition;
  /**
   * Runs before each flush writes anything, once the flush's audit segments are sealed (so `position` already counts
   * them: a position saved here lets a successor go on after them); when it throws, the flush writes nothing and its
   * records stay pending (e.g. a check that the call is still this worker's).
   */
  beforeWrite?: () => Promise<void>;
  /**
   * The audit chain's next segment or the next transcript part was stored by another writer (a worker that took the
   * call over): nothing was replaced.
   */
  onForked?: (error: AuditChainForkError | TranscriptPartForkError) => void;
  now?: () => Date;
}

/** A transcript part number of this call holds a part another writer stored (a worker that took the call over). */
export class TranscriptPartForkError extends Error {
  override readonly name = 'TranscriptPartForkError';

  constructor(readonly objectKey: string) {
    super(`transcript part ${objectKey} was stored by another writer of the call`);
  }
}

/**
 * The call's transcript and compliance log. Turns and audit records (each sealed into the call's hash chain) are
 * queued and flushed to S3 every few seconds — transcript parts and sealed audit segments, each a new object, never
 * an overwrite (the audit bucket has Object Lock) — and, at the end, the closing seal and the final transcript,
 * which triggers enrichment.
 */
export class CallRecorder {
  private readonly trail: AuditTrailWriter;
  private pendingTurns: TranscriptTurn[] = [];
  private readonly turns: TranscriptTurn[] = [];
  private nextTurnSeq: number;
  private nextPart: number;
  private readonly firstPartOfThisWorker: number;
  private timer?: NodeJS.Timeout;
  private flushing: Promise<void> = Promise.resolve();
  private readonly flushTasks: (() => Promise<void>)[] = [];
  private readonly afterFlushTasks: (() => Promise<void>)[] = [];
  private abandoned = false;
  /** A transcript part whose put failed: tried again as it was before any newer turns. */
  private retryPart?: { key: string; body: string; turns: number };

  constructor(private readonly options: CallRecorderOptions) {
    const resume = options.resume;
    this.trail = new AuditTrailWriter({
      actor: 'agent',
      callId: options.call.callId,
      key: options.sealKey,
      resume: resume?.audit,
      now: () => this.now(),
      put: (objectKey, body, putOptions) =>
        putAuditSegment(
          (input) => options.s3.send(new PutObjectCommand(input)),
          options.auditBucket,
          objectKey,
          body,
          putOptions,
        ),
      replaceExisting: () => this.earlierWriters(),
    });
    this.nextTurnSeq = resume?.nextTurnSeq ?? 0;
    this.nextPart = resume?.nextTranscriptPart ?? 0;
    this.firstPartOfThisWorker = this.nextPart;
  }

  private now(): Date {
    return this.options.now?.() ?? new Date();
  }

  /** Starts the periodic flush. */
  start(): void {
    this.timer = setInterval(() => void this.flush().catch(() => undefined), this.options.flushIntervalMs ?? 2_000);
    this.timer.unref();
  }

  addTurn(input: Omit<TranscriptTurnInput, 'seq' | 'redacted'>): TranscriptTurn {
    const redact = this.options.redact;
    const turn = transcriptTurnSchema.parse({
      ...input,
      seq: this.nextTurnSeq,
      text: redact ? redact(input.text) : input.text,
      redacted: redact !== undefined,
    });
    this.nextTurnSeq += 1;
    this.turns.push(turn);
    this.pendingTurns.push(turn);
    return turn;
  }

  audit(kind: AuditKind, subject: string | undefined, payload: unknown): AuditRecord {
    const redact = this.options.redact;
    return this.trail.append({
      at: this.now().toISOString(),
      kind,
      subject,
      payload: JSON.parse(JSON.stringify(redact ? redactDeep(payload ?? null, redact) : (payload ?? null))),
      redacted: redact !== undefined,
    });
  }

  /** A tool call and its outcome, in the same shape as the MCP server records them. */
  toolCall(call: RecordedToolCall): void {
    this.audit('tool_call', call.name, {
      arguments: call.arguments ?? null,
      ...(call.strippedArguments?.length ? { strippedArguments: call.strippedArguments } : {}),
    });
    this.audit('tool_result', call.name, {
      outcome: call.outcome,
      isError: call.isError,
      text: call.resultText ?? null,
      ...(call.errorCode === undefined ? {} : { code: call.errorCode }),
      durationMs: Math.round(call.durationMs),
    });
  }

  /**
   * Where a worker taking the call over continues: the next turn number, the next transcript part, and the audit
   * chain's head (records not flushed yet included: if this worker dies before storing them, the verifier names them
   * missing rather than the chain hiding their loss).
   */
  get position(): RecorderPosition {
    return { nextTurnSeq: this.nextTurnSeq, nextTranscriptPart: this.nextPart, audit: this.trail.position };
  }

  /** Runs `task` with every flush (the call's audio parts go out on the transcript's timer). */
  alsoFlush(task: () => Promise<void>): void {
    this.flushTasks.push(task);
  }

  /** Runs `task` after every flush, once what it wrote is stored (e.g. to save the position). */
  afterFlush(task: () => Promise<void>): void {
    this.afterFlushTasks.push(task);
  }

  /** Writes what is pending; on failure the records stay pending for the next flush. Flushes never overlap. */
  flush(): Promise<void> {
    this.flushing = this.flushing.catch(() => undefined).then(() => this.flushNow());
    return this.flushing;
  }

  /**
   * Another worker holds the call now and continues its records from the position it read: this one writes nothing
   * more (what it has not stored is named missing by the chain's verifier, as a crash's loss would be).
   */
  abandon(): void {
    this.abandoned = true;
    if (this.timer) clearInterval(this.timer);
  }

  private async flushNow(): Promise<void> {
    if (this.abandoned) return;
    await this.trail.seal();
    await this.options.beforeWrite?.();
    if (this.abandoned) return;
    const { call } = this.options;
    // Their failures are their own (a part that could not be stored is named at its stop): never the transcript's.
    const others = Promise.all(this.flushTasks.map((task) => task().catch(() => undefined)));
    if (this.retryPart) await this.putPart(this.retryPart, true);
    // Twice at most: once more when the number was an earlier worker's late part.
    for (let tries = 0; tries < 2 && this.pendingTurns.length > 0; tries += 1) {
      // A copy: turns added while the PUT is in flight stay pending for the next flush (the same array would
      // grow under us, and slicing its new length off after the PUT would drop them unwritten).
      const turns = [...this.pendingTurns];
      const part = transcriptPartSchema.parse({
        schemaVersion: SCHEMA_VERSION,
        callId: call.callId,
        part: this.nextPart,
        turns,
      });
      const key = transcriptPartKey(call.callId, this.nextPart);
      await this.putPart({ key, body: JSON.stringify(part), turns: turns.length }, false);
    }
    await this.trail.flush().catch((error: unknown) => {
      if (error instanceof AuditChainForkError) this.options.onForked?.(error);
      throw error;
    });
    await others;
    for (const task of this.afterFlushTasks) await task().catch(() => undefined);
  }

  /**
   * Stores one transcript part, once (`If-None-Match: *`). A part whose put failed is tried again unchanged, so S3
   * refusing the retry as existing means its earlier try landed; refusing a first try means another worker of the call
   * stored a part under this number (`TranscriptPartForkError`: nothing was replaced).
   */
  private async putPart(part: { key: string; body: string; turns: number }, triedBefore: boolean): Promise<void> {
    try {
      await this.options.s3.send(
        new PutObjectCommand({
          Bucket: this.options.transcriptsBucket,
          Key: part.key,
          Body: part.body,
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      );
    } catch (error) {
      if (!isRefusedAsExisting(error)) {
        this.retryPart = part;
        throw error;
      }
      if (!triedBefore) {
        if (await this.earlierWriters()) {
          // An earlier worker's last part, stored after the position it saved: kept as it is (its turns share numbers
          // with this worker's, so the final transcript leaves them out; the chain names the part), and these turns
          // go under the next number.
          this.audit('error', 'earlier_transcript_part_kept', {
            part: part.key,
            reason: 'stored by an earlier worker of the call after the position it saved',
          });
          this.nextPart += 1;
          this.retryPart = undefined;
          return;
        }
        const forked = new TranscriptPartForkError(part.key);
        this.options.onForked?.(forked);
        throw forked;
      }
    }
    this.retryPart = undefined;
    this.nextPart += 1;
    this.pendingTurns = this.pendingTurns.slice(part.turns);
  }

  /**
   * Whether an object that refused a first write at its key belongs to an earlier worker of the call (one that died
   * after storing it, before saving where it stood) and not to a worker holding the call now: the claim is checked
   * again (`beforeWrite` throws when another worker holds the call). Without a claim to check, no one is earlier.
   */
  private async earlierWriters(): Promise<boolean> {
    if (!this.options.beforeWrite) return false;
    await this.options.beforeWrite();
    return true;
  }

  /** Turns written by workers that held the call before this one, read back from their transcript parts. */
  private async earlierTurns(): Promise<TranscriptTurn[]> {
    const earlier: TranscriptTurn[] = [];
    for (let part = 0; part < this.firstPartOfThisWorker; part += 1) {
      const object = await this.options.s3.send(
        new GetObjectCommand({
          Bucket: this.options.transcriptsBucket,
          Key: transcriptPartKey(this.options.call.callId, part),
        }),
      );
      earlier.push(...transcriptPartSchema.parse(JSON.parse((await object.Body?.transformToString()) ?? '{}')).turns);
    }
    return earlier;
  }

  /** Flushes everything and writes the final transcript (its creation starts enrichment). */
  async finish(
    endReason: CallEndReason,
    extra: { intakeType?: string; caseId?: string; recording?: TranscriptRecording } = {},
  ): Promise<Transcript> {
    if (this.abandoned)
      throw new Error(`call ${this.options.call.callId} was abandoned: it has no final transcript here`);
    if (this.timer) clearInterval(this.timer);
    this.audit('session_end', endReason, { endReason, ...extra });
    await this.flush();
    // The closing seal: the chain ends here with this many records.
    await this.trail.close();
    const { call } = this.options;
    const transcript = transcriptSchema.parse({
      schemaVersion: SCHEMA_VERSION,
      callId: call.callId,
      roomName: call.roomName,
      callerNumber: call.callerNumber,
      calledNumber: call.calledNumber,
      startedAt: call.startedAt.toISOString(),
      endedAt: this.now().toISOString(),
      endReason,
      ...extra,
      turns: [...(await this.earlierTurns()), ...this.turns],
    });
    await this.options.s3.send(
      new PutObjectCommand({
        Bucket: this.options.transcriptsBucket,
        Key: transcriptKey(call.callId, call.startedAt),
        Body: JSON.stringify(transcript),
        ContentType: 'application/json',
      }),
    );
    return transcript;
  }
}
