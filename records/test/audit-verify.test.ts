import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { GetObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { type AuditRecord, hashAuditRecord, LocalHmacSealKey } from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DirectorySource, S3Source } from '../src/source';
import { describeVerification, verifyCall } from '../src/verify';
import { SAMPLE_CALL, SAMPLE_SECRET, sampleKey, writeSampleCall } from './support/sample-call';

const WORKSPACE = join(__dirname, '..');
const TSX = join(WORKSPACE, '..', 'node_modules', '.bin', 'tsx');

function runVerify(args: string[], env: Record<string, string> = { AUDIT_SEAL_SECRET: SAMPLE_SECRET }) {
  const result = spawnSync(TSX, [join(WORKSPACE, 'src', 'audit-verify-cli.ts'), ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...env },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return { status: result.status, out: `${result.stdout}${result.stderr}` };
}

/** Rewrites a record of a stored chain and re-hashes it and every later record, as its writer could. */
function rewriteAndRehash(folder: string, seq: number): void {
  let prevHash: string | undefined;
  for (const name of readdirSync(folder).sort()) {
    const lines = readFileSync(join(folder, name), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    for (const line of lines) {
      if (line.type === 'audit_seal') continue;
      const record = line as AuditRecord;
      if (record.seq === seq) record.payload = { arguments: { reason: 'nothing to see', queue: 'front_desk' } };
      if (record.seq >= seq) {
        if (prevHash) record.prevHash = prevHash;
        const { hash: _hash, ...content } = record;
        record.hash = hashAuditRecord(content);
      }
      prevHash = record.hash;
    }
    writeFileSync(join(folder, name), `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
  }
}

describe('npm run audit:verify', () => {
  const root = mkdtempSync(join(tmpdir(), 'audit-verify-'));
  const clean = join(root, 'clean');
  const tampered = join(root, 'tampered');

  beforeAll(async () => {
    await writeSampleCall(clean);
    await writeSampleCall(tampered);
    rewriteAndRehash(join(tampered, 'audit', 'agent', SAMPLE_CALL), 11);
  });

  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('verifies both chains of a call from a folder and says OK', async () => {
    const result = await verifyCall(new DirectorySource(clean), SAMPLE_CALL, sampleKey);
    expect(result.ok).toBe(true);
    expect(result.chains.map((chain) => [chain.name.split('/')[0], chain.records.length])).toEqual([
      ['agent', 24],
      ['mcp-server', 8],
    ]);
    const cli = runVerify(['--call', SAMPLE_CALL, '--dir', clean]);
    expect(cli.status, cli.out).toBe(0);
    expect(cli.out).toMatch(/^OK {3}agent: 24 records, 7 seals, closed$/m);
    expect(cli.out).toMatch(/^OK {3}mcp-server\/6c1e1f0a-[0-9a-f-]+: 8 records, 3 seals, closed$/m);
    expect(cli.out).toMatch(/^OK call call-2026-11-30-0042$/m);
  });

  it('prints the first bad record and why, and exits 1, for a chain rewritten and re-hashed', () => {
    const cli = runVerify(['--call', SAMPLE_CALL, '--dir', tampered]);
    expect(cli.status, cli.out).toBe(1);
    expect(cli.out).toMatch(
      /^FAIL agent: record 11 \(audit\/agent\/call-2026-11-30-0042\/00000008\.jsonl\): record 11 differs from the sealed record \(rewritten and re-hashed\)$/m,
    );
    expect(cli.out).toMatch(/^OK {3}mcp-server\//m);
    expect(cli.out).toMatch(/^FAIL call /m);
  });

  it('fails a call whose chains were sealed with another key, or that has no agent chain', async () => {
    const wrongKey = runVerify(['--call', SAMPLE_CALL, '--dir', clean], {
      AUDIT_SEAL_SECRET: 'a-different-secret-of-enough-length-000',
    });
    expect(wrongKey.status).toBe(1);
    expect(wrongKey.out).toMatch(/not the trusted local:/);
    const nothing = await verifyCall(new DirectorySource(clean), 'call-unknown', sampleKey);
    expect(nothing.ok).toBe(false);
    expect(describeVerification(nothing)).toEqual(['FAIL agent: chain: no agent audit segments found for this call']);
  });

  it('refuses a path-segment call id and a missing key, with exit 2 and the reason', async () => {
    expect(runVerify(['--call', '..', '--dir', clean])).toMatchObject({
      status: 2,
      out: expect.stringMatching(/--call: must not be "\." or "\.\."/),
    });
    expect(runVerify(['--call', SAMPLE_CALL, '--dir', clean], {})).toMatchObject({
      status: 2,
      out: expect.stringMatching(/trusted seal key/),
    });
    await expect(new DirectorySource(clean).get('../../etc/passwd')).rejects.toThrow(/leaves its folder/);
    symlinkSync('/etc/hostname', join(clean, 'linked.json'));
    await expect(new DirectorySource(clean).get('linked.json')).rejects.toThrow(/not a plain file/);
    rmSync(join(clean, 'linked.json'));
  });

  it('reads the same chains from S3 (listing page by page) and verifies them', async () => {
    const s3 = mockClient(S3Client);
    try {
      const local = new DirectorySource(clean);
      const keys = await local.list('audit/');
      s3.on(ListObjectsV2Command).callsFake(async (input) => {
        expect(input.Bucket).toBe('voice-intake-audit');
        const matching = keys.filter((key) => key.startsWith(input.Prefix));
        const start = input.ContinuationToken ? Number(input.ContinuationToken) : 0;
        const page = matching.slice(start, start + 2);
        const more = start + 2 < matching.length;
        return {
          Contents: page.map((Key) => ({ Key })),
          IsTruncated: more,
          NextContinuationToken: more ? String(start + 2) : undefined,
        };
      });
      s3.on(GetObjectCommand).callsFake(async (input) => {
        const body = await local.get(input.Key);
        if (body === undefined) throw Object.assign(new Error('NoSuchKey'), { name: 'NoSuchKey' });
        return { Body: sdkStreamMixin(Readable.from([Buffer.from(body)])) };
      });
      const source = new S3Source(new S3Client({ region: 'us-east-1' }), { audit: 'voice-intake-audit' });
      const result = await verifyCall(source, SAMPLE_CALL, new LocalHmacSealKey(SAMPLE_SECRET));
      expect(result.ok).toBe(true);
      expect(s3.commandCalls(ListObjectsV2Command).length).toBeGreaterThan(3);
    } finally {
      s3.restore();
    }
  });
});
