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

const NETWORK_CODES = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE', 'ETIMEDOUT', 'ENOTFOUND', 'EAI_AGAIN']);

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
  const e = asAwsError(error);
  if (isThrottlingError(e)) return true;
  if (e.name !== undefined && TRANSIENT_NAMES.has(e.name)) return true;
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) return true;
  if (e.name === 'TimeoutError' || e.name === 'RequestTimeout') return true;
  if (e.$retryable !== undefined) return true;
  const status = e.$metadata?.httpStatusCode;
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
    return new APIError(error.message, { body: error.body, retryable: options.retryable });
  }
  const e = asAwsError(error);
  const retryable = options.retryable ?? isRetryableAwsError(e);
  const message = `${context}: ${e.name ?? 'Error'}: ${e.message ?? 'unknown error'}`;
  const body = { name: e.name ?? null, message: e.message ?? null };
  if (e.name === 'TimeoutError' || e.code === 'ETIMEDOUT') {
    return new APITimeoutError({ message, options: { retryable, body } });
  }
  if (e.code !== undefined && NETWORK_CODES.has(e.code)) {
    return new APIConnectionError({ message, options: { retryable, body } });
  }
  const statusCode = e.$metadata?.httpStatusCode ?? (e.name ? STATUS_BY_NAME[e.name] : undefined);
  if (statusCode !== undefined) {
    return new APIStatusError({
      message,
      options: { statusCode, requestId: e.$metadata?.requestId ?? null, retryable, body },
    });
  }
  return new APIError(message, { retryable, body });
}

/**
 * Event streams deliver modelled exceptions as union members (`{ ThrottlingException: {...} }`)
 * when they are not thrown by the deserializer. Turn such a member into an Error with the
 * exception's name so both delivery paths are classified the same way.
 */
export function exceptionFromStreamMember(member: object): Error | undefined {
  for (const [key, value] of Object.entries(member)) {
    if (!key.endsWith('Exception') || value === undefined || value === null) continue;
    const payload = value as { message?: string; Message?: string };
    const error = new Error(payload.message ?? payload.Message ?? key);
    // Bedrock spells members camelCase (throttlingException), Transcribe/Polly PascalCase.
    error.name = key[0].toUpperCase() + key.slice(1);
    return error;
  }
  return undefined;
}
