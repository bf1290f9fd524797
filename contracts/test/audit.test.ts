import { describe, expect, it } from 'vitest';
import { AuditChain, type AuditRecord, canonicalJson, GENESIS_HASH, verifyAuditChain } from '../src';

function chainOf(count: number, chain = new AuditChain()): AuditRecord[] {
  return Array.from({ length: count }, (_, index) =>
    chain.seal({
      schemaVersion: 1,
      actor: 'agent',
      callId: 'call-1',
      at: new Date(Date.UTC(2026, 10, 24, 12, 0, index)).toISOString(),
      kind: index % 2 === 0 ? 'tool_call' : 'tool_result',
      subject: 'lookup_caller',
      payload: { index, nested: { b: 2, a: [1, 'x'] } },
      redacted: false,
    }),
  );
}

describe('audit hash chain', () => {
  it('links each record to the one before it, starting from the genesis hash', () => {
    const records = chainOf(3);
    expect(records[0].prevHash).toBe(GENESIS_HASH);
    expect(records[1].prevHash).toBe(records[0].hash);
    expect(records[2].prevHash).toBe(records[1].hash);
    expect(records.map((r) => r.seq)).toEqual([0, 1, 2]);
    expect(verifyAuditChain(records)).toEqual({ ok: true, count: 3 });
  });

  it('detects an edited payload', () => {
    const records = chainOf(3);
    const tampered = records.map((r) => structuredClone(r));
    (tampered[1].payload as { index: number }).index = 99;
    expect(verifyAuditChain(tampered)).toMatchObject({ ok: false, seq: 1, reason: expect.stringMatching(/hash/) });
  });

  it('detects a removed record and a reordering', () => {
    const records = chainOf(4);
    expect(verifyAuditChain([records[0], records[2], records[3]])).toMatchObject({ ok: false, seq: 2 });
    expect(verifyAuditChain([records[1], records[0]])).toMatchObject({ ok: false });
  });

  it('detects a record re-hashed after editing, by the broken link to the next one', () => {
    const records = chainOf(3);
    const forged = new AuditChain({ seq: 1, prevHash: records[0].hash }).seal({
      ...records[1],
      payload: { forged: true },
    });
    expect(verifyAuditChain([records[0], forged, records[2]])).toMatchObject({
      ok: false,
      seq: 2,
      reason: expect.stringMatching(/prevHash/),
    });
  });

  it('continues a chain from a saved position (worker takeover) without a break', () => {
    const first = new AuditChain();
    const head = chainOf(2, first);
    const resumed = new AuditChain(first.position);
    const tail = chainOf(2, resumed);
    expect(verifyAuditChain([...head, ...tail])).toEqual({ ok: true, count: 4 });
  });

  it('tells apart two chains of one actor and call by chain id, and refuses to read them as one', () => {
    const first = chainOf(2).map((record) => ({ ...record, chainId: 'task-a' }));
    const second = chainOf(2).map((record) => ({ ...record, chainId: 'task-b' }));
    const seal = (records: AuditRecord[]) => {
      const chain = new AuditChain();
      return records.map((record) => chain.seal(record));
    };
    const [a, b] = [seal(first), seal(second)];
    expect(a[0].hash).not.toBe(b[0].hash); // the id is covered by the hash
    expect(verifyAuditChain(a)).toEqual({ ok: true, count: 2 });
    expect(verifyAuditChain(b)).toEqual({ ok: true, count: 2 });
    expect(verifyAuditChain([a[0], b[1]])).toMatchObject({
      ok: false,
      seq: 1,
      reason: expect.stringMatching(/belongs to chain agent\/call-1\/task-b/),
    });
    expect(verifyAuditChain([{ ...a[0], chainId: 'no/slash' }])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/schema/),
    });
  });

  it('rejects records that do not fit the schema', () => {
    const [record] = chainOf(1);
    expect(verifyAuditChain([{ ...record, hash: 'nope' }])).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/schema/),
    });
  });

  it('hashes canonical JSON: key order never changes the bytes', () => {
    expect(canonicalJson({ b: 1, a: { d: [2, { z: 1, y: 0 }], c: null } })).toBe(
      '{"a":{"c":null,"d":[2,{"y":0,"z":1}]},"b":1}',
    );
  });
});
