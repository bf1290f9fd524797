import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { MCP_TOOL_NAMES, verifyAuditTrail } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localChains, testSealKey, waitForSealedChains } from './support/audit-files';
import { closeServer, listenOnLoopback } from './support/local-http';
import { connectClient, type RunningServer, startServer, TEST_TOKEN, type ToolResult } from './support/server-process';

const CALLER = '+14155550123';
const RESTART_BINDING = { callId: 'call-restart', callerNumber: '+13125550100', attestation: 'A' as const };
const dataDir = mkdtempSync(join(tmpdir(), 'mcp-data-'));

/** A stand-in for the enterprise backend: fails the first `failures` requests, records what it received. */
function backendStandIn(failures: number) {
  const received: { idempotencyKey: string; body: any }[] = [];
  let remaining = failures;
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    received.push({ idempotencyKey: String(req.headers['idempotency-key']), body: JSON.parse(body) });
    if (remaining > 0) {
      remaining -= 1;
      res.writeHead(503).end('busy');
      return;
    }
    res.writeHead(201, { 'content-type': 'application/json' }).end('{"ok":true}');
  });
  return {
    received,
    start: async () => `${await listenOnLoopback(server)}/cases`,
    stop: () => closeServer(server),
  };
}

/** The JSON details block a tool error carries after its message. */
function detailsOf(result: ToolResult): Record<string, any> {
  expect(result.isError).toBe(true);
  return JSON.parse(result.content[1].text);
}

async function call(client: Client, name: string, args: Record<string, unknown> = {}): Promise<ToolResult> {
  return (await client.callTool({ name, arguments: args })) as ToolResult;
}

describe('MCP server over Streamable HTTP', () => {
  let server: RunningServer;
  let backend: ReturnType<typeof backendStandIn>;
  let caller: Client;

  beforeAll(async () => {
    backend = backendStandIn(2);
    const backendUrl = await backend.start();
    server = await startServer({
      DATA_DIR: dataDir,
      BACKEND_URL: backendUrl,
      BACKEND_RETRY_BASE_MS: '5',
      MCP_MAX_BODY_BYTES: '8192',
    });
    // Full attestation: the default trust policy reveals this caller's own cases.
    const binding = { callId: 'call-100', callerNumber: CALLER, attestation: 'A' as const };
    caller = await connectClient(server.url, { session: binding });
  });

  afterAll(async () => {
    await caller?.close();
    await server?.stop();
    await backend?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('lists the intake tools with their input schemas', async () => {
    const { tools } = await caller.listTools();
    expect(tools.map((tool) => tool.name).sort()).toEqual(
      [
        'get_intake_form',
        'lookup_caller',
        'request_human_transfer',
        'save_intake_progress',
        'schedule_callback',
        'search_knowledge',
        'submit_intake',
        'verify_caller',
      ].sort(),
    );
    // The names the config may gate are exactly the tools the server offers.
    expect(tools.map((tool) => tool.name).sort()).toEqual([...MCP_TOOL_NAMES].sort());
    const submit = tools.find((tool) => tool.name === 'submit_intake')!;
    expect(submit.inputSchema.required).toEqual(['intakeType']);
    expect(submit.description).toMatch(/never creates a duplicate/);
    expect(tools.find((tool) => tool.name === 'lookup_caller')!.outputSchema).toBeDefined();
  });

  it('answers health checks without a token', async () => {
    const response = await fetch(`${server.url}/healthz`);
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('refuses a missing or wrong bearer token with 401 and runs nothing', async () => {
    const initialize = {
      jsonrpc: '2.0',
      id: 1,
      method: 'initialize',
      params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } },
    };
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    const missing = await fetch(`${server.url}/mcp`, { method: 'POST', headers, body: JSON.stringify(initialize) });
    expect(missing.status).toBe(401);
    expect(missing.headers.get('www-authenticate')).toMatch(/^Bearer/);
    const wrong = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers: { ...headers, authorization: 'Bearer not-the-token-at-all!' },
      body: JSON.stringify(initialize),
    });
    expect(wrong.status).toBe(401);
    await expect(connectClient(server.url, { token: 'wrong-token-wrong-token' })).rejects.toThrow();
    const toolCall = {
      jsonrpc: '2.0',
      id: 2,
      method: 'tools/call',
      params: { name: 'request_human_transfer', arguments: { reason: 'sneaky' } },
    };
    const unauthenticatedCall = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers,
      body: JSON.stringify(toolCall),
    });
    expect(unauthenticatedCall.status).toBe(401);
    expect(existsSync(join(dataDir, 'cases.json'))).toBe(false);
    expect(existsSync(join(dataDir, 'audit'))).toBe(false);
  });

  it('refuses an oversized request with 413', async () => {
    const response = await fetch(`${server.url}/mcp`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        accept: 'application/json, text/event-stream',
        authorization: `Bearer ${TEST_TOKEN}`,
      },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { padding: 'x'.repeat(20_000) } }),
    });
    expect(response.status).toBe(413);
  });

  it('looks up a new caller by the number bound to the session', async () => {
    const result = await call(caller, 'lookup_caller');
    expect(result.isError).toBeFalsy();
    expect(result.structuredContent).toEqual({ phoneNumber: CALLER, known: false, openCases: [], verified: true });
  });

  it("refuses to look up another person's number", async () => {
    const result = await call(caller, 'lookup_caller', { phoneNumber: '+14155550999' });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toMatch(/only look up the number this call comes from/);
  });

  it('rejects a malformed phone number with the field named', async () => {
    const result = await call(caller, 'lookup_caller', { phoneNumber: '555-0123' });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain('phoneNumber');
    expect(result.content[0].text).toContain('E.164');
  });

  it('refuses caller tools without a signed session binding', async () => {
    const unbound = await connectClient(server.url);
    try {
      const result = await call(unbound, 'lookup_caller');
      expect(result.isError).toBe(true);
      expect(result.content[0].text).toMatch(/x-voice-intake-session: missing/);
      const forged = await connectClient(server.url, {
        session: { callId: 'call-x', callerNumber: CALLER },
        secret: 'attacker-secret-0000',
      });
      expect((await call(forged, 'lookup_caller')).content[0].text).toMatch(/bad signature/);
      await forged.close();
    } finally {
      await unbound.close();
    }
  });

  it('serves intake forms from configuration', async () => {
    const byDefault = await call(caller, 'get_intake_form');
    expect(byDefault.structuredContent).toMatchObject({
      intakeType: 'general_inquiry',
      availableTypes: ['general_inquiry', 'property_damage'],
    });
    const damage = await call(caller, 'get_intake_form', { intakeType: 'property_damage' });
    const fields = damage.structuredContent!.fields as { name: string; required: boolean; allowedValues?: string[] }[];
    expect(fields.find((field) => field.name === 'damage_type')).toMatchObject({
      required: true,
      allowedValues: ['water', 'fire', 'storm', 'theft', 'other'],
    });
    const unknown = await call(caller, 'get_intake_form', { intakeType: 'spaceship' });
    expect(unknown.isError).toBe(true);
    expect(unknown.content[0].text).toMatch(
      /unknown intake type "spaceship"; known types: general_inquiry, property_damage/,
    );
  });

  it('saves valid progress and returns precise field errors for the rest', async () => {
    const result = await call(caller, 'save_intake_progress', {
      intakeType: 'property_damage',
      fields: { full_name: 'Ada Lovelace', incident_date: '24th of November', damage_type: 'flood', shoe_size: '9' },
    });
    expect(result.isError).toBeFalsy();
    const { savedFields, fieldErrors, missingRequired } = result.structuredContent!;
    expect(savedFields).toEqual(['full_name']);
    expect(fieldErrors).toEqual(
      expect.arrayContaining([
        { field: 'incident_date', message: 'must be a valid date (YYYY-MM-DD)' },
        { field: 'damage_type', message: 'must be one of: water, fire, storm, theft, other' },
        { field: 'shoe_size', message: 'is not a field of this form' },
      ]),
    );
    expect(missingRequired).toEqual([
      'property_address',
      'incident_date',
      'damage_type',
      'anyone_injured',
      'description',
    ]);
  });

  it('refuses to submit an incomplete intake, naming what is missing', async () => {
    const result = await call(caller, 'submit_intake', {
      intakeType: 'property_damage',
      fields: { damage_type: 'water' },
    });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toContain('property_address is required');
    expect(detailsOf(result).fieldErrors).toEqual(
      expect.arrayContaining([{ field: 'anyone_injured', message: 'is required' }]),
    );
  });

  it('submits once: a second submit returns the same case, and the backend got it through its retries', async () => {
    const fields = {
      property_address: '12 Analytical Row, London',
      incident_date: '2026-11-23',
      damage_type: 'water',
      anyone_injured: 'no',
      description: 'A pipe burst under the kitchen sink overnight.',
    };
    const first = await call(caller, 'submit_intake', { intakeType: 'property_damage', fields });
    expect(first.isError).toBeFalsy();
    expect(first.structuredContent).toMatchObject({
      status: 'forwarded',
      alreadySubmitted: false,
      forwarded: 'delivered',
    });
    const caseId = first.structuredContent!.caseId as string;
    const second = await call(caller, 'submit_intake', { intakeType: 'property_damage', fields });
    expect(second.structuredContent).toMatchObject({
      caseId,
      status: 'forwarded',
      alreadySubmitted: true,
      forwarded: 'delivered',
    });

    const stored = Object.values(JSON.parse(readFileSync(join(dataDir, 'cases.json'), 'utf8')).cases) as {
      caseId: string;
      status: string;
      forwardedAt?: string;
      fields: Record<string, string>;
    }[];
    expect(stored).toHaveLength(1);
    expect(stored[0].fields.full_name).toBe('Ada Lovelace');
    expect(stored[0]).toMatchObject({ status: 'forwarded', forwardedAt: expect.any(String) });
    // Two 503s, then accepted: three deliveries of the same case, each with the case id as idempotency key.
    expect(backend.received).toHaveLength(3);
    expect(new Set(backend.received.map((request) => request.idempotencyKey))).toEqual(new Set([caseId]));
    expect(backend.received[2].body).toMatchObject({ caseId, status: 'submitted', callerNumber: CALLER });

    const saveAfter = await call(caller, 'save_intake_progress', {
      intakeType: 'property_damage',
      fields: { full_name: 'Someone Else' },
    });
    expect(saveAfter.isError).toBe(true);
    expect(saveAfter.content[0].text).toContain(`already submitted as case ${caseId}`);
  });

  it('knows the caller on their next call, not from the case of this one', async () => {
    // This call's own case says nothing about who the caller is: anyone can file one from a number.
    expect((await call(caller, 'lookup_caller')).structuredContent).toMatchObject({ known: false, openCases: [] });
    const nextCall = await connectClient(server.url, {
      session: { callId: 'call-101', callerNumber: CALLER, attestation: 'A' },
    });
    try {
      const result = await call(nextCall, 'lookup_caller');
      expect(result.structuredContent).toMatchObject({
        known: true,
        name: 'Ada Lovelace',
        openCases: [expect.objectContaining({ intakeType: 'property_damage', status: 'forwarded' })],
      });
    } finally {
      await nextCall.close();
    }
  });

  it('finds knowledge passages with source ids', async () => {
    const result = await call(caller, 'search_knowledge', { query: 'how long does a water damage claim take' });
    const passages = result.structuredContent!.passages as { sourceId: string; text: string }[];
    expect(passages.length).toBeGreaterThan(0);
    expect(passages[0].sourceId).toMatch(/^claims#\d+$/);
    expect(passages.map((passage) => passage.text).join(' ')).toContain('30 days');
    const tooShort = await call(caller, 'search_knowledge', { query: 'x' });
    expect(tooShort.isError).toBe(true);
    expect(tooShort.content[0].text).toContain('query');
  });

  it('books a callback within a valid window and explains an invalid one', async () => {
    const start = new Date(Date.now() + 24 * 3_600_000);
    const end = new Date(start.getTime() + 2 * 3_600_000);
    const booked = await call(caller, 'schedule_callback', {
      windowStart: start.toISOString(),
      windowEnd: end.toISOString(),
      reason: 'adjuster visit',
    });
    expect(booked.structuredContent).toMatchObject({ callbackId: expect.stringMatching(/^CB-/), callerNumber: CALLER });
    const past = await call(caller, 'schedule_callback', {
      windowStart: '2020-01-01T10:00:00Z',
      windowEnd: '2020-01-01T10:05:00Z',
    });
    expect(past.isError).toBe(true);
    expect(detailsOf(past).fieldErrors).toEqual([
      { field: 'windowStart', message: 'must be in the future' },
      { field: 'windowEnd', message: 'must be at least 15 minutes after windowStart' },
    ]);
    const noOffset = await call(caller, 'schedule_callback', {
      windowStart: 'tomorrow at 3',
      windowEnd: '2026-11-25T16:00:00',
    });
    expect(noOffset.isError).toBe(true);
    expect(noOffset.content[0].text).toContain('windowStart');
  });

  it('picks the transfer target from configuration and records why', async () => {
    const result = await call(caller, 'request_human_transfer', { reason: 'caller asked for a person' });
    expect(result.structuredContent).toEqual({
      queue: 'front_desk',
      target: 'sip:front-desk@pbx.example.com',
      reason: 'caller asked for a person',
    });
    const unknownQueue = await call(caller, 'request_human_transfer', { reason: 'x y z', queue: 'ceo' });
    expect(unknownQueue.isError).toBe(true);
    const stored = JSON.parse(readFileSync(join(dataDir, 'cases.json'), 'utf8'));
    expect(stored.transfers).toEqual([
      expect.objectContaining({ callId: 'call-100', queue: 'front_desk', reason: 'caller asked for a person' }),
    ]);
  });

  it('audits every call and result in a sealed chain, closed when the MCP session ends', async () => {
    // One MCP session: one chain for the call, in its own folder; open until the session ends.
    const [chainId, objects] = [...localChains(dataDir, 'call-100')][0];
    expect(localChains(dataDir, 'call-100').size).toBe(1);
    expect(await verifyAuditTrail(objects, testSealKey)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no closing seal/),
    });
    await (caller.transport as StreamableHTTPClientTransport).terminateSession();
    await waitForSealedChains(dataDir, 'call-100');
    const verdict = await verifyAuditTrail(localChains(dataDir, 'call-100').get(chainId)!, testSealKey);
    expect(verdict.ok).toBe(true);
    const records = verdict.records;
    expect(records.length).toBeGreaterThan(10);
    expect(records.every((record) => record.actor === 'mcp-server' && record.chainId === chainId)).toBe(true);
    expect(records.filter((record) => record.kind === 'tool_call').map((record) => record.subject)).toContain(
      'submit_intake',
    );
    // The refused lookup of another number is on the record, outcome and all.
    const refusedLookup = records.findIndex(
      (record) => record.kind === 'tool_call' && (record.payload as any).arguments.phoneNumber === '+14155550999',
    );
    expect(records[refusedLookup + 1]).toMatchObject({
      kind: 'tool_result',
      payload: { outcome: 'tool_error', isError: true },
    });
  });
});

describe('MCP server restarts', () => {
  it('keeps cases across a restart and still refuses a duplicate submit', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-restart-'));
    const fields = { full_name: 'Grace Hopper', topic: 'billing', details: 'Charged twice this month.' };
    let server = await startServer({ DATA_DIR: dir });
    try {
      let client = await connectClient(server.url, { session: RESTART_BINDING });
      const first = await call(client, 'submit_intake', { intakeType: 'general_inquiry', fields });
      expect(first.structuredContent).toMatchObject({ alreadySubmitted: false, forwarded: 'not_configured' });
      await client.close();
      expect(await server.stop()).toBe(0);

      server = await startServer({ DATA_DIR: dir });
      client = await connectClient(server.url, { session: RESTART_BINDING });
      const again = await call(client, 'submit_intake', { intakeType: 'general_inquiry', fields });
      expect(again.structuredContent).toMatchObject({
        caseId: first.structuredContent!.caseId,
        alreadySubmitted: true,
      });
      await client.close();
      // The caller's next call finds the case the restarted server kept.
      client = await connectClient(server.url, { session: { ...RESTART_BINDING, callId: 'call-restart-next' } });
      expect((await call(client, 'lookup_caller')).structuredContent).toMatchObject({
        known: true,
        name: 'Grace Hopper',
      });
      await client.close();
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('reports a case pending in the store as queued, not delivered, when it is submitted again', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-queued-'));
    // Nothing listens on the discard port: the backend is unreachable and the case stays pending in the store.
    const server = await startServer({
      DATA_DIR: dir,
      BACKEND_URL: 'http://127.0.0.1:9/cases',
      BACKEND_MAX_ATTEMPTS: '1',
    });
    try {
      const client = await connectClient(server.url, {
        session: { callId: 'call-queued', callerNumber: '+13125550102', attestation: 'A' },
      });
      const fields = { full_name: 'Ann Other', topic: 'billing', details: 'Charged twice this month.' };
      const first = await call(client, 'submit_intake', { intakeType: 'general_inquiry', fields });
      expect(first.structuredContent).toMatchObject({ alreadySubmitted: false, forwarded: 'queued' });
      const again = await call(client, 'submit_intake', { intakeType: 'general_inquiry', fields });
      expect(again.structuredContent).toMatchObject({ alreadySubmitted: true, forwarded: 'queued' });
      await client.close();
      // Pending in the case store (which a restart reloads), not in a folder of its own on this disk.
      const file = JSON.parse(readFileSync(join(dir, 'cases.json'), 'utf8'));
      const caseId = first.structuredContent!.caseId as string;
      expect(file.forwarding[caseId]).toMatchObject({ pending: { attempts: 1, lastError: expect.any(String) } });
      expect(existsSync(join(dir, 'dead-letter'))).toBe(false);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('finishes an in-flight call on SIGTERM before exiting', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-drain-'));
    // A backend that takes 1.5 s to answer keeps submit_intake in flight while the server is told to stop.
    let release: () => void = () => undefined;
    const slow = createServer(async (req, res) => {
      for await (const _ of req);
      await new Promise<void>((resolve) => {
        release = resolve;
        setTimeout(resolve, 1_500);
      });
      res.writeHead(201).end('{}');
    });
    const server = await startServer({ DATA_DIR: dir, BACKEND_URL: `${await listenOnLoopback(slow)}/cases` });
    try {
      const client = await connectClient(server.url, {
        session: { callId: 'call-drain', callerNumber: '+13125550101' },
      });
      const inFlight = call(client, 'submit_intake', {
        intakeType: 'general_inquiry',
        fields: { full_name: 'Alan Turing', topic: 'account', details: 'Please update my address.' },
      });
      await new Promise((resolve) => setTimeout(resolve, 300));
      const exit = server.stop('SIGTERM');
      const result = await inFlight;
      expect(result.structuredContent).toMatchObject({ alreadySubmitted: false, forwarded: 'delivered' });
      expect(await exit).toBe(0);
      release();
    } finally {
      await server.stop();
      await closeServer(slow);
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('MCP server with transfer to a person turned off (TRANSFER_TARGETS={})', () => {
  it('offers no transfer tool, and a call to it is refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-no-transfer-'));
    const server = await startServer({ DATA_DIR: dir, TRANSFER_TARGETS: '{}' });
    try {
      const client = await connectClient(server.url, { session: { callId: 'call-no-transfer', callerNumber: CALLER } });
      const { tools } = await client.listTools();
      expect(tools.map((tool) => tool.name)).not.toContain('request_human_transfer');
      expect(tools.map((tool) => tool.name)).toContain('submit_intake');
      const attempt = await call(client, 'request_human_transfer', { reason: 'caller asked for a person' });
      expect(attempt.isError).toBe(true);
      await client.close();
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
