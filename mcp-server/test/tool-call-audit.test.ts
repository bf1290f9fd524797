import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import type { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { issueSessionHeader, MCP_SESSION_HEADER, verifyAuditTrail } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localChains, recordsOf as sealedRecordsOf, testSealKey, waitForSealedChains } from './support/audit-files';
import { connectClient, type RunningServer, startServer, TEST_TOKEN, type ToolResult } from './support/server-process';

/** Records with their payloads as plain objects, for the assertions. */
const recordsOf = (dir: string, callId: string) =>
  sealedRecordsOf(dir, callId) as (ReturnType<typeof sealedRecordsOf>[number] & { payload: any })[];

const CALLER = '+14155550123';
const root = mkdtempSync(join(tmpdir(), 'mcp-hostile-'));
const dataDir = join(root, 'data');

/** A raw JSON-RPC POST on an initialised MCP session (what a client that does not use the SDK can send). */
async function rawPost(url: string, sessionId: string, body: string, callId = 'call-raw'): Promise<Response> {
  return fetch(`${url}/mcp`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/json, text/event-stream',
      authorization: `Bearer ${TEST_TOKEN}`,
      'mcp-session-id': sessionId,
      'mcp-protocol-version': '2025-06-18',
      [MCP_SESSION_HEADER]: issueSessionHeader({ callId, callerNumber: CALLER }, TEST_TOKEN),
    },
    body,
  });
}

/** The JSON-RPC message of a response, whether sent as JSON or as one SSE event. */
async function messageOf(response: Response): Promise<any> {
  const text = await response.text();
  const data = text.split('\n').find((line) => line.startsWith('data: '));
  return JSON.parse(data ? data.slice(6) : text);
}

/** A session header the server's secret signed, carrying a call id the contract refuses (no client would make one). */
function headerWithCallId(callId: string): string {
  const now = Math.floor(Date.now() / 1000);
  const payload = Buffer.from(
    JSON.stringify({ callId, callerNumber: CALLER, issuedAt: now, expiresAt: now + 600 }),
  ).toString('base64url');
  return `${payload}.${createHmac('sha256', TEST_TOKEN).update(payload).digest('base64url')}`;
}

describe('every tools/call is on the record, refused ones included', () => {
  let server: RunningServer;
  let client: Client;

  beforeAll(async () => {
    server = await startServer({ DATA_DIR: dataDir });
    client = await connectClient(server.url, { session: { callId: 'call-hostile', callerNumber: CALLER } });
  });

  afterAll(async () => {
    await client?.close().catch(() => undefined);
    await server?.stop();
    rmSync(root, { recursive: true, force: true });
  });

  const call = async (name: string, args: Record<string, unknown>) =>
    (await client.callTool({ name, arguments: args })) as ToolResult;

  it('records a call the input schema rejects, with its arguments as received and the outcome', async () => {
    const result = await call('request_human_transfer', { reason: 'caller wants billing', queue: '+19005550199' });
    expect(result.isError).toBe(true);
    expect(result.content[0].text).toMatch(/Invalid arguments for request_human_transfer: queue/);
    const records = recordsOf(dataDir, 'call-hostile');
    const index = records.findIndex(
      (record) => record.kind === 'tool_call' && record.payload.arguments?.queue === '+19005550199',
    );
    expect(records[index]).toMatchObject({
      subject: 'request_human_transfer',
      payload: { callerNumber: CALLER, binding: 'bound' },
    });
    expect(records[index + 1]).toMatchObject({
      kind: 'tool_result',
      payload: { outcome: 'rejected', isError: true, error: expect.stringMatching(/queue/) },
    });
  });

  it('records arguments the schema strips, and names them', async () => {
    const result = await call('request_human_transfer', {
      reason: 'caller asked for a person',
      target: 'tel:+19005550199',
    });
    expect(result.structuredContent).toMatchObject({ target: 'sip:front-desk@pbx.example.com' });
    const records = recordsOf(dataDir, 'call-hostile');
    const callRecord = records.find(
      (record) => record.kind === 'tool_call' && record.payload.arguments?.target === 'tel:+19005550199',
    );
    expect(callRecord?.payload).toMatchObject({ strippedArguments: ['target'] });
    const outcome = records[records.indexOf(callRecord!) + 1];
    // The transfer the tool made sits between the call and its result.
    expect(outcome).toMatchObject({ kind: 'transfer', subject: 'front_desk' });
  });

  it('records a call to a tool that does not exist, by the name it was called', async () => {
    const result = await call('wire_money', { amount: 1_000_000 });
    expect(result).toMatchObject({ isError: true, content: [{ text: 'Tool wire_money not found' }] });
    const records = recordsOf(dataDir, 'call-hostile');
    expect(
      records.find((record) => record.subject === 'wire_money' && record.kind === 'tool_call')?.payload,
    ).toMatchObject({ arguments: { amount: 1_000_000 } });
    expect(
      records.find((record) => record.subject === 'wire_money' && record.kind === 'tool_result')?.payload,
    ).toMatchObject({ outcome: 'rejected' });
  });

  it('answers arguments: null with -32602 (not -32603 and a zod dump) and records it', async () => {
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    const response = await rawPost(
      server.url,
      sessionId,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 41,
        method: 'tools/call',
        params: { name: 'lookup_caller', arguments: null },
      }),
    );
    const message = await messageOf(response);
    expect(message).toMatchObject({
      id: 41,
      error: { code: -32602, message: expect.stringMatching(/arguments must be an object, not null/) },
    });
    expect(JSON.stringify(message)).not.toMatch(/invalid_type|expected/);
    const records = recordsOf(dataDir, 'call-raw');
    expect(records.map((record) => [record.kind, record.subject, record.payload.outcome])).toEqual([
      ['tool_call', 'lookup_caller', undefined],
      ['tool_result', 'lookup_caller', 'rejected'],
    ]);
    expect(records[0].payload).toMatchObject({ arguments: null });
  });

  it('refuses a "__proto__" field by name, creates no draft, and records the call as received', async () => {
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    const body =
      '{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"save_intake_progress","arguments":' +
      '{"intakeType":"general_inquiry","fields":{"__proto__":{"full_name":"x"},"topic":"billing"}}}}';
    const response = await rawPost(server.url, sessionId, body, 'call-proto');
    expect(response.status).toBe(200);
    expect(await response.json()).toMatchObject({
      id: 42,
      error: {
        code: -32602,
        message: expect.stringMatching(/"__proto__" is not allowed \(at params\.arguments\.fields\.__proto__\)/),
      },
    });
    const cases = existsSync(join(dataDir, 'cases.json'))
      ? JSON.parse(readFileSync(join(dataDir, 'cases.json'), 'utf8')).cases
      : {};
    expect(Object.values(cases).filter((stored: any) => stored.callId === 'call-proto')).toEqual([]);
    await waitForSealedChains(dataDir, 'call-proto');
    const records = recordsOf(dataDir, 'call-proto');
    expect(records[0]).toMatchObject({ kind: 'tool_call', subject: 'save_intake_progress' });
    expect(records[0].payload.rawRequest).toBe(body);
    expect(records[1].payload).toMatchObject({ outcome: 'rejected', code: -32602 });
  });

  it('refuses a request nested deeper than any tool needs, without exhausting the stack, and records it', async () => {
    const sessionId = (client.transport as StreamableHTTPClientTransport).sessionId!;
    // 30,000 levels still fit the default 64 KiB body limit, and overflow any recursive walk.
    for (const depth of [40, 30_000]) {
      const nested = `${'['.repeat(depth)}${']'.repeat(depth)}`;
      const body = `{"jsonrpc":"2.0","id":43,"method":"tools/call","params":{"name":"lookup_caller","arguments":{"x":${nested}}}}`;
      const response = await fetch(`${server.url}/mcp`, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          accept: 'application/json, text/event-stream',
          authorization: `Bearer ${TEST_TOKEN}`,
          'mcp-session-id': sessionId,
          [MCP_SESSION_HEADER]: issueSessionHeader({ callId: 'call-deep', callerNumber: CALLER }, TEST_TOKEN),
        },
        body,
      });
      expect(response.status, `depth ${depth}`).toBe(200);
      expect(await response.json()).toMatchObject({
        id: 43,
        error: { code: -32602, message: expect.stringMatching(/nested deeper than 32 levels/) },
      });
    }
    await waitForSealedChains(dataDir, 'call-deep');
    const records = recordsOf(dataDir, 'call-deep');
    expect(records[0].payload.rawRequest).toMatch(/^\{"jsonrpc":"2.0","id":43,.*\[\[\[\[/);
    expect(records[1].payload).toMatchObject({ outcome: 'rejected', error: expect.stringMatching(/nested deeper/) });
    expect((await fetch(`${server.url}/healthz`)).status).toBe(200);
  });

  it('refuses control, bidi-override and lone-surrogate characters in stored fields, naming the field', async () => {
    for (const bad of ['Ada\u0000', '\u001b[31mAda', 'Ada \u202eecalevol', 'Ada \ud800']) {
      const result = await call('save_intake_progress', { intakeType: 'general_inquiry', fields: { full_name: bad } });
      expect(result.isError, JSON.stringify(bad)).toBe(true);
      expect(result.content[0].text).toMatch(
        /fields\.full_name: must not contain (control or bidi-override characters|a lone surrogate)/,
      );
    }
    const transfer = await call('request_human_transfer', { reason: 'needs \u202eperson' });
    expect(transfer.content[0].text).toMatch(/reason: must not contain/);
    // Decomposed text is stored composed (NFC), so it reads back as one form.
    const saved = await call('save_intake_progress', {
      intakeType: 'general_inquiry',
      fields: { full_name: 'Rene\u0301e' },
    });
    expect(saved.isError).toBeFalsy();
    const stored = Object.values(JSON.parse(readFileSync(join(dataDir, 'cases.json'), 'utf8')).cases) as any[];
    expect(stored.find((entry) => entry.callId === 'call-hostile').fields.full_name).toBe('Ren\u00e9e');
  });

  it('refuses "." and ".." as call ids and writes nothing outside the audit folder', async () => {
    for (const callId of ['..', '.']) {
      const sneaky = await connectClient(server.url);
      try {
        // Replace the binding with one whose signature is good but whose call id is a path segment.
        const transport = sneaky.transport as unknown as { _requestInit?: RequestInit };
        transport._requestInit = {
          headers: { authorization: `Bearer ${TEST_TOKEN}`, [MCP_SESSION_HEADER]: headerWithCallId(callId) },
        };
        const result = (await sneaky.callTool({ name: 'lookup_caller', arguments: {} })) as ToolResult;
        expect(result.isError).toBe(true);
        expect(result.content[0].text).toMatch(/session binding \(x-voice-intake-session: malformed\)/);
      } finally {
        await sneaky.close();
      }
    }
    expect(readdirSync(root)).toEqual(['data']);
    expect(readdirSync(join(dataDir, 'audit'))).toEqual(['mcp-server']);
    const unbound = recordsOf(dataDir, 'unbound').filter((record) => record.subject === 'lookup_caller');
    expect(unbound.filter((record) => record.kind === 'tool_call').map((record) => record.payload.binding)).toEqual([
      'malformed',
      'malformed',
    ]);
  });

  it('shows no session count on the unauthenticated health check', async () => {
    const response = await fetch(`${server.url}/healthz`);
    expect(await response.json()).toEqual({ status: 'ok' });
  });

  it('seals each session chain closed when the session ends; every record of it verifies', async () => {
    await (client.transport as StreamableHTTPClientTransport).terminateSession();
    expect(await waitForSealedChains(dataDir, 'call-hostile')).toBe(1);
    expect(await waitForSealedChains(dataDir, 'call-raw')).toBe(1);
  });
});

describe('a server killed mid-call', () => {
  it('leaves a chain without its closing seal, which verification reports as possibly cut off', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mcp-kill-'));
    const server = await startServer({ DATA_DIR: dir });
    try {
      const client = await connectClient(server.url, { session: { callId: 'call-killed', callerNumber: CALLER } });
      await client.callTool({ name: 'lookup_caller', arguments: {} });
      await server.stop('SIGKILL');
      const [objects] = [...localChains(dir, 'call-killed').values()];
      const verdict = await verifyAuditTrail(objects, testSealKey);
      expect(verdict).toMatchObject({
        ok: false,
        seq: 2,
        reason: expect.stringMatching(/no closing seal after record 1/),
      });
      expect(dirname(objects[0].key)).toMatch(/^audit\/mcp-server\/call-killed\//);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
