/**
 * Draining an edge host before it is replaced, on the real processes: Kamailio, RTPEngine (userspace), the topos
 * Redis, a sipp stand-in for LiveKit SIP and sipp carrier calls, with the rendered bin/edge-drain.sh. Its own
 * loopback addresses and ports (carrier side 127.0.6.1, LiveKit side 127.0.7.1, stand-in 127.0.8.1, carriers
 * 127.0.9.x, RTPEngine control 2224/9901), so it never shares a socket with edge.integration.test.ts.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeHarness, runSippCaller, StandIn } from '../harness/harness';

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
const drainScript = join(DIR, 'bin', 'edge-drain.sh');

interface Drain {
  readonly child: ChildProcess;
  output: string;
  readonly exited: Promise<{ code: number | null; at: number }>;
}

function startDrain(...args: string[]): Drain {
  const child = spawn(drainScript, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const drain: Drain = {
    child,
    output: '',
    exited: new Promise((done) => child.on('exit', (code) => done({ code, at: Date.now() }))),
  };
  child.stdout?.on('data', (chunk) => (drain.output += chunk.toString()));
  child.stderr?.on('data', (chunk) => (drain.output += chunk.toString()));
  return drain;
}

async function until(what: string, timeoutMs: number, check: () => boolean | Promise<boolean>): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs} ms`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/** RTPEngine's own media sessions: the calls the host carries (what the drain script counts too). */
async function mediaSessions(): Promise<number> {
  const { ip, cliPort } = edge.layout.rtpengineControl;
  const { stdout } = await execFileAsync('rtpengine-ctl', ['-ip', `${ip}:${cliPort}`, 'list', 'numsessions'], { timeout: 10_000 });
  return Number(/^Current sessions own: *(\d+)/m.exec(stdout)?.[1] ?? -1);
}

const running: Drain[] = [];

async function resume(): Promise<void> {
  const drain = startDrain('--resume');
  running.push(drain);
  expect((await drain.exited).code, drain.output).toBe(0);
  expect(drain.output).toContain('taking new calls again');
}

beforeAll(async () => {
  await edge.start();
  await standIn.start();
  await until('the stand-in is an active dispatcher node', 30_000, async () => /FLAGS: AP/.test(await edge.kamcmd('dispatcher.list')));
});

afterAll(async () => {
  for (const drain of running) drain.child.kill('SIGKILL');
  await standIn.stop().catch(() => undefined);
  await edge.stop();
});

function runScript(script: string, ...args: string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((done) => {
    const child = spawn(join(DIR, 'bin', script), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout?.on('data', (chunk) => (output += chunk.toString()));
    child.stderr?.on('data', (chunk) => (output += chunk.toString()));
    child.on('exit', (code) => done({ code, output }));
  });
}

describe('edge-ready.sh on the real edge: what a replacement host must pass before it gets the EIP', () => {
  it('passes when every daemon answers and a LiveKit node is active, and names what is missing otherwise', async () => {
    expect(await runScript('edge-ready.sh')).toEqual({ code: 0, output: 'edge-ready: ready\n' });
    await edge.killToposStore();
    try {
      expect(await runScript('edge-ready.sh')).toEqual({ code: 1, output: 'edge-ready: topology store does not answer\n' });
    } finally {
      await edge.startToposStore();
    }
    // A replacement boots with no LiveKit node until the node sync sends them: not ready until then.
    expect((await runScript('edge-livekit-nodes.sh')).code).toBe(0);
    try {
      expect(await runScript('edge-ready.sh')).toEqual({ code: 1, output: 'edge-ready: no LiveKit SIP node active yet\n' });
    } finally {
      expect((await runScript('edge-livekit-nodes.sh', '127.0.8.1:5060')).code).toBe(0);
      await until('the stand-in is active again', 30_000, async () => /FLAGS: AP/.test(await edge.kamcmd('dispatcher.list')));
    }
    expect((await runScript('edge-ready.sh')).code).toBe(0);
  });
});

describe('edge-drain.sh on the real edge (kamailio, rtpengine, sipp)', () => {
  it('refuses new INVITEs with 503, lets the call in progress run to its BYE, and reports done at zero calls', async () => {
    const pid = edge.kamailioPid;
    const inProgress = runSippCaller({ scenario: 'uac-call.xml', from: '127.0.9.1', to: edge.layout.carrierSip, durationMs: 6000 }, callsDir);
    await until('the call is up (RTPEngine holds its media)', 20_000, async () => (await mediaSessions()) === 1);

    const drain = startDrain();
    running.push(drain);
    await until('the drain refuses new calls', 10_000, () => drain.output.includes('refusing new calls'));

    const refused = await runSippCaller({ scenario: 'uac-expect-503.xml', from: '127.0.9.2', to: edge.layout.carrierSip, timeoutSeconds: 10 }, callsDir);
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
    const later = await runSippCaller({ scenario: 'uac-expect-503.xml', from: '127.0.9.2', to: edge.layout.carrierSip, timeoutSeconds: 10 }, callsDir);
    expect(later.exitCode, later.output).toBe(0);
  });

  it('hands over anyway when the drain time is up, saying how many calls were left, and can resume', async () => {
    await resume();
    const inProgress = runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.9.3', to: edge.layout.carrierSip, durationMs: 8000, localPort: 5071, mediaPort: 36100 },
      callsDir,
    );
    await until('the call is up', 20_000, async () => (await mediaSessions()) === 1);
    const drain = startDrain('2');
    running.push(drain);
    const { code } = await drain.exited;
    expect(code, drain.output).toBe(0);
    expect(drain.output).toMatch(/drain time up after [2-9]s with 1 call\(s\) in progress/);
    expect(drain.output).not.toContain('done');

    await resume();
    const accepted = await runSippCaller({ scenario: 'uac-call.xml', from: '127.0.9.4', to: edge.layout.carrierSip, localPort: 5072, mediaPort: 36200 }, callsDir);
    expect(accepted.exitCode, accepted.output).toBe(0);
    expect((await inProgress).exitCode).toBe(0);
  });

  it('refuses a drain time that is not a whole number, before touching Kamailio', async () => {
    const drain = startDrain('5; reboot');
    running.push(drain);
    expect((await drain.exited).code).toBe(2);
    expect(drain.output).toContain("seconds must be a whole number, not '5; reboot'");
    const accepted = await runSippCaller({ scenario: 'uac-call.xml', from: '127.0.9.5', to: edge.layout.carrierSip, localPort: 5073, mediaPort: 36300 }, callsDir);
    expect(accepted.exitCode, accepted.output).toBe(0);
  });
});
