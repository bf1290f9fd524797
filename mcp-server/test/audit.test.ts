import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { type AuditRecord, verifyAuditChain } from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog, type AuditSink, S3AuditSink } from '../src/audit';

const s3 = mockClient(S3Client);

/** What the audit bucket would hold: key → body (a second write to a key would be a new version of the same object). */
function putObjects(): Map<string, AuditRecord[]> {
  const objects = new Map<string, AuditRecord[]>();
  for (const call of s3.commandCalls(PutObjectCommand)) {
    const { Key, Body } = call.args[0].input;
    objects.set(String(Key), [...(objects.get(String(Key)) ?? []), JSON.parse(String(Body))]);
  }
  return objects;
}

function chainsOf(records: AuditRecord[]): Map<string, AuditRecord[]> {
  const chains = new Map<string, AuditRecord[]>();
  for (const record of records) chains.set(String(record.chainId), [...(chains.get(String(record.chainId)) ?? []), record]);
  for (const chain of chains.values()) chain.sort((a, b) => a.seq - b.seq);
  return chains;
}

describe('MCP audit log', () => {
  afterEach(() => s3.reset());

  it('gives the chains two server tasks write for one call their own keys, each verifying on its own', async () => {
    s3.on(PutObjectCommand).resolves({});
    const taskA = new AuditLog(new S3AuditSink(new S3Client({}), 'audit-bucket'));
    const taskB = new AuditLog(new S3AuditSink(new S3Client({}), 'audit-bucket'));
    // The agent reconnected mid-call and its session landed on the other task.
    await taskA.record('call-7', 'tool_call', 'lookup_caller', { arguments: {} });
    await taskA.record('call-7', 'tool_result', 'lookup_caller', { isError: false });
    await taskB.record('call-7', 'tool_call', 'submit_intake', { arguments: {} });
    await taskB.record('call-7', 'tool_result', 'submit_intake', { isError: false });

    const objects = putObjects();
    expect(objects.size).toBe(4);
    for (const [key, bodies] of objects) {
      expect(bodies, `${key} written once`).toHaveLength(1);
      expect(key).toMatch(/^audit\/mcp-server\/call-7\/[0-9a-f-]{36}\/0000000[01]\.jsonl$/);
    }
    const chains = chainsOf([...objects.values()].flat());
    expect(chains.size).toBe(2);
    for (const chain of chains.values()) expect(verifyAuditChain(chain)).toEqual({ ok: true, count: 2 });
    // Interleaving the two chains is caught, not mistaken for one chain.
    const [first, second] = [...chains.values()];
    expect(verifyAuditChain([first[0], second[1]])).toMatchObject({ ok: false, reason: expect.stringMatching(/belongs to chain/) });
  });

  it('lets go of idle calls, and a later record of one starts a new chain rather than reusing the old keys', async () => {
    const written: AuditRecord[] = [];
    const sink: AuditSink = { write: async (record) => void written.push(record) };
    let now = Date.parse('2026-11-30T10:00:00Z');
    const log = new AuditLog(sink, { idleMs: 10 * 60_000, now: () => now });
    for (let call = 0; call < 50; call += 1) await log.record(`call-${call}`, 'tool_call', 'lookup_caller', {});
    expect(log.openChains).toBe(50);

    now += 11 * 60_000;
    await log.record('call-0', 'tool_result', 'lookup_caller', {});
    expect(log.openChains).toBe(1);

    const chains = chainsOf(written.filter((record) => record.callId === 'call-0'));
    expect(chains.size).toBe(2);
    for (const chain of chains.values()) expect(verifyAuditChain(chain)).toEqual({ ok: true, count: 1 });
  });
});
