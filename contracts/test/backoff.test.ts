import { describe, expect, it } from 'vitest';
import { backoffCeilingMs, backoffDelayMs, retryWithBackoff } from '../src/backoff';

/** A seeded generator (mulberry32), so the distribution test is the same on every run. */
function seeded(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

describe('backoff (exponential, full jitter)', () => {
  const options = { baseDelayMs: 100, maxDelayMs: 1_000 };

  it('doubles the window per attempt up to the cap', () => {
    const ceilings = [0, 1, 2, 3, 4, 5].map((attempt) => backoffCeilingMs(attempt, options));
    expect(ceilings).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoffCeilingMs(10, { baseDelayMs: 1 })).toBe(1_024);
  });

  it('spreads each wait over the whole window, from zero to the ceiling', () => {
    expect(backoffDelayMs(3, { ...options, random: () => 0 })).toBe(0);
    expect(backoffDelayMs(3, { ...options, random: () => 0.999_999 })).toBe(800);
    const random = seeded(7);
    for (const attempt of [0, 2, 6]) {
      const ceiling = backoffCeilingMs(attempt, options);
      const samples = Array.from({ length: 2_000 }, () => backoffDelayMs(attempt, { ...options, random }));
      expect(Math.min(...samples)).toBeGreaterThanOrEqual(0);
      expect(Math.max(...samples)).toBeLessThanOrEqual(ceiling);
      // Full jitter, not equal jitter: the lower half of the window is used as much as the upper half.
      expect(Math.min(...samples)).toBeLessThan(ceiling * 0.05);
      expect(Math.max(...samples)).toBeGreaterThan(ceiling * 0.95);
      const mean = samples.reduce((sum, value) => sum + value, 0) / samples.length;
      expect(mean / ceiling).toBeGreaterThan(0.45);
      expect(mean / ceiling).toBeLessThan(0.55);
    }
  });

  it('retries what isRetryable accepts, waits the chosen delays, and throws the last error when spent', async () => {
    const delays: number[] = [];
    const failures: number[] = [];
    let calls = 0;
    const busy = new Error('busy');
    const error = await retryWithBackoff(
      async () => {
        calls += 1;
        throw busy;
      },
      {
        maxAttempts: 4,
        baseDelayMs: 100,
        random: () => 0.5,
        isRetryable: () => true,
        sleep: async (ms) => void delays.push(ms),
        onRetry: (attempt) => failures.push(attempt),
      },
    ).catch((caught: unknown) => caught);
    expect(error).toBe(busy);
    expect(calls).toBe(4);
    expect(delays).toEqual([50, 100, 200]);
    expect(failures).toEqual([1, 2, 3]);
  });

  it('throws at once what isRetryable rejects', async () => {
    let calls = 0;
    const invalid = new Error('invalid');
    await expect(
      retryWithBackoff(
        async () => {
          calls += 1;
          throw invalid;
        },
        { maxAttempts: 5, baseDelayMs: 1, isRetryable: () => false, sleep: async () => undefined },
      ),
    ).rejects.toBe(invalid);
    expect(calls).toBe(1);
  });
});
