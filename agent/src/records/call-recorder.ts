import { GetObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  AuditChainForkError,
  type AuditKind,
  type AuditRecord,
  type AuditSealKey,
  type AuditTrailPosition,
  AuditTrailWriter,
  type CallEndReason,
  isNoSuchKey,
  isRefusedAsExisting,
  MAX_TRANSCRIPT_TURNS,
  MAX_TURN_TEXT_CHARS,
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
/** A turn's text cut to what a transcript turn holds, ending with a marker naming how much was cut. */
export function fitTurnText(text: string): string {
  if (text.length <= MAX_TURN_TEXT_CHARS) return text;
  const marker = (cut: number) => ` […${cut} characters not recorded]`;
  let keep = MAX_TURN_TEXT_CHARS - marker(text.length).length;
  // Never split a surrogate pair.
  if (/[\uD800-\uDBFF]/.test(text[keep - 1] ?? '')) keep -= 1;
  return text.slice(0, keep) + marker(text.length - keep);
}

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
  /** What the server stated in a result the agent could not read (then the outcome is `failed`). */
  statedOutcome?: ToolCallOutcome;
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
   * Runs before each flush writes anything, once the flush's audit segments and transcript part are sealed and numbered
   * (so `position` already counts them: a position saved here lets a successor go on after them); when it throws, the
   * flush writes nothing and its records stay pending (e.g. a check that the call is still this worker's).
   */
  beforeWrite?: () => Promise<void>;
  /**
   * The audit chain's next segment or the next transcript part was stored by another writer (a worker that took the
   * call over): nothing was replaced.
   */
  onForked?: (error: AuditChainForkError | TranscriptPartForkError) => void;
  now?: () => Date;
}

/** Turns numbered as one transcript part, waiting to be stored. */
interface SealedTranscriptPart {
  part: number;
  turns: TranscriptTurn[];
  /** A put was made and failed: S3 refusing the next one as existing means that one landed. */
  tried: boolean;
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
  /** Transcript parts numbered (counted in `position`) and not stored yet, in order; a failed one is tried unchanged. */
  private readonly sealedParts: SealedTranscriptPart[] = [];

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

  /**
   * Records one turn: masked first (with redaction), then cut to `MAX_TURN_TEXT_CHARS` with a marker saying how much was
   * left out (cutting first could leave the start of a number too short to be masked).
   */
  addTurn(input: Omit<TranscriptTurnInput, 'seq' | 'redacted'>): TranscriptTurn {
    const redact = this.options.redact;
    const turn = transcriptTurnSchema.parse({
      ...input,
      seq: this.nextTurnSeq,
      text: fitTurnText(redact ? redact(input.text) : input.text),
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
      ...(call.statedOutcome === undefined ? {} : { statedOutcome: call.statedOutcome }),
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
    this.sealTurns();
    await this.options.beforeWrite?.();
    if (this.abandoned) return;
    // Their failures are their own (a part that could not be stored is named at its stop): never the transcript's.
    const others = Promise.all(this.flushTasks.map((task) => task().catch(() => undefined)));
    await this.storeSealedParts();
    await this.trail.flush().catch((error: unknown) => {
      if (error instanceof AuditChainForkError) this.options.onForked?.(error);
      throw error;
    });
    await others;
    for (const task of this.afterFlushTasks) await task().catch(() => undefined);
  }

  /**
   * Numbers the pending turns as the next transcript part (turns added from here on go in a later one). Numbered before
   * `beforeWrite`, so the position saved there counts the part: a successor never gives its number again, and a part
   * numbered but never stored (the worker died between the save and the write) is named missing, not overwritten.
   */
  private sealTurns(): void {
    if (this.pendingTurns.length === 0) return;
    this.sealedParts.push({ part: this.nextPart, turns: this.pendingTurns, tried: false });
    this.nextPart += 1;
    this.pendingTurns = [];
  }

  /** Stores the sealed parts in order; one whose put fails stays first in line, unchanged, for the next flush. */
  private async storeSealedParts(): Promise<void> {
    // Renumbered once per flush at most (an earlier worker's late part held the number): then it waits for a save.
    let renumbered = false;
    while (this.sealedParts.length > 0) {
      const sealed = this.sealedParts[0]!;
      if (await this.putPart(sealed)) {
        this.sealedParts.shift();
      } else if (renumbered) {
        return;
      } else {
        renumbered = true;
      }
    }
  }

  /**
   * Stores one transcript part, once (`If-None-Match: *`). A part whose put failed is tried again unchanged, so S3
   * refusing the retry as existing means its earlier try landed; refusing a first try means another worker of the call
   * stored a part under this number: `TranscriptPartForkError` (nothing replaced) when it holds the call now, or, when
   * it held the call before this worker (it stored the part after the position it saved, which happens only when that
   * save could not be made), the part is kept and this one takes the next number: false.
   */
  private async putPart(sealed: SealedTranscriptPart): Promise<boolean> {
    const { callId } = this.options.call;
    const key = transcriptPartKey(callId, sealed.part);
    const body = JSON.stringify(
      transcriptPartSchema.parse({ schemaVersion: SCHEMA_VERSION, callId, part: sealed.part, turns: sealed.turns }),
    );
    try {
      await this.options.s3.send(
        new PutObjectCommand({
          Bucket: this.options.transcriptsBucket,
          Key: key,
          Body: body,
          ContentType: 'application/json',
          IfNoneMatch: '*',
        }),
      );
    } catch (error) {
      if (!isRefusedAsExisting(error)) {
        sealed.tried = true;
        throw error;
      }
      if (!sealed.tried) {
        // The next number, saved with the claim check (before it is written) and kept if the check passes.
        const refusedNumber = sealed.part;
        sealed.part = this.nextPart;
        this.nextPart += 1;
        const earlier = await this.earlierWriters().catch((error: unknown) => {
          sealed.part = refusedNumber;
          this.nextPart -= 1;
          throw error;
        });
        if (earlier) {
          // Its turns share sequence numbers with this worker's, so the final transcript leaves them out; the chain
          // names the part.
          this.audit('error', 'earlier_transcript_part_kept', {
            part: key,
            reason: 'stored by an earlier worker of the call after the position it saved',
          });
          return false;
        }
        sealed.part = refusedNumber;
        this.nextPart -= 1;
        const forked = new TranscriptPartForkError(key);
        this.options.onForked?.(forked);
        throw forked;
      }
    }
    return true;
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

  /**
   * Turns written by workers that held the call before this one, read back from their transcript parts, in turn
   * order; and the parts those workers numbered that are not there (never stored) or could not be read.
   */
  private async earlierTurns(): Promise<{ turns: TranscriptTurn[]; missing: string[]; unreadable: string[] }> {
    const turns: TranscriptTurn[] = [];
    const missing: string[] = [];
    const unreadable: string[] = [];
    for (let part = 0; part < this.firstPartOfThisWorker; part += 1) {
      const key = transcriptPartKey(this.options.call.callId, part);
      try {
        const object = await this.options.s3.send(
          new GetObjectCommand({ Bucket: this.options.transcriptsBucket, Key: key }),
        );
        const stored = transcriptPartSchema.parse(JSON.parse((await object.Body?.transformToString()) ?? 'null'));
        turns.push(...stored.turns);
      } catch (error) {
        (isNoSuchKey(error) ? missing : unreadable).push(key);
      }
    }
    // A part renumbered after an earlier worker's late part holds turns older than the part before it.
    return { turns: turns.sort((a, b) => a.seq - b.seq), missing, unreadable };
  }

  /** Flushes everything and writes the final transcript (its creation starts enrichment). */
  async finish(
    endReason: CallEndReason,
    extra: { intakeType?: string; caseId?: string; recording?: TranscriptRecording } = {},
  ): Promise<Transcript> {
    if (this.abandoned)
      throw new Error(`call ${this.options.call.callId} was abandoned: it has no final transcript here`);
    if (this.timer) clearInterval(this.timer);
    // Read before the chain closes, so what is missing from them is named in it.
    const earlier = await this.earlierTurns();
    for (const [subject, parts, reason] of [
      ['earlier_transcript_part_missing', earlier.missing, 'numbered by an earlier worker of the call, never stored'],
      ['earlier_transcript_part_unreadable', earlier.unreadable, 'could not be read back at the end of the call'],
    ] as const) {
      if (parts.length > 0) this.audit('error', subject, { parts, reason });
    }
    // A call with more turns than a final transcript holds still gets one (it starts enrichment): the first turns,
    // and how many more its parts hold. Failing the schema would leave the call with no final transcript at all.
    const turns = [...earlier.turns, ...this.turns];
    const omittedTurns = Math.max(0, turns.length - MAX_TRANSCRIPT_TURNS);
    if (omittedTurns > 0) {
      this.audit('error', 'transcript_turns_omitted', {
        omittedTurns,
        keptTurns: MAX_TRANSCRIPT_TURNS,
        reason: 'more turns than a final transcript holds; every turn is in the transcript parts',
      });
    }
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
      turns: turns.slice(0, MAX_TRANSCRIPT_TURNS),
      ...(omittedTurns > 0 ? { omittedTurns } : {}),
      ...(earlier.missing.length + earlier.unreadable.length > 0
        ? { missingParts: [...earlier.missing, ...earlier.unreadable] }
        : {}),
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
