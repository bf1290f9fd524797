/**
 * Identity proof attempts against a case store with network latency (as DynamoDB has), in process: the limit holds
 * for attempts made at once, and across the MCP sessions of one call.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type AttestationLevel, type IntakeCase, SCHEMA_VERSION } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CallerProofs } from '../src/caller-proofs';
import { type InProcessServer, startInProcess, withLatency } from './support/in-process';
import { connectClient, type ToolResult } from './support/server-process';

const CALLER = '+14155550177';
const NAME = 'Katherine Johnson';
const CASE_ID = 'C-AAAAAAAAAAAA';
const MAX_ATTEMPTS = 2;

let server: InProcessServer;
const clients: Client[] = [];

async function sessionFor(callId: string, attestation: AttestationLevel = 'none'): Promise<Client> {
  const client = await connectClient(server.url, { session: { callId, callerNumber: CALLER, attestation } });
  clients.push(client);
  return client;
}

const verify = async (client: Client, fullName: string, caseId = CASE_ID) =>
  (await client.callTool({ name: 'verify_caller', arguments: { caseId, fullName } })) as ToolResult;

function earlierCase(overrides: Partial<IntakeCase>): IntakeCase {
  const at = new Date().toISOString();
  return {
    schemaVersion: SCHEMA_VERSION,
    caseId: CASE_ID,
    callId: 'call-earlier',
    callerNumber: CALLER,
    intakeType: 'general_inquiry',
    fields: { full_name: NAME, topic: 'billing', details: 'Charged twice.' },
    status: 'submitted',
    createdAt: at,
    updatedAt: at,
    submittedAt: at,
    source: 'voice',
    callerTrust: 'attested',
    ...overrides,
  };
}

beforeAll(async () => {
  server = await startInProcess({
    callerTrust: { revealCasesAt: 'A', tools: {}, maxProofAttempts: MAX_ATTEMPTS },
    cases: (embedded) => withLatency(embedded, 40),
  });
  await server.cases.submit(earlierCase({}));
});

afterAll(async () => {
  for (const client of clients) await client.close().catch(() => undefined);
  await server?.stop();
});

describe('verify_caller attempts', () => {
  it('answers no more wrong guesses than allowed when they arrive at once', async () => {
    const client = await sessionFor('call-burst');
    const results = await Promise.all(Array.from({ length: 10 }, (_, index) => verify(client, `Wrong Name ${index}`)));
    const checked = results.filter((result) => !result.isError);
    expect(checked).toHaveLength(MAX_ATTEMPTS);
    for (const result of checked) expect(result.structuredContent).toMatchObject({ verified: false });
    for (const result of results.filter((each) => each.isError))
      expect(result.content[0].text).toMatch(/Too many attempts/);
    // Spent: even the right answer is refused now.
    expect((await verify(client, NAME)).isError).toBe(true);
  });
});

describe('cases that do not vouch for their number', () => {
  it('does not take a case stored without callerTrust, or a draft of another call, as proof', async () => {
    const { callerTrust: _dropped, ...legacy } = earlierCase({ caseId: 'C-BBBBBBBBBBBB', callId: 'call-legacy' });
    await server.cases.submit(legacy);
    await server.cases.saveDraft(earlierCase({ caseId: 'C-CCCCCCCCCCCC', callId: 'call-drafted', status: 'draft' }));
    const client = await sessionFor('call-after-legacy');
    expect((await verify(client, NAME, 'C-BBBBBBBBBBBB')).structuredContent).toMatchObject({ verified: false });
    expect((await verify(client, NAME, 'C-CCCCCCCCCCCC')).structuredContent).toMatchObject({ verified: false });
  });
});

describe('a call with several MCP sessions', () => {
  it('gets no fresh attempts from a new MCP session', async () => {
    const first = await sessionFor('call-reconnects');
    for (const guess of ['Wrong One', 'Wrong Two'])
      expect((await verify(first, guess)).structuredContent).toMatchObject({ verified: false });
    const second = await sessionFor('call-reconnects');
    const refused = await verify(second, 'Wrong Three');
    expect(refused.isError).toBe(true);
    expect(refused.content[0].text).toMatch(/Too many attempts/);
  });

  it('keeps a proof for the call when the agent opens a new MCP session', async () => {
    const first = await sessionFor('call-proves-once');
    expect((await verify(first, NAME)).structuredContent).toEqual({ verified: true, attemptsLeft: MAX_ATTEMPTS });
    const second = await sessionFor('call-proves-once');
    const lookup = (await second.callTool({ name: 'lookup_caller', arguments: {} })) as ToolResult;
    expect(lookup.structuredContent).toMatchObject({ verified: true, name: NAME });
    // Another call from the same number proves on its own.
    const other = (await (
      await sessionFor('call-other')
    ).callTool({
      name: 'lookup_caller',
      arguments: {},
    })) as ToolResult;
    expect(other.structuredContent).toMatchObject({ verified: false });
  });
});

describe('CallerProofs', () => {
  it('forgets a call after its time to live, and keeps no more calls than its bound', () => {
    let clock = 0;
    const proofs = new CallerProofs({ ttlMs: 1_000, maxEntries: 3, now: () => clock });
    expect(proofs.reserveAttempt('call-1|+1', 1)).toBe(true);
    expect(proofs.reserveAttempt('call-1|+1', 1)).toBe(false);
    proofs.markProven('call-2|+1');
    clock = 999;
    expect(proofs.attempts('call-1|+1')).toBe(1);
    expect(proofs.isProven('call-2|+1')).toBe(true);
    clock = 1_000;
    expect(proofs.size).toBe(0);
    expect(proofs.reserveAttempt('call-1|+1', 1)).toBe(true);

    for (let index = 0; index < 10; index += 1) proofs.markProven(`call-many-${index}|+1`);
    expect(proofs.size).toBe(3);
    // The least recently changed went first.
    expect(proofs.isProven('call-many-9|+1')).toBe(true);
    expect(proofs.isProven('call-many-6|+1')).toBe(false);
  });
});
