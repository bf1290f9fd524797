import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AGENT_METRICS } from '@voice-intake/contracts';
import { afterAll, describe, expect, it } from 'vitest';
import { containerCpuLoad, processTreeCpuSeconds, workerLoad } from '../src/load';
import { MetricsEmitter } from '../src/metrics';

const jobs = (count: number) => ({ activeJobs: Array.from({ length: count }, (_, index) => ({ id: index })) });

describe('worker load', () => {
  it('reports CPU until the worker holds maxCalls calls, then full', async () => {
    const load = workerLoad({
      maxCalls: 3,
      metrics: new MetricsEmitter({ write: () => undefined }),
      cpuLoad: async () => 0.42,
    });
    expect(await load(jobs(0))).toBe(0.42);
    expect(await load(jobs(2))).toBe(0.42);
    expect(await load(jobs(3))).toBe(1);
    expect(await load(jobs(5))).toBe(1);
  });

  it('emits the ActiveCalls gauge once per minute, on the first poll of each minute', async () => {
    const lines: Record<string, unknown>[] = [];
    let clock = Date.UTC(2026, 10, 24, 12, 0, 30);
    const load = workerLoad({
      maxCalls: 10,
      metrics: new MetricsEmitter({ write: (line) => lines.push(JSON.parse(line)) }),
      cpuLoad: async () => 0,
      now: () => clock,
    });
    for (const [calls, advanceMs] of [
      [1, 0],
      [2, 2_500],
      [3, 25_000],
      [4, 5_000],
      [5, 2_500],
      [6, 60_000],
    ] as const) {
      clock += advanceMs;
      await load(jobs(calls));
    }
    // 12:00:30 → 1 call; 12:00:32.5 and 12:00:57.5 same minute; 12:01:02.5 → 4 calls; 12:01:05 same; 12:02:05 → 6.
    expect(lines.map((line) => line[AGENT_METRICS.activeCalls])).toEqual([1, 4, 6]);
    expect(lines[0]).toMatchObject({
      Service: 'agent',
      _aws: { CloudWatchMetrics: [{ Dimensions: [['Service']], Metrics: [{ Name: 'ActiveCalls', Unit: 'Count' }] }] },
    });
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

  it("without a CPU quota, counts only the worker's own processes against the host's cores", async () => {
    // Main process 100 and job process 200 use 50 ms each over a ~100 ms sample on 2 cores: 50 %. Job process 300
    // appears during the sample (counts from then); whatever else runs on the machine is not in the tree.
    const samples = [
      new Map([
        [100, 10],
        [200, 5],
      ]),
      new Map([
        [100, 10.05],
        [200, 5.05],
        [300, 7],
      ]),
    ];
    const sample = containerCpuLoad({
      cgroupRoot: join(cgroup, 'missing'),
      processTree: () => samples.shift()!,
      hostCores: 2,
    });
    const load = await sample(100);
    expect(load).toBeGreaterThan(0.1);
    expect(load).toBeLessThanOrEqual(0.51);
  });

  it('treats a cgroup v2 without a quota (cpu.max "max") like no cgroup', async () => {
    const unlimited = mkdtempSync(join(tmpdir(), 'cgroup-'));
    writeFileSync(join(unlimited, 'cpu.max'), 'max 100000\n');
    // The cgroup says the whole machine is busy (other tenants); the worker's own processes are idle.
    writeFileSync(join(unlimited, 'cpu.stat'), 'usage_usec 1000000\n');
    const sample = containerCpuLoad({ cgroupRoot: unlimited, processTree: () => new Map([[1, 3]]), hostCores: 2 });
    const measuring = sample(100);
    writeFileSync(join(unlimited, 'cpu.stat'), 'usage_usec 1200000\n');
    expect(await measuring).toBe(0);
    rmSync(unlimited, { recursive: true, force: true });
  });

  it("finds the worker's process tree in /proc, and nothing outside it", () => {
    const proc = mkdtempSync(join(tmpdir(), 'proc-'));
    // pid (comm) state ppid … utime(14th field) stime(15th): ticks of 1/100 s.
    const stat = (pid: number, comm: string, ppid: number, utime: number, stime: number) => {
      mkdirSync(join(proc, String(pid)));
      const middle = Array.from({ length: 9 }, () => '0').join(' ');
      writeFileSync(
        join(proc, String(pid), 'stat'),
        `${pid} (${comm}) S ${ppid} ${middle} ${utime} ${stime} 0 0 20 0\n`,
      );
    };
    stat(1, 'init', 0, 500, 500);
    stat(40, 'node', 1, 100, 50); // the worker
    stat(41, 'job (proc) x', 40, 200, 0); // a job process, name with spaces and parentheses
    stat(39, 'onnx', 41, 10, 10); // its child, lower pid after wrap-around
    stat(42, 'redis-server', 1, 9_000, 0); // a neighbour
    writeFileSync(join(proc, 'self'), ''); // not a pid
    const tree = processTreeCpuSeconds(40, proc);
    expect(Object.fromEntries(tree)).toEqual({ 40: 1.5, 41: 2, 39: 0.2 });
    expect(processTreeCpuSeconds(999, proc).size).toBe(0);
    rmSync(proc, { recursive: true, force: true });
  });

  it('sees a busy job process of this one on the real /proc', async () => {
    const child = spawn(process.execPath, ['-e', 'const end = Date.now() + 5000; while (Date.now() < end);']);
    try {
      await new Promise((resolve) => child.once('spawn', resolve));
      const load = await containerCpuLoad({ cgroupRoot: join(cgroup, 'missing'), hostCores: 1 })(400);
      expect(processTreeCpuSeconds().has(child.pid!)).toBe(true);
      // A spinning child takes most of a core, even on a loaded machine.
      expect(load).toBeGreaterThan(0.2);
    } finally {
      child.kill('SIGKILL');
    }
  });
});
