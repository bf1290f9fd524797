/**
 * The one retry policy of every workspace: exponential backoff with full jitter, as AWS recommends for throttled
 * requests ("Exponential Backoff And Jitter", AWS Architecture Blog): the n-th wait is uniform in
 * [0, min(maxDelayMs, baseDelayMs × 2^n)], which spreads many clients retrying at once furthest apart.
 */
export interface BackoffOptions {
  /** Ceiling of the first wait, in ms. */
  readonly baseDelayMs: number;
  /** Ceiling of any wait, in ms. Default: no cap. */
  readonly maxDelayMs?: number;
  /** Source of randomness in [0, 1); injectable so tests are deterministic. Default Math.random. */
  readonly random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 200, maxDelayMs: 2_000 };

/** The largest wait before retry number `attempt` (0-based): the jitter window. */
export function backoffCeilingMs(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  return Math.min(options.maxDelayMs ?? Number.POSITIVE_INFINITY, options.baseDelayMs * 2 ** attempt);
}

/** Wait before retry number `attempt` (0-based): full jitter over the whole window. */
export function backoffDelayMs(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const random = options.random ?? Math.random;
  return Math.round(random() * backoffCeilingMs(attempt, options));
}

/** Sleep that ends early, rejecting with the signal's reason, when `signal` aborts. */
export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) {
      reject(signal.reason ?? new Error('aborted'));
      return;
    }
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal?.reason ?? new Error('aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface RetryOptions extends BackoffOptions {
  /** Attempts in all, the first included. */
  readonly maxAttempts: number;
  /** Whether a failure is worth another attempt; anything else is thrown at once. */
  readonly isRetryable: (error: unknown) => boolean;
  /** Injectable wait (tests record the delays instead of waiting). Default: `sleep`. */
  readonly sleep?: (ms: number) => Promise<void>;
  /** Told before each wait: the attempt that failed (1-based), its error and the delay chosen. */
  readonly onRetry?: (attempt: number, error: unknown, delayMs: number) => void;
}

/**
 * Runs `operation` until it succeeds, fails with an error `isRetryable` rejects, or `maxAttempts` are spent; then the
 * last error is thrown as it is (callers that need a distinct "gave up" error wrap it).
 */
export async function retryWithBackoff<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const wait = options.sleep ?? ((ms: number) => sleep(ms));
  for (let attempt = 1; ; attempt += 1) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= options.maxAttempts || !options.isRetryable(error)) throw error;
      const delayMs = backoffDelayMs(attempt - 1, options);
      options.onRetry?.(attempt, error, delayMs);
      await wait(delayMs);
    }
  }
}
