/**
 * Requests refused at the HTTP layer, in process: what the caller gets back and what the audit keeps of them.
 */
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordsOf } from './support/audit-files';
import { INITIALIZE, type InProcessServer, openRawSession, rawHeaders, startInProcess } from './support/in-process';

let server: InProcessServer;

const post = (headers: Record<string, string>, body: string) =>
  fetch(`${server.url}/mcp`, { method: 'POST', headers, body });

/** The audit chains written for a call, and their size on disk. */
function chainsOf(callId: string): { chains: number; bytes: number } {
  const folder = join(server.dataDir, 'audit', 'mcp-server', callId);
  let bytes = 0;
  const chains = readdirSync(folder);
  for (const chain of chains)
    for (const segment of readdirSync(join(folder, chain))) bytes += statSync(join(folder, chain, segment)).size;
  return { chains: chains.length, bytes };
}

beforeAll(async () => {
  server = await startInProcess();
});

afterAll(async () => {
  await server?.stop();
});

describe('a refused batch', () => {
  it('refuses a batch of thousands of tools/call messages, naming the limit, and audits it once', async () => {
    const headers = await openRawSession(server, undefined);
    const items = ['{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"lookup_caller","arguments":{}}}'];
    items.push('{"method":"tools/call","__proto__":1}');
    while (items.length < 2_500) items.push('{"method":"tools/call"}');
    const body = `[${items.join(',')}]`;
    const response = await post(headers, body);
    expect(await response.json()).toMatchObject({
      id: 1,
      error: { code: -32600, message: 'Invalid Request: a batch of 2500 messages (at most 32)' },
    });
    const { chains, bytes } = chainsOf('unbound');
    expect(chains).toBe(1);
    expect(bytes).toBeLessThan(40_000);
    const [call, result] = recordsOf(server.dataDir, 'unbound') as { subject: string; payload: any }[];
    expect(call).toMatchObject({ subject: '(batch of 2500 tools/call)' });
    expect(call.payload).toMatchObject({ toolCalls: 2_500, messages: 2_500, rawRequestLength: body.length });
    expect(call.payload.toolNames).toHaveLength(50);
    expect(call.payload.rawRequest).toHaveLength(16_384);
    expect(result.payload).toMatchObject({ outcome: 'rejected', code: -32600 });
  });

  it('audits a small batch refused for a "__proto__" key once, listing the tools it called', async () => {
    const headers = await openRawSession(server, 'call-small-batch');
    const body =
      '[{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"lookup_caller","arguments":{}}},' +
      '{"jsonrpc":"2.0","id":8,"method":"tools/call","params":{"name":"save_intake_progress","arguments":' +
      '{"intakeType":"general_inquiry","fields":{"__proto__":{"full_name":"x"}}}}}]';
    const response = await post(headers, body);
    expect(await response.json()).toMatchObject({
      id: 7,
      error: { code: -32602, message: expect.stringMatching(/"__proto__" is not allowed/) },
    });
    expect(chainsOf('call-small-batch').chains).toBe(1);
    const [call] = recordsOf(server.dataDir, 'call-small-batch') as { subject: string; payload: any }[];
    expect(call).toMatchObject({ subject: '(batch of 2 tools/call)' });
    expect(call.payload).toMatchObject({
      toolCalls: 2,
      toolNames: ['lookup_caller', 'save_intake_progress'],
      rawRequest: body,
      binding: 'bound',
    });
  });
});

describe('a tools/call with a malformed envelope', () => {
  const call = { name: 'search_knowledge', arguments: { query: 'opening hours' } };
  const cases: [label: string, message: Record<string, unknown>, id: unknown, problem: string][] = [
    [
      'id-object',
      { jsonrpc: '2.0', id: { x: 1 }, method: 'tools/call', params: call },
      null,
      'id must be a string or an integer, not object',
    ],
    [
      'id-null',
      { jsonrpc: '2.0', id: null, method: 'tools/call', params: call },
      null,
      'id must be a string or an integer, not null',
    ],
    [
      'id-fraction',
      { jsonrpc: '2.0', id: 1.5, method: 'tools/call', params: call },
      null,
      'id must be a string or an integer, not 1.5',
    ],
    ['jsonrpc-1', { jsonrpc: '1.0', id: 3, method: 'tools/call', params: call }, 3, 'jsonrpc must be "2.0", not "1.0"'],
    ['no-jsonrpc', { id: 4, method: 'tools/call', params: call }, 4, 'jsonrpc must be "2.0", not missing'],
    [
      'params-array',
      { jsonrpc: '2.0', id: 5, method: 'tools/call', params: ['search_knowledge'] },
      5,
      'params must be an object, not an array',
    ],
    [
      'params-string',
      { jsonrpc: '2.0', id: 6, method: 'tools/call', params: 'search_knowledge' },
      6,
      'params must be an object, not string',
    ],
    [
      'extra-member',
      { jsonrpc: '2.0', id: 7, method: 'tools/call', params: call, result: {} },
      7,
      'unknown member "result"',
    ],
  ];

  for (const [label, message, id, problem] of cases) {
    it(`answers ${label} with -32602 naming the problem, and records it`, async () => {
      const callId = `call-envelope-${label}`;
      const response = await post(await openRawSession(server, callId), JSON.stringify(message));
      expect(response.status).toBe(200);
      expect(await response.json()).toEqual({
        jsonrpc: '2.0',
        id,
        error: { code: -32602, message: `Invalid params: tools/call ${problem}` },
      });
      const records = recordsOf(server.dataDir, callId) as { kind: string; subject: string; payload: any }[];
      expect(records.map((record) => record.kind)).toEqual(['tool_call', 'tool_result']);
      expect(records[0].payload.rawRequest).toBe(JSON.stringify(message));
      expect(records[1].payload).toMatchObject({ outcome: 'rejected', code: -32602, error: `tools/call ${problem}` });
    });
  }

  it('records a tools/call sent as a notification (no id), answers 202, and does not run it', async () => {
    const callId = 'call-envelope-notification';
    const message = {
      jsonrpc: '2.0',
      method: 'tools/call',
      params: { name: 'request_human_transfer', arguments: { reason: 'wants a person' } },
    };
    const response = await post(await openRawSession(server, callId), JSON.stringify(message));
    expect(response.status).toBe(202);
    expect(await response.text()).toBe('');
    const records = recordsOf(server.dataDir, callId) as { kind: string; subject: string; payload: any }[];
    expect(records.map((record) => [record.kind, record.subject])).toEqual([
      ['tool_call', 'request_human_transfer'],
      ['tool_result', 'request_human_transfer'],
    ]);
    expect(records[1].payload).toMatchObject({
      outcome: 'rejected',
      error: 'tools/call id is missing: a tools/call is a request, not a notification',
    });
  });
});

describe('an initialize the transport refuses', () => {
  it('leaves no MCP session and no open audit scope behind', async () => {
    const before = server.audit.openScopes;
    for (let index = 0; index < 20; index += 1) {
      const response = await post(
        rawHeaders('call-no-stream', { accept: 'application/json' }),
        JSON.stringify(INITIALIZE),
      );
      expect(response.status).toBe(406);
      await response.text();
    }
    const deadline = Date.now() + 2_000;
    while (server.audit.openScopes > before && Date.now() < deadline)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(server.audit.openScopes).toBe(before);
  });
});
