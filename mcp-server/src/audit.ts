import { appendFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import { AuditChain, type AuditKind, type AuditRecord, SCHEMA_VERSION, auditSegmentKey } from '@voice-intake/contracts';

export interface AuditSink {
  write(record: AuditRecord): Promise<void>;
}

/** Local runs: one JSON-lines file per call. */
export class FileAuditSink implements AuditSink {
  constructor(private readonly directory: string) {
    mkdirSync(directory, { recursive: true });
  }

  async write(record: AuditRecord): Promise<void> {
    appendFileSync(join(this.directory, `${record.callId}.jsonl`), `${JSON.stringify(record)}\n`);
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
        Key: auditSegmentKey('mcp-server', record.callId, record.seq),
        Body: `${JSON.stringify(record)}\n`,
        ContentType: 'application/x-ndjson',
      }),
    );
  }
}

/**
 * The MCP server's compliance log: every tool call and result, hash-chained per call (actor `mcp-server`), in the
 * same record schema as the agent's log. Records of one call are written in order.
 */
export class AuditLog {
  private readonly chains = new Map<string, { chain: AuditChain; tail: Promise<void> }>();

  constructor(private readonly sink: AuditSink) {}

  record(callId: string, kind: AuditKind, subject: string, payload: unknown): Promise<void> {
    let entry = this.chains.get(callId);
    if (!entry) {
      entry = { chain: new AuditChain(), tail: Promise.resolve() };
      this.chains.set(callId, entry);
    }
    const sealed = entry.chain.seal({
      schemaVersion: SCHEMA_VERSION,
      actor: 'mcp-server',
      callId,
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
