/**
 * Long-running processes of the loopback stack: each in its own process group (so whatever it forks ends with it),
 * its output in a log file of the run directory, readiness waited on, never slept on.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync } from 'node:fs';

export const sleep = (ms: number) => new Promise<void>((done) => setTimeout(done, ms));

/** Process groups still running, killed outright if the test process exits without stopping them. */
const liveGroups = new Set<number>();
process.once('exit', () => {
  for (const pgid of liveGroups) signalGroup(pgid, 'SIGKILL');
});

function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // the group is gone already
  }
}

function groupAlive(pgid: number): boolean {
  try {
    process.kill(-pgid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Polls `attempt` until it yields a value other than undefined; fails early with the process's own last words when
 * `dead` reports that what we wait for has exited.
 */
export async function waitFor<T>(
  what: string,
  timeoutMs: number,
  attempt: () => Promise<T | undefined>,
  dead?: () => string | undefined,
  intervalMs = 100,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const exited = dead?.();
    if (exited) throw new Error(`${what}: ${exited}`);
    const result = await attempt().catch(() => undefined);
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(intervalMs);
  }
}

/**
 * Runs every stop step in order, each even when an earlier one failed (a stack half torn down would leave processes
 * behind), then throws the failures together.
 */
export async function stopInOrder(
  what: string,
  steps: ReadonlyArray<() => Promise<unknown> | undefined>,
): Promise<void> {
  const failures: unknown[] = [];
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      failures.push(error);
    }
  }
  if (failures.length > 0) throw new AggregateError(failures, `stopping ${what}`);
}

export interface ManagedProcessOptions {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly logFile: string;
  readonly cwd?: string;
  readonly env?: NodeJS.ProcessEnv;
}

/** One daemon of the stack. start() may be called again after stop() or kill() (a restart). */
export class ManagedProcess {
  private child?: ChildProcess;
  private exited?: Promise<void>;

  constructor(readonly options: ManagedProcessOptions) {}

  get name(): string {
    return this.options.name;
  }

  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  start(): void {
    if (this.running) throw new Error(`${this.name} is already running (pid ${this.child?.pid})`);
    const log = openSync(this.options.logFile, 'a');
    const child = spawn(this.options.command, [...this.options.args], {
      cwd: this.options.cwd,
      env: this.options.env ?? process.env,
      stdio: ['ignore', log, log],
      detached: true,
    });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((done) => child.once('exit', () => done()));
    child.once('error', () => undefined);
    if (child.pid) {
      const pgid = child.pid;
      liveGroups.add(pgid);
      void this.exited.then(() => {
        // The leader is gone; anything it forked in its group is ended with it.
        signalGroup(pgid, 'SIGKILL');
        liveGroups.delete(pgid);
      });
    }
  }

  /** Undefined while running; otherwise how it ended and its last log lines (for a readiness error). */
  exitDescription(): string | undefined {
    if (!this.child || this.running) return undefined;
    const { logFile } = this.options;
    const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n') : '';
    return `exited (${this.child.exitCode ?? this.child.signalCode}); last lines of ${logFile}:\n${tail}`;
  }

  /** Waits until `ready` yields a value; fails at once if the process exits meanwhile. */
  waitReady<T>(what: string, timeoutMs: number, ready: () => Promise<T | undefined>): Promise<T> {
    return waitFor(`${this.name}: ${what}`, timeoutMs, ready, () => this.exitDescription());
  }

  /** SIGTERM to the whole group, SIGKILL after graceMs; resolves once the group is gone. */
  async stop(graceMs = 5000): Promise<void> {
    await this.end('SIGTERM', graceMs);
  }

  /** SIGKILL to the whole group at once, as a crash or a pulled plug would. */
  async kill(): Promise<void> {
    await this.end('SIGKILL', 0);
  }

  private async end(signal: NodeJS.Signals, graceMs: number): Promise<void> {
    const child = this.child;
    if (!child?.pid) return;
    const pgid = child.pid;
    signalGroup(pgid, signal);
    const deadline = Date.now() + graceMs;
    while (groupAlive(pgid) && Date.now() < deadline) await sleep(50);
    signalGroup(pgid, 'SIGKILL');
    await this.exited;
    while (groupAlive(pgid)) await sleep(20);
    liveGroups.delete(pgid);
  }
}
