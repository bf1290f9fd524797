/**
 * Replacing and re-configuring an edge host without dropping a call, on the real processes: Kamailio, RTPEngine (userspace), the topos
 * Redis, a sipp stand-in for LiveKit SIP and sipp carrier calls, with the rendered bin/edge-ready.sh, edge-drain.sh
 * and edge-apply.sh (systemctl is a recording stand-in: the daemons here are not systemd units). Its own
 * loopback addresses and ports (carrier side 127.0.6.1, LiveKit side 127.0.7.1, stand-in 127.0.8.1, carriers
 * 127.0.9.x, RTPEngine control 2224/9901), so it never shares a socket with edge.integration.test.ts.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { chmodSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeHarness, runSippCaller, StandIn } from '../harness/harness';
import { renderEdge, writeRendered } from '../src/render';

const execFileAsync = promisify(execFile);
const DIR = resolve(__dirname, '..', '.local', 'test-drain');
const INPUT = {
  edge: {
    allowlist: ['127.0.9.0/24'],
    mediaAllowlist: ['127.0.9.0/24'],
    rtpPortRange: { min: 35000, max: 35999 },
    failoverTimeoutMs: 2000,
    livekitPingIntervalSeconds: 2,
    drainSeconds: 120,
    kamailio: { workers: 2, sharedMemoryMb: 128 },
  },
  host: {
    carrierSipIp: '127.0.6.1',
    internalSipIp: '127.0.7.1',
    internalSipPort: 5060,
    carrierMediaIp: '127.0.6.1',
    internalMediaIp: '127.0.7.1',
    rtpengineControl: { ip: '127.0.6.1', port: 2224, cliPort: 9901 },
  },
  livekitSip: { destinations: [{ host: '127.0.8.1', port: 5060, transport: 'udp' as const }] },
};

const edge = new EdgeHarness({ dir: DIR, input: INPUT, probeFrom: '127.0.9.1' });
const standIn = new StandIn({ ip: '127.0.8.1', port: 5060, mediaPort: 40600, runDir: join(DIR, 'run') });
const callsDir = join(DIR, 'run', 'calls');
/** systemctl for the scripts: records each call (with the time) instead of managing units. */
const shimDir = join(DIR, 'run', 'shim');
const systemctlLog = join(shimDir, 'systemctl.log');

interface Script {
  readonly child: ChildProcess;
  output: string;
  readonly exited: Promise<{ code: number | null; at: number }>;
}

const running: Script[] = [];

/** Starts one of the rendered scripts (bin/…) with the systemctl stand-in first on PATH. */
function startScript(script: string, ...args: string[]): Script {
  const child = spawn(join(DIR, 'bin', script), args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, PATH: `${shimDir}:${process.env.PATH}` },
  });
  const started: Script = {
    child,
    output: '',
    exited: new Promise((done) => child.on('exit', (code) => done({ code, at: Date.now() }))),
  };
  child.stdout?.on('data', (chunk) => (started.output += chunk.toString()));
  child.stderr?.on('data', (chunk) => (started.output += chunk.toString()));
  running.push(started);
  return started;
}

const startDrain = (...args: string[]) => startScript('edge-drain.sh', ...args);

async function runScript(script: string, ...args: string[]): Promise<{ code: number | null; output: string }> {
  const started = startScript(script, ...args);
  const { code } = await started.exited;
  return { code, output: started.output };
}

async function until(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** No media session left from an earlier call (RTPEngine keeps one a few seconds after its BYE: delete-delay). */
const noCallsLeft = () =>
  until('no media session left from earlier calls', 20_000, async () => (await mediaSessions()) === 0);

/** RTPEngine's own media sessions: the calls the host carries (what the drain script counts too). */
async function mediaSessions(): Promise<number> {
  const { ip, cliPort } = edge.layout.rtpengineControl;
  const { stdout } = await execFileAsync('rtpengine-ctl', ['-ip', `${ip}:${cliPort}`, 'list', 'numsessions'], {
    timeout: 10_000,
  });
  return Number(/^Current sessions own: *(\d+)/m.exec(stdout)?.[1] ?? -1);
}

async function resume(): Promise<void> {
  const { code, output } = await runScript('edge-drain.sh', '--resume');
  expect(code, output).toBe(0);
  expect(output).toContain('taking new calls again');
}

beforeAll(async () => {
  await edge.start(); // clears run/ first
  mkdirSync(shimDir, { recursive: true });
  writeFileSync(join(shimDir, 'systemctl'), `#!/bin/sh\necho "$(date +%s%3N) $*" >> '${systemctlLog}'\n`);
  chmodSync(join(shimDir, 'systemctl'), 0o755);
  // What the boot script writes: the host facts the tree's placeholders stand for.
  writeFileSync(join(DIR, 'host.env'), 'PRIVATE_IP=127.0.6.1\nPUBLIC_IP=127.0.6.1\n');
  await standIn.start();
  await until('the stand-in is an active dispatcher node', 30_000, async () =>
    /FLAGS: AP/.test(await edge.kamcmd('dispatcher.list')),
  );
});

afterAll(async () => {
  for (const drain of running) drain.child.kill('SIGKILL');
  await standIn.stop().catch(() => undefined);
  await edge.stop();
});

describe('edge-ready.sh on the real edge: what a replacement host must pass before it gets the EIP', () => {
  it('passes when every daemon answers and a LiveKit node is active, and names what is missing otherwise', async () => {
    expect(await runScript('edge-ready.sh')).toEqual({ code: 0, output: 'edge-ready: ready\n' });
    await edge.killToposStore();
    try {
      expect(await runScript('edge-ready.sh')).toEqual({
        code: 1,
        output: 'edge-ready: topology store does not answer\n',
      });
    } finally {
      await edge.startToposStore();
    }
    // A replacement boots with no LiveKit node until the node sync sends them: not ready until then.
    expect((await runScript('edge-livekit-nodes.sh')).code).toBe(0);
    try {
      expect(await runScript('edge-ready.sh')).toEqual({
        code: 1,
        output: 'edge-ready: no LiveKit SIP node active yet\n',
      });
    } finally {
      expect((await runScript('edge-livekit-nodes.sh', '127.0.8.1:5060')).code).toBe(0);
      await until('the stand-in is active again', 30_000, async () =>
        /FLAGS: AP/.test(await edge.kamcmd('dispatcher.list')),
      );
    }
    expect((await runScript('edge-ready.sh')).code).toBe(0);
  });
});

describe('edge-drain.sh on the real edge (kamailio, rtpengine, sipp)', () => {
  it('refuses new INVITEs with 503, lets the call in progress run to its BYE, and reports done at zero calls', async () => {
    const pid = edge.kamailioPid;
    await noCallsLeft();
    const inProgress = runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.9.1', to: edge.layout.carrierSip, durationMs: 6000 },
      callsDir,
    );
    await until('the call is up (RTPEngine holds its media)', 20_000, async () => (await mediaSessions()) === 1);

    const drain = startDrain();
    await until('the drain refuses new calls', 10_000, () => drain.output.includes('refusing new calls'));

    const refused = await runSippCaller(
      { scenario: 'uac-expect-503.xml', from: '127.0.9.2', to: edge.layout.carrierSip, timeoutSeconds: 10 },
      callsDir,
    );
    expect(refused.exitCode, refused.output).toBe(0);
    expect(refused.messages).toMatch(/^SIP\/2\.0 503 Draining/m);
    expect(standIn.receivedInvites().filter((invite) => invite.includes(refused.callIds[0]))).toEqual([]);
    expect(drain.output, 'still waiting while the call goes on').not.toContain('done');

    const call = await inProgress;
    const callEnded = Date.now();
    expect(call.exitCode, call.output).toBe(0);
    expect(call.successful).toBe(1); // its BYE crossed the draining edge and was answered

    const { code, at } = await drain.exited;
    expect(code, drain.output).toBe(0);
    expect(drain.output).toMatch(/edge-drain: done: 0 calls in progress after \d+s/);
    expect(at).toBeGreaterThanOrEqual(callEnded - 1000);
    expect(await mediaSessions()).toBe(0);
    expect(edge.kamailioPid).toBe(pid);

    // Drained stays drained until the host is replaced (or resumed): no new call sneaks in meanwhile.
    const later = await runSippCaller(
      { scenario: 'uac-expect-503.xml', from: '127.0.9.2', to: edge.layout.carrierSip, timeoutSeconds: 10 },
      callsDir,
    );
    expect(later.exitCode, later.output).toBe(0);
  });

  it('hands over anyway when the drain time is up, saying how many calls were left, and can resume', async () => {
    await resume();
    await noCallsLeft();
    const inProgress = runSippCaller(
      {
        scenario: 'uac-call.xml',
        from: '127.0.9.3',
        to: edge.layout.carrierSip,
        durationMs: 8000,
        localPort: 5071,
        mediaPort: 36100,
      },
      callsDir,
    );
    await until('the call is up', 20_000, async () => (await mediaSessions()) === 1);
    const drain = startDrain('2');
    const { code } = await drain.exited;
    expect(code, drain.output).toBe(0);
    expect(drain.output).toMatch(/drain time up after [2-9]s with 1 call\(s\) in progress/);
    expect(drain.output).not.toContain('done');

    await resume();
    const accepted = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.9.4', to: edge.layout.carrierSip, localPort: 5072, mediaPort: 36200 },
      callsDir,
    );
    expect(accepted.exitCode, accepted.output).toBe(0);
    expect((await inProgress).exitCode).toBe(0);
  });

  it('refuses a drain time that is not a whole number, before touching Kamailio', async () => {
    const drain = startDrain('5; reboot');
    expect((await drain.exited).code).toBe(2);
    expect(drain.output).toContain("seconds must be a whole number, not '5; reboot'");
    const accepted = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.9.5', to: edge.layout.carrierSip, localPort: 5073, mediaPort: 36300 },
      callsDir,
    );
    expect(accepted.exitCode, accepted.output).toBe(0);
  });
});

describe('edge-apply.sh on the real edge: a config change reaches a running host', () => {
  const stagedDir = join(DIR, 'run', 'staged');
  /** Renders the edge with `edgeChanges` into a fresh staged tree, as the SSM association does. */
  function stage(edgeChanges: Record<string, unknown>): string {
    rmSync(stagedDir, { recursive: true, force: true });
    writeRendered(stagedDir, renderEdge({ ...edge.input, edge: { ...edge.input.edge, ...edgeChanges } }));
    return stagedDir;
  }
  const systemctlCalls = () => readFileSync(systemctlLog, 'utf8').trim().split('\n').filter(Boolean);

  beforeAll(async () => {
    await resume();
    writeFileSync(systemctlLog, '');
  });

  it('does nothing when nothing changed, and never touches the LiveKit node list', async () => {
    const nodes = readFileSync(join(DIR, 'kamailio', 'dispatcher.list'), 'utf8');
    expect(nodes).toContain('127.0.8.1');
    expect(await runScript('edge-apply.sh', stage({}))).toEqual({ code: 0, output: 'edge-apply: no change\n' });
    expect(systemctlCalls()).toEqual([]);
    expect(readFileSync(join(DIR, 'kamailio', 'dispatcher.list'), 'utf8')).toBe(nodes);
  });

  it('applies an allowlist change in place: same Kamailio, the new carrier gets through, no restart', async () => {
    const pid = edge.kamailioPid;
    const before = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.10.1', to: edge.layout.carrierSip, timeoutSeconds: 4, localPort: 5074 },
      callsDir,
    );
    expect(before.successful).toBe(0);
    // The new carrier's signalling and its SDP's media address (the edge refuses media from outside mediaAllowlist).
    const carriers = ['127.0.9.0/24', '127.0.10.0/24'];
    const { code, output } = await runScript('edge-apply.sh', stage({ allowlist: carriers, mediaAllowlist: carriers }));
    expect(code, output).toBe(0);
    expect(output).toContain('edge-apply: applied in place: kamailio/db/address');
    const after = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.10.1', to: edge.layout.carrierSip, localPort: 5075 },
      callsDir,
    );
    expect(after.exitCode, after.output).toBe(0);
    expect(edge.kamailioPid).toBe(pid);
    expect(systemctlCalls()).toEqual([]);
  });

  it('drains before a restart: new INVITEs refused, the call in progress ends with its BYE, then the restart', async () => {
    await noCallsLeft();
    const inProgress = runSippCaller(
      {
        scenario: 'uac-call.xml',
        from: '127.0.9.6',
        to: edge.layout.carrierSip,
        durationMs: 6000,
        localPort: 5076,
        mediaPort: 36400,
      },
      callsDir,
    );
    await until('the call is up', 20_000, async () => (await mediaSessions()) === 1);
    const apply = startScript(
      'edge-apply.sh',
      stage({
        allowlist: ['127.0.9.0/24', '127.0.10.0/24'],
        mediaAllowlist: ['127.0.9.0/24', '127.0.10.0/24'],
        pike: { reqsDensityPerUnit: 300, samplingTimeUnitSeconds: 2, banSeconds: 60 },
      }),
    );
    await until('the apply drains the host', 10_000, () => apply.output.includes('refusing new calls'));
    const refused = await runSippCaller(
      {
        scenario: 'uac-expect-503.xml',
        from: '127.0.9.7',
        to: edge.layout.carrierSip,
        timeoutSeconds: 10,
        localPort: 5077,
      },
      callsDir,
    );
    expect(refused.exitCode, refused.output).toBe(0);
    expect(systemctlCalls(), 'no restart while the call goes on').toEqual([]);

    const call = await inProgress;
    const callEnded = Date.now();
    expect(call.exitCode, call.output).toBe(0);
    const { code } = await apply.exited;
    expect(code, apply.output).toBe(0);
    expect(apply.output).toMatch(/edge-drain: done: 0 calls in progress/);
    expect(apply.output).toContain('edge-apply: restarted after drain for kamailio/edge-host.cfg');

    const calls = systemctlCalls();
    expect(calls.map((line) => line.replace(/^\d+ /, ''))).toEqual([
      'restart voice-intake-topos-redis voice-intake-rtpengine voice-intake-kamailio',
    ]);
    expect(Number(calls[0].split(' ')[0])).toBeGreaterThanOrEqual(callEnded - 1000);
    expect(readFileSync(join(DIR, 'kamailio', 'edge-host.cfg'), 'utf8')).toMatch(/#!define EDGE_PIKE_DENSITY 300/);
    expect(readFileSync(join(DIR, 'kamailio', 'dispatcher.list'), 'utf8')).toContain('127.0.8.1');
  });

  it('refuses to apply before boot has written the host facts', async () => {
    rmSync(join(DIR, 'host.env'));
    try {
      const { code, output } = await runScript('edge-apply.sh', stage({}));
      expect(code).toBe(1);
      expect(output).toContain('host.env missing: boot has not finished');
    } finally {
      writeFileSync(join(DIR, 'host.env'), 'PRIVATE_IP=127.0.6.1\nPUBLIC_IP=127.0.6.1\n');
    }
  });
});
