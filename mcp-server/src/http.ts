import { randomUUID, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { isInitializeRequest, JSONRPCRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { describeIssues } from '@voice-intake/contracts';
import type { Logger } from 'pino';

export const MCP_PATH = '/mcp';
export const HEALTH_PATH = '/healthz';

export interface HttpServerOptions {
  host: string;
  port: number;
  authToken: string;
  maxBodyBytes: number;
  shutdownGraceMs: number;
  /** A fresh MCP server (with the tools) for each MCP session. */
  createMcpServer: () => McpServer;
  logger: Logger;
  /** MCP sessions idle this long are closed. */
  sessionIdleMs?: number;
  /** Told of each JSON-RPC request refused here, before any MCP session saw it (for the audit log). */
  onRefusedRequest?: (refused: RefusedRequest) => Promise<void>;
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', ...headers });
  res.end(JSON.stringify(body));
}

function jsonRpcError(
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { jsonrpc: '2.0', error: { code: -32000, message }, id: null }, headers);
}

function tokenMatches(header: string | undefined, expected: string): boolean {
  const match = /^Bearer (.+)$/.exec(header ?? '');
  if (!match) return false;
  const given = Buffer.from(match[1]);
  const wanted = Buffer.from(expected);
  return given.length === wanted.length && timingSafeEqual(given, wanted);
}

/**
 * A request body refused before the MCP layer: the messages it held as parsed (one, or a batch's), the body as
 * received, why, and the JSON-RPC error code it was answered with. Reported once per body, however many it held.
 */
export interface RefusedRequest {
  messages: Record<string, unknown>[];
  rawBody: string;
  reason: string;
  code: number;
  headers: IncomingMessage['headers'];
}

/** The most messages a JSON-RPC batch may hold (the agent sends none; MCP since 2025-06-18 has no batches). */
export const MAX_BATCH_MESSAGES = 32;

/** Reads the body up to the limit; a larger one is refused before it is all read. */
async function readJsonBody(req: IncomingMessage, limit: number): Promise<{ value: unknown; text: string }> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > limit) throw new HttpError(413, `request body over ${limit} bytes`);
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of req) {
    size += (chunk as Buffer).length;
    if (size > limit) throw new HttpError(413, `request body over ${limit} bytes`);
    chunks.push(chunk as Buffer);
  }
  const text = Buffer.concat(chunks).toString('utf8');
  try {
    return { value: JSON.parse(text), text };
  } catch {
    throw new HttpError(400, 'request body is not JSON');
  }
}

/** No MCP request we serve nests deeper; a deeper one is refused before anything walks it recursively. */
export const MAX_REQUEST_DEPTH = 32;

/**
 * Why a parsed body is refused before the MCP layer sees it, if it is: nesting deeper than MAX_REQUEST_DEPTH, or a
 * key named `__proto__` (JSON.parse keeps it as a plain key, but every later copy of the object, schema validation
 * included, turns it into the prototype and the field silently vanishes: such a request is refused by name).
 * Walks without recursion, so no body can exhaust the stack.
 */
export function refusalOf(body: unknown): string | undefined {
  const pending: [value: unknown, path: string, depth: number][] = [[body, '', 0]];
  while (pending.length > 0) {
    const [value, path, depth] = pending.pop()!;
    if (value === null || typeof value !== 'object') continue;
    if (depth >= MAX_REQUEST_DEPTH) return `request nested deeper than ${MAX_REQUEST_DEPTH} levels (at ${path})`;
    if (Array.isArray(value)) {
      for (const [index, item] of value.entries()) pending.push([item, `${path}[${index}]`, depth + 1]);
      continue;
    }
    for (const key of Object.keys(value)) {
      const here = path ? `${path}.${key}` : key;
      if (key === '__proto__') return `field "__proto__" is not allowed (at ${here})`;
      pending.push([(value as Record<string, unknown>)[key], here, depth + 1]);
    }
  }
  return undefined;
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  value !== null && typeof value === 'object' && !Array.isArray(value);

const kindOf = (value: unknown) => (value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value);

const REQUEST_MEMBERS = new Set(['jsonrpc', 'id', 'method', 'params']);

/**
 * What is wrong with a tools/call message's JSON-RPC envelope, if anything: the transport would answer such a message
 * with a bare parse error and nothing would record it, so it is refused here by name (and audited).
 */
export function toolCallEnvelopeProblem(message: Record<string, unknown>): string | undefined {
  if (message.jsonrpc !== '2.0')
    return `jsonrpc must be "2.0", not ${message.jsonrpc === undefined ? 'missing' : JSON.stringify(message.jsonrpc).slice(0, 40)}`;
  if (!Object.hasOwn(message, 'id')) return 'id is missing: a tools/call is a request, not a notification';
  const { id, params } = message;
  if (!(typeof id === 'string' || (typeof id === 'number' && Number.isInteger(id))))
    return `id must be a string or an integer, not ${typeof id === 'number' ? String(id) : kindOf(id)}`;
  if (params !== undefined && !isObject(params)) return `params must be an object, not ${kindOf(params)}`;
  const unknown = Object.keys(message).find((key) => !REQUEST_MEMBERS.has(key));
  if (unknown !== undefined) return `unknown member "${unknown.slice(0, 64)}"`;
  const parsed = JSONRPCRequestSchema.safeParse(message);
  return parsed.success ? undefined : `is not a valid request: ${describeIssues(parsed.error.issues)}`;
}

interface Session {
  transport: StreamableHTTPServerTransport;
  server: McpServer;
  lastSeen: number;
}

/**
 * The MCP endpoint over Streamable HTTP (POST for requests, GET for the server's event stream, DELETE to end a
 * session, all on /mcp), behind bearer-token auth and a body-size limit, with /healthz for load balancers and a
 * graceful stop that lets in-flight requests finish.
 */
export class McpHttpServer {
  private readonly http: Server;
  private readonly sessions = new Map<string, Session>();
  private inFlight = 0;
  private draining = false;
  private idleTimer?: NodeJS.Timeout;

  constructor(private readonly options: HttpServerOptions) {
    this.http = createServer((req, res) => {
      void this.handle(req, res);
    });
  }

  async listen(): Promise<AddressInfo> {
    await new Promise<void>((resolve) => this.http.listen(this.options.port, this.options.host, resolve));
    const idleMs = this.options.sessionIdleMs ?? 30 * 60_000;
    this.idleTimer = setInterval(() => this.closeIdleSessions(idleMs), Math.min(idleMs, 60_000));
    this.idleTimer.unref();
    return this.http.address() as AddressInfo;
  }

  private closeIdleSessions(idleMs: number): void {
    const cutoff = Date.now() - idleMs;
    for (const [id, session] of this.sessions) {
      if (session.lastSeen < cutoff) {
        this.sessions.delete(id);
        void session.transport.close();
      }
    }
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (url.pathname === HEALTH_PATH && req.method === 'GET') {
      // Unauthenticated: says up or draining, nothing about the calls in progress.
      sendJson(res, this.draining ? 503 : 200, { status: this.draining ? 'draining' : 'ok' });
      return;
    }
    if (url.pathname !== MCP_PATH) {
      sendJson(res, 404, { error: 'not found' });
      return;
    }
    // Authenticate before anything else is read or run.
    if (!tokenMatches(req.headers.authorization, this.options.authToken)) {
      jsonRpcError(res, 401, 'missing or invalid bearer token', {
        'www-authenticate': 'Bearer realm="voice-intake-mcp"',
      });
      return;
    }
    if (this.draining) {
      jsonRpcError(res, 503, 'server is shutting down', { connection: 'close' });
      return;
    }
    // A GET is the long-lived notification stream, not work to finish: only requests count as in flight.
    const counted = req.method !== 'GET';
    if (counted) this.inFlight += 1;
    try {
      await this.route(req, res);
    } catch (error) {
      if (error instanceof HttpError) jsonRpcError(res, error.status, error.message);
      else {
        this.options.logger.error({ err: error }, 'MCP request failed');
        jsonRpcError(res, 500, 'internal error');
      }
    } finally {
      if (counted) this.inFlight -= 1;
    }
  }

  private async route(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const sessionId = req.headers['mcp-session-id'];
    const existing = typeof sessionId === 'string' ? this.sessions.get(sessionId) : undefined;
    if (req.method === 'POST') {
      const { value: body, text } = await readJsonBody(req, this.options.maxBodyBytes);
      if (await this.refused(req, res, body, text)) return;
      if (existing) {
        existing.lastSeen = Date.now();
        await existing.transport.handleRequest(req, res, body);
        return;
      }
      if (sessionId !== undefined) throw new HttpError(404, 'unknown or expired MCP session: initialize again');
      if (!isInitializeRequest(body)) throw new HttpError(400, 'no MCP session: the first request must be initialize');
      const server = this.options.createMcpServer();
      const transport: StreamableHTTPServerTransport = new StreamableHTTPServerTransport({
        sessionIdGenerator: () => randomUUID(),
        onsessioninitialized: (id) => {
          this.sessions.set(id, { transport, server, lastSeen: Date.now() });
        },
      });
      transport.onclose = () => {
        if (transport.sessionId) this.sessions.delete(transport.sessionId);
      };
      await server.connect(transport);
      try {
        await transport.handleRequest(req, res, body);
      } finally {
        // An initialize the transport refused (e.g. 406 for a client that does not accept an event stream) registered
        // no session: nothing will ever close it, so its server (and the session's audit scope) is closed now.
        if (!transport.sessionId || !this.sessions.has(transport.sessionId)) {
          await server.close().catch((error) => this.options.logger.warn({ err: error }, 'MCP server not closed'));
        }
      }
      return;
    }
    if (req.method === 'GET' || req.method === 'DELETE') {
      if (!existing) throw new HttpError(sessionId === undefined ? 400 : 404, 'unknown or missing MCP session');
      existing.lastSeen = Date.now();
      await existing.transport.handleRequest(req, res);
      return;
    }
    throw new HttpError(405, `method ${req.method} not allowed`);
  }

  /**
   * Refuses a batch over MAX_BATCH_MESSAGES (-32600), a body refusalOf() objects to, or a tools/call whose envelope is
   * malformed (-32602), saying why and where.
   * The refused body is reported once, with every message it held: a batch of thousands is one audit record.
   */
  private async refused(req: IncomingMessage, res: ServerResponse, body: unknown, rawBody: string): Promise<boolean> {
    const batchSize = Array.isArray(body) ? body.length : 1;
    const messages = (Array.isArray(body) ? body : [body]).filter(isObject);
    let refusal: { reason: string; code: number; label: string } | undefined;
    let notification = false;
    if (batchSize > MAX_BATCH_MESSAGES) {
      refusal = {
        reason: `a batch of ${batchSize} messages (at most ${MAX_BATCH_MESSAGES})`,
        code: -32600,
        label: 'Invalid Request',
      };
    } else {
      const reason = refusalOf(body);
      if (reason) refusal = { reason, code: -32602, label: 'Invalid params' };
    }
    if (!refusal) {
      for (const message of messages) {
        if (message.method !== 'tools/call') continue;
        const problem = toolCallEnvelopeProblem(message);
        if (!problem) continue;
        refusal = { reason: `tools/call ${problem}`, code: -32602, label: 'Invalid params' };
        notification = !Array.isArray(body) && !Object.hasOwn(message, 'id');
        break;
      }
    }
    if (!refusal) return false;
    const { reason, code, label } = refusal;
    await this.options.onRefusedRequest?.({ messages, rawBody, reason, code, headers: req.headers }).catch((error) => {
      this.options.logger.error({ err: error }, 'refused request not audited');
    });
    if (notification) {
      // JSON-RPC answers no notification; Streamable HTTP acknowledges one with 202 and no body. It was recorded.
      res.writeHead(202).end();
      return true;
    }
    const first = messages[0] as { id?: unknown } | undefined;
    const id = typeof first?.id === 'string' || Number.isInteger(first?.id) ? (first!.id as string | number) : null;
    // A JSON-RPC error, not an HTTP one: the body was read and understood, and refused. Clients (the agent's) then
    // see the error for the request they sent, as for any other refused call.
    sendJson(res, 200, { jsonrpc: '2.0', error: { code, message: `${label}: ${reason}` }, id });
    return true;
  }

  /** Stops taking requests, waits for in-flight ones (up to the grace period), then closes every session. */
  async stop(): Promise<{ abandoned: number }> {
    this.draining = true;
    if (this.idleTimer) clearInterval(this.idleTimer);
    const closed = new Promise<void>((resolve) => this.http.close(() => resolve()));
    const deadline = Date.now() + this.options.shutdownGraceMs;
    while (this.inFlight > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 25));
    const abandoned = this.inFlight;
    for (const session of this.sessions.values()) await session.transport.close();
    this.sessions.clear();
    this.http.closeAllConnections();
    await closed;
    return { abandoned };
  }
}
