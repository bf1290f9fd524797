import { createHash } from 'node:crypto';
import { z } from 'zod';
import { callIdSchema, isoTimestampSchema, SCHEMA_VERSION } from './common';

/** Who wrote the record. Each actor keeps its own hash chain per call (several, told apart by `chainId`). */
export const auditActorSchema = z.enum(['agent', 'mcp-server', 'enrichment']);

export const auditKindSchema = z.enum([
  'session_start',
  'session_end',
  'llm_request',
  'llm_response',
  'tool_call',
  'tool_result',
  'transfer',
  'error',
  /** Call recording: started, consent (granted or not), stopped with its parts. */
  'recording',
]);

/**
 * How a tool call ended, on both chains: `ok`; `tool_error` (the tool ran and said no, e.g. a field error);
 * `rejected` (never ran: unknown tool, arguments that failed the input schema or carried a refused field, no session
 * binding); `failed` (the tool or the transport broke).
 */
export const toolCallOutcomeSchema = z.enum(['ok', 'tool_error', 'rejected', 'failed']);
export type ToolCallOutcome = z.infer<typeof toolCallOutcomeSchema>;

/** Where the MCP server states a call's outcome in its CallToolResult (`_meta`), so both chains record the same. */
export const TOOL_OUTCOME_META_KEY = 'io.voice-intake/outcome';

/** The previous-hash value of the first record in a chain. */
export const GENESIS_HASH = '0'.repeat(64);

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'must be a lowercase hex SHA-256');

/** A chain id is one S3 key segment: letters, digits and dashes (a UUID fits). */
export const auditChainIdSchema = z.string().regex(/^[A-Za-z0-9-]{1,64}$/, 'must be 1-64 letters, digits or dashes');

/**
 * One compliance-log entry: a prompt, a tool payload, a tool result, a response, or a session event.
 * `hash` covers every other field (canonical JSON), and `prevHash` is the hash of the record before it
 * in the same (actor, callId, chainId) chain, so removing, reordering or editing any record is detectable.
 */
export const auditRecordSchema = z.object({
  schemaVersion: z.literal(SCHEMA_VERSION),
  actor: auditActorSchema,
  callId: callIdSchema,
  /**
   * Which of the actor's chains for this call, when it may write several: the MCP server starts one per server process
   * (a call's tool requests can reach any of its tasks), so each chain gets its own id. Absent for an actor with one
   * chain per call (the agent's, which a takeover worker resumes).
   */
  chainId: auditChainIdSchema.optional(),
  /** 0-based, no gaps within a chain. */
  seq: z.number().int().nonnegative(),
  at: isoTimestampSchema,
  kind: auditKindSchema,
  /** Tool name, model id or event name, for filtering without parsing the payload. */
  subject: z.string().max(256).optional(),
  /** The recorded content: any JSON value. */
  payload: z.json(),
  /** True when PII redaction was applied to `payload` before it was recorded. */
  redacted: z.boolean(),
  prevHash: sha256Hex,
  hash: sha256Hex,
});

export type AuditActor = z.infer<typeof auditActorSchema>;
export type AuditKind = z.infer<typeof auditKindSchema>;
export type AuditRecord = z.infer<typeof auditRecordSchema>;
export type UnsealedAuditRecord = Omit<AuditRecord, 'hash' | 'prevHash' | 'seq'>;

/** JSON with object keys sorted at every depth: the same value always yields the same bytes. */
export function canonicalJson(value: unknown): string {
  return JSON.stringify(sortKeys(value));
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value !== null && typeof value === 'object') {
    const source = value as Record<string, unknown>;
    // No prototype: a key named "__proto__" stays a key (in a plain object it would set the prototype and vanish).
    const sorted: Record<string, unknown> = Object.create(null);
    for (const key of Object.keys(source).sort()) {
      if (source[key] !== undefined) sorted[key] = sortKeys(source[key]);
    }
    return sorted;
  }
  return value;
}

export function hashAuditRecord(record: Omit<AuditRecord, 'hash'>): string {
  return createHash('sha256').update(canonicalJson(record)).digest('hex');
}

/**
 * Appends records to one (actor, callId[, chainId]) chain. Holds only the last hash and sequence number,
 * so a worker resuming a call can continue the chain from the last record it persisted.
 */
export class AuditChain {
  private nextSeq: number;
  private lastHash: string;

  constructor(start: { seq: number; prevHash: string } = { seq: 0, prevHash: GENESIS_HASH }) {
    this.nextSeq = start.seq;
    this.lastHash = start.prevHash;
  }

  seal(entry: UnsealedAuditRecord): AuditRecord {
    // Chain fields come only from the chain, even if the caller passed a record that already had them.
    const {
      hash: _hash,
      prevHash: _prevHash,
      seq: _seq,
      ...content
    } = entry as UnsealedAuditRecord & Partial<AuditRecord>;
    const withoutHash: Omit<AuditRecord, 'hash'> = {
      ...content,
      seq: this.nextSeq,
      prevHash: this.lastHash,
    };
    const hash = hashAuditRecord(withoutHash);
    this.nextSeq += 1;
    this.lastHash = hash;
    return { ...withoutHash, hash };
  }

  /** Where the chain stands: pass this to a new AuditChain to continue it. */
  get position(): { seq: number; prevHash: string } {
    return { seq: this.nextSeq, prevHash: this.lastHash };
  }
}

export type ChainVerdict = { ok: true; count: number } | { ok: false; seq: number; reason: string };

/** What identifies a chain: actor, call and (when the actor writes several) chain id. */
export function auditChainKey(record: Pick<AuditRecord, 'actor' | 'callId' | 'chainId'>): string {
  return [record.actor, record.callId, record.chainId].filter((part) => part !== undefined).join('/');
}

/** Checks schema, sequence, linkage and every hash of one chain, in order. */
export function verifyAuditChain(records: readonly unknown[]): ChainVerdict {
  let prevHash = GENESIS_HASH;
  let chainKey: string | undefined;
  for (let index = 0; index < records.length; index += 1) {
    const parsed = auditRecordSchema.safeParse(records[index]);
    if (!parsed.success) {
      return {
        ok: false,
        seq: index,
        reason: `record ${index} does not match the schema: ${parsed.error.issues[0]?.message}`,
      };
    }
    // As stored, not as parsed: parsing would drop a "__proto__" key from the payload and break its hash.
    const record = records[index] as AuditRecord;
    const key = auditChainKey(record);
    if (chainKey !== undefined && key !== chainKey) {
      return { ok: false, seq: record.seq, reason: `record ${index} belongs to chain ${key}, not ${chainKey}` };
    }
    chainKey = key;
    if (record.seq !== index)
      return { ok: false, seq: record.seq, reason: `expected seq ${index}, found ${record.seq}` };
    if (record.prevHash !== prevHash)
      return { ok: false, seq: record.seq, reason: 'prevHash does not match the previous record' };
    const { hash, ...rest } = record;
    if (hashAuditRecord(rest) !== hash)
      return { ok: false, seq: record.seq, reason: 'hash does not match the record content' };
    prevHash = hash;
  }
  return { ok: true, count: records.length };
}
