/**
 * Processes that tests start. Each one leads a process group of its own, so stopping it also ends whatever it started
 * (tsx's node child, a server's workers), and every one still running is ended when its test file ends, pass or fail
 * (`process-cleanup.ts`, a vitest setup file), or, at the latest, when the test worker exits.
 */
import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';

/** Process-group ids of everything spawned here and not yet stopped. */
const groups = new Set<number>();

function signalGroup(pgid: number, signal: NodeJS.Signals | 0): boolean {
  try {
    process.kill(-pgid, signal);
    return true;
  } catch {
    return false; // ESRCH: the whole group is gone
  }
}

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** `spawn`, with the child leading a new process group that `stopTracked`/`stopAllTracked` end as a whole. */
export function spawnTracked(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { ...options, detached: true });
  if (child.pid !== undefined) groups.add(child.pid);
  return child;
}

/** Sends `signal` to the group, waits up to `graceMs` for every member to go, then SIGKILLs what is left. */
async function endGroup(pgid: number, signal: NodeJS.Signals, graceMs: number): Promise<void> {
  signalGroup(pgid, signal);
  const deadline = Date.now() + graceMs;
  while (signalGroup(pgid, 0) && Date.now() < deadline) await sleep(25);
  if (signalGroup(pgid, 'SIGKILL')) while (signalGroup(pgid, 0)) await sleep(10);
  groups.delete(pgid);
}

/** Ends `child` and everything in its process group; resolves with the child's exit code (null when signalled). */
export async function stopTracked(
  child: ChildProcess,
  signal: NodeJS.Signals = 'SIGTERM',
  graceMs = 5_000,
): Promise<number | null> {
  const exited =
    child.exitCode !== null || child.signalCode !== null
      ? Promise.resolve(child.exitCode)
      : new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  if (child.pid !== undefined) await endGroup(child.pid, signal, graceMs);
  return exited;
}

/** Ends every group still running (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopAllTracked(graceMs = 5_000): Promise<void> {
  await Promise.all([...groups].map((pgid) => endGroup(pgid, 'SIGTERM', graceMs)));
}

/** How many groups are still tracked (for the helpers' own test). */
export function trackedGroupCount(): number {
  return groups.size;
}

// Last resort when the worker exits without running the hooks: no grace, but nothing outlives it.
process.once('exit', () => {
  for (const pgid of groups) signalGroup(pgid, 'SIGKILL');
});
