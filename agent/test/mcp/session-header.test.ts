import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { MCP_SESSION_HEADER, verifySessionHeader } from '@voice-intake/contracts';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { McpToolset } from '../../src/mcp/toolset';

const SECRET = 'session-secret-0123456789';

/** A minimal MCP server (Streamable HTTP, JSON answers) that checks each tool call's session header as it arrives. */
const verdicts: ReturnType<typeof verifySessionHeader>[] = [];
const authorizations: string[] = [];
const server = createServer(async (req: IncomingMessage, res: ServerResponse) => {
  let body = '';
  for await (const chunk of req) body += chunk;
  if (req.method !== 'POST') return void res.writeHead(405).end();
  const message = JSON.parse(body);
  if (message.method === 'tools/call') {
    verdicts.push(verifySessionHeader(String(req.headers[MCP_SESSION_HEADER]), SECRET, Date.now()));
    authorizations.push(String(req.headers.authorization));
  }
  if (message.id === undefined) return void res.writeHead(202).end();
  const result =
    message.method === 'initialize'
      ? {
          protocolVersion: message.params.protocolVersion,
          capabilities: { tools: {} },
          serverInfo: { name: 'header-check', version: '1' },
        }
      : message.method === 'tools/list'
        ? { tools: [{ name: 'lookup_caller', inputSchema: { type: 'object' } }] }
        : { content: [{ type: 'text', text: 'ok' }] };
  res
    .writeHead(200, { 'content-type': 'application/json', 'mcp-session-id': 'session-1' })
    .end(JSON.stringify({ jsonrpc: '2.0', id: message.id, result }));
});

describe('the MCP session header on a long call', () => {
  let toolset: McpToolset;
  beforeAll(async () => {
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    toolset = new McpToolset({
      url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/mcp`,
      token: 'token-0123456789abcdef',
      sessionSecret: SECRET,
      call: { callId: 'call-long-1', callerNumber: '+14155550123', attestation: 'A' },
    });
    await toolset.tools();
  });
  afterEach(() => vi.useRealTimers());
  afterAll(async () => {
    await toolset.close();
    await new Promise((resolve) => server.close(resolve));
  });

  it('is valid on every request, hours into the call, on one connection', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const start = Date.now();
    for (const minutes of [0, 61, 125, 300]) {
      vi.setSystemTime(start + minutes * 60_000);
      expect(await toolset.call('lookup_caller', {})).toBe('ok');
    }
    expect(verdicts).toHaveLength(4);
    for (const verdict of verdicts) {
      expect(verdict).toMatchObject({ ok: true, session: { callId: 'call-long-1', callerNumber: '+14155550123' } });
    }
    expect(authorizations).toEqual(Array(4).fill('Bearer token-0123456789abcdef'));
  });
});
