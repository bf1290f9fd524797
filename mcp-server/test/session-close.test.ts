/**
 * An MCP session that ends (DELETE) while one of its tool calls is still running, in process with a knowledge search
 * held open: the call's outcome still reaches the audit chain before its closing seal, and the wait is bounded.
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { KnowledgeSearch } from '../src/knowledge/knowledge';
import { recordsOf, waitForSealedChains } from './support/audit-files';
import { type InProcessServer, openRawSession, startInProcess } from './support/in-process';

/** A knowledge search that answers only when released. */
function heldSearch(): { knowledge: KnowledgeSearch; started: Promise<void>; release: () => void } {
  let release = () => {};
  let markStarted = () => {};
  const started = new Promise<void>((resolve) => {
    markStarted = resolve;
  });
  const knowledge = {
    search: () => {
      markStarted();
      return new Promise<[]>((resolve) => {
        release = () => resolve([]);
      });
    },
  } as unknown as KnowledgeSearch;
  return { knowledge, started, release: () => release() };
}

const searchCall = JSON.stringify({
  jsonrpc: '2.0',
  id: 1,
  method: 'tools/call',
  params: { name: 'search_knowledge', arguments: { query: 'opening hours', limit: 1 } },
});

let server: InProcessServer | undefined;
afterEach(async () => {
  await server?.stop();
  server = undefined;
});

async function endMidCall(callId: string, closeWaitMs: number) {
  const held = heldSearch();
  server = await startInProcess({ knowledge: held.knowledge, deps: { closeWaitMs } });
  const headers = await openRawSession(server, callId);
  const pending = fetch(`${server.url}/mcp`, { method: 'POST', headers, body: searchCall }).then(
    (response) => response.text(),
    () => 'connection closed',
  );
  await held.started;
  const ended = await fetch(`${server.url}/mcp`, { method: 'DELETE', headers });
  expect(ended.status).toBe(200);
  return { held, pending, server };
}

describe('ending an MCP session during a tool call', () => {
  it('records the call outcome before the closing seal', async () => {
    const { held, pending, server: running } = await endMidCall('call-ends-mid-call', 10_000);
    // The session is gone, but its chain is not closed yet: the call is still running.
    await new Promise((resolve) => setTimeout(resolve, 200));
    expect(running.audit.openScopes).toBe(1);
    held.release();
    await pending;
    await waitForSealedChains(running.dataDir, 'call-ends-mid-call');
    const records = recordsOf(running.dataDir, 'call-ends-mid-call') as {
      kind: string;
      subject: string;
      payload: any;
    }[];
    expect(records.map((record) => [record.kind, record.subject, record.payload.outcome])).toEqual([
      ['tool_call', 'search_knowledge', undefined],
      ['tool_result', 'search_knowledge', 'ok'],
    ]);
    expect(running.audit.openScopes).toBe(0);
  });

  it('seals the chain closed after the wait when the call never finishes', async () => {
    const { running } = await endMidCall('call-never-finishes', 300).then((result) => ({ running: result.server }));
    await waitForSealedChains(running.dataDir, 'call-never-finishes', 5_000);
    expect(running.audit.openScopes).toBe(0);
    expect(recordsOf(running.dataDir, 'call-never-finishes').map((record) => record.kind)).toEqual(['tool_call']);
  });
});
