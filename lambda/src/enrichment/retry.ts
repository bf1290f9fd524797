import { retryWithBackoff } from '@voice-intake/contracts';

/** Bedrock errors worth waiting out: the request was fine, the service was busy. */
const RETRYABLE_NAMES = new Set([
  'ThrottlingException',
  'ServiceUnavailableException',
  'ModelNotReadyException',
  'InternalServerException',
  'TooManyRequestsException',
]);

export function isRetryableServiceError(error: unknown): boolean {
  if (!(error instanceof Error)) return false;
  const retryable = (error as { $retryable?: { throttling?: boolean } }).$retryable;
  return RETRYABLE_NAMES.has(error.name) || retryable !== undefined;
}

/** Thrown when the service stayed busy through every attempt: the invocation fails and is retried or dead-lettered. */
export class ServiceBusyError extends Error {
  override readonly name = 'ServiceBusyError';
}

export interface BackoffOptions {
  readonly maxAttempts: number;
  readonly baseDelayMs: number;
  readonly sleep?: (ms: number) => Promise<void>;
  readonly random?: () => number;
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
}

/** Runs `operation`, retrying retryable service errors with the shared backoff (exponential, full jitter). */
export async function withBackoff<T>(operation: () => Promise<T>, options: BackoffOptions): Promise<T> {
  let attempts = 0;
  try {
    return await retryWithBackoff(
      () => {
        attempts += 1;
        return operation();
      },
      { ...options, isRetryable: isRetryableServiceError },
    );
  } catch (error) {
    if (!isRetryableServiceError(error)) throw error;
    const { name, message } = error as Error;
    throw new ServiceBusyError(`still busy after ${attempts} attempts: ${name}: ${message}`, { cause: error });
  }
}
