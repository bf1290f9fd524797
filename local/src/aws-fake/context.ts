import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { encodeException, respondError, writeMessage } from './event-stream';
import { errorTypeName, type FakeService, type Fault, type Latency, STREAM_EXCEPTIONS } from './scenario';
import { SESSION_HEADER, type SessionDirectory } from './sessions';

/** What every service handler shares: the sessions, the current latency knobs, how to listen, the log. */
export interface HandlerContext {
  sessions: SessionDirectory;
  latency(): Latency;
  speechLevel: number;
  minSpeechMs: number;
  transcribeIdleTimeoutMs: number;
  logger: Logger;
}

export interface FakeRequest {
  stream: ServerHttp2Stream;
  headers: IncomingHttpHeaders;
  path: string;
}

/** The session header a test's client may add; one value only. */
export function sessionHeader(headers: IncomingHttpHeaders): string[] {
  const value = headers[SESSION_HEADER];
  return typeof value === 'string' && value ? [value] : [];
}

/** The exception's payload as the service models it (Transcribe spells `Message`; Polly needs extra members). */
function exceptionPayload(service: FakeService, name: string, message: string): Record<string, unknown> {
  if (service === 'transcribe') return { Message: message };
  if (service === 'polly' && name === 'ValidationException') return { message, reason: 'other' };
  if (service === 'polly' && name === 'ServiceQuotaExceededException')
    return { message, quotaCode: 'fake', serviceCode: 'polly' };
  return { message };
}

/** A transport fault: the whole connection goes, mid-request, as when a network path fails. */
function dropped(stream: ServerHttp2Stream, fault: Fault): boolean {
  if (fault.at !== 'transport') return false;
  if (stream.session) stream.session.destroy();
  else stream.destroy();
  return true;
}

/** Answers the request with the fault as an HTTP error (before any stream). */
export function respondFault(request: FakeRequest, fault: Fault): void {
  if (dropped(request.stream, fault) || !fault.exception) return;
  const status = (STREAM_EXCEPTIONS[fault.service] as Record<string, number>)[fault.exception] ?? 400;
  const name = errorTypeName(fault.exception);
  respondError(request.stream, status, name, exceptionPayload(fault.service, name, fault.message));
}

/** Sends the fault as an exception event in a started stream and ends it. */
export async function streamFault(stream: ServerHttp2Stream, fault: Fault): Promise<void> {
  if (dropped(stream, fault) || !fault.exception) return;
  await writeMessage(
    stream,
    encodeException(fault.exception, exceptionPayload(fault.service, fault.exception, fault.message)),
  );
  if (!stream.destroyed) stream.end();
}

/** Ends a started stream with a modeled exception the fake chose itself (bad input, idle timeout). */
export async function streamException(
  stream: ServerHttp2Stream,
  service: FakeService,
  name: string,
  message: string,
): Promise<void> {
  await writeMessage(stream, encodeException(name, exceptionPayload(service, name, message)));
  if (!stream.destroyed) stream.end();
}

/** An HTTP error the fake chose itself (malformed request), named as the service names it. */
export function respondValidation(request: FakeRequest, service: FakeService, message: string): void {
  const name = service === 'transcribe' ? 'BadRequestException' : 'ValidationException';
  respondError(request.stream, 400, name, exceptionPayload(service, name, message));
}

/** Sleeps until `at` (performance.now() time), or returns at once when the stream went away. */
export async function waitUntil(at: number, stream: ServerHttp2Stream): Promise<void> {
  const delay = at - performance.now();
  if (delay <= 0 || stream.destroyed) return;
  const gone = new AbortController();
  const onClose = () => gone.abort();
  stream.once('close', onClose);
  try {
    await sleep(delay, undefined, { signal: gone.signal });
  } catch {
    // the client went away: nothing more to send
  } finally {
    stream.off('close', onClose);
  }
}
