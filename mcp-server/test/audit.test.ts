import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  AuditSegmentExistsError,
  type AuditSegmentObject,
  LocalHmacSealKey,
  verifyAuditTrail,
} from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, FileAuditStore, S3AuditStore } from '../src/audit';

const s3 = mockClient(S3Client);
const key = new LocalHmacSealKey('mcp-audit-test-secret-0123456789abcdef');

/** What the audit bucket holds, grouped by chain folder. */
function chainsInBucket(): Map<string, AuditSegmentObject[]> {
  const chains = new Map<string, AuditSegmentObject[]>();
  for (const call of s3.commandCalls(PutObjectCommand)) {
    const { Key, Body } = call.args[0].input;
    const folder = String(Key).replace(/[^/]+$/, '');
    chains.set(folder, [...(chains.get(folder) ?? []), { key: String(Key), body: String(Body) }]);
  }
  return chains;
}

describe('MCP audit log', () => {
  afterEach(() => s3.reset());

  it('gives the chains two server tasks write for one call their own keys, each sealed and verifying on its own', async () => {
    s3.on(PutObjectCommand).resolves({});
    const taskA = new AuditLog(new S3AuditStore(new S3Client({}), 'audit-bucket'), key);
    const taskB = new AuditLog(new S3AuditStore(new S3Client({}), 'audit-bucket'), key);
    // The agent reconnected mid-call and its session landed on the other task.
    const sessionA = taskA.openScope();
    sessionA.record('call-7', 'tool_call', 'lookup_caller', { arguments: {} });
    await sessionA.flush('call-7');
    sessionA.record('call-7', 'tool_result', 'lookup_caller', { outcome: 'ok' });
    const sessionB = taskB.openScope();
    sessionB.record('call-7', 'tool_call', 'submit_intake', { arguments: {} });
    sessionB.record('call-7', 'tool_result', 'submit_intake', { outcome: 'ok' });
    await Promise.all([sessionA.close(), sessionB.close()]);

    const chains = chainsInBucket();
    expect(chains.size).toBe(2);
    for (const [folder, objects] of chains) {
      expect(folder).toMatch(/^audit\/mcp-server\/call-7\/[0-9a-f-]{36}\/$/);
      const verdict = await verifyAuditTrail(objects, key);
      expect(verdict, folder).toMatchObject({ ok: true });
      expect(verdict.records).toHaveLength(2);
    }
    // One chain's segments read as the other's are caught, not mistaken for one chain.
    const [first, second] = [...chains.values()];
    expect(await verifyAuditTrail([first[0], ...second.slice(1)], key)).toMatchObject({ ok: false });
    expect(taskA.openScopes + taskB.openScopes).toBe(0);
    // Every segment is written once: a conditional put.
    expect(s3.commandCalls(PutObjectCommand).map((call) => call.args[0].input.IfNoneMatch)).toEqual(
      Array(s3.commandCalls(PutObjectCommand).length).fill('*'),
    );
  });

  it('names a segment S3 refused as existing (412), and passes other failures on as they are', async () => {
    const store = new S3AuditStore(new S3Client({}), 'audit-bucket');
    s3.on(PutObjectCommand).rejectsOnce(
      Object.assign(new Error('At least one of the pre-conditions you specified did not hold'), {
        name: 'PreconditionFailed',
        $metadata: { httpStatusCode: 412 },
      }),
    );
    await expect(store.put('audit/mcp-server/call-9/chain/00000000.jsonl', '{}\n')).rejects.toBeInstanceOf(
      AuditSegmentExistsError,
    );
    s3.on(PutObjectCommand).rejects(Object.assign(new Error('Access Denied'), { name: 'AccessDenied' }));
    await expect(store.put('audit/mcp-server/call-9/chain/00000000.jsonl', '{}\n')).rejects.toThrow(/Access Denied/);
  });

  it('masks PII in payloads when configured, and says so in the record', async () => {
    s3.on(PutObjectCommand).resolves({});
    const log = new AuditLog(new S3AuditStore(new S3Client({}), 'audit-bucket'), key, { redactPii: true });
    const scope = log.openScope();
    const record = scope.record('call-8', 'tool_call', 'save_intake_progress', {
      arguments: { fields: { email: 'ada@example.com', phone: '+1 415 555 0123' } },
    });
    expect(record).toMatchObject({
      redacted: true,
      payload: { arguments: { fields: { email: '[EMAIL]', phone: '[PHONE]' } } },
    });
    await scope.close();
  });

  it('closes every open chain with its final seal on shutdown', async () => {
    s3.on(PutObjectCommand).resolves({});
    const log = new AuditLog(new S3AuditStore(new S3Client({}), 'audit-bucket'), key);
    for (const callId of ['call-1', 'call-2']) log.openScope().record(callId, 'tool_call', 'lookup_caller', {});
    await log.closeAll();
    for (const objects of chainsInBucket().values())
      expect(await verifyAuditTrail(objects, key)).toMatchObject({ ok: true });
    expect(log.openScopes).toBe(0);
  });

  it('keeps a local store under its folder: a key that climbs out is refused, nothing is written', async () => {
    const root = mkdtempSync(join(tmpdir(), 'audit-store-'));
    try {
      const store = new FileAuditStore(join(root, 'data'));
      await expect(store.put('audit/mcp-server/../../../escaped.jsonl', '{}\n')).rejects.toThrow(/leaves its folder/);
      await expect(store.put('/etc/escaped.jsonl', '{}\n')).rejects.toThrow(/leaves its folder/);
      expect(existsSync(join(root, 'escaped.jsonl'))).toBe(false);
      await store.put('audit/mcp-server/call-1/c/00000000.jsonl', '{}\n');
      expect(existsSync(join(root, 'data', 'audit', 'mcp-server', 'call-1', 'c', '00000000.jsonl'))).toBe(true);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});

describe('a tool call that cannot be recorded', () => {
  it('does not run, says so, and is recorded with the next segment that can be stored', async () => {
    const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
    const { InMemoryTransport } = await import('@modelcontextprotocol/sdk/inMemory.js');
    const { default: pino } = await import('pino');
    const { issueSessionHeader, MCP_SESSION_HEADER } = await import('@voice-intake/contracts');
    const { createIntakeServer } = await import('../src/tools');
    const { CallerProofs } = await import('../src/caller-proofs');
    const { FormCatalog } = await import('../src/forms');
    const { EmbeddedCaseStore } = await import('../src/stores/embedded-case-store');
    const { EmbeddedKnowledge } = await import('../src/knowledge/embedded');
    const dir = mkdtempSync(join(tmpdir(), 'audit-down-'));
    try {
      const written: string[] = [];
      let storeUp = false;
      const store = {
        put: async (_objectKey: string, body: string) => {
          if (!storeUp) throw new Error('audit bucket unreachable');
          written.push(body);
        },
      };
      const cases = new EmbeddedCaseStore(dir);
      const secret = 'session-secret-0123456789';
      const server = createIntakeServer({
        cases,
        forms: new FormCatalog(join(__dirname, '..', 'forms'), 'general_inquiry'),
        knowledge: new EmbeddedKnowledge(join(__dirname, '..', 'knowledge')),
        audit: new AuditLog(store, key),
        sessionSecret: secret,
        transferTargets: { front_desk: 'sip:front-desk@pbx.example.com' },
        defaultTransferQueue: 'front_desk',
        proofs: new CallerProofs(),
        logger: pino({ level: 'silent' }),
      });
      const [clientSide, serverSide] = InMemoryTransport.createLinkedPair();
      // The session header rides on each request's HTTP headers; in memory, the server reads it from requestInfo.
      const header = issueSessionHeader({ callId: 'call-down', callerNumber: '+14155550123' }, secret);
      await server.connect(serverSide);
      const deliver = serverSide.onmessage!;
      const requestInfo = { headers: { [MCP_SESSION_HEADER]: header } };
      serverSide.onmessage = (message, extra) => deliver(message, { ...extra, requestInfo } as typeof extra);
      const client = new Client({ name: 'test', version: '0' });
      await client.connect(clientSide);

      const refused = (await client.callTool({
        name: 'request_human_transfer',
        arguments: { reason: 'caller asked' },
      })) as {
        isError?: boolean;
        content: { text: string }[];
        _meta?: Record<string, unknown>;
      };
      expect(refused.isError).toBe(true);
      expect(refused.content[0].text).toMatch(/could not record this request, so it was not carried out/);
      expect(refused._meta).toMatchObject({ 'io.voice-intake/outcome': 'failed' });
      // Nothing was stored: no transfer, not even a cases file.
      expect(existsSync(join(dir, 'cases.json'))).toBe(false);

      storeUp = true;
      await client.callTool({ name: 'lookup_caller', arguments: {} });
      const records = written
        .flatMap((body) =>
          body
            .trim()
            .split('\n')
            .map((line) => JSON.parse(line)),
        )
        .filter((line) => !line.type);
      expect(records.map((record) => [record.kind, record.subject, record.payload.outcome])).toEqual([
        ['tool_call', 'request_human_transfer', undefined],
        ['tool_result', 'request_human_transfer', 'failed'],
        ['tool_call', 'lookup_caller', undefined],
        ['tool_result', 'lookup_caller', 'ok'],
      ]);
      await client.close();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('audit seal settings', () => {
  it('refuses to start without a seal key, or with a short secret, naming the variable', async () => {
    const { readServerEnv } = await import('../src/config');
    const base = { MCP_AUTH_TOKEN: 'a-token-of-enough-length' };
    expect(() => readServerEnv(base)).toThrow(/AUDIT_SEAL_KMS_KEY_ID: or AUDIT_SEAL_SECRET is required/);
    expect(() => readServerEnv({ ...base, AUDIT_SEAL_SECRET: 'short' })).toThrow(
      /AUDIT_SEAL_SECRET: must be at least 32/,
    );
    expect(readServerEnv({ ...base, AUDIT_SEAL_KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/k' })).toMatchObject(
      {
        PII_REDACTION: false,
      },
    );
    expect(readServerEnv({ ...base, AUDIT_SEAL_SECRET: 'x'.repeat(32), PII_REDACTION: 'true' }).PII_REDACTION).toBe(
      true,
    );
  });
});
