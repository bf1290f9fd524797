/**
 * The caller trust policy, enforced by the real server process over Streamable HTTP: what lookup_caller reveals at
 * each attestation level, identity proof by verify_caller (checked against the case store, attempts bounded), and
 * tools gated by level. The level comes only from the signed session header.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { AttestationLevel, CallerTrust } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectClient, type RunningServer, startServer, type ToolResult } from './support/server-process';

const CALLER = '+14155550177';
const NAME = 'Katherine Johnson';
/** Requests a callback only at B or above; transfers only after proof; knowledge at C or above. */
const POLICY: CallerTrust = {
  revealCasesAt: 'A',
  tools: { schedule_callback: 'B', request_human_transfer: 'never', search_knowledge: 'C' },
  maxProofAttempts: 2,
};

const dataDir = mkdtempSync(join(tmpdir(), 'mcp-trust-'));
let server: RunningServer;
let caseId: string;
const clients: Client[] = [];
let calls = 0;

async function session(attestation: AttestationLevel | undefined, callerNumber = CALLER): Promise<Client> {
  return sessionFor(`call-trust-${++calls}`, attestation, callerNumber);
}

async function sessionFor(
  callId: string,
  attestation: AttestationLevel | undefined,
  callerNumber = CALLER,
): Promise<Client> {
  const binding = { callId, callerNumber, ...(attestation ? { attestation } : {}) };
  const client = await connectClient(server.url, { session: binding });
  clients.push(client);
  return client;
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: args })) as ToolResult;
}

const text = (result: ToolResult) => result.content.map((block) => block.text).join('\n');

beforeAll(async () => {
  server = await startServer({ DATA_DIR: dataDir, CALLER_TRUST: JSON.stringify(POLICY) });
  // The caller's earlier call left a case.
  const earlier = await session('A');
  const fields = { full_name: NAME, topic: 'billing', details: 'Charged twice this month.' };
  const submitted = await call(earlier, 'submit_intake', { intakeType: 'general_inquiry', fields });
  expect(submitted.isError, text(submitted)).toBeFalsy();
  caseId = submitted.structuredContent!.caseId;
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await server?.stop();
  rmSync(dataDir, { recursive: true, force: true });
});

describe('lookup_caller by attestation level', () => {
  it('tells the name and open cases at A only', async () => {
    const attested = await call(await session('A'), 'lookup_caller');
    expect(attested.structuredContent).toMatchObject({ known: true, name: NAME, verified: true });
    expect(attested.structuredContent!.openCases.map((c: { caseId: string }) => c.caseId)).toEqual([caseId]);
  });

  it('below A (and with no level at all) tells only that a record exists', async () => {
    for (const level of ['B', 'C', 'none', 'failed', undefined] as const) {
      const result = await call(await session(level), 'lookup_caller');
      expect(result.structuredContent, String(level)).toEqual({
        phoneNumber: CALLER,
        known: true,
        openCases: [],
        verified: false,
      });
      expect(text(result), String(level)).not.toContain(NAME);
      expect(text(result), String(level)).not.toContain(caseId);
      expect(text(result), String(level)).toMatch(/verify_caller/);
    }
  });
});

describe('identity proof', () => {
  it('reveals the cases once the case number and the full name on it match', async () => {
    const client = await session('C');
    const proof = await call(client, 'verify_caller', {
      caseId: caseId.toLowerCase(),
      fullName: `  katherine   JOHNSON `,
    });
    expect(proof.structuredContent).toEqual({ verified: true, attemptsLeft: 2 });
    const result = await call(client, 'lookup_caller');
    expect(result.structuredContent).toMatchObject({ known: true, name: NAME, verified: true });
  });

  it("refuses a wrong name, a wrong case, another caller's case, and stops after the attempts allowed", async () => {
    const client = await session('none');
    const wrongName = await call(client, 'verify_caller', { caseId, fullName: 'Dorothy Vaughan' });
    expect(wrongName.structuredContent).toEqual({ verified: false, attemptsLeft: 1 });
    expect(text(wrongName)).not.toMatch(/name|case number/i);
    const wrongCase = await call(client, 'verify_caller', { caseId: 'C-000000000000', fullName: NAME });
    expect(wrongCase.structuredContent).toEqual({ verified: false, attemptsLeft: 0 });
    // Now even the right answer is refused on this call.
    const blocked = await call(client, 'verify_caller', { caseId, fullName: NAME });
    expect(blocked.isError).toBe(true);
    expect(text(blocked)).toMatch(/Too many attempts/);
    expect((await call(client, 'lookup_caller')).structuredContent).toMatchObject({ verified: false, openCases: [] });

    // The case and name are right, but the number this call comes from is someone else's.
    const other = await session('none', '+14155550188');
    expect((await call(other, 'verify_caller', { caseId, fullName: NAME })).structuredContent).toMatchObject({
      verified: false,
    });
    expect((await call(other, 'lookup_caller')).structuredContent).toMatchObject({ known: false, verified: false });

    const anonymous = await call(await session('A', 'anonymous'), 'verify_caller', { caseId, fullName: NAME });
    expect(anonymous.isError).toBe(true);
  });
});

describe('tools gated by level', () => {
  const inDays = (days: number) => new Date(Date.now() + days * 86_400_000).toISOString();
  const callback = { windowStart: inDays(2), windowEnd: inDays(2.1), reason: 'follow up' };

  it('runs a B tool at A and B, refuses it below, and runs it after proof', async () => {
    for (const level of ['A', 'B'] as const) {
      const result = await call(await session(level), 'schedule_callback', callback);
      expect(result.isError, `${level}: ${text(result)}`).toBeFalsy();
    }
    for (const level of ['C', 'none', 'failed'] as const) {
      const result = await call(await session(level), 'schedule_callback', callback);
      expect(result.isError, level).toBe(true);
      expect(text(result), level).toMatch(/not verified enough for schedule_callback \(attestation /);
    }
    const proven = await session('C');
    await call(proven, 'verify_caller', { caseId, fullName: NAME });
    const result = await call(proven, 'schedule_callback', callback);
    expect(result.isError, text(result)).toBeFalsy();
  });

  it('runs a "never" tool only after proof, whatever the level', async () => {
    const attested = await call(await session('A'), 'request_human_transfer', { reason: 'wants a person' });
    expect(attested.isError).toBe(true);
    const proven = await session('A');
    await call(proven, 'verify_caller', { caseId, fullName: NAME });
    const result = await call(proven, 'request_human_transfer', { reason: 'wants a person' });
    expect(result.isError, text(result)).toBeFalsy();
  });

  it('refuses a gated tool without a valid session binding, as attestation none', async () => {
    const search = { query: 'opening hours', limit: 1 };
    const unbound = await connectClient(server.url);
    const forged = await connectClient(server.url, {
      session: { callId: 'call-forged', callerNumber: CALLER, attestation: 'A' },
      secret: 'not-the-session-secret-0123456789',
    });
    clients.push(unbound, forged);
    for (const [label, client] of [
      ['no header', unbound],
      ['forged header', forged],
    ] as const) {
      const result = await call(client, 'search_knowledge', search);
      expect(result.isError, label).toBe(true);
      expect(text(result), label).toMatch(/not verified enough for search_knowledge \(attestation none: no valid /);
    }
    const attested = await call(await session('C'), 'search_knowledge', search);
    expect(attested.isError, text(attested)).toBeFalsy();
  });

  it('leaves unlisted tools ungated', async () => {
    const result = await call(await session('failed'), 'get_intake_form', {});
    expect(result.isError, text(result)).toBeFalsy();
  });
});

describe('a spoofed number', () => {
  const PLANTED = 'Mallory Attacker';
  const plantedFields = { full_name: PLANTED, topic: 'billing', details: 'Please read me my cases.' };
  /** How far each stored case's number was trusted when it was saved, by call id. */
  const trustByCall = () =>
    Object.fromEntries(
      Object.values(
        JSON.parse(readFileSync(join(dataDir, 'cases.json'), 'utf8')).cases as Record<
          string,
          { callId: string; callerTrust?: string }
        >,
      ).map((stored) => [stored.callId, stored.callerTrust]),
    );

  it("cannot prove the owner's identity with the draft it saved on this call", async () => {
    const spoofer = await sessionFor('call-spoof-draft', 'none');
    const saved = await call(spoofer, 'save_intake_progress', { intakeType: 'general_inquiry', fields: plantedFields });
    expect(saved.isError, text(saved)).toBeFalsy();
    const ownCase = saved.structuredContent!.caseId;
    const proof = await call(spoofer, 'verify_caller', { caseId: ownCase, fullName: PLANTED });
    expect(proof.structuredContent).toMatchObject({ verified: false });
    const lookup = await call(spoofer, 'lookup_caller');
    expect(lookup.structuredContent).toMatchObject({ verified: false, openCases: [] });
    expect(text(lookup)).not.toContain(NAME);
    expect((await call(spoofer, 'request_human_transfer', { reason: 'wants a person' })).isError).toBe(true);
    expect(trustByCall()['call-spoof-draft']).toBe('unverified');
  });

  it('cannot use a case it submitted from the spoofed number on an earlier call', async () => {
    const first = await sessionFor('call-spoof-submit', 'none');
    const submitted = await call(first, 'submit_intake', { intakeType: 'general_inquiry', fields: plantedFields });
    expect(submitted.isError, text(submitted)).toBeFalsy();
    expect(trustByCall()['call-spoof-submit']).toBe('unverified');

    const next = await sessionFor('call-spoof-next', 'none');
    const proof = await call(next, 'verify_caller', { caseId: submitted.structuredContent!.caseId, fullName: PLANTED });
    expect(proof.structuredContent).toMatchObject({ verified: false });
    expect((await call(next, 'lookup_caller')).structuredContent).toMatchObject({ verified: false, openCases: [] });
  });

  it('does not change the name the real owner is greeted with', async () => {
    // The planted cases above are the newest for the number; the owner, fully attested, still hears their own name.
    const owner = await sessionFor('call-owner-returns', 'A');
    const lookup = await call(owner, 'lookup_caller');
    expect(lookup.structuredContent).toMatchObject({ known: true, name: NAME, verified: true });
    expect(text(lookup)).not.toContain(PLANTED);
  });

  it("marks a proven caller's case verified, and it proves the caller on a later call", async () => {
    const proven = await sessionFor('call-proven-files', 'C');
    expect((await call(proven, 'verify_caller', { caseId, fullName: NAME })).structuredContent).toMatchObject({
      verified: true,
    });
    const fields = { full_name: NAME, topic: 'billing', details: 'Still charged twice.' };
    const submitted = await call(proven, 'submit_intake', { intakeType: 'general_inquiry', fields });
    expect(trustByCall()['call-proven-files']).toBe('verified');
    expect(trustByCall()['call-trust-1']).toBe('attested');

    const later = await sessionFor('call-proven-later', 'none');
    const proof = await call(later, 'verify_caller', { caseId: submitted.structuredContent!.caseId, fullName: NAME });
    expect(proof.structuredContent).toMatchObject({ verified: true });
  });
});
