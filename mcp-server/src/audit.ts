import { randomUUID } from 'node:crypto';
import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { AuditChain, type AuditKind, type AuditRecord, SCHEMA_VERSION, auditSegmentKey } from '@voice-intake/contracts';

export interface AuditSink {
  write(record: AuditRecord): Promise<void>;
}

/** Local runs: one JSON-lines file per chain, `<callId>/<chainId>.jsonl`. */
export class FileAuditSink implements AuditSink {
  constructor(private readonly directory: string) {
    mkdirSync(directory, { recursive: true });
  }

  async write(record: AuditRecord): Promise<void> {
    const callDirectory = join(this.directory, record.callId);
    mkdirSync(callDirectory, { recursive: true });
    appendFileSync(join(callDirectory, `${record.chainId ?? 'chain'}.jsonl`), `${JSON.stringify(record)}\n`);
  }
}

/** AWS: each record its own object (the audit bucket has Object Lock: objects are written once, never replaced). */
export class S3AuditSink implements AuditSink {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  async write(record: AuditRecord): Promise<void> {
    await this.client.send(
      new PutObjectCommand({
        Bucket: this.bucket,
        Key: auditSegmentKey('mcp-server', record.callId, record.seq, record.chainId),
        Body: `${JSON.stringify(record)}\n`,
        ContentType: 'application/x-ndjson',
      }),
    );
  }
}

export interface AuditLogOptions {
  /** A call's chain is let go after this long without a record (a later record starts a new chain). Default 2 h. */
  idleMs?: number;
  /** Clock, for tests. */
  now?: () => number;
}

interface OpenChain {
  chain: AuditChain;
  chainId: string;
  tail: Promise<void>;
  lastUsed: number;
}

/**
 * The MCP server's compliance log: every tool call and result, hash-chained per call (actor `mcp-server`), in the
 * same record schema as the agent's log. Records of one chain are written in order. Each chain has its own id, so the
 * chains that several server tasks (or one task, after letting an idle call go) write for the same call never share
 * a key, and each verifies on its own.
 */
export class AuditLog {
  private readonly chains = new Map<string, OpenChain>();
  private readonly idleMs: number;
  private readonly now: () => number;
  private lastSweep: number;

  constructor(
    private readonly sink: AuditSink,
    options: AuditLogOptions = {},
  ) {
    this.idleMs = options.idleMs ?? 2 * 60 * 60_000;
    this.now = options.now ?? Date.now;
    this.lastSweep = this.now();
  }

  /** Calls with an open chain (bounded: idle ones are let go). */
  get openChains(): number {
    return this.chains.size;
  }

  /** Lets go of chains idle for longer than idleMs, at most once a minute. Their pending writes still finish. */
  private sweep(now: number): void {
    if (now - this.lastSweep < 60_000) return;
    this.lastSweep = now;
    for (const [callId, entry] of this.chains) {
      if (now - entry.lastUsed > this.idleMs) this.chains.delete(callId);
    }
  }

  record(callId: string, kind: AuditKind, subject: string, payload: unknown): Promise<void> {
    const now = this.now();
    this.sweep(now);
    let entry = this.chains.get(callId);
    if (!entry) {
      entry = { chain: new AuditChain(), chainId: randomUUID(), tail: Promise.resolve(), lastUsed: now };
      this.chains.set(callId, entry);
    }
    entry.lastUsed = now;
    const sealed = entry.chain.seal({
      schemaVersion: SCHEMA_VERSION,
      actor: 'mcp-server',
      callId,
      chainId: entry.chainId,
      at: new Date().toISOString(),
      kind,
      subject,
      payload: JSON.parse(JSON.stringify(payload ?? null)),
      redacted: false,
    });
    entry.tail = entry.tail.then(() => this.sink.write(sealed));
    return entry.tail;
  }
}
