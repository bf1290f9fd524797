import type { ServerHttp2Stream } from 'node:http2';
import { EventStreamCodec } from '@smithy/eventstream-codec';

/**
 * AWS event-stream framing with the SDK's own codec, both ways: request streams arrive as signed envelopes
 * (`:date` + `:chunk-signature` around the encoded event, then an empty end frame); response streams go out as
 * plain events, or as `:message-type exception` messages that the SDK's deserializer throws as the modeled error.
 */
export const codec = new EventStreamCodec(
  (bytes) => Buffer.from(bytes).toString('utf8'),
  (text) => new Uint8Array(Buffer.from(text, 'utf8')),
);

/** One event a client sent: its `:event-type` and raw payload. */
export interface InboundEvent {
  type: string;
  body: Uint8Array;
}

export class EventStreamProtocolError extends Error {
  override readonly name = 'EventStreamProtocolError';
}

function header(
  message: { headers: Record<string, { type: string; value: unknown }> },
  name: string,
): string | undefined {
  const value = message.headers[name];
  return value?.type === 'string' ? (value.value as string) : undefined;
}

/**
 * Decodes a client's request body into events as bytes arrive. A frame whose length or CRC does not check, an
 * envelope without a signature, or an inner message that is not an event ends the stream with an error: the
 * caller answers with an exception instead of guessing.
 */
export async function* inboundEvents(
  stream: AsyncIterable<Buffer>,
  maxEventBytes = 1024 * 1024,
): AsyncGenerator<InboundEvent> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of stream) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= 4) {
      const total = pending.readUInt32BE(0);
      if (total < 16 || total > maxEventBytes) throw new EventStreamProtocolError(`event frame of ${total} bytes`);
      if (pending.length < total) break;
      const frame = pending.subarray(0, total);
      pending = pending.subarray(total);
      const event = unwrap(frame);
      if (event) yield event;
    }
  }
  if (pending.length > 0) throw new EventStreamProtocolError(`${pending.length} bytes of a truncated event frame`);
}

function unwrap(frame: Uint8Array): InboundEvent | undefined {
  let outer: ReturnType<typeof codec.decode>;
  try {
    outer = codec.decode(frame);
  } catch (error) {
    throw new EventStreamProtocolError(`undecodable event frame: ${(error as Error).message}`);
  }
  if (!outer.headers[':chunk-signature'] || !outer.headers[':date']) {
    throw new EventStreamProtocolError('event frame without :chunk-signature/:date (unsigned event stream)');
  }
  // The signed empty frame marks the end of the client's stream.
  if (outer.body.byteLength === 0) return undefined;
  let inner: ReturnType<typeof codec.decode>;
  try {
    inner = codec.decode(outer.body);
  } catch (error) {
    throw new EventStreamProtocolError(`undecodable signed event: ${(error as Error).message}`);
  }
  const messageType = header(inner, ':message-type');
  const type = header(inner, ':event-type');
  if (messageType !== 'event' || !type) {
    throw new EventStreamProtocolError(`signed message of type ${messageType ?? '(none)'} / ${type ?? '(none)'}`);
  }
  return { type, body: inner.body };
}

/** Parses a JSON event payload as an object; anything else is a protocol error. */
export function jsonPayload(event: InboundEvent): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(event.body).toString('utf8'));
  } catch {
    throw new EventStreamProtocolError(`${event.type}: payload is not JSON`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new EventStreamProtocolError(`${event.type}: payload is not a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

/** An event as the SDK's deserializer expects it: JSON members, or raw bytes for an `@eventPayload` blob. */
export function encodeEvent(type: string, payload: Record<string, unknown> | Uint8Array): Uint8Array {
  const binary = payload instanceof Uint8Array;
  return codec.encode({
    headers: {
      ':event-type': { type: 'string', value: type },
      ':message-type': { type: 'string', value: 'event' },
      ':content-type': { type: 'string', value: binary ? 'application/octet-stream' : 'application/json' },
    },
    body: binary ? payload : new Uint8Array(Buffer.from(JSON.stringify(payload))),
  });
}

/** A modeled exception inside the stream: `type` is the union member's name (Bedrock spells it camelCase). */
export function encodeException(type: string, payload: Record<string, unknown>): Uint8Array {
  return codec.encode({
    headers: {
      ':exception-type': { type: 'string', value: type },
      ':message-type': { type: 'string', value: 'exception' },
      ':content-type': { type: 'string', value: 'application/json' },
    },
    body: new Uint8Array(Buffer.from(JSON.stringify(payload))),
  });
}

/** Starts an event-stream response (200, eventstream content type) plus service-specific headers. */
export function respondEventStream(stream: ServerHttp2Stream, headers: Record<string, string> = {}): void {
  stream.respond({ ':status': 200, 'content-type': 'application/vnd.amazon.eventstream', ...headers });
}

/** A restJson1 error before any stream: the SDK maps `x-amzn-errortype` to the modeled exception class. */
export function respondError(
  stream: ServerHttp2Stream,
  status: number,
  type: string,
  payload: Record<string, unknown>,
): void {
  if (stream.destroyed || stream.closed) return;
  if (stream.headersSent) {
    stream.close();
    return;
  }
  stream.respond({
    ':status': status,
    'content-type': 'application/json',
    'x-amzn-errortype': type,
    'x-amzn-requestid': crypto.randomUUID(),
  });
  stream.end(JSON.stringify(payload));
}

/** Writes one encoded message, waiting for the peer when the stream's buffer is full. */
export async function writeMessage(stream: ServerHttp2Stream, message: Uint8Array): Promise<boolean> {
  if (stream.destroyed || stream.closed || stream.writableEnded) return false;
  if (stream.write(message)) return true;
  await new Promise<void>((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
  return !stream.destroyed;
}

/** Reads a whole (non-streaming) request body, refusing more than `limit` bytes. */
export async function readBody(stream: ServerHttp2Stream, limit: number): Promise<Buffer> {
  const parts: Buffer[] = [];
  let size = 0;
  for await (const chunk of stream as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) throw new EventStreamProtocolError(`request body over ${limit} bytes`);
    parts.push(chunk);
  }
  return Buffer.concat(parts);
}
