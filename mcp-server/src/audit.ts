import { randomUUID } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import {
  type AuditKind,
  type AuditRecord,
  type AuditSealKey,
  AuditTrailWriter,
  putAuditSegment,
  redactDeep,
  redactPii,
  resolveUnder,
} from '@voice-intake/contracts';

/** Where sealed segments go: one object per segment, never replaced. */
export interface AuditSegmentStore {
  put(objectKey: string, body: string): Promise<void>;
}

/** Local runs: the bucket's key layout under a folder (`<root>/audit/mcp-server/<callId>/<chainId>/<seq>.jsonl`). */
export class FileAuditStore implements AuditSegmentStore {
  constructor(private readonly root: string) {
    mkdirSync(root, { recursive: true });
  }

  async put(objectKey: string, body: string): Promise<void> {
    const path = resolveUnder(this.root, objectKey);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, body, { flag: 'wx' });
  }
}

/** AWS: the audit bucket (Object Lock: objects are written once, never replaced). */
export class S3AuditStore implements AuditSegmentStore {
  constructor(
    private readonly client: S3Client,
    private readonly bucket: string,
  ) {}

  put(objectKey: string, body: string): Promise<void> {
    return putAuditSegment((input) => this.client.send(new PutObjectCommand(input)), this.bucket, objectKey, body);
  }
}

export interface AuditLogOptions {
  /** Mask PII in every string of a payload before it is recorded (the record says so: `redacted: true`). */
  redactPii?: boolean;
  now?: () => Date;
}

/**
 * The MCP server's compliance log (actor `mcp-server`). Each MCP session gets a scope; within it each call has its
 * own sealed chain with its own chain id, closed (final seal) when the session ends. So the chains several server
 * tasks or sessions write for one call never share a key, and each verifies on its own.
 */
export class AuditLog {
  private readonly scopes = new Set<AuditScope>();

  constructor(
    private readonly store: AuditSegmentStore,
    private readonly key: AuditSealKey,
    private readonly options: AuditLogOptions = {},
  ) {}

  /** Sessions with an open scope. */
  get openScopes(): number {
    return this.scopes.size;
  }

  /** A scope for one MCP session: close it when the session ends. */
  openScope(): AuditScope {
    const scope = new AuditScope(this.store, this.key, this.options, () => this.scopes.delete(scope));
    this.scopes.add(scope);
    return scope;
  }

  /** Records an exchange as a chain of its own, sealed closed (calls refused before any MCP session took them). */
  async recordClosed(callId: string, entries: { kind: AuditKind; subject: string; payload: unknown }[]): Promise<void> {
    const scope = this.openScope();
    for (const entry of entries) scope.record(callId, entry.kind, entry.subject, entry.payload);
    await scope.close();
  }

  /** Closes every scope (shutdown): each open chain gets its final seal. */
  async closeAll(): Promise<void> {
    await Promise.allSettled([...this.scopes].map((scope) => scope.close()));
  }
}

export class AuditScope {
  private readonly trails = new Map<string, AuditTrailWriter>();
  private closing?: Promise<void>;

  constructor(
    private readonly store: AuditSegmentStore,
    private readonly key: AuditSealKey,
    private readonly options: AuditLogOptions,
    private readonly onClosed: () => void,
  ) {}

  private trail(callId: string): AuditTrailWriter {
    let trail = this.trails.get(callId);
    if (!trail) {
      trail = new AuditTrailWriter({
        actor: 'mcp-server',
        callId,
        chainId: randomUUID(),
        key: this.key,
        put: (objectKey, body) => this.store.put(objectKey, body),
        now: this.options.now,
      });
      this.trails.set(callId, trail);
    }
    return trail;
  }

  /** Appends a record to the call's chain (written on the next flush). */
  record(callId: string, kind: AuditKind, subject: string, payload: unknown): AuditRecord {
    if (this.closing) throw new Error('audit scope is closed');
    const json = JSON.parse(JSON.stringify(payload ?? null)) as unknown;
    const redact = this.options.redactPii === true;
    return this.trail(callId).append({
      at: (this.options.now?.() ?? new Date()).toISOString(),
      kind,
      subject: subject.slice(0, 256),
      payload: (redact ? redactDeep(json, redactPii) : json) as AuditRecord['payload'],
      redacted: redact,
    });
  }

  /** Writes the call's pending records as a sealed segment; rejects when they could not be stored. */
  flush(callId: string): Promise<void> {
    return this.trails.get(callId)?.flush() ?? Promise.resolve();
  }

  /** Flushes and closes every chain of this session with its final seal. Safe to call twice. */
  close(): Promise<void> {
    this.closing ??= Promise.allSettled([...this.trails.values()].map((trail) => trail.close())).then((results) => {
      this.onClosed();
      const failed = results.find((result) => result.status === 'rejected');
      if (failed) throw (failed as PromiseRejectedResult).reason;
    });
    return this.closing;
  }
}
