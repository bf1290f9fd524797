/**
 * Identity proof attempts against a case store with network latency (as DynamoDB has), in process: the limit holds
 * for attempts made at once, and across the MCP sessions of one call.
 */
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type AttestationLevel, type IntakeCase, SCHEMA_VERSION } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type InProcessServer, startInProcess, withLatency } from './support/in-process';
import { connectClient } from './support/server-process';

type ToolResult = {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, any>;
};

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
