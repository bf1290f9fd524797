import { APIConnectionError, APIError, APIStatusError, APITimeoutError } from '@livekit/agents';

/** The fields AWS SDK v3 service exceptions carry (a subset of `ServiceException`). */
interface AwsErrorLike {
  name?: string;
  message?: string;
  code?: string;
  $fault?: 'client' | 'server';
  $retryable?: { throttling?: boolean };
  $metadata?: { httpStatusCode?: number; requestId?: string };
}

/** Exception names AWS services use for "slow down", across Transcribe, Bedrock and Polly. */
const THROTTLING_NAMES = new Set([
  'ThrottlingException',
  'TooManyRequestsException',
  'LimitExceededException',
  'ServiceQuotaExceededException',
  'ProvisionedThroughputExceededException',
]);

/** Server-side or transient failures that a fresh request may not hit. */
const TRANSIENT_NAMES = new Set([
  'InternalServerException',
  'InternalFailureException',
  'ServiceUnavailableException',
  'ServiceFailureException',
  'ModelNotReadyException',
  'ModelTimeoutException',
  'ModelStreamErrorException',
]);

const NETWORK_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ENOTFOUND',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
]);

/** What the SDK's HTTP/2 handler throws when the connection, not the service, failed (it sets no code for these). */
const HTTP2_TRANSPORT_MESSAGES =
  /HTTP\/2 stream is abnormally aborted|http2 request did not get a response|Frame type id/i;

/** A failure of the connection to AWS (reset, refused, HTTP/2 stream or session error): worth another request. */
export function isNetworkError(error: unknown): boolean {
  const e = asAwsError(error);
  // Checked before any HTTP status: a stream that breaks mid-response carries the response's 200 in $metadata.
  if (e.code !== undefined && (NETWORK_CODES.has(e.code) || e.code.startsWith('ERR_HTTP2_'))) return true;
  return HTTP2_TRANSPORT_MESSAGES.test(e.message ?? '');
}

const STATUS_BY_NAME: Record<string, number> = {
  BadRequestException: 400,
  ValidationException: 400,
  AccessDeniedException: 403,
  ResourceNotFoundException: 404,
  ConflictException: 409,
  ThrottlingException: 429,
  LimitExceededException: 429,
  ServiceQuotaExceededException: 429,
  InternalServerException: 500,
  InternalFailureException: 500,
  ServiceFailureException: 500,
  ServiceUnavailableException: 503,
};

function asAwsError(error: unknown): AwsErrorLike {
  return typeof error === 'object' && error !== null ? (error as AwsErrorLike) : { message: String(error) };
}

/**
 * The HTTP status of a failure. An exception inside an event stream carries the stream's own 200 in `$metadata`:
 * then the exception's name says what went wrong.
 */
function failureStatus(e: AwsErrorLike): number | undefined {
  const status = e.$metadata?.httpStatusCode;
  if (status !== undefined && status >= 400) return status;
  return e.name ? STATUS_BY_NAME[e.name] : undefined;
}

/** True when AWS asked us to slow down (HTTP 429 or a throttling exception). */
export function isThrottlingError(error: unknown): boolean {
  const e = asAwsError(error);
  return (
    (e.name !== undefined && THROTTLING_NAMES.has(e.name)) ||
    e.$retryable?.throttling === true ||
    e.$metadata?.httpStatusCode === 429
  );
}

/** True when the request may succeed if sent again unchanged. */
export function isRetryableAwsError(error: unknown): boolean {
  if (error instanceof APIError) return error.retryable;
  const e = asAwsError(error);
  if (isAbortError(e)) return false;
  if (isThrottlingError(e)) return true;
  if (e.name !== undefined && TRANSIENT_NAMES.has(e.name)) return true;
  if (isNetworkError(e)) return true;
  if (e.name === 'TimeoutError' || e.name === 'RequestTimeout') return true;
  if (e.$retryable !== undefined) return true;
  const status = failureStatus(e);
  if (status !== undefined) return status >= 500;
  return e.$fault === 'server';
}

/** True when the error is the SDK reacting to our own AbortSignal. */
export function isAbortError(error: unknown): boolean {
  const e = asAwsError(error);
  return e.name === 'AbortError' || e.code === 'ABORT_ERR';
}

/**
 * Map anything an AWS SDK call threw (or an exception member of an event stream) to LiveKit's
 * `APIError` family, so the framework's retry loop and error events see a consistent shape.
 * `retryable` overrides the classification, e.g. when a retry would replay already-emitted output.
 */
export function toAPIError(error: unknown, context: string, options: { retryable?: boolean } = {}): APIError {
  if (error instanceof APIError) {
    if (options.retryable === undefined || options.retryable === error.retryable) return error;
    // Same kind of failure, only no longer worth retrying.
    const overridden = { body: error.body, retryable: options.retryable };
    const { message } = error;
    if (error instanceof APITimeoutError) return new APITimeoutError({ message, options: overridden });
    if (error instanceof APIConnectionError) return new APIConnectionError({ message, options: overridden });
    if (error instanceof APIStatusError) {
      const status = { ...overridden, statusCode: error.statusCode, requestId: error.requestId };
      return new APIStatusError({ message, options: status });
    }
    return new APIError(message, overridden);
  }
  const e = asAwsError(error);
  const retryable = options.retryable ?? isRetryableAwsError(e);
  const message = `${context}: ${e.name ?? 'Error'}: ${e.message ?? 'unknown error'}`;
  const body = { name: e.name ?? null, message: e.message ?? null };
  if (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return new APITimeoutError({ message, options: { retryable, body } });
  }
  if (isNetworkError(e)) {
    return new APIConnectionError({ message, options: { retryable, body } });
  }
  const statusCode = failureStatus(e);
  if (statusCode !== undefined) {
    return new APIStatusError({
      message,
      options: { statusCode, requestId: e.$metadata?.requestId ?? null, retryable, body },
    });
  }
  return new APIError(message, { retryable, body });
}
