import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { type AuditRecord, LocalHmacSealKey, verifyAuditTrail } from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { localChains, testSealKey, waitForSealedChains } from '../../../mcp-server/test/support/audit-files';
import { type RunningServer, startServer, TEST_TOKEN } from '../../../mcp-server/test/support/server-process';
import { McpToolset, type ToolCallEvent } from '../../src/mcp/toolset';
import { CallRecorder } from '../../src/records/call-recorder';
import { inMemoryS3 } from '../support/fake-aws';

const CALL = { callId: 'call-both-chains', callerNumber: '+14155550123' };
const agentKey = new LocalHmacSealKey('agent-chain-test-secret-0123456789abcdef');

/** A tool call's two records (call, then its result) on a chain, found by the call's arguments. */
function exchange(records: AuditRecord[], matches: (args: any) => boolean): [any, any] {
  const index = records.findIndex(
    (record) => record.kind === 'tool_call' && matches((record.payload as any).arguments),
  );
  expect(index, 'tool call on the chain').toBeGreaterThanOrEqual(0);
  const result = records
    .slice(index + 1)
    .find((record) => record.kind === 'tool_result' && record.subject === records[index].subject);
  return [records[index].payload, result?.payload];
}

describe('a refused or trimmed tool call is on both chains, the agent’s and the MCP server’s', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'agent-chains-'));
  const s3Mock = mockClient(S3Client);
  const { objects } = inMemoryS3(s3Mock);
  let server: RunningServer;
  let toolset: McpToolset;
  let recorder: CallRecorder;
  const events: ToolCallEvent[] = [];

  beforeAll(async () => {
    server = await startServer({ DATA_DIR: dataDir });
    recorder = new CallRecorder({
      s3: new S3Client({}),
      transcriptsBucket: 'transcripts',
      auditBucket: 'audit',
      sealKey: agentKey,
      call: { ...CALL, roomName: 'room', startedAt: new Date() },
    });
    // The production wiring: every toolset call goes to the call's recorder.
    toolset = new McpToolset({
      url: `${server.url}/mcp`,
      token: TEST_TOKEN,
      call: CALL,
      onToolCall: (event) => {
        events.push(event);
        recorder.toolCall(event);
      },
    });
    await toolset.tools();
  });

  afterAll(async () => {
    await toolset?.close();
    await server?.stop();
    s3Mock.restore();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('reports a call the input schema rejects as rejected, not as a tool that broke', async () => {
    const text = await toolset.call('request_human_transfer', {
      reason: 'caller wants billing',
      queue: '+19005550199',
    });
    expect(text).toMatch(/reported a problem: Invalid arguments for request_human_transfer: queue/);
    expect(events.at(-1)).toMatchObject({ outcome: 'rejected', isError: true });
  });

  it('names the arguments the tool schema does not have', async () => {
    await toolset.call('request_human_transfer', { reason: 'caller asked for a person', target: 'tel:+19005550199' });
    expect(events.at(-1)).toMatchObject({ outcome: 'ok', strippedArguments: ['target'] });
  });

  it('passes arguments a model sent as null to the server, which refuses them with -32602, without a reconnect', async () => {
    const text = await toolset.call('lookup_caller', null);
    expect(text).toMatch(/refused the request: .*arguments must be an object, not null/);
    expect(events.at(-1)).toMatchObject({ outcome: 'rejected', errorCode: -32602 });
    // The same connection still works.
    expect(await toolset.call('lookup_caller', {})).toBe('No record for this number: a new caller.');
  });

  it('reports a "__proto__" field the server refuses by name as rejected, and keeps working', async () => {
    const args = JSON.parse(
      '{"intakeType":"general_inquiry","fields":{"__proto__":{"full_name":"x"},"topic":"billing"}}',
    );
    const text = await toolset.call('save_intake_progress', args);
    expect(text).toMatch(
      /refused the request: .*"__proto__" is not allowed \(at params\.arguments\.fields\.__proto__\)/,
    );
    expect(events.at(-1)).toMatchObject({ outcome: 'rejected', errorCode: -32602 });
    expect(await toolset.call('lookup_caller', {})).toBe('No record for this number: a new caller.');
  });

  it('holds all three on both sealed chains, closed at the end of the call', async () => {
    await toolset.close();
    await recorder.finish('caller_hangup');
    const agentObjects = [...objects.entries()]
      .filter(([key]) => key.startsWith('audit/audit/agent/call-both-chains/'))
      .map(([key, body]) => ({ key: key.slice('audit/'.length), body }));
    const agent = await verifyAuditTrail(agentObjects, agentKey);
    expect(agent.ok).toBe(true);
    await waitForSealedChains(dataDir, CALL.callId);
    // The session's chain, and one closed chain for the request refused before it reached the session.
    const serverChains = [...localChains(dataDir, CALL.callId).values()];
    expect(serverChains).toHaveLength(2);
    const verdicts = await Promise.all(serverChains.map((objects) => verifyAuditTrail(objects, testSealKey)));
    expect(verdicts.every((verdict) => verdict.ok)).toBe(true);
    const session = verdicts.find((verdict) => verdict.records.length > 2)!;
    const refused = verdicts.find((verdict) => verdict !== session)!;
    expect(refused.records[0].payload).toMatchObject({
      rawRequest: expect.stringContaining('"__proto__":{"full_name":"x"}'),
    });
    const agentProto = agent.records.find((record) => JSON.stringify(record.payload).includes('__proto__'));
    expect(agentProto).toMatchObject({ kind: 'tool_call', subject: 'save_intake_progress' });

    for (const records of [agent.records, session.records]) {
      const [rejectedCall, rejectedResult] = exchange(records, (args) => args?.queue === '+19005550199');
      expect(rejectedCall.arguments).toEqual({ reason: 'caller wants billing', queue: '+19005550199' });
      expect(rejectedResult).toMatchObject({ outcome: 'rejected', isError: true });
      const [trimmedCall, trimmedResult] = exchange(records, (args) => args?.target === 'tel:+19005550199');
      expect(trimmedCall.strippedArguments).toEqual(['target']);
      expect(trimmedResult).toMatchObject({ outcome: 'ok' });
      const [nullCall, nullResult] = exchange(records, (args) => args === null);
      expect(nullCall).toMatchObject({ arguments: null });
      expect(nullResult).toMatchObject({ outcome: 'rejected', code: -32602 });
    }
  });
});
