import { getEventListeners } from 'node:events';
import { APITimeoutError } from '@livekit/agents';
import { describe, expect, it } from 'vitest';
import { StallWatch } from '../../src/plugins/aws/stall.js';

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
/** Readiness is waited on: a loaded machine may fire timers late, never early. */
async function until(condition: () => boolean): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await wait(5);
  }
}

describe('StallWatch', () => {
  it('aborts with a retryable timeout when nothing arrives, and not while things keep arriving', async () => {
    const watch = new StallWatch(300, 'svc');
    for (let i = 0; i < 5; i++) {
      await wait(20);
      watch.touch();
    }
    // Touched every 20 ms for 100 ms: a 300 ms timeout could only fire after a 300 ms stall of this process.
    expect(watch.signal.aborted).toBe(false);
    const lastTouch = performance.now();
    await until(() => watch.timedOut);
    expect(performance.now() - lastTouch).toBeGreaterThanOrEqual(299);
    expect(watch.signal.reason).toBeInstanceOf(APITimeoutError);
    expect((watch.signal.reason as APITimeoutError).retryable).toBe(true);
  });

  it('does not run while paused, nor while nothing is owed', async () => {
    const paused = new StallWatch(40, 'svc');
    paused.pause();
    paused.touch(); // an event while paused does not restart the clock
    await wait(100);
    expect(paused.signal.aborted).toBe(false);
    paused.resume();
    await until(() => paused.timedOut);

    let owed = false;
    const idle = new StallWatch(40, 'svc', undefined, () => owed);
    await wait(100);
    expect(idle.signal.aborted).toBe(false);
    owed = true;
    await until(() => idle.timedOut);
  });

  it('follows its parent, and a stop leaves no listener on it', () => {
    const parent = new AbortController();
    const watch = new StallWatch(1_000, 'svc', parent.signal);
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(1);
    watch.stop();
    expect(getEventListeners(parent.signal, 'abort')).toHaveLength(0);
    const follower = new StallWatch(1_000, 'svc', parent.signal);
    parent.abort();
    expect(follower.signal.aborted).toBe(true);
    expect(follower.timedOut).toBe(false);
    follower.stop();
  });

  it('races each event without leaving a listener behind, and ends a stalled source when aborted', async () => {
    const watch = new StallWatch(1_000, 'svc');
    for (let i = 0; i < 1_000; i++) await watch.race(Promise.resolve(i));
    expect(getEventListeners(watch.signal, 'abort')).toHaveLength(0);

    async function* stalled() {
      yield 1;
      await new Promise(() => undefined); // never answers again
    }
    const seen: number[] = [];
    const reading = (async () => {
      for await (const value of watch.events(stalled())) seen.push(value);
    })();
    await wait(10);
    watch.abort();
    await expect(reading).rejects.toBeDefined();
    expect(seen).toEqual([1]);
  });
});
