/** The lock that keeps process-backed test files off each other's loopback addresses. */
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { acquireLoopbackLock, loopbackLockPath, releaseLoopbackLock } from '../harness/loopback-lock';

// A lock file of its own: the real one may be held by a test file running beside this one.
const scratch = mkdtempSync(join(tmpdir(), 'loopback-lock-'));
const children: ChildProcess[] = [];
afterAll(() => {
  for (const child of children) child.kill('SIGKILL');
  rmSync(scratch, { recursive: true, force: true });
});

/** Another process that takes the lock file and keeps it until it exits (after lifeMs), never releasing it. */
async function holder(path: string, lifeMs: number): Promise<ChildProcess> {
  const script = [
    `require('fs').writeFileSync(${JSON.stringify(path)}, String(process.pid));`,
    `setTimeout(() => {}, ${lifeMs});`,
  ].join(' ');
  const child = spawn(process.execPath, ['-e', script], { stdio: 'ignore' });
  children.push(child);
  while (!existsSync(path)) await new Promise((done) => setTimeout(done, 20));
  return child;
}

describe('loopback lock', () => {
  it('is one file per network namespace', () => {
    expect(loopbackLockPath()).toMatch(/voice-intake-loopback-(\d+|default)\.lock$/);
  });

  it('waits while a live process holds it and takes it over once that process has died', async () => {
    const path = join(scratch, 'dead-holder.lock');
    const child = await holder(path, 1500);
    const exited = new Promise((done) => child.once('exit', done));
    const started = Date.now();
    await acquireLoopbackLock({ path });
    await exited;
    expect(Date.now() - started).toBeGreaterThanOrEqual(1000);
    expect(readFileSync(path, 'utf8')).toBe(String(process.pid));
    releaseLoopbackLock(path);
    expect(existsSync(path)).toBe(false);
  });

  it('fails naming the holder when it waited too long', async () => {
    const path = join(scratch, 'live-holder.lock');
    const child = await holder(path, 60_000);
    await expect(acquireLoopbackLock({ path, timeoutMs: 600 })).rejects.toThrow(`held by process ${child.pid}`);
    expect(readFileSync(path, 'utf8')).toBe(String(child.pid));
    // Releasing what this process never took leaves the holder's lock alone.
    releaseLoopbackLock(path);
    expect(readFileSync(path, 'utf8')).toBe(String(child.pid));
  });

  it('is re-entrant within a process and released by the last release', async () => {
    const path = join(scratch, 'reentrant.lock');
    await acquireLoopbackLock({ path });
    await acquireLoopbackLock({ path, timeoutMs: 100 });
    releaseLoopbackLock(path);
    expect(readFileSync(path, 'utf8')).toBe(String(process.pid));
    releaseLoopbackLock(path);
    expect(existsSync(path)).toBe(false);
  });
});
