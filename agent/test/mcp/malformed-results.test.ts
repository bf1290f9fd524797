import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { TOOL_OUTCOME_META_KEY } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { McpToolset, type ToolCallEvent } from '../../src/mcp/toolset';

/**
 * An MCP server (Streamable HTTP, JSON answers) whose tools/call answers each test chooses: results the client cannot
 * read, refusals, and HTTP failures before and after a tool ran.
 */
const TOOLS = [
  {
    name: 'schedule_callback',
    inputSchema: { type: 'object', properties: { reason: { type: 'string' } } },
    outputSchema: { type: 'object', properties: { callbackId: { type: 'string' } }, required: ['callbackId'] },
  },
  { name: 'submit_intake', inputSchema: { type: 'object', properties: {} } },
  { name: 'save_intake_progress', inputSchema: { type: 'object', properties: {} } },
  { name: 'lookup_caller', inputSchema: { type: 'object', properties: {} } },
  { name: 'search_knowledge', inputSchema: { type: 'object', properties: {} } },
];
const ran: Record<string, number> = {};
let session = 1;
let forgetSessionOnce = false;

function answer(res: ServerResponse, id: unknown, body: Record<string, unknown>) {
  res
    .writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': `s${session}` })
    .end(JSON.stringify({ jsonrpc: '2.0', id, ...body }));
}
const ok = { _meta: { [TOOL_OUTCOME_META_KEY]: 'ok' } };

const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  if (req.method !== 'POST') return void res.writeHead(405).end();
  const message = JSON.parse(body);
  if (message.id === undefined) return void res.writeHead(202).end();
  if (message.method === 'initialize') {
    session += 1;
    return answer(res, message.id, {
      result: {
        protocolVersion: message.params.protocolVersion,
        capabilities: { tools: {} },
        serverInfo: { name: 'scripted', version: '1' },
      },
    });
  }
  if (message.method === 'tools/list') return answer(res, message.id, { result: { tools: TOOLS } });
  const name: string = message.params.name;
  if (name === 'lookup_caller' && forgetSessionOnce) {
    // A server that restarted: it does not know the session and runs nothing.
    forgetSessionOnce = false;
    return void res.writeHead(404).end('session not found');
  }
  ran[name] = (ran[name] ?? 0) + 1;
  switch (name) {
    case 'schedule_callback':
      // The tool ran; its structured content is off its declared output schema.
      return answer(res, message.id, {
        result: {
          content: [{ type: 'text', text: 'Callback CB-1 booked.' }],
          structuredContent: { callbackId: 42 },
          ...ok,
        },
      });
    case 'submit_intake':
      // The tool ran; its result holds a content block no MCP client can read.
      return answer(res, message.id, {
        result: { content: [{ type: 'text', text: 'Case C-1 submitted.' }, { type: 'bogus' }], ...ok },
      });
    case 'save_intake_progress':
      // The tool ran, then the server failed before answering.
      return void res.writeHead(500).end('internal error');
    case 'search_knowledge':
      return answer(res, message.id, { error: { code: -32602, message: 'Invalid arguments: query is required' } });
    default:
      return answer(res, message.id, { result: { content: [{ type: 'text', text: 'known caller' }], ...ok } });
  }
});

describe('McpToolset against results it cannot read', () => {
  const events: ToolCallEvent[] = [];
  let toolset: McpToolset;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    toolset = new McpToolset({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
      token: 'token-0123456789abcdef',
      call: { callId: 'call-1', callerNumber: '+14155550123' },
      onToolCall: (event) => events.push(event),
    });
    await toolset.tools();
  });
  afterAll(async () => {
    await toolset.close();
    await new Promise((resolve) => server.close(resolve));
  });
  const last = (name: string) => events.filter((event) => event.name === name);

  it('records a tool whose structured content is off its output schema as failed, not refused', async () => {
    const text = await toolset.call('schedule_callback', { reason: 'call me back' });
    expect(ran.schedule_callback).toBe(1);
    expect(last('schedule_callback')).toMatchObject([{ outcome: 'failed', statedOutcome: 'ok', isError: true }]);
    expect(last('schedule_callback')[0].errorCode).toBeUndefined();
    expect(text).toMatch(/ran, but its answer could not be read \(structuredContent: .*callbackId/);
    expect(text).toMatch(/Do not call it again/);
  });

  it('never runs a tool twice for a result off the MCP schema', async () => {
    const text = await toolset.call('submit_intake', {});
    expect(ran.submit_intake).toBe(1);
    expect(last('submit_intake')).toMatchObject([{ outcome: 'failed', statedOutcome: 'ok' }]);
    expect(text).toMatch(/could not be read \(content\.1/);
  });

  it('never sends a call again once it may have reached the tool', async () => {
    const text = await toolset.call('save_intake_progress', {});
    expect(ran.save_intake_progress).toBe(1);
    expect(last('save_intake_progress')).toMatchObject([{ outcome: 'failed' }]);
    expect(text).toMatch(/not available right now/);
  });

  it("records the server's own JSON-RPC refusal as rejected", async () => {
    const text = await toolset.call('search_knowledge', {});
    expect(last('search_knowledge')).toMatchObject([{ outcome: 'rejected', errorCode: -32602 }]);
    expect(text).toMatch(/refused the request: .*query is required/);
  });

  it('sends a call again, once, to a server that forgot the session (it ran nothing)', async () => {
    forgetSessionOnce = true;
    const sessionBefore = session;
    expect(await toolset.call('lookup_caller', {})).toBe('known caller');
    expect(ran.lookup_caller).toBe(1);
    expect(session).toBe(sessionBefore + 1);
    expect(last('lookup_caller')).toMatchObject([{ outcome: 'ok' }]);
  });
});

describe('McpToolset with no server', () => {
  it('tries twice to connect, then says the tool is not available', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise((resolve) => closed.close(resolve));
    const events: ToolCallEvent[] = [];
    const toolset = new McpToolset({
      url: `http://127.0.0.1:${port}/mcp`,
      token: 'token-0123456789abcdef',
      call: { callId: 'call-2', callerNumber: '+14155550123' },
      onToolCall: (event) => events.push(event),
    });
    expect(await toolset.call('lookup_caller', {})).toMatch(/not available right now \(connection failed\)/);
    expect(events).toMatchObject([{ outcome: 'failed' }]);
  });
});
