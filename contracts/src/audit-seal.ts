import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import {
  type AuditActor,
  AuditChain,
  type AuditRecord,
  auditActorSchema,
  auditChainIdSchema,
  auditRecordSchema,
  canonicalJson,
  GENESIS_HASH,
  hashAuditRecord,
  type UnsealedAuditRecord,
} from './audit';
import { callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';
import { auditSegmentKey } from './keys';
import { isRefusedAsExisting } from './s3-errors';

/**
 * A hash chain alone proves nothing against its writer: whoever can write the records can drop the last ones or
 * rewrite one and re-hash everything after it. So every flushed segment ends with a seal: a MAC, made by a key the
 * writer can use but never read (AWS KMS GenerateMac; an operator-provided secret in embedded mode), over the
 * segment's record hashes, its place in the chain and the seal before it. The last seal of a call is `final` and
 * fixes the record count, so a missing tail is told apart from a chain that ended.
 */

/** The only MAC we make and accept: HMAC-SHA-256 (KMS key spec HMAC_256, algorithm HMAC_SHA_256). */
export const AUDIT_SEAL_ALGORITHM = 'HMAC_SHA_256' as const;

/** The `prevSeal` of a chain's first seal. */
export const GENESIS_SEAL = 'genesis';

/** A seal refers to at most this many records (a flush of more is split into several segments). */
export const MAX_RECORDS_PER_SEGMENT = 500;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256');
const base64Mac = z.string().regex(/^[A-Za-z0-9+/]{43}=$/, 'must be a base64 HMAC-SHA-256');

export const auditSealSchema = z.strictObject({
  schemaVersion: z.literal(SCHEMA_VERSION),
  type: z.literal('audit_seal'),
  actor: auditActorSchema,
  callId: callIdSchema,
  chainId: auditChainIdSchema.optional(),
  /** 0-based, no gaps: the n-th segment this chain flushed. */
  segment: z.number().int().nonnegative(),
  /** Seq of the segment's first record (for a final seal without records: the chain's record count). */
  firstSeq: z.number().int().nonnegative(),
  /** Hash of each record of the segment, in order; `recordsDigest` (which the MAC covers) commits to the list. */
  recordHashes: z.array(sha256Hex).max(MAX_RECORDS_PER_SEGMENT),
  recordsDigest: sha256Hex,
  /** Hash of the chain's last record when sealed (the genesis hash for a chain without records). */
  lastHash: sha256Hex,
  /** The MAC of the seal before this one in the chain, or "genesis". */
  prevSeal: z.union([z.literal(GENESIS_SEAL), base64Mac]),
  /** The closing seal: the chain holds exactly firstSeq + recordHashes.length records. */
  final: z.boolean(),
  at: isoTimestampSchema,
  algorithm: z.literal(AUDIT_SEAL_ALGORITHM),
  /** Which key made the MAC (a KMS key ARN, or local:<fingerprint> of an embedded-mode secret). */
  keyId: z.string().min(1).max(2048),
  mac: base64Mac,
});

export type AuditSeal = z.infer<typeof auditSealSchema>;

/** A key that MACs seals. The writer holds a handle to it, never the key material (KMS) or not past start-up. */
export interface AuditSealKey {
  readonly keyId: string;
  mac(message: Uint8Array): Promise<Uint8Array>;
}

/** A key that checks seals (KMS VerifyMac for a verifier role that cannot GenerateMac). */
export interface AuditSealVerifier {
  readonly keyId: string;
  verify(message: Uint8Array, mac: Uint8Array): Promise<boolean>;
}

/** Embedded mode: HMAC-SHA-256 with a secret from the environment (at least 32 characters). */
export class LocalHmacSealKey implements AuditSealKey, AuditSealVerifier {
  readonly keyId: string;

  constructor(private readonly secret: string) {
    if (secret.length < 32) throw new Error('the audit seal secret must be at least 32 characters');
    this.keyId = `local:${createHash('sha256').update(secret).digest('hex').slice(0, 16)}`;
  }

  async mac(message: Uint8Array): Promise<Uint8Array> {
    return createHmac('sha256', this.secret).update(message).digest();
  }

  async verify(message: Uint8Array, mac: Uint8Array): Promise<boolean> {
    const expected = createHmac('sha256', this.secret).update(message).digest();
    return mac.length === expected.length && timingSafeEqual(Buffer.from(mac), expected);
  }
}

export function digestRecordHashes(hashes: readonly string[]): string {
  return createHash('sha256').update(hashes.join('\n')).digest('hex');
}

/** The bytes a seal's MAC covers: every field but the MAC and the hash list (which the digest stands for). */
export function auditSealMessage(seal: Omit<AuditSeal, 'mac'> | AuditSeal): Uint8Array {
  const { mac: _mac, recordHashes: _hashes, ...covered } = seal as AuditSeal;
  return Buffer.from(canonicalJson(covered), 'utf8');
}

/** Where a chain's sealing stands: a worker taking over a call continues from here. */
export interface AuditTrailPosition {
  seq: number;
  prevHash: string;
  /** The next segment's index and the last written seal's MAC (absent: nothing sealed yet). */
  segment?: number;
  prevSeal?: string;
}

export const auditTrailPositionSchema = z.object({
  seq: z.number().int().nonnegative(),
  prevHash: sha256Hex,
  segment: z.number().int().nonnegative().optional(),
  prevSeal: z.union([z.literal(GENESIS_SEAL), base64Mac]).optional(),
});

/**
 * Thrown by a writer's `put` when the key already holds an object and the store refused to overwrite it (S3's
 * conditional write, `If-None-Match: *`, answering 412).
 */
export class AuditSegmentExistsError extends Error {
  override readonly name = 'AuditSegmentExistsError';

  constructor(readonly objectKey: string) {
    super(`audit segment ${objectKey} already exists`);
  }
}

/** The S3 PutObject input of one audit segment (the SDK's field names; contracts do not depend on the SDK). */
export interface AuditSegmentPutInput {
  Bucket: string;
  Key: string;
  Body: string;
  ContentType: 'application/x-ndjson';
  IfNoneMatch?: '*';
}

/**
 * Stores one audit segment in S3 through `send` (a PutObject): written once (`If-None-Match: *`) unless `replace`, so a
 * retry that finds its own landed write, or a segment another writer stored, is refused rather than overwritten
 * (Object Lock would keep both versions); the refusal is thrown as `AuditSegmentExistsError`.
 */
export async function putAuditSegment(
  send: (input: AuditSegmentPutInput) => Promise<unknown>,
  bucket: string,
  objectKey: string,
  body: string,
  { replace = false }: { replace?: boolean } = {},
): Promise<void> {
  try {
    await send({
      Bucket: bucket,
      Key: objectKey,
      Body: body,
      ContentType: 'application/x-ndjson',
      ...(replace ? {} : { IfNoneMatch: '*' }),
    });
  } catch (error) {
    if (isRefusedAsExisting(error)) throw new AuditSegmentExistsError(objectKey);
    throw error;
  }
}

/**
 * A segment key of this chain holds an object this writer never tried to store: another writer is continuing the
 * same chain (e.g. a worker that took the call over). Nothing was written; this writer must stop.
 */
export class AuditChainForkError extends Error {
  override readonly name = 'AuditChainForkError';

  constructor(readonly objectKey: string) {
    super(`audit segment ${objectKey} was written by another writer of the same chain`);
  }
}

export interface AuditTrailWriterOptions {
  actor: AuditActor;
  callId: string;
  chainId?: string;
  key: AuditSealKey;
  /**
   * Stores one segment object (records, then its seal, as JSON lines). A rejection leaves the records pending and the
   * segment is tried again, as it was, on the next flush. A store that refuses overwrites throws
   * `AuditSegmentExistsError`: after a failed try of the same segment that is taken as that try having landed,
   * otherwise `replaceExisting` decides. `replace` asks to store over an existing object.
   */
  put: (objectKey: string, body: string, options?: { replace?: boolean }) => Promise<void>;
  /**
   * A first try refused as existing: true when the object is an earlier writer's that may be replaced (one that held
   * the chain before this writer resumed it and stored a segment after the position it left), false when another
   * writer holds the chain now (`AuditChainForkError`, nothing written). Absent: false.
   */
  replaceExisting?: (objectKey: string) => Promise<boolean>;
  resume?: AuditTrailPosition;
  now?: () => Date;
}

/** A sealed segment on its way to the store; `replace`: over an earlier writer's object at its key. */
interface SealedSegment {
  objectKey: string;
  body: string;
  records: number;
  /** A put of it failed with its outcome unknown: a refusal as existing now means that put landed. */
  tried: boolean;
  replace?: boolean;
}

/**
 * One (actor, call[, chain id]) trail: records are hash-chained as they are appended, sealed into segments by `seal`
 * (or `flush`) and written by `flush`; `close` writes the final seal. Flushes never overlap; a segment whose put failed
 * is written, unchanged, by the next. The position counts sealed segments whether stored yet or not, so a position
 * saved between `seal` and `flush` lets a successor go on after them: a segment lost with its writer is then named
 * missing, never given twice the same index.
 */
export class AuditTrailWriter {
  private readonly chain: AuditChain;
  private pending: AuditRecord[] = [];
  private segment: number;
  private prevSeal: string;
  private sealedHash: string;
  private closed = false;
  private flushing: Promise<void> = Promise.resolve();
  /** Sealed segments not stored yet, in order: the first is tried again as it is (same records, same seal). */
  private readonly sealed: SealedSegment[] = [];
  private sealedFinal = false;

  constructor(private readonly options: AuditTrailWriterOptions) {
    const resume = options.resume;
    this.chain = new AuditChain(resume ? { seq: resume.seq, prevHash: resume.prevHash } : undefined);
    this.segment = resume?.segment ?? 0;
    this.prevSeal = resume?.prevSeal ?? GENESIS_SEAL;
    this.sealedHash = resume?.prevHash ?? GENESIS_HASH;
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Records appended and not stored yet (sealed or not). */
  get pendingCount(): number {
    return this.pending.length + this.sealed.reduce((count, segment) => count + segment.records, 0);
  }

  append(entry: Omit<UnsealedAuditRecord, 'schemaVersion' | 'actor' | 'callId' | 'chainId'>): AuditRecord {
    if (this.closed) throw new Error(`audit trail ${this.options.callId} is closed`);
    const { actor, callId, chainId } = this.options;
    const record = this.chain.seal({ ...entry, schemaVersion: SCHEMA_VERSION, actor, callId, chainId });
    this.pending.push(record);
    return record;
  }

  get position(): Required<AuditTrailPosition> {
    return { ...this.chain.position, segment: this.segment, prevSeal: this.prevSeal };
  }

  /** Seals the pending records into segments without storing them: the position moves past them now. */
  seal(): Promise<void> {
    this.flushing = this.flushing.catch(() => undefined).then(() => this.sealPending(false));
    return this.flushing;
  }

  /** Writes pending records as sealed segments. */
  flush(): Promise<void> {
    this.flushing = this.flushing.catch(() => undefined).then(() => this.flushNow(false));
    return this.flushing;
  }

  /** Writes what is pending and the closing seal; later appends are refused. Safe to call twice. */
  close(): Promise<void> {
    if (this.closed) return this.flushing;
    this.flushing = this.flushing.catch(() => undefined).then(() => this.flushNow(true));
    return this.flushing.then(() => {
      this.closed = true;
    });
  }

  private async flushNow(final: boolean): Promise<void> {
    if (this.closed) return;
    await this.sealPending(final);
    // In order; one that fails stays first and goes again, unchanged, with the next flush: if its earlier try landed
    // after all, the store holds exactly this body, so a refused overwrite can be told from another writer's segment.
    while (this.sealed.length > 0) await this.write(this.sealed[0]);
  }

  private async sealPending(final: boolean): Promise<void> {
    if (this.closed || this.sealedFinal || (this.pending.length === 0 && !final)) return;
    do {
      const records = this.pending.slice(0, MAX_RECORDS_PER_SEGMENT);
      const last = final && records.length === this.pending.length;
      const seal = await this.sealOf(records, last);
      const body = [...records, seal].map((line) => JSON.stringify(line)).join('\n');
      const { actor, callId, chainId } = this.options;
      const objectKey = auditSegmentKey(actor, callId, seal.firstSeq, chainId);
      this.sealed.push({ objectKey, body: `${body}\n`, records: records.length, tried: false });
      this.pending = this.pending.slice(records.length);
      this.segment += 1;
      this.prevSeal = seal.mac;
      this.sealedHash = seal.lastHash;
      if (last) this.sealedFinal = true;
    } while (this.pending.length > 0);
  }

  private async write(segment: SealedSegment): Promise<void> {
    try {
      await this.options.put(segment.objectKey, segment.body, segment.replace ? { replace: true } : undefined);
    } catch (error) {
      if (!(error instanceof AuditSegmentExistsError)) {
        segment.tried = true;
        throw error;
      }
      if (!segment.tried) {
        if (!(await this.options.replaceExisting?.(segment.objectKey)))
          throw new AuditChainForkError(segment.objectKey);
        segment.replace = true;
        return this.write(segment);
      }
      // Refused as existing after a try of this very segment failed: that try landed.
    }
    this.sealed.shift();
  }

  private async sealOf(records: AuditRecord[], final: boolean): Promise<AuditSeal> {
    const { actor, callId, chainId, key } = this.options;
    const recordHashes = records.map((record) => record.hash);
    const unsigned: Omit<AuditSeal, 'mac'> = {
      schemaVersion: SCHEMA_VERSION,
      type: 'audit_seal',
      actor,
      callId,
      ...(chainId === undefined ? {} : { chainId }),
      segment: this.segment,
      firstSeq: records[0]?.seq ?? this.chain.position.seq,
      recordHashes,
      recordsDigest: digestRecordHashes(recordHashes),
      lastHash: records.at(-1)?.hash ?? this.sealedHash,
      prevSeal: this.prevSeal,
      final,
      at: (this.options.now?.() ?? new Date()).toISOString(),
      algorithm: AUDIT_SEAL_ALGORITHM,
      keyId: key.keyId,
    };
    const mac = Buffer.from(await key.mac(auditSealMessage(unsigned))).toString('base64');
    return { ...unsigned, mac };
  }
}

/** One stored segment object: its key (or file name) and its JSON-lines body. */
export interface AuditSegmentObject {
  key: string;
  body: string;
}

export type AuditTrailVerdict =
  | { ok: true; records: AuditRecord[]; seals: AuditSeal[] }
  | { ok: false; seq?: number; segment?: number; object?: string; reason: string; records: AuditRecord[] };

/**
 * Verifies one chain from its segment objects: every record's hash and link, every seal's MAC (with the key the
 * verifier trusts, not one the seal names), segment order, no gap, and a closing seal over exactly the records read.
 * The first failure names the record (seq) or segment and says why.
 */
export async function verifyAuditTrail(
  objects: readonly AuditSegmentObject[],
  verifier: AuditSealVerifier,
): Promise<AuditTrailVerdict> {
  const records: AuditRecord[] = [];
  const seals: AuditSeal[] = [];
  const fail = (reason: string, where: { seq?: number; segment?: number; object?: string }): AuditTrailVerdict => ({
    ok: false,
    ...where,
    reason,
    records,
  });
  const ordered = [...objects].sort((a, b) => a.key.localeCompare(b.key));
  if (ordered.length === 0) return fail('no audit segments found', {});
  let prevHash = GENESIS_HASH;
  let prevSeal = GENESIS_SEAL;
  let chainKey: string | undefined;
  let closed = false;
  for (const [index, object] of ordered.entries()) {
    const where = { segment: index, object: object.key };
    if (closed) return fail(`segment object ${object.key} follows the closing seal`, where);
    const lines = object.body.split('\n').filter((line) => line.trim() !== '');
    const parsedLines: unknown[] = [];
    for (const [lineIndex, line] of lines.entries()) {
      try {
        parsedLines.push(JSON.parse(line));
      } catch {
        return fail(`line ${lineIndex + 1} of ${object.key} is not JSON`, where);
      }
    }
    const sealParse = auditSealSchema.safeParse(parsedLines.at(-1));
    if (!sealParse.success) {
      const firstSeq = (parsedLines[0] as { seq?: unknown } | undefined)?.seq;
      return fail(`segment ${object.key} does not end with a seal (cut off or rewritten)`, {
        ...where,
        seq: typeof firstSeq === 'number' ? firstSeq : records.length,
      });
    }
    const seal = sealParse.data;
    // Until this seal checks out, nothing from the next record on is vouched for: failures name that record.
    const unvouched = { ...where, seq: records.length };
    const identity = [seal.actor, seal.callId, seal.chainId].filter((part) => part !== undefined).join('/');
    if (chainKey !== undefined && identity !== chainKey) {
      return fail(`seal of ${object.key} belongs to chain ${identity}, not ${chainKey}`, unvouched);
    }
    chainKey = identity;
    if (seal.keyId !== verifier.keyId) {
      const reason = `seal of segment ${seal.segment} was made with key ${seal.keyId}, not the trusted ${verifier.keyId}`;
      return fail(`${reason}; records from ${records.length} on are not vouched for`, unvouched);
    }
    const macOk = await verifier.verify(auditSealMessage(seal), Buffer.from(seal.mac, 'base64'));
    if (!macOk) {
      const reason = `seal of segment ${seal.segment} has a MAC the trusted key did not make (forged)`;
      return fail(`${reason}; records from ${records.length} on are not vouched for`, unvouched);
    }
    if (digestRecordHashes(seal.recordHashes) !== seal.recordsDigest) {
      return fail(`seal of segment ${seal.segment} lists record hashes its MAC does not cover`, unvouched);
    }
    if (seal.segment !== index) {
      const reason =
        seal.segment > index
          ? `segment ${index} is missing (found segment ${seal.segment} in its place): records dropped`
          : `segment ${seal.segment} appears again or out of order at position ${index}`;
      return fail(reason, { ...where, seq: records.length });
    }
    if (seal.prevSeal !== prevSeal) {
      return fail(`seal of segment ${index} does not follow the seal before it`, unvouched);
    }
    if (seal.firstSeq !== records.length) {
      return fail(
        seal.firstSeq > records.length
          ? `records ${records.length}..${seal.firstSeq - 1} are missing before segment ${index}`
          : `segment ${index} starts at seq ${seal.firstSeq}, overlapping records already read`,
        { ...where, seq: records.length },
      );
    }
    const body = parsedLines.slice(0, -1);
    for (const [position, raw] of body.entries()) {
      const expectedSeq = seal.firstSeq + position;
      const parsed = auditRecordSchema.safeParse(raw);
      if (!parsed.success) {
        return fail(`record ${expectedSeq} does not match the record schema: ${parsed.error.issues[0]?.message}`, {
          ...where,
          seq: expectedSeq,
        });
      }
      // Hash and keep the record as stored: schema parsing rebuilds objects, and a key named "__proto__" would not
      // survive that (the record would look edited when it is not).
      const record = raw as AuditRecord;
      if (record.seq !== expectedSeq) {
        return fail(`expected record ${expectedSeq} here, found record ${record.seq} (reordered or removed)`, {
          ...where,
          seq: expectedSeq,
        });
      }
      const sealedHash = seal.recordHashes[position];
      if (sealedHash === undefined) {
        return fail(`record ${record.seq} is not in the seal of segment ${index} (added after sealing)`, {
          ...where,
          seq: record.seq,
        });
      }
      const { hash, ...content } = record;
      if (hashAuditRecord(content) !== hash) {
        return fail(`record ${record.seq}: hash does not match its content (edited)`, { ...where, seq: record.seq });
      }
      if (hash !== sealedHash) {
        return fail(`record ${record.seq} differs from the sealed record (rewritten and re-hashed)`, {
          ...where,
          seq: record.seq,
        });
      }
      if (record.prevHash !== prevHash) {
        return fail(`record ${record.seq}: prevHash does not match the record before it`, {
          ...where,
          seq: record.seq,
        });
      }
      const recordKey = [record.actor, record.callId, record.chainId].filter((part) => part !== undefined).join('/');
      if (recordKey !== chainKey) {
        return fail(`record ${record.seq} belongs to chain ${recordKey}, not ${chainKey}`, {
          ...where,
          seq: record.seq,
        });
      }
      prevHash = hash;
      records.push(record);
    }
    if (body.length < seal.recordHashes.length) {
      const missing = seal.firstSeq + body.length;
      const sealed = seal.recordHashes.length;
      return fail(`record ${missing} is missing: segment ${index} was sealed with ${sealed} records`, {
        ...where,
        seq: missing,
      });
    }
    if (seal.lastHash !== prevHash) return fail(`seal of segment ${index} closes a different chain head`, where);
    seals.push(seal);
    prevSeal = seal.mac;
    closed = seal.final;
  }
  if (!closed) {
    return fail(`no closing seal after record ${records.length - 1}: the chain may have been cut off there`, {
      seq: records.length,
      segment: ordered.length,
    });
  }
  return { ok: true, records, seals };
}
