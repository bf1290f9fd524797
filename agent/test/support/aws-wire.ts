import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import {
  encodeEvent,
  encodeException,
  type InboundEvent,
  inboundEvents,
} from '../../../local/src/aws-fake/event-stream';

/**
 * AWS on the wire, for tests: an HTTP/2 cleartext server the real SDK clients talk to (endpoint, signing, request
 * serialisation, response parsing). Event-stream responses are framed with the SDK's own codec, so the client's own
 * event-stream reader decodes them: a modelled exception arrives as an exception frame and is thrown by the SDK, a
 * dropped connection fails the way a real one does, and a stalled response is just a response that stops.
 */

/** An event frame as the service sends it: `:event-type` names the union member, the body is its JSON or bytes. */
export function eventFrame(eventType: string, payload: object | Uint8Array): Uint8Array {
  return encodeEvent(eventType, payload as Record<string, unknown> | Uint8Array);
}

/** A modelled exception inside an event stream (e.g. `throttlingException` from Bedrock, `BadRequestException`). */
export function exceptionFrame(exceptionType: string, message: string): Uint8Array {
  // Bedrock spells the field `message`, Transcribe and Polly `Message`.
  return encodeException(exceptionType, { message, Message: message });
}

/**
 * Reads an event-stream request body (the client's signed envelopes, checked as the local AWS fake checks them): each
 * event the client sent. A handler that stops reading early does not reset the stream (what breaking out of a
 * stream's iterator would do): it answers on.
 */
export function requestEvents(body: Readable): AsyncGenerator<InboundEvent> {
  return inboundEvents(body.iterator({ destroyOnReturn: false }));
}

export interface WireExchange {
  readonly path: string;
  readonly headers: http2.IncomingHttpHeaders;
  readonly stream: http2.ServerHttp2Stream;
  /** The request body as JSON (not for event-stream requests). */
  json<T = Record<string, unknown>>(): Promise<T>;
  /** Answers with a modelled error, as restJson1 services do (status, `x-amzn-errortype`, JSON message). */
  fail(status: number, errorType: string, message: string): void;
  /** Starts a 200 response; `extra` adds headers (request ids). */
  respond(contentType: string, extra?: Record<string, string>): void;
  /** Writes bytes (or event frames) of the response; resolves when flushed. */
  write(bytes: Uint8Array): Promise<void>;
  end(): void;
  /** Resets the stream (RST_STREAM, internal error): what a connection lost mid-response looks like to the client. */
  drop(): void;
  /** Resolves when the client went away (aborted or reset the request). */
  readonly closed: Promise<void>;
}

export type WireHandler = (exchange: WireExchange) => void | Promise<void>;

export interface WireRequestRecord {
  path: string;
  at: number;
}

export class AwsWire {
  readonly requests: WireRequestRecord[] = [];
  #routes: { match: RegExp; handler: WireHandler }[] = [];
  #sessions = new Set<http2.ServerHttp2Session>();

  private constructor(
    private readonly server: http2.Http2Server,
    readonly url: string,
  ) {}

  static async start(): Promise<AwsWire> {
    const server = http2.createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const wire = new AwsWire(server, `http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    server.on('session', (session) => {
      wire.#sessions.add(session);
      session.on('close', () => wire.#sessions.delete(session));
    });
    server.on('stream', (stream, headers) => void wire.#serve(stream, headers));
    return wire;
  }

  /** Serves requests whose path matches; a later route for the same path wins. */
  on(match: RegExp, handler: WireHandler): this {
    this.#routes.unshift({ match, handler });
    return this;
  }

  reset(): void {
    this.#routes = [];
    this.requests.length = 0;
  }

  count(match: RegExp): number {
    return this.requests.filter((request) => match.test(request.path)).length;
  }

  /** SDK client configuration pointing at this server, with static test credentials. */
  clientConfig() {
    return {
      endpoint: this.url,
      region: 'us-east-1',
      credentials: { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret' },
    };
  }

  async close(): Promise<void> {
    for (const session of this.#sessions) session.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  async #serve(stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders): Promise<void> {
    const path = String(headers[':path'] ?? '');
    this.requests.push({ path, at: performance.now() });
    stream.on('error', () => undefined);
    const route = this.#routes.find((candidate) => candidate.match.test(path));
    const closed = new Promise<void>((resolve) => stream.once('close', () => resolve()));
    const exchange: WireExchange = {
      path,
      headers,
      stream,
      closed,
      async json<T>() {
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        return JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as T;
      },
      fail(status, errorType, message) {
        if (stream.destroyed) return;
        stream.respond({
          ':status': status,
          'content-type': 'application/json',
          'x-amzn-errortype': errorType,
          'x-amzn-requestid': `req-${errorType}`,
        });
        stream.end(JSON.stringify({ message, Message: message }));
      },
      respond(contentType, extra = {}) {
        stream.respond({ ':status': 200, 'content-type': contentType, ...extra });
      },
      write(bytes) {
        return new Promise((resolve) => {
          if (stream.destroyed || stream.closed) return resolve();
          stream.write(bytes, () => resolve());
        });
      },
      end() {
        if (!stream.destroyed) stream.end();
      },
      drop() {
        if (!stream.destroyed) stream.destroy(new Error('connection lost'));
      },
    };
    if (!route) {
      exchange.fail(404, 'UnknownOperationException', `no fake for ${path}`);
      return;
    }
    try {
      await route.handler(exchange);
    } catch (error) {
      if (!stream.headersSent) exchange.fail(500, 'InternalServerException', String(error));
      else exchange.drop();
    }
  }
}

/** What `useAwsWire` hands a test: the wire, and the SDK client pointed at it (both set once the suite starts). */
export interface AwsWireFixture<Client> {
  readonly wire: AwsWire;
  readonly client: Client;
}

/**
 * Registers a suite's hooks for AWS on the wire: the server and an SDK client of `Client` (one attempt per call, so
 * retries are the plugin's own) start before the suite and end after it, even after a failed start; the routes and
 * the request log are cleared before each test.
 */
export function useAwsWire<Client extends { destroy(): void }>(
  Client: new (config: ReturnType<AwsWire['clientConfig']> & { maxAttempts: number }) => Client,
): AwsWireFixture<Client> {
  let wire: AwsWire | undefined;
  let client: Client | undefined;
  beforeAll(async () => {
    wire = await AwsWire.start();
    client = new Client({ ...wire.clientConfig(), maxAttempts: 1 });
  });
  afterAll(async () => {
    client?.destroy();
    await wire?.close();
  });
  beforeEach(() => wire?.reset());
  return {
    get wire() {
      if (!wire) throw new Error('the AWS wire is not started (use it inside a test or hook)');
      return wire;
    },
    get client() {
      if (!client) throw new Error('the AWS wire is not started (use it inside a test or hook)');
      return client;
    },
  };
}
