import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = join(__dirname, '..');
const CDK = join(ROOT, 'node_modules', '.bin', 'cdk');
const outDirs: string[] = [];

/** Runs the real CDK CLI against the app, into a throwaway output folder. */
function cdkSynth(...contextArgs: string[]) {
  const out = mkdtempSync(join(tmpdir(), 'voice-intake-synth-'));
  outDirs.push(out);
  const result = spawnSync(CDK, ['synth', '--quiet', '--no-notices', '-o', out, ...contextArgs], {
    cwd: ROOT,
    encoding: 'utf8',
    env: { ...process.env, CI: 'true' },
  });
  return { ...result, out };
}

afterAll(() => {
  for (const dir of outDirs) rmSync(dir, { recursive: true, force: true });
});

describe('cdk synth from the command line', () => {
  it('fails on a malformed allowlist CIDR with one line naming edge.allowlist[0], no stack trace', () => {
    const result = cdkSynth('-c', 'voiceIntake={"edge":{"allowlist":["10.0.0.300/24"]},"mcp":{"transferTargets":{}}}');
    expect(result.status).not.toBe(0);
    const appLines = result.stderr.split('\n').filter((line) => line.includes('voiceIntake'));
    expect(appLines).toEqual([
      'invalid voiceIntake config: edge.allowlist[0]: "10.0.0.300/24" is not a valid IPv4 CIDR (a.b.c.d/0-32)',
    ]);
    expect(result.stderr).not.toMatch(/^\s+at /m);
  });

  it('takes a dotted-key override and writes one template per stack', () => {
    const result = cdkSynth('-c', 'voiceIntake.deploymentName=ci-override', '-c', 'voiceIntake.network.natGateways=1');
    expect(result.stderr).not.toMatch(/invalid voiceIntake/);
    expect(result.status).toBe(0);
    const templates = readdirSync(result.out).filter((file) => file.endsWith('.template.json'));
    expect(templates).toEqual(
      expect.arrayContaining(['ci-override-network.template.json', 'ci-override-data.template.json']),
    );
    for (const template of templates) expect(template).toMatch(/^ci-override-/);
  });
});
