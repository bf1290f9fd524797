import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type CallerTrust, issueSessionHeader, LocalHmacSealKey, MCP_SESSION_HEADER } from '@voice-intake/contracts';
import pino from 'pino';
import { AuditLog, FileAuditStore } from '../../src/audit';
import { CallerProofs } from '../../src/caller-proofs';
import { FormCatalog } from '../../src/forms';
import { McpHttpServer } from '../../src/http';
import { EmbeddedKnowledge } from '../../src/knowledge/embedded';
import type { KnowledgeSearch } from '../../src/knowledge/knowledge';
import type { CaseStore } from '../../src/stores/case-store';
import { EmbeddedCaseStore } from '../../src/stores/embedded-case-store';
import { auditRefusedToolCall, createIntakeServer, type ToolDeps } from '../../src/tools';
import { TEST_SEAL_SECRET, TEST_TOKEN } from './server-process';

const WORKSPACE = join(__dirname, '..', '..');

export interface InProcessServer {
  /** Base URL (without `/mcp`), as connectClient takes it. */
  url: string;
  http: McpHttpServer;
  audit: AuditLog;
  cases: EmbeddedCaseStore;
  dataDir: string;
  stop(): Promise<void>;
}

/**
 * The server's HTTP layer and tools in this process (as main.ts wires them), for tests that need to reach inside:
 * a case store with latency, a knowledge search held open, the count of open audit scopes.
 */
export async function startInProcess(
  options: {
    callerTrust?: CallerTrust;
    /** Wraps the embedded case store (e.g. to add latency). */
    cases?: (embedded: EmbeddedCaseStore) => CaseStore;
    knowledge?: KnowledgeSearch;
    deps?: Partial<ToolDeps>;
  } = {},
): Promise<InProcessServer> {
  const dataDir = mkdtempSync(join(tmpdir(), 'mcp-inproc-'));
  const logger = pino({ level: 'silent' });
  const audit = new AuditLog(new FileAuditStore(dataDir), new LocalHmacSealKey(TEST_SEAL_SECRET));
  const embedded = new EmbeddedCaseStore(dataDir);
  const deps: ToolDeps = {
    cases: options.cases ? options.cases(embedded) : embedded,
    forms: new FormCatalog(join(WORKSPACE, 'forms'), 'general_inquiry'),
    knowledge: options.knowledge ?? new EmbeddedKnowledge(join(WORKSPACE, 'knowledge')),
    audit,
    sessionSecret: TEST_TOKEN,
    transferTargets: { front_desk: 'sip:front-desk@pbx.example.com' },
    defaultTransferQueue: 'front_desk',
    callerTrust: options.callerTrust,
    proofs: new CallerProofs(),
    logger,
    ...options.deps,
  };
  const http = new McpHttpServer({
    host: '127.0.0.1',
    port: 0,
    authToken: TEST_TOKEN,
    maxBodyBytes: 65_536,
    shutdownGraceMs: 2_000,
    logger,
    onRefusedRequest: (refused) => auditRefusedToolCall(deps, refused),
    createMcpServer: () => createIntakeServer(deps),
  });
  const address = await http.listen();
  return {
    url: `http://127.0.0.1:${address.port}`,
    http,
    audit,
    cases: embedded,
    dataDir,
    async stop() {
      await http.stop();
      await audit.closeAll();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** A case store whose every read and write takes `ms` longer, as a networked one (DynamoDB) does. */
export function withLatency(store: CaseStore, ms: number): CaseStore {
  const later = <T>(work: () => Promise<T>) => new Promise<T>((resolve) => setTimeout(() => resolve(work()), ms));
  return {
    getCase: (caseId) => later(() => store.getCase(caseId)),
    getCaseForwarding: (caseId) => later(() => store.getCaseForwarding(caseId)),
    saveDraft: (draft) => later(() => store.saveDraft(draft)),
    submit: (submitted, options) => later(() => store.submit(submitted, options)),
    listDueForwards: (now, limit) => later(() => store.listDueForwards(now, limit)),
    claimForward: (caseId, claim) => later(() => store.claimForward(caseId, claim)),
    noteForwardError: (caseId, error) => later(() => store.noteForwardError(caseId, error)),
    markForwarded: (caseId, at) => later(() => store.markForwarded(caseId, at)),
    markForwardRefused: (caseId, refusal) => later(() => store.markForwardRefused(caseId, refusal)),
    listCasesByPhone: (callerNumber) => later(() => store.listCasesByPhone(callerNumber)),
    saveCallback: (request) => later(() => store.saveCallback(request)),
    saveTransfer: (record) => later(() => store.saveTransfer(record)),
  };
}

/** The headers of a raw MCP request (what a client that does not use the SDK sends), bound to a call or not. */
export function rawHeaders(
  callId: string | undefined,
  extra: Record<string, string> = {},
  callerNumber = '+14155550123',
): Record<string, string> {
  return {
    authorization: `Bearer ${TEST_TOKEN}`,
    'content-type': 'application/json',
    accept: 'application/json, text/event-stream',
    ...(callId ? { [MCP_SESSION_HEADER]: issueSessionHeader({ callId, callerNumber }, TEST_TOKEN) } : {}),
    ...extra,
  };
}

export const INITIALIZE = {
  jsonrpc: '2.0',
  id: 0,
  method: 'initialize',
  params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'test', version: '0' } },
};

/** Opens an MCP session the raw way; returns the headers every later request of it carries. */
export async function openRawSession(
  server: Pick<InProcessServer, 'url'>,
  callId: string | undefined,
): Promise<Record<string, string>> {
  const response = await fetch(`${server.url}/mcp`, {
    method: 'POST',
    headers: rawHeaders(callId),
    body: JSON.stringify(INITIALIZE),
  });
  await response.text();
  const headers = rawHeaders(callId, {
    'mcp-session-id': response.headers.get('mcp-session-id')!,
    'mcp-protocol-version': '2025-06-18',
  });
  const initialized = { jsonrpc: '2.0', method: 'notifications/initialized' };
  await (await fetch(`${server.url}/mcp`, { method: 'POST', headers, body: JSON.stringify(initialized) })).text();
  return headers;
}
