import { readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { ACTIVE_CALLS_INTERVAL_SECONDS, AGENT_METRICS } from '@voice-intake/contracts';
import type { MetricsEmitter } from './metrics';

/**
 * CPU use of this container, 0…1 of what it may use: cgroup v2 (`cpu.stat` usage against `cpu.max`, as on Fargate)
 * when present, otherwise the host's CPUs. Sampled over `intervalMs`.
 */
export function containerCpuLoad(cgroupRoot = '/sys/fs/cgroup'): (intervalMs: number) => Promise<number> {
  const usageMicros = (): number | undefined => {
    try {
      const line = readFileSync(`${cgroupRoot}/cpu.stat`, 'utf8').split('\n').find((entry) => entry.startsWith('usage_usec '));
      return line ? Number(line.split(' ')[1]) : undefined;
    } catch {
      return undefined;
    }
  };
  const allowedCores = (): number => {
    try {
      const [quota, period] = readFileSync(`${cgroupRoot}/cpu.max`, 'utf8').trim().split(/\s+/);
      if (quota !== 'max' && Number(period) > 0) return Number(quota) / Number(period);
    } catch {
      // no limit file: the host's CPUs
    }
    return cpus().length;
  };
  const hostBusy = () => cpus().reduce((sum, cpu) => ({ busy: sum.busy + cpu.times.user + cpu.times.nice + cpu.times.sys + cpu.times.irq, total: sum.total + Object.values(cpu.times).reduce((a, b) => a + b, 0) }), { busy: 0, total: 0 });

  return async (intervalMs) => {
    const before = usageMicros();
    const hostBefore = hostBusy();
    const startedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const after = usageMicros();
    if (before !== undefined && after !== undefined) {
      const elapsedMicros = (performance.now() - startedAt) * 1000;
      return Math.min(1, Math.max(0, (after - before) / elapsedMicros / allowedCores()));
    }
    const hostAfter = hostBusy();
    const total = hostAfter.total - hostBefore.total;
    return total > 0 ? Math.min(1, (hostAfter.busy - hostBefore.busy) / total) : 0;
  };
}

export interface WorkerLoadOptions {
  /** Calls one worker takes at most: each is a job process (~250 MB), so memory, not CPU, usually binds first. */
  maxCalls: number;
  metrics: MetricsEmitter;
  /** CPU load, 0…1. Default: this container's, over one second. */
  cpuLoad?: () => Promise<number>;
  now?: () => number;
}

/**
 * The worker's load as LiveKit asks for it (`ServerOptions.loadFunc`, polled every few seconds in the main worker
 * process): its CPU, or full (1) once it holds `maxCalls` calls, so LiveKit sends new calls to another worker before
 * this one runs out of memory. Polling is also where the main process sees every job, so it emits the ActiveCalls
 * gauge here, once a minute, which the agent service scales on. (Each job is its own process: no job could.)
 */
export function workerLoad(options: WorkerLoadOptions): (worker: { activeJobs: readonly unknown[] }) => Promise<number> {
  const cpuLoad = options.cpuLoad ?? ((sample) => () => sample(1_000))(containerCpuLoad());
  const now = options.now ?? Date.now;
  let lastPeriod: number | undefined;
  return async (worker) => {
    const activeCalls = worker.activeJobs.length;
    // The first poll of each period emits: exactly one data point per task per period, so Sum is the calls in
    // progress and Average the calls per task, however the polls fall.
    const period = Math.floor(now() / (ACTIVE_CALLS_INTERVAL_SECONDS * 1000));
    if (period !== lastPeriod) {
      lastPeriod = period;
      options.metrics.emit({ [AGENT_METRICS.activeCalls]: activeCalls });
    }
    if (activeCalls >= options.maxCalls) return 1;
    return cpuLoad();
  };
}
