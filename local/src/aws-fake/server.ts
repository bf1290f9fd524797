import http, { type IncomingMessage, type ServerResponse } from 'node:http';
import http2, { type Http2Session, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import net, { type AddressInfo, type Socket } from 'node:net';
import pino, { type Logger } from 'pino';
import { handleConverse, handleConverseStream } from './bedrock';
import type { FakeRequest, HandlerContext } from './context';
import { respondError } from './event-stream';
import { handleSynthesisStream, handleSynthesizeSpeech } from './polly';
import {
  DEFAULT_LATENCY,
  type FakeService,
  type Latency,
  parseLatency,
  ScenarioError,
  type ScenarioInput,
} from './scenario';
import { SessionDirectory, type SessionRecord } from './sessions';
import { SPEECH_RMS_LEVEL } from './speech';
import { handleTranscribe } from './transcribe';

export interface AwsFakeOptions {
  /** Address to bind. Default 127.0.0.1. */
  host?: string;
  /** Port to bind; 0 picks a free one. Default 0. */
  port?: number;
  /** Service latencies (all 0 by default, Transcribe's end-of-utterance silence 500 ms). */
  latency?: Partial<Latency>;
  /** Scenarios by session key; `default` replaces the built-in intake call for sessions without one. */
  scenarios?: Record<string, ScenarioInput>;
  /** RMS over 10 ms above which audio is speech. Default: the agent test support's SPEECH_RMS_LEVEL. */
  speechLevel?: number;
  /** Loud audio an utterance needs at least (shorter is a click). Default 120 ms. */
  minSpeechMs?: number;
  /** Transcribe closes a stream without audio after this long (15 s in the service); 0 never. Default 15000. */
  transcribeIdleTimeoutMs?: number;
  logger?: Logger;
}

/** The environment that points the AWS SDK v3 clients at this fake. */
export function endpointEnv(url: string): Record<string, string> {
  return {
    AWS_ENDPOINT_URL_TRANSCRIBE_STREAMING: url,
    AWS_ENDPOINT_URL_BEDROCK_RUNTIME: url,
    AWS_ENDPOINT_URL_POLLY: url,
  };
}

const ADMIN_PREFIX = '/_fake/';
const MAX_ADMIN_BODY = 1024 * 1024;

type Route = (ctx: HandlerContext, request: FakeRequest) => Promise<void>;

/** Routes by the services' real request paths (all POST), as the SDK's serializers build them. */
function routeOf(path: string): { route: Route; operation: string; service: FakeService } | undefined {
  if (path === '/stream-transcription') {
    return { route: handleTranscribe, operation: 'StartStreamTranscription', service: 'transcribe' };
  }
  if (/^\/model\/[^/]+\/converse-stream$/.test(path)) {
    return { route: handleConverseStream, operation: 'ConverseStream', service: 'bedrock' };
  }
  if (/^\/model\/[^/]+\/converse$/.test(path))
    return { route: handleConverse, operation: 'Converse', service: 'bedrock' };
  if (path === '/v1/speech') return { route: handleSynthesizeSpeech, operation: 'SynthesizeSpeech', service: 'polly' };
  if (path === '/v1/synthesisStream') {
    return { route: handleSynthesisStream, operation: 'StartSpeechSynthesisStream', service: 'polly' };
  }
  return undefined;
}

/** The service a SigV4 Authorization header's credential scope names. */
function signedService(authorization: string | undefined): string | undefined {
  return /Credential=[^/]+\/\d{8}\/[^/]+\/([^/]+)\/aws4_request/.exec(authorization ?? '')?.[1];
}

/**
 * Amazon Transcribe streaming, Bedrock runtime and Polly on one loopback port, for the real AWS SDK v3 clients:
 * HTTP/2 without TLS and AWS event-stream framing, as the services speak them. The same port answers plain
 * HTTP/1.1 under `/_fake/` for tests and people: register scenarios, set latencies, read what each session got.
 */
export class AwsFake {
  readonly #options: AwsFakeOptions;
  readonly #sessions = new SessionDirectory();
  readonly #logger: Logger;
  readonly #h2 = http2.createServer();
  readonly #admin = http.createServer((req, res) => void this.#handleAdmin(req, res));
  readonly #listener = net.createServer((socket) => this.#sniff(socket));
  readonly #sockets = new Set<Socket>();
  readonly #h2Sessions = new Set<Http2Session>();
  #latency: Latency;
  #url: string | undefined;

  constructor(options: AwsFakeOptions = {}) {
    this.#options = options;
    this.#logger = options.logger ?? pino({ name: 'aws-fake', level: process.env.AWS_FAKE_LOG_LEVEL ?? 'warn' });
    this.#latency = parseLatency(options.latency ?? {}, DEFAULT_LATENCY);
    for (const [key, scenario] of Object.entries(options.scenarios ?? {})) this.#sessions.register(key, scenario);
    this.#h2.on('session', (session) => {
      this.#h2Sessions.add(session);
      session.on('close', () => this.#h2Sessions.delete(session));
      session.on('error', (error) => this.#logger.debug({ err: error }, 'http2 session error'));
    });
    this.#h2.on('stream', (stream, headers) => void this.#handleStream(stream, headers));
  }

  /** Binds and starts serving; resolves with the endpoint URL (`http://host:port`). */
  async start(): Promise<string> {
    const host = this.#options.host ?? '127.0.0.1';
    await new Promise<void>((resolve, reject) => {
      this.#listener.once('error', reject);
      this.#listener.listen(this.#options.port ?? 0, host, () => {
        this.#listener.off('error', reject);
        resolve();
      });
    });
    const { port } = this.#listener.address() as AddressInfo;
    this.#url = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
    this.#logger.info({ url: this.#url }, 'AWS fake listening');
    return this.#url;
  }

  get url(): string {
    if (!this.#url) throw new Error('AwsFake: not started');
    return this.#url;
  }

  /** AWS_ENDPOINT_URL_* for the three services. */
  get env(): Record<string, string> {
    return endpointEnv(this.url);
  }

  /** Registers (or replaces) the scenario for sessions with this key; `default` for sessions without one. */
  register(key: string, scenario: ScenarioInput): void {
    this.#sessions.register(key, scenario);
  }

  setLatency(latency: Partial<Latency>): Latency {
    this.#latency = parseLatency(latency, this.#latency);
    return this.#latency;
  }

  get latency(): Latency {
    return this.#latency;
  }

  /** What one session received, or undefined if none has that key. */
  session(key: string): SessionRecord | undefined {
    return this.#sessions.record(key);
  }

  get sessions(): SessionRecord[] {
    return this.#sessions.records;
  }

  /**
   * Resolves once `condition` holds for the sessions' records (checked every 25 ms); rejects after `timeoutMs` with
   * `what` and every record, so a failing test says what the services did get.
   */
  async until(what: string, condition: (sessions: SessionRecord[]) => boolean, timeoutMs = 30_000): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    while (!condition(this.sessions)) {
      if (performance.now() > deadline) {
        throw new Error(`AwsFake: timed out waiting for ${what}; sessions: ${JSON.stringify(this.sessions, null, 1)}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
  }

  /** Forgets scenarios, sessions and latencies set since start. */
  reset(): void {
    this.#sessions.reset();
    this.#latency = parseLatency(this.#options.latency ?? {}, DEFAULT_LATENCY);
    for (const [key, scenario] of Object.entries(this.#options.scenarios ?? {})) this.#sessions.register(key, scenario);
  }

  /** Stops listening and drops every connection. */
  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#listener.close(() => resolve()));
    for (const session of this.#h2Sessions) session.destroy();
    for (const socket of this.#sockets) socket.destroy();
    await closed;
  }

  #context(): HandlerContext {
    return {
      sessions: this.#sessions,
      latency: () => this.#latency,
      speechLevel: this.#options.speechLevel ?? SPEECH_RMS_LEVEL,
      minSpeechMs: this.#options.minSpeechMs ?? 120,
      transcribeIdleTimeoutMs: this.#options.transcribeIdleTimeoutMs ?? 15_000,
      logger: this.#logger,
    };
  }

  /** HTTP/2 starts with its connection preface; anything else on the port is the HTTP/1.1 admin API. */
  #sniff(socket: Socket): void {
    this.#sockets.add(socket);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', () => socket.destroy());
    socket.once('data', (first: Buffer) => {
      socket.pause();
      socket.unshift(first);
      const server: net.Server = first.subarray(0, 3).toString('latin1') === 'PRI' ? this.#h2 : this.#admin;
      server.emit('connection', socket);
      process.nextTick(() => socket.resume());
    });
  }

  async #handleStream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders): Promise<void> {
    stream.on('error', (error) => this.#logger.debug({ err: error }, 'http2 stream error'));
    const path = String(headers[':path'] ?? '').split('?')[0];
    const found = routeOf(path);
    if (!found || headers[':method'] !== 'POST') {
      this.#logger.warn({ method: headers[':method'], path }, 'no such operation');
      respondError(stream, 404, 'UnknownOperationException', {
        message: `no operation at ${headers[':method']} ${path}`,
      });
      return;
    }
    // Every request must be SigV4-signed for its service, as AWS would insist; an unsigned one is refused.
    const scope = signedService(headers.authorization);
    if (scope !== found.service) {
      respondError(stream, 403, 'UnrecognizedClientException', {
        message: `request not signed for ${found.service} (scope ${scope ?? 'none'})`,
      });
      return;
    }
    try {
      await found.route(this.#context(), { stream, headers, path });
    } catch (error) {
      this.#logger.error({ err: error, operation: found.operation }, 'fake service failed');
      respondError(stream, 500, 'InternalServerException', { message: 'the fake failed' });
    }
  }

  async #handleAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const reply = (status: number, body?: unknown) => {
      res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
      res.end(body === undefined ? undefined : JSON.stringify(body));
    };
    const path = (req.url ?? '').split('?')[0];
    if (!path.startsWith(ADMIN_PREFIX)) return reply(404, { error: `no such path ${path}` });
    const route = path.slice(ADMIN_PREFIX.length);
    try {
      if (req.method === 'GET' && route === 'health') return reply(200, { ok: true, url: this.#url });
      if (req.method === 'GET' && route === 'sessions') return reply(200, this.sessions);
      if (req.method === 'GET' && route.startsWith('sessions/')) {
        const record = this.session(decodeURIComponent(route.slice('sessions/'.length)));
        return record ? reply(200, record) : reply(404, { error: 'no such session' });
      }
      if (req.method === 'GET' && route === 'latency') return reply(200, this.#latency);
      if (req.method === 'POST' && route === 'reset') {
        this.reset();
        return reply(204);
      }
      if (req.method === 'PUT' && (route === 'latency' || route.startsWith('scenarios/'))) {
        if (!String(req.headers['content-type']).startsWith('application/json'))
          return reply(415, { error: 'send application/json' });
        const body = await readJson(req);
        if (route === 'latency') return reply(200, this.setLatency(body as Partial<Latency>));
        this.register(decodeURIComponent(route.slice('scenarios/'.length)), body as ScenarioInput);
        return reply(204);
      }
      return reply(404, { error: `no such admin route ${req.method} ${path}` });
    } catch (error) {
      const known = error instanceof ScenarioError || error instanceof AdminInputError || error instanceof URIError;
      if (!known) this.#logger.error({ err: error }, 'admin request failed');
      return reply(known ? 400 : 500, { error: (error as Error).message });
    }
  }
}

class AdminInputError extends Error {}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_ADMIN_BODY) throw new AdminInputError(`body over ${MAX_ADMIN_BODY} bytes`);
    parts.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(parts).toString('utf8'));
  } catch {
    throw new AdminInputError('the body is not JSON');
  }
}
