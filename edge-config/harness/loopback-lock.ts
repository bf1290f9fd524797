/**
 * The loopback example's addresses (edge 127.0.0.1:5060 / 127.0.1.1:5060, LiveKit SIP or its stand-ins at
 * 127.0.2.x:5060, RTPEngine's control and media ports) can serve one run at a time per network namespace. Test files
 * run in parallel processes, so whoever starts processes on them takes this lock first and waits for it; a lock whose
 * holder has died is taken over. Re-entrant within one process (a stack that includes the edge takes it once).
 */
import { closeSync, openSync, readFileSync, readlinkSync, unlinkSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** Holds of this process, per lock file. */
const holds = new Map<string, number>();

/** One lock per network namespace: ports are per namespace, so runs in different ones do not collide. */
export function loopbackLockPath(): string {
  let namespace = 'default';
  try {
    namespace = /\[(\d+)\]/.exec(readlinkSync('/proc/self/ns/net'))?.[1] ?? namespace;
  } catch {
    // no /proc: one lock for the host
  }
  return join(tmpdir(), `voice-intake-loopback-${namespace}.lock`);
}

function holderPid(path: string): number | undefined {
  try {
    const pid = Number(readFileSync(path, 'utf8').trim());
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface LoopbackLockOptions {
  readonly timeoutMs?: number;
  /** Default: loopbackLockPath(). */
  readonly path?: string;
}

/** Waits until this process holds the loopback addresses; fails naming the holder after timeoutMs. */
export async function acquireLoopbackLock(options: LoopbackLockOptions = {}): Promise<void> {
  const { timeoutMs = 20 * 60_000, path = loopbackLockPath() } = options;
  const held = holds.get(path) ?? 0;
  if (held > 0) {
    holds.set(path, held + 1);
    return;
  }
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      const fd = openSync(path, 'wx', 0o644);
      writeSync(fd, String(process.pid));
      closeSync(fd);
      holds.set(path, 1);
      return;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const holder = holderPid(path);
    if (holder === undefined || !alive(holder)) {
      // Its holder died without releasing it (a killed test process), or wrote nothing yet: check once more.
      await sleep(200);
      if (holderPid(path) === holder) {
        try {
          unlinkSync(path);
        } catch {
          // someone else took it over first
        }
      }
      continue;
    }
    if (Date.now() > deadline) {
      throw new Error(`the loopback edge addresses are held by process ${holder} (${path}) for over ${timeoutMs} ms`);
    }
    await sleep(250);
  }
}

export function releaseLoopbackLock(path = loopbackLockPath()): void {
  const held = holds.get(path) ?? 0;
  if (held === 0) return;
  if (held > 1) {
    holds.set(path, held - 1);
    return;
  }
  holds.delete(path);
  if (holderPid(path) === process.pid) {
    try {
      unlinkSync(path);
    } catch {
      // already gone
    }
  }
}
