import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  AuditChain,
  AuditChainForkError,
  type AuditRecord,
  type AuditSeal,
  AuditSegmentExistsError,
  type AuditSegmentObject,
  AuditTrailWriter,
  auditSealMessage,
  callIdSchema,
  canonicalJson,
  hashAuditRecord,
  LocalHmacSealKey,
  storedText,
  verifyAuditChain,
  verifyAuditTrail,
} from '../src';

const key = new LocalHmacSealKey('an-audit-seal-secret-of-32-chars!!');
const otherKey = new LocalHmacSealKey('another-secret-the-writer-does-not-hold');

/** A store that keeps what the writer puts, in order of keys. */
function memoryStore() {
  const objects = new Map<string, string>();
  return {
    objects,
    put: async (objectKey: string, body: string) => {
      objects.set(objectKey, body);
    },
    list: (): AuditSegmentObject[] => [...objects].map(([objectKey, body]) => ({ key: objectKey, body })),
  };
}

function writer(
  store: ReturnType<typeof memoryStore>,
  options: Partial<ConstructorParameters<typeof AuditTrailWriter>[0]> = {},
) {
  return new AuditTrailWriter({
    actor: 'mcp-server',
    callId: 'call-7',
    chainId: 'chain-a',
    key,
    put: store.put,
    ...options,
  });
}

function append(trail: AuditTrailWriter, index: number): AuditRecord {
  return trail.append({
    at: new Date(Date.UTC(2026, 10, 30, 12, 0, index)).toISOString(),
    kind: index % 2 === 0 ? 'tool_call' : 'tool_result',
    subject: 'save_intake_progress',
    payload: { index },
    redacted: false,
  });
}

/** Three segments: records 0-2, 3-4, 5 plus the closing seal. */
async function sealedTrail() {
  const store = memoryStore();
  const trail = writer(store);
  for (const index of [0, 1, 2]) append(trail, index);
  await trail.flush();
  for (const index of [3, 4]) append(trail, index);
  await trail.flush();
  append(trail, 5);
  await trail.close();
  return store;
}

const linesOf = (body: string) =>
  body
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line));
const bodyOf = (lines: unknown[]) => `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`;

/** Rewrites record `seq` and re-hashes it and every record after it, as a writer covering its tracks would. */
function rewriteAndRehash(objects: AuditSegmentObject[], seq: number): AuditSegmentObject[] {
  const segments = objects.map((object) => ({ key: object.key, lines: linesOf(object.body) }));
  let prevHash: string | undefined;
  for (const segment of segments) {
    for (const line of segment.lines) {
      if (line.type === 'audit_seal') continue;
      const record = line as AuditRecord;
      if (record.seq === seq) record.payload = { index: 'rewritten' };
      if (record.seq >= seq) {
        if (prevHash !== undefined) record.prevHash = prevHash;
        const { hash: _hash, ...content } = record;
        record.hash = hashAuditRecord(content);
      }
      prevHash = record.hash;
    }
  }
  return segments.map((segment) => ({ key: segment.key, body: bodyOf(segment.lines) }));
}

describe('sealed audit trail', () => {
  it('writes each flush as one segment object ending in a seal, and verifies OK with the trusted key', async () => {
    const store = await sealedTrail();
    expect([...store.objects.keys()]).toEqual([
      'audit/mcp-server/call-7/chain-a/00000000.jsonl',
      'audit/mcp-server/call-7/chain-a/00000003.jsonl',
      'audit/mcp-server/call-7/chain-a/00000005.jsonl',
    ]);
    const seals = [...store.objects.values()].map((body) => linesOf(body).at(-1) as AuditSeal);
    expect(seals.map((seal) => [seal.segment, seal.firstSeq, seal.recordHashes.length, seal.final])).toEqual([
      [0, 0, 3, false],
      [1, 3, 2, false],
      [2, 5, 1, true],
    ]);
    const verdict = await verifyAuditTrail(store.list(), key);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.records.map((record) => record.seq)).toEqual([0, 1, 2, 3, 4, 5]);
  });

  it('writes a closing seal of its own when nothing is pending at the end, and refuses records after it', async () => {
    const store = memoryStore();
    const trail = writer(store);
    append(trail, 0);
    await trail.flush();
    await trail.close();
    await trail.close();
    expect([...store.objects.keys()].at(-1)).toBe('audit/mcp-server/call-7/chain-a/00000001.jsonl');
    expect(linesOf([...store.objects.values()].at(-1)!)).toMatchObject([
      { type: 'audit_seal', final: true, firstSeq: 1, recordHashes: [] },
    ]);
    expect(await verifyAuditTrail(store.list(), key)).toMatchObject({ ok: true });
    expect(() => append(trail, 1)).toThrow(/closed/);
  });

  it('detects truncation: the last segment dropped (no closing seal), naming the first missing record', async () => {
    const objects = (await sealedTrail()).list().slice(0, 2);
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      seq: 5,
      reason: expect.stringMatching(/no closing seal after record 4/),
    });
  });

  it('detects truncation inside a segment: trailing records cut and the seal kept', async () => {
    const objects = (await sealedTrail()).list();
    const lines = linesOf(objects[0].body);
    objects[0] = { key: objects[0].key, body: bodyOf([lines[0], lines[3]]) };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      seq: 1,
      reason: expect.stringMatching(/record 1 is missing/),
    });
  });

  it('detects truncation that cut the seal off a segment', async () => {
    const objects = (await sealedTrail()).list();
    objects[2] = { key: objects[2].key, body: bodyOf(linesOf(objects[2].body).slice(0, 1)) };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      seq: 5,
      reason: expect.stringMatching(/does not end with a seal/),
    });
  });

  it('detects a record rewritten and every later record re-hashed, naming the rewritten record', async () => {
    const objects = rewriteAndRehash((await sealedTrail()).list(), 3);
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      seq: 3,
      reason: expect.stringMatching(/record 3 differs from the sealed record/),
    });
  });

  it('detects an edit without re-hashing', async () => {
    const objects = (await sealedTrail()).list();
    const lines = linesOf(objects[1].body);
    lines[1].payload = { index: 'edited' };
    objects[1] = { key: objects[1].key, body: bodyOf(lines) };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      seq: 4,
      reason: expect.stringMatching(/hash does not match/),
    });
  });

  it('detects records reordered within a segment', async () => {
    const objects = (await sealedTrail()).list();
    const lines = linesOf(objects[0].body);
    objects[0] = { key: objects[0].key, body: bodyOf([lines[0], lines[2], lines[1], lines[3]]) };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      seq: 1,
      reason: expect.stringMatching(/expected record 1 here, found record 2/),
    });
  });

  it('detects segments reordered (objects renamed into each other)', async () => {
    const objects = (await sealedTrail()).list();
    const swapped = [
      { key: objects[0].key, body: objects[1].body },
      { key: objects[1].key, body: objects[0].body },
      objects[2],
    ];
    expect(await verifyAuditTrail(swapped, key)).toMatchObject({
      ok: false,
      seq: 0,
      reason: expect.stringMatching(/segment 0 is missing/),
    });
  });

  it('detects a dropped middle segment, naming the first missing record', async () => {
    const objects = (await sealedTrail()).list();
    expect(await verifyAuditTrail([objects[0], objects[2]], key)).toMatchObject({
      ok: false,
      seq: 3,
      segment: 1,
      reason: expect.stringMatching(/segment 1 is missing/),
    });
  });

  it('detects a forged seal: re-made with a key the verifier does not trust, or its fields edited', async () => {
    const objects = rewriteAndRehash((await sealedTrail()).list(), 4);
    const lines = linesOf(objects[1].body);
    const seal = lines.at(-1) as AuditSeal;
    seal.recordHashes = lines.slice(0, -1).map((record: AuditRecord) => record.hash);
    const { createHash } = await import('node:crypto');
    seal.recordsDigest = createHash('sha256').update(seal.recordHashes.join('\n')).digest('hex');
    seal.lastHash = seal.recordHashes.at(-1)!;
    // The forger's own key, claiming to be the trusted one.
    seal.mac = Buffer.from(await otherKey.mac(auditSealMessage(seal))).toString('base64');
    objects[1] = { key: objects[1].key, body: bodyOf([...lines.slice(0, -1), seal]) };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      segment: 1,
      seq: 3,
      reason: expect.stringMatching(/segment 1 has a MAC the trusted key did not make \(forged\); records from 3 on/),
    });

    // A seal made with another key that says so is refused by key id.
    const foreign = (await sealedTrail()).list();
    const store = memoryStore();
    const trail = writer(store, { key: otherKey });
    for (const index of [0, 1, 2, 3, 4, 5]) append(trail, index);
    await trail.close();
    expect(await verifyAuditTrail(store.list(), key)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not the trusted/),
    });
    expect(await verifyAuditTrail(foreign, key)).toMatchObject({ ok: true });
  });

  it('detects a seal whose hash list was swapped for one its MAC does not cover', async () => {
    const objects = (await sealedTrail()).list();
    const lines = linesOf(objects[0].body);
    lines.at(-1).recordHashes = [...lines.at(-1).recordHashes].reverse();
    objects[0] = { key: objects[0].key, body: bodyOf(lines) };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      segment: 0,
      seq: 0,
      reason: expect.stringMatching(/does not cover/),
    });
  });

  it('detects a segment appended after the closing seal', async () => {
    const store = await sealedTrail();
    const objects = store.list();
    objects.push({ key: 'audit/mcp-server/call-7/chain-a/00000006.jsonl', body: objects[2].body });
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/follows the closing seal/),
    });
  });

  it('continues one sealed chain across writers (a worker taking a call over) from the saved position', async () => {
    const store = memoryStore();
    const first = writer(store, { actor: 'agent', chainId: undefined });
    append(first, 0);
    append(first, 1);
    await first.flush();
    const second = writer(store, { actor: 'agent', chainId: undefined, resume: first.position });
    append(second, 2);
    await second.close();
    expect(await verifyAuditTrail(store.list(), key)).toMatchObject({
      ok: true,
      records: [{ seq: 0 }, { seq: 1 }, { seq: 2 }],
    });
  });

  it('names the records a dead writer never flushed when its successor resumes past them', async () => {
    const store = memoryStore();
    const first = writer(store, { actor: 'agent', chainId: undefined });
    append(first, 0);
    await first.flush();
    append(first, 1); // never flushed: the worker dies
    const second = writer(store, { actor: 'agent', chainId: undefined, resume: first.position });
    append(second, 2);
    await second.close();
    expect(await verifyAuditTrail(store.list(), key)).toMatchObject({
      ok: false,
      seq: 1,
      reason: expect.stringMatching(/records 1\.\.1 are missing/),
    });
  });

  it('keeps records pending when a put fails and writes them, sealed once, on the next flush', async () => {
    const store = memoryStore();
    let fail = true;
    const trail = writer(store, {
      put: async (objectKey, body) => {
        if (fail) throw new Error('Service Unavailable');
        await store.put(objectKey, body);
      },
    });
    append(trail, 0);
    await expect(trail.flush()).rejects.toThrow(/Service Unavailable/);
    fail = false;
    append(trail, 1);
    await trail.close();
    expect(await verifyAuditTrail(store.list(), key)).toMatchObject({ ok: true, records: [{ seq: 0 }, { seq: 1 }] });
  });

  describe('a store that refuses overwrites (S3 If-None-Match)', () => {
    /** Refuses a key it holds; `landThenFail` stores the next n puts and then fails them, as a timed-out write. */
    function writeOnceStore() {
      const store = memoryStore();
      const bodies: string[] = [];
      let landThenFail = 0;
      return {
        ...store,
        bodies,
        landThenFail: (count: number) => (landThenFail = count),
        put: async (objectKey: string, body: string, options?: { replace?: boolean }) => {
          bodies.push(body);
          if (store.objects.has(objectKey) && !options?.replace) throw new AuditSegmentExistsError(objectKey);
          await store.put(objectKey, body);
          if (landThenFail > 0) {
            landThenFail -= 1;
            throw new Error('socket hang up');
          }
        },
      };
    }

    it('a segment whose write landed but failed is tried again unchanged and taken as stored, not written twice', async () => {
      const store = writeOnceStore();
      const trail = writer(store);
      append(trail, 0);
      append(trail, 1);
      store.landThenFail(1);
      await expect(trail.flush()).rejects.toThrow(/socket hang up/);
      append(trail, 2);
      await trail.flush();
      await trail.close();
      // The retry sent the very body that landed (records 0-1 and their seal), then record 2 went in a segment of its own.
      expect(store.bodies[1]).toBe(store.bodies[0]);
      expect(store.objects.size).toBe(3);
      const verdict = await verifyAuditTrail(store.list(), key);
      expect(verdict).toMatchObject({ ok: true, records: [{ seq: 0 }, { seq: 1 }, { seq: 2 }] });
      expect(verdict.ok && verdict.seals.map((seal) => seal.recordHashes.length)).toEqual([2, 1, 0]);
    });

    it("another writer's segment at the key refuses this writer: nothing written, its records kept", async () => {
      const store = writeOnceStore();
      const successor = writer(store, { chainId: 'chain-a' });
      append(successor, 0);
      await successor.flush();
      const stored = new Map(store.objects);
      const stale = writer(store, { chainId: 'chain-a' });
      append(stale, 0);
      await expect(stale.flush()).rejects.toBeInstanceOf(AuditChainForkError);
      await expect(stale.flush()).rejects.toBeInstanceOf(AuditChainForkError);
      expect(stale.pendingCount).toBe(1);
      expect(store.objects).toEqual(stored);
    });

    it("replaces an earlier writer's segment when told it may, and goes on from there", async () => {
      const store = writeOnceStore();
      const dead = writer(store);
      append(dead, 0);
      await dead.flush();
      const saved = dead.position;
      append(dead, 1); // stored after the position it saved
      await dead.flush();
      const asked: string[] = [];
      const successor = writer(store, {
        resume: saved,
        replaceExisting: async (objectKey) => {
          asked.push(objectKey);
          return true;
        },
      });
      append(successor, 1);
      store.landThenFail(1); // the replacing write's answer is lost: it is tried again as a replacement
      await expect(successor.flush()).rejects.toThrow(/socket hang up/);
      await successor.close();
      expect(asked).toHaveLength(1);
      const verdict = await verifyAuditTrail(store.list(), key);
      expect(verdict).toMatchObject({ ok: true, records: [{ seq: 0 }, { seq: 1 }] });
      expect(verdict.records[1].hash).toBe(successor.position.prevHash);
    });

    it('a position saved after sealing lets a successor go on after a segment its dead writer stored late', async () => {
      const store = writeOnceStore();
      const dead = writer(store);
      append(dead, 0);
      await dead.flush();
      append(dead, 1);
      await dead.seal();
      const saved = dead.position; // saved before the put, as the agent does before each flush writes
      expect(saved.segment).toBe(2);
      await dead.flush(); // stored; the writer dies before saving again
      const successor = writer(store, { resume: saved });
      append(successor, 2);
      await successor.close();
      expect(await verifyAuditTrail(store.list(), key)).toMatchObject({
        ok: true,
        records: [{ seq: 0 }, { seq: 1 }, { seq: 2 }],
      });
    });

    it('a segment sealed and saved but never stored is named missing, not given again', async () => {
      const store = writeOnceStore();
      const dead = writer(store);
      append(dead, 0);
      await dead.flush();
      append(dead, 1);
      await dead.seal();
      const saved = dead.position; // the writer dies before its put
      const successor = writer(store, { resume: saved });
      append(successor, 2);
      await successor.close();
      expect(await verifyAuditTrail(store.list(), key)).toMatchObject({
        ok: false,
        reason: expect.stringMatching(/segment 1 is missing/),
      });
    });

    it('a closing seal whose write failed is written on the next close, once', async () => {
      const store = writeOnceStore();
      const trail = writer(store);
      append(trail, 0);
      store.landThenFail(1);
      await expect(trail.close()).rejects.toThrow(/socket hang up/);
      await trail.close();
      await trail.close();
      expect(store.objects.size).toBe(1);
      expect(await verifyAuditTrail(store.list(), key)).toMatchObject({ ok: true, records: [{ seq: 0 }] });
    });
  });

  it('reports an empty trail as a failure, not OK', async () => {
    expect(await verifyAuditTrail([], key)).toMatchObject({ ok: false, reason: 'no audit segments found' });
  });
});

describe('inputs that name paths or hide text', () => {
  it('refuses "." and ".." as call ids (they are path segments) and keeps ordinary dotted ids', () => {
    expect(callIdSchema.safeParse('..').success).toBe(false);
    expect(callIdSchema.safeParse('.').success).toBe(false);
    expect(callIdSchema.safeParse('../x').success).toBe(false);
    expect(callIdSchema.safeParse('...').success).toBe(true);
    expect(callIdSchema.safeParse('room.2026-11-30').success).toBe(true);
  });

  it('refuses control, bidi-override and lone-surrogate characters in stored text and normalises the rest to NFC', () => {
    const schema = z.object({ name: storedText(z.string()) });
    for (const bad of [
      'a\u0000b',
      '\u001b[31mred',
      'abc\u202eevil',
      'x\u2066y',
      'lone \ud800 high',
      'lone \udc00 low',
      '\u0085',
    ]) {
      const result = schema.safeParse({ name: bad });
      expect(result.success, JSON.stringify(bad)).toBe(false);
      expect(result.error?.issues[0]).toMatchObject({ path: ['name'] });
    }
    expect(schema.parse({ name: 'Cafe\u0301 \ud83d\ude00\tline\nnext' }).name).toBe(
      'Caf\u00e9 \ud83d\ude00\tline\nnext',
    );
  });

  it('keeps a "__proto__" key in canonical JSON instead of losing it', () => {
    const value = JSON.parse('{"b":1,"__proto__":{"polluted":true}}');
    expect(canonicalJson(value)).toBe('{"__proto__":{"polluted":true},"b":1}');
    expect(({} as { polluted?: boolean }).polluted).toBeUndefined();
  });

  it('seals and verifies a record whose payload has a "__proto__" key (as a model may send), keeping the key', async () => {
    const store = memoryStore();
    const trail = writer(store, { actor: 'agent', chainId: undefined });
    const payload = JSON.parse('{"arguments":{"fields":{"__proto__":{"full_name":"x"},"topic":"billing"}}}');
    trail.append({
      at: new Date(0).toISOString(),
      kind: 'tool_call',
      subject: 'save_intake_progress',
      payload,
      redacted: false,
    });
    await trail.close();
    const verdict = await verifyAuditTrail(store.list(), key);
    expect(verdict).toMatchObject({ ok: true });
    expect(JSON.stringify(verdict.records[0].payload)).toContain('"__proto__":{"full_name":"x"}');
    expect(verifyAuditChain(verdict.records)).toEqual({ ok: true, count: 1 });
    const chained = new AuditChain().seal({ ...verdict.records[0], chainId: undefined });
    const { hash, ...content } = chained;
    expect(hashAuditRecord(content)).toBe(hash);
  });
});
