/** Exponential backoff with full jitter, as AWS recommends for throttled requests. */
export interface BackoffOptions {
  /** Delay before the first retry, in ms. Default 200. */
  baseDelayMs: number;
  /** Upper bound of any single delay, in ms. Default 2000. */
  maxDelayMs: number;
  /** Source of randomness in [0, 1); injectable so tests are deterministic. Default Math.random. */
  random?: () => number;
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseDelayMs: 200, maxDelayMs: 2000 };

/** Delay before retry number `attempt` (0-based). */
export function backoffDelayMs(attempt: number, options: BackoffOptions = DEFAULT_BACKOFF): number {
  const ceiling = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** attempt);
  const random = options.random ?? Math.random;
  // Full jitter spreads concurrent callers apart; keep a floor so a retry never fires instantly.
  return Math.round(ceiling / 2 + (random() * ceiling) / 2);
}

/** Sleep that ends early (rejecting) when `signal` aborts. */
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
