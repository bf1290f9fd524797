import { spawnSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { spawnTracked, stopTracked, trackedGroupCount } from './support/processes';

const ROOT = join(__dirname, '..');
const VITEST = join(ROOT, 'node_modules', '.bin', 'vitest');

function processesNaming(marker: string): number[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .filter((pid) => {
      try {
        return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').includes(marker);
      } catch {
        return false; // gone meanwhile
      }
    })
    .map(Number);
}

describe('test processes', () => {
  it('a failing suite leaves nothing behind: failed beforeAll, failed test, grandchildren', () => {
    const marker = `leak-marker-${process.pid}-${Date.now()}`;
    const run = spawnSync(VITEST, ['run', '--config', 'test/fixtures/vitest.fixture.config.mts'], {
      cwd: ROOT,
      env: { ...process.env, LEAK_MARKER: marker },
      encoding: 'utf8',
      timeout: 110_000,
    });
    const output = `${run.stdout}${run.stderr}`;
    expect(run.error, output).toBeUndefined();
    expect(run.status, output).not.toBe(0); // the fixture really failed
    expect(output).toContain('set-up failed on purpose');
    expect(processesNaming(marker)).toEqual([]);
  });

  it('stopTracked ends the whole group, SIGKILLing what ignores SIGTERM', async () => {
    const marker = `stubborn-${process.pid}-${Date.now()}`;
    const stubborn = `process.on('SIGTERM', () => {}); setInterval(() => {}, 1e9)`;
    const parent = `require('node:child_process').spawn(process.execPath, ['-e', ${JSON.stringify(stubborn)}, '${marker}'], { stdio: 'ignore' }); ${stubborn}`;
    const child = spawnTracked(process.execPath, ['-e', parent, marker], { stdio: 'ignore' });
    while (processesNaming(marker).length < 2) await new Promise((done) => setTimeout(done, 20));
    const before = trackedGroupCount();
    await stopTracked(child, 'SIGTERM', 300);
    expect(processesNaming(marker)).toEqual([]);
    expect(trackedGroupCount()).toBe(before - 1);
  });
});
