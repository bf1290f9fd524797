import { readdirSync, readFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { ACTIVE_CALLS_INTERVAL_SECONDS, AGENT_METRICS } from '@voice-intake/contracts';
import type { MetricsEmitter } from './metrics';

/** Linux reports process CPU times in USER_HZ ticks, 100 per second on every architecture Node runs on. */
const TICKS_PER_SECOND = 100;

/** CPU seconds used so far by each process of the tree rooted at `rootPid` (from /proc; empty when unreadable). */
export function processTreeCpuSeconds(rootPid = process.pid, procRoot = '/proc'): Map<number, number> {
  const stats = new Map<number, { parent: number; seconds: number }>();
  let entries: string[];
  try {
    entries = readdirSync(procRoot);
  } catch {
    return new Map();
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`${procRoot}/${entry}/stat`, 'utf8');
      // The command name may hold spaces and parentheses: the fields start after the last ')'.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const seconds = (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND;
      if (Number.isFinite(seconds)) stats.set(Number(entry), { parent: Number(fields[1]), seconds });
    } catch {
      // the process ended while we looked
    }
  }
  const tree = new Map<number, number>();
  const root = stats.get(rootPid);
  if (!root) return tree;
  tree.set(rootPid, root.seconds);
  // Parents may have higher pids than their children after pid wrap-around: repeat until nothing joins.
  for (let grown = true; grown; ) {
    grown = false;
    for (const [pid, { parent, seconds }] of stats) {
      if (!tree.has(pid) && tree.has(parent)) {
        tree.set(pid, seconds);
        grown = true;
      }
    }
  }
  return tree;
}

export interface CpuLoadSources {
  cgroupRoot?: string;
  /** CPU seconds per process of this worker (main process and job processes). Default: from /proc. */
  processTree?: () => Map<number, number>;
  hostCores?: number;
}

/**
 * CPU use of this worker, 0…1 of what it may use, sampled over `intervalMs`. With a cgroup v2 CPU quota (as on
 * Fargate, where the task is the worker) it is the cgroup's usage against the quota. Without one (a laptop, a
 * CI machine), it is the CPU of the worker's own processes — the main process and its job processes — against the
 * host's cores: the whole machine's CPU would include everything else running there, and LiveKit refuses to
 * dispatch to a worker reporting a load above its threshold, so a busy neighbour would turn calls away.
 */
export function containerCpuLoad(sources: CpuLoadSources | string = {}): (intervalMs: number) => Promise<number> {
  const options = typeof sources === 'string' ? { cgroupRoot: sources } : sources;
  const cgroupRoot = options.cgroupRoot ?? '/sys/fs/cgroup';
  const processTree = options.processTree ?? (() => processTreeCpuSeconds());
  const hostCores = options.hostCores ?? cpus().length;
  const usageMicros = (): number | undefined => {
    try {
      const stat = readFileSync(`${cgroupRoot}/cpu.stat`, 'utf8').split('\n');
      const line = stat.find((entry) => entry.startsWith('usage_usec '));
      return line ? Number(line.split(' ')[1]) : undefined;
    } catch {
      return undefined;
    }
  };
  const quotaCores = (): number | undefined => {
    try {
      const [quota, period] = readFileSync(`${cgroupRoot}/cpu.max`, 'utf8').trim().split(/\s+/);
      if (quota !== 'max' && Number(period) > 0) return Number(quota) / Number(period);
    } catch {
      // no cgroup v2 limit
    }
    return undefined;
  };
  const clamp = (value: number) => Math.min(1, Math.max(0, value));

  return async (intervalMs) => {
    const quota = quotaCores();
    const usageBefore = quota === undefined ? undefined : usageMicros();
    const treeBefore = usageBefore === undefined ? processTree() : undefined;
    const cpuBefore = process.cpuUsage();
    const startedAt = performance.now();
    await new Promise((resolve) => setTimeout(resolve, intervalMs));
    const elapsedSeconds = (performance.now() - startedAt) / 1000;
    if (quota !== undefined && usageBefore !== undefined) {
      const usageAfter = usageMicros();
      if (usageAfter !== undefined) return clamp((usageAfter - usageBefore) / 1e6 / elapsedSeconds / quota);
    }
    if (treeBefore && treeBefore.size > 0) {
      // Processes that started or ended within the sample count from when they were seen (a job process lives
      // for a whole call, so that loses little).
      let used = 0;
      for (const [pid, seconds] of processTree()) used += seconds - (treeBefore.get(pid) ?? seconds);
      return clamp(used / elapsedSeconds / hostCores);
    }
    // No /proc (macOS): this process only.
    const cpu = process.cpuUsage(cpuBefore);
    return clamp((cpu.user + cpu.system) / 1e6 / elapsedSeconds / hostCores);
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
export function workerLoad(
  options: WorkerLoadOptions,
): (worker: { activeJobs: readonly unknown[] }) => Promise<number> {
  const cpuLoad =
    options.cpuLoad ??
    (
      (sample) => () =>
        sample(1_000)
    )(containerCpuLoad());
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
