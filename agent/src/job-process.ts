import { AGENT_CALL_COST, AGENT_SIZING } from '@voice-intake/contracts';

/**
 * How the worker runs its job processes (LiveKit Agents 1.9 for Node forks one per call). Figures from
 * `npm run bench:job-memory -w agent` (a process by phase) and `npm run bench:production-density -w local`.
 */
export const JOB_PROCESS = {
  /**
   * V8 flags every job process gets (the framework forks with the main process's execArgv). A call's young objects
   * are audio frames that die within a frame: a 1 MB semi-space holds them and saves ~27 MB of RSS per process over
   * V8's 16 MB default (bench:job-memory: 185 → 158 MB idle, bundle on plain node; 229 → 203 MB in a call, CPU the
   * same within noise). The old-space cap is ~3× the most a call's heap held in bench:production-density (69 MB,
   * ~43 MB typical): a runaway call fails alone and early instead of swelling towards the task's memory.
   */
  v8Flags: ['--max-semi-space-size=1', '--max-old-space-size=192'],
  /** Warm processes waiting for calls (AGENT_SIZING, contracts): the framework's default is 4 of ~165 MB each. */
  idleProcesses: AGENT_SIZING.warmProcesses,
  /** A call process this far above a measured call (AGENT_CALL_COST, contracts) is logged. */
  memoryWarnMB: Math.round(AGENT_CALL_COST.jobProcessMiB * 1.25),
  /**
   * Above this it is killed and its call dispatched again (recovery): well above any healthy call, below a leak
   * eating the task's memory that every other call shares.
   */
  memoryLimitMB: Math.round(AGENT_CALL_COST.jobProcessMiB * 1.75),
} as const;

/** Adds the job processes' V8 flags to this process's execArgv, which the framework's fork() hands to each job. */
export function applyJobProcessFlags(execArgv: string[] = process.execArgv): string[] {
  for (const flag of JOB_PROCESS.v8Flags) {
    const name = flag.split('=')[0];
    // A flag given on the command line (NODE_OPTIONS or node's own) wins: an operator may tune it.
    if (!execArgv.some((arg) => arg.split('=')[0] === name) && !process.env.NODE_OPTIONS?.includes(name)) {
      execArgv.push(flag);
    }
  }
  return execArgv;
}
