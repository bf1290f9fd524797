import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_METRICS } from '@voice-intake/contracts';
import { afterAll, describe, expect, it } from 'vitest';
import { containerCpuLoad, workerLoad } from '../src/load';
import { MetricsEmitter } from '../src/metrics';

const jobs = (count: number) => ({ activeJobs: Array.from({ length: count }, (_, index) => ({ id: index })) });

describe('worker load', () => {
  it('reports CPU until the worker holds maxCalls calls, then full', async () => {
    const load = workerLoad({ maxCalls: 3, metrics: new MetricsEmitter({ write: () => undefined }), cpuLoad: async () => 0.42 });
    expect(await load(jobs(0))).toBe(0.42);
    expect(await load(jobs(2))).toBe(0.42);
    expect(await load(jobs(3))).toBe(1);
    expect(await load(jobs(5))).toBe(1);
  });

  it('emits the ActiveCalls gauge once per minute, on the first poll of each minute', async () => {
    const lines: Record<string, unknown>[] = [];
    let clock = Date.UTC(2026, 10, 24, 12, 0, 30);
    const load = workerLoad({ maxCalls: 10, metrics: new MetricsEmitter({ write: (line) => lines.push(JSON.parse(line)) }), cpuLoad: async () => 0, now: () => clock });
    for (const [calls, advanceMs] of [[1, 0], [2, 2_500], [3, 25_000], [4, 5_000], [5, 2_500], [6, 60_000]] as const) {
      clock += advanceMs;
      await load(jobs(calls));
    }
    // 12:00:30 → 1 call; 12:00:32.5 and 12:00:57.5 same minute; 12:01:02.5 → 4 calls; 12:01:05 same; 12:02:05 → 6.
    expect(lines.map((line) => line[AGENT_METRICS.activeCalls])).toEqual([1, 4, 6]);
    expect(lines[0]).toMatchObject({ Service: 'agent', _aws: { CloudWatchMetrics: [{ Dimensions: [['Service']], Metrics: [{ Name: 'ActiveCalls', Unit: 'Count' }] }] } });
  });
});

describe('container CPU load', () => {
  const cgroup = mkdtempSync(join(tmpdir(), 'cgroup-'));
  afterAll(() => rmSync(cgroup, { recursive: true, force: true }));

  it('measures cgroup v2 usage against the CPU quota', async () => {
    writeFileSync(join(cgroup, 'cpu.max'), '200000 100000\n'); // 2 vCPU
    writeFileSync(join(cgroup, 'cpu.stat'), 'usage_usec 1000000\nuser_usec 1\n');
    const sample = containerCpuLoad(cgroup);
    const measuring = sample(100);
    // Over the ~100 ms sample the container used 100 ms of CPU: one core of the two allowed, 50 %.
    writeFileSync(join(cgroup, 'cpu.stat'), 'usage_usec 1100000\nuser_usec 1\n');
    const load = await measuring;
    expect(load).toBeGreaterThan(0.1); // a slow timer only lowers it
    expect(load).toBeLessThanOrEqual(0.51); // a timer may fire a fraction of a ms early
  });

  it('falls back to the host CPUs without a cgroup', async () => {
    const load = await containerCpuLoad(join(cgroup, 'missing'))(50);
    expect(load).toBeGreaterThanOrEqual(0);
    expect(load).toBeLessThanOrEqual(1);
  });
});
