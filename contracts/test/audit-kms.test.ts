import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { CreateKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  type AuditSegmentObject,
  AuditTrailWriter,
  auditSealMessage,
  LocalHmacSealKey,
  verifyAuditTrail,
} from '../src';
import { KmsSealKey } from '../src/audit-kms';

/** moto in server mode (`.venv/bin/moto_server`, from `pip install 'moto[server]'`) stands in for KMS on loopback. */
const MOTO = join(__dirname, '..', '..', '.venv', 'bin', 'moto_server');

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

describe('audit seals made and checked by KMS (moto server)', () => {
  let moto: ChildProcess | undefined;
  let kms: KMSClient;
  let sealKeyArn: string;
  let otherKeyArn: string;

  beforeAll(async () => {
    if (!existsSync(MOTO))
      throw new Error(`${MOTO} missing: python3 -m venv .venv && .venv/bin/pip install 'moto[server]'`);
    const port = await freePort();
    moto = spawn(MOTO, ['-H', '127.0.0.1', '-p', String(port)], { stdio: 'ignore', detached: true });
    const endpoint = `http://127.0.0.1:${port}`;
    const deadline = Date.now() + 60_000;
    for (;;) {
      const up = await fetch(`${endpoint}/moto-api/`).then(
        (response) => response.ok,
        () => false,
      );
      if (up) break;
      if (Date.now() > deadline) throw new Error('moto server did not start');
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    kms = new KMSClient({
      endpoint,
      region: 'us-east-1',
      credentials: { accessKeyId: 'test', secretAccessKey: 'test' },
    });
    const create = () => kms.send(new CreateKeyCommand({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' }));
    sealKeyArn = (await create()).KeyMetadata!.Arn!;
    otherKeyArn = (await create()).KeyMetadata!.Arn!;
  });

  afterAll(() => {
    if (moto?.pid) {
      try {
        process.kill(-moto.pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
  });

  async function sealedTrail(key: KmsSealKey | LocalHmacSealKey): Promise<AuditSegmentObject[]> {
    const objects: AuditSegmentObject[] = [];
    const trail = new AuditTrailWriter({
      actor: 'agent',
      callId: 'call-kms',
      key,
      put: async (objectKey, body) => void objects.push({ key: objectKey, body }),
    });
    for (const index of [0, 1, 2]) {
      trail.append({
        at: new Date(Date.UTC(2026, 10, 30, 12, 0, index)).toISOString(),
        kind: 'tool_call',
        payload: { index },
        redacted: false,
      });
      if (index === 1) await trail.flush();
    }
    await trail.close();
    return objects;
  }

  it('seals with GenerateMac and verifies with VerifyMac, naming the key ARN in each seal', async () => {
    const key = new KmsSealKey(kms, sealKeyArn);
    const objects = await sealedTrail(key);
    expect(objects.map((object) => JSON.parse(object.body.trim().split('\n').at(-1)!).keyId)).toEqual([
      sealKeyArn,
      sealKeyArn,
    ]);
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: true,
      records: [{ seq: 0 }, { seq: 1 }, { seq: 2 }],
    });
  });

  it('answers a MAC that KMS did not make with false, not an error, so a forged seal is reported', async () => {
    const key = new KmsSealKey(kms, sealKeyArn);
    const message = new TextEncoder().encode('a seal message');
    const genuine = await key.mac(message);
    expect(await key.verify(message, genuine)).toBe(true);
    expect(await key.verify(message, new Uint8Array(genuine.length))).toBe(false);

    const objects = await sealedTrail(key);
    const lines = objects[1].body
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    const seal = lines.at(-1);
    seal.final = false; // pretend the chain goes on; re-MAC with a key the writer made up
    seal.mac = Buffer.from(
      await new LocalHmacSealKey('a-writer-made-up-this-secret-0123456789').mac(auditSealMessage(seal)),
    ).toString('base64');
    objects[1] = { key: objects[1].key, body: `${lines.map((line) => JSON.stringify(line)).join('\n')}\n` };
    expect(await verifyAuditTrail(objects, key)).toMatchObject({
      ok: false,
      segment: 1,
      reason: expect.stringMatching(/forged/),
    });
  });

  it('refuses seals made with another KMS key, whatever they claim', async () => {
    const objects = await sealedTrail(new KmsSealKey(kms, otherKeyArn));
    expect(await verifyAuditTrail(objects, new KmsSealKey(kms, sealKeyArn))).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/not the trusted arn:aws:kms:/),
    });
  });
});
