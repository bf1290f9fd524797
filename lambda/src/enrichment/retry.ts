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

const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Runs `operation`, retrying retryable service errors with exponential backoff and full jitter. */
export async function withBackoff<T>(operation: () => Promise<T>, options: BackoffOptions): Promise<T> {
  const sleep = options.sleep ?? defaultSleep;
  const random = options.random ?? Math.random;
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await operation();
    } catch (error) {
      if (!isRetryableServiceError(error)) throw error;
      if (attempt >= options.maxAttempts) {
        throw new ServiceBusyError(`still busy after ${attempt} attempts: ${(error as Error).name}: ${(error as Error).message}`, {
          cause: error,
        });
      }
      const delayMs = Math.round(random() * options.baseDelayMs * 2 ** (attempt - 1));
      options.onRetry?.(attempt, error, delayMs);
      await sleep(delayMs);
    }
  }
}
