/**
 * What one call costs the agent worker in production mode — LiveKit Agents runs a job process per call — as measured
 * by `npm run bench:production-density -w local` (the worker bundle against a real LiveKit Server, the AWS services
 * faked over the wire, N = 1…6 calls on a 2-core machine; figures in agent/README.md). The agent service's task size
 * check, its calls per task, its scaling target and the worker's job-process limits all derive from these: re-measure
 * and change them here.
 */
export const AGENT_CALL_COST = {
  /** RSS of a job process holding a call (medians 205–214 MB at N = 1…6 on an idle host; at most 214 MB). */
  jobProcessMiB: 215,
  /** RSS of a warm job process waiting for a call (worker module and Silero loaded): 160–164 MB. */
  idleProcessMiB: 165,
  /** RSS of the worker's main process (registration, load reports, recovery): 114–124 MB. */
  mainProcessMiB: 125,
  /**
   * CPU of the worker's whole process tree per call, in vCPUs (main, idle and call processes, over N calls), on an
   * idle host: 0.169 at N = 1 (the dearest), 0.137–0.161 at N = 2…6. Three quarters of it is each process's
   * JavaScript thread (framework, FFI, streams, GC). A host shared with other work measured 0.24: size for a task
   * that has its vCPUs to itself, as Fargate gives.
   */
  vcpuPerCall: 0.17,
} as const;

export const AGENT_SIZING = {
  /** Warm job processes the worker keeps (`numIdleProcesses`): calls arriving within a process's ~2 s start-up. */
  warmProcesses: 2,
  /** Idle processes seen beside the calls with `numIdleProcesses` 2 (one more is always starting up). */
  idleProcessesSeen: 3,
  /** CPU a task is planned to use at most: room for bursts and for the 0.7 load LiveKit stops dispatching at. */
  cpuTarget: 0.8,
  /** Memory kept for the runtime, page cache and a process being replaced. */
  headroomMiB: 256,
  /** Scale out when tasks average this share of their calls: a burst lands before new tasks are up (~1 min). */
  scaleOutAt: 0.7,
} as const;

/** Memory a task needs for `calls` concurrent calls. */
export function agentTaskMemoryMiB(calls: number): number {
  const { jobProcessMiB, idleProcessMiB, mainProcessMiB } = AGENT_CALL_COST;
  const idle = AGENT_SIZING.idleProcessesSeen * idleProcessMiB;
  return Math.ceil(mainProcessMiB + idle + calls * jobProcessMiB + AGENT_SIZING.headroomMiB);
}

/** Calls a task of `vcpu` vCPUs and `memoryMiB` holds: by CPU, by memory, and the smaller. */
export function agentTaskCapacity(vcpu: number, memoryMiB: number): { byCpu: number; byMemory: number; calls: number } {
  const byCpu = Math.floor((vcpu * AGENT_SIZING.cpuTarget) / AGENT_CALL_COST.vcpuPerCall);
  const fixed = agentTaskMemoryMiB(0);
  const byMemory = Math.max(0, Math.floor((memoryMiB - fixed) / AGENT_CALL_COST.jobProcessMiB));
  return { byCpu, byMemory, calls: Math.max(1, Math.min(byCpu, byMemory)) };
}

/** The ActiveCalls scaling target for a task that takes `maxCalls` calls. */
export function agentScalingTarget(maxCalls: number): number {
  return Math.max(1, Math.floor(maxCalls * AGENT_SIZING.scaleOutAt));
}
