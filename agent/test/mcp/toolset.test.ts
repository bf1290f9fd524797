import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { closeServer, listenOnLoopback } from '../../../mcp-server/test/support/local-http';
import { type RunningServer, startServer, TEST_TOKEN } from '../../../mcp-server/test/support/server-process';
import { callControlTools, IntakeAgent, offeredCallControlTools } from '../../src/intake-agent';
import { McpToolset, type ToolCallEvent } from '../../src/mcp/toolset';

const CALL = { callId: 'call-agent-1', callerNumber: '+14155550123' };

describe('MCP toolset against the real MCP server', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'agent-mcp-'));
  const slowBackend = createServer(async (req, res) => {
    for await (const _ of req);
    setTimeout(() => res.writeHead(201).end('{}'), 2_000);
  });
  let server: RunningServer;
  let port: number;
  const events: ToolCallEvent[] = [];
  let toolset: McpToolset;

  beforeAll(async () => {
    const backendUrl = `${await listenOnLoopback(slowBackend)}/cases`;
    server = await startServer({ DATA_DIR: dataDir, BACKEND_URL: backendUrl });
    port = Number(new URL(server.url).port);
    toolset = new McpToolset({
      url: `${server.url}/mcp`,
      token: TEST_TOKEN,
      call: CALL,
      callTimeoutMs: 1_000,
      onToolCall: (event) => events.push(event),
    });
  });

  afterAll(async () => {
    await toolset?.close();
    await server?.stop();
    await closeServer(slowBackend);
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('exposes every MCP tool to the LLM with its JSON Schema', async () => {
    const tools = await toolset.tools();
    expect(Object.keys(tools).sort()).toEqual(
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
    const save = tools.save_intake_progress as unknown as {
      description: string;
      parameters: { type: string; required: string[] };
    };
    expect(save.description).toMatch(/Saves the fields collected/);
    expect(save.parameters.type).toBe('object');
    expect(save.parameters.required).toEqual(['intakeType', 'fields']);
  });

  it("calls a tool for this call's caller, bound by the signed session header", async () => {
    const text = await toolset.call('lookup_caller', {});
    expect(text).toBe('No record for this number: a new caller.');
    expect(events.at(-1)).toMatchObject({ name: 'lookup_caller', isError: false });
  });

  it('turns a tool error into a sentence for the model', async () => {
    const text = await toolset.call('get_intake_form', { intakeType: 'spaceship' });
    expect(text).toMatch(/^The get_intake_form tool reported a problem: unknown intake type "spaceship"/);
    expect(events.at(-1)).toMatchObject({ name: 'get_intake_form', isError: true });
  });

  it('gives up on a call that takes too long, without throwing', async () => {
    const text = await toolset.call('submit_intake', {
      intakeType: 'general_inquiry',
      fields: { full_name: 'Ada Lovelace', topic: 'billing', details: 'Charged twice.' },
    });
    expect(text).toMatch(/not available right now \(it took too long\)/);
    expect(events.at(-1)).toMatchObject({ name: 'submit_intake', isError: true });
  });

  it('transfers to the target the MCP server chose, and hangs up on end_call', async () => {
    const transfers: [string, string][] = [];
    const hangUps: string[] = [];
    const tools = callControlTools(toolset, {
      transfer: async (target, reason) => void transfers.push([target, reason]),
      hangUp: async (reason) => void hangUps.push(reason),
    });
    const playedOut: string[] = [];
    // A run context whose speech has played out: the tools wait for it before acting on the call.
    const ctx = { waitForPlayout: async () => void playedOut.push('played') };
    const run = (tool: { execute: (args: never, opts: never) => Promise<unknown> }, args: object) =>
      tool.execute(args as never, { toolCallId: 't1', ctx } as never);
    expect(await run(tools.transfer_to_human, { reason: 'caller asked for a person' })).toBe(
      'Transferring to sip:front-desk@pbx.example.com.',
    );
    expect(transfers).toEqual([['sip:front-desk@pbx.example.com', 'caller asked for a person']]);
    expect(await run(tools.end_call, { reason: 'caller is done' })).toBe('Call ended.');
    expect(hangUps).toEqual(['caller is done']);
    expect(playedOut).toHaveLength(2);
  });

  it('offers the model every MCP tool but request_human_transfer, and transfer_to_human in its place', async () => {
    const tools = await toolset.tools();
    const callbacks = { transfer: async () => undefined, hangUp: async () => undefined };
    const agent = new IntakeAgent(tools, toolset, callbacks);
    const offered = Object.keys(agent.toolCtx.functionTools);
    expect(offered).not.toContain('request_human_transfer');
    expect(offered.sort()).toEqual(
      [
        ...Object.keys(tools).filter((name) => name !== 'request_human_transfer'),
        'transfer_to_human',
        'end_call',
      ].sort(),
    );
  });

  it('reconnects after the server restarts', async () => {
    expect(await server.stop()).toBe(0);
    const whileDown = await toolset.call('lookup_caller', {});
    expect(whileDown).toMatch(/not available right now \(connection failed\)/);

    server = await startServer({ DATA_DIR: dataDir, MCP_PORT: String(port) });
    const afterRestart = await toolset.call('search_knowledge', { query: 'office hours saturday' });
    expect(afterRestart).toContain('[office-hours#');
  });
});

describe('transfer to a person turned off (TRANSFER_TARGETS={})', () => {
  it('offers the model no transfer tool at all, unless a default target is set', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'agent-mcp-no-transfer-'));
    const server = await startServer({ DATA_DIR: dataDir, TRANSFER_TARGETS: '{}' });
    const toolset = new McpToolset({ url: `${server.url}/mcp`, token: TEST_TOKEN, call: CALL, callTimeoutMs: 5_000 });
    try {
      const mcpTools = await toolset.tools();
      expect(Object.keys(mcpTools)).not.toContain('request_human_transfer');
      const callbacks = { transfer: async () => undefined, hangUp: async () => undefined };
      expect(Object.keys(offeredCallControlTools(mcpTools, toolset, callbacks))).toEqual(['end_call']);
      const withDefault = { ...callbacks, defaultTransferTarget: 'sip:desk@pbx.acme-clinic.com' };
      const offered = offeredCallControlTools(mcpTools, toolset, withDefault);
      expect(Object.keys(offered).sort()).toEqual(['end_call', 'transfer_to_human']);
    } finally {
      await toolset.close();
      await server.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
