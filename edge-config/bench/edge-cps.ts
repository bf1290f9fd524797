/**
 * Calls per second through the edge on this machine, in one run:
 *   (a) a bare stateful record-routing Kamailio (bare-kamailio.cfg), and
 *   (b) our rendered edge (allowlist + pike + dispatcher + rtpengine_manage + topos), from examples/loopback.json.
 * Each is driven by a sipp caller at rising rates; the figure is the highest rate whose calls all completed.
 * Prints both and the ratio (b)/(a). A script, not a test: figures depend on the machine and its load.
 *
 *   npm run bench -w edge-config [-- --rates 100,200,400 --seconds 4]
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { spawn } from 'node:child_process';
import { EdgeHarness, endProcessesMentioning, kamcmd, runSippCaller, StandIn } from '../harness/harness';
import { kamailioMemoryArgs } from '../src/render';

const ROOT = resolve(__dirname, '..');
const DIR = resolve(ROOT, '.local', 'bench');
const CALLER = '127.0.3.1';

const { values } = parseArgs({ options: { rates: { type: 'string' }, seconds: { type: 'string' }, workers: { type: 'string' } } });
const RATES = (values.rates ?? '400,600,800,1000,1200,1400,1600,1800,2000,2200,2500').split(',').map(Number);
const SECONDS = Number(values.seconds ?? 4);

const loopback = JSON.parse(readFileSync(join(ROOT, 'examples', 'loopback.json'), 'utf8'));
// Both configs run with the same number of UDP workers (the example's unless --workers says otherwise).
const example = values.workers ? { ...loopback, edge: { ...loopback.edge, kamailio: { ...loopback.edge.kamailio, workers: Number(values.workers) } } } : loopback;
// One sipp source carries the whole load: pike's per-source limit is raised so it measures cost, not blocking.
// Every call holds RTPEngine ports through its delete delay (5 s): the range is as wide as the loopback allows, the
// sipp peers' own media ports sit below it, and each rate starts once the previous rate's ports are free again —
// otherwise the figure measures port exhaustion left over from the last step, not what the edge costs.
const RTP_RANGE = { min: 20000, max: 64999 };
const DRAIN_MS = 7_000;
const benchInput = {
  ...example,
  edge: { ...example.edge, pike: { ...example.edge.pike, reqsDensityPerUnit: 100_000 }, rtpPortRange: RTP_RANGE },
};

interface Step {
  rate: number;
  ok: boolean;
  successful: number;
  failed: number;
}

function readLog(logFile: string): string {
  try {
    return readFileSync(logFile, 'utf8');
  } catch {
    return '';
  }
}

/** Why the edge refused calls, from RTPEngine's and Kamailio's logs: the limit a failed step ran into. */
function edgeLimits(runDir: string): string[] {
  const log = readLog(join(runDir, 'rtpengine.log'));
  const kamailioLog = readLog(join(runDir, 'kamailio.log'));
  const limits: string[] = [];
  if (kamailioLog.includes('did not answer')) {
    limits.push(`a stand-in's answer came later than the failover timeout (${example.edge.failoverTimeoutMs} ms; the machine was saturated), the dispatcher marked it down and calls got 503 until its next probe`);
  }
  if (log.includes('Too many open files')) limits.push(`RTPEngine ran out of file descriptors (this shell's limit: ${openFileLimit()}; the edge's systemd unit sets 65536)`);
  if (log.includes('Ran out of ports')) limits.push('RTPEngine ran out of RTP ports');
  return limits;
}

function openFileLimit(): string {
  try {
    return readFileSync('/proc/self/limits', 'utf8').match(/Max open files\s+(\d+)/)?.[1] ?? 'unknown';
  } catch {
    return 'unknown';
  }
}

async function ramp(label: string, dir: string): Promise<{ best: number; steps: Step[] }> {
  const steps: Step[] = [];
  let best = 0;
  for (const [index, rate] of RATES.entries()) {
    if (index > 0) await new Promise((done) => setTimeout(done, DRAIN_MS));
    const calls = rate * SECONDS;
    const result = await runSippCaller(
      { scenario: 'uac-call.xml', from: CALLER, to: { ip: '127.0.0.1', port: 5060 }, calls, rate, durationMs: 100, timeoutSeconds: SECONDS + 30, mediaPort: 11000, extraArgs: ['-l', String(rate * 3)] },
      join(dir, 'calls'),
    );
    const ok = result.exitCode === 0 && result.failed === 0 && result.successful === calls;
    steps.push({ rate, ok, successful: result.successful, failed: result.failed });
    console.log(`  ${label}: ${rate} calls/s × ${SECONDS} s → ${result.successful} ok, ${result.failed} failed${ok ? '' : '  (stop)'}`);
    if (!ok) break;
    best = rate;
  }
  return { best, steps };
}

async function standIns(runDir: string, count: number): Promise<StandIn[]> {
  const started: StandIn[] = [];
  for (const [index, destination] of example.livekitSip.destinations.slice(0, count).entries()) {
    const standIn = new StandIn({ ip: destination.host, port: destination.port, mediaPort: 12000 + index * 100, runDir });
    await standIn.start();
    started.push(standIn);
  }
  return started;
}

async function bare(): Promise<number> {
  const dir = join(DIR, 'bare');
  const runDir = join(dir, 'run');
  await endProcessesMentioning(`${dir}/`);
  mkdirSync(runDir, { recursive: true });
  const ctl = join(runDir, 'kamailio_ctl');
  const cfg = readFileSync(join(__dirname, 'bare-kamailio.cfg'), 'utf8').replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const values: Record<string, string | number> = {
      WORKERS: example.edge.kamailio.workers,
      CARRIER_IP: example.host.carrierSipIp,
      CARRIER_PORT: example.edge.sipPort,
      INTERNAL_IP: example.host.internalSipIp,
      INTERNAL_PORT: example.host.internalSipPort,
      CTL_SOCKET: ctl,
      DESTINATION: `${example.livekitSip.destinations[0].host}:${example.livekitSip.destinations[0].port}`,
    };
    return String(values[name]);
  });
  const cfgPath = join(dir, 'kamailio.cfg');
  writeFileSync(cfgPath, cfg);
  const kamailio = spawn('kamailio', ['-DD', '-E', '-f', cfgPath, ...kamailioMemoryArgs(example.edge.kamailio.sharedMemoryMb)], { stdio: 'ignore' });
  const deadline = Date.now() + 30_000;
  while (!(await kamcmd(ctl, 'core.uptime').then(() => true, () => false))) {
    if (Date.now() > deadline) throw new Error('bare kamailio did not start');
    await new Promise((done) => setTimeout(done, 100));
  }
  const peers = await standIns(runDir, 1);
  try {
    return (await ramp('(a) bare', dir)).best;
  } finally {
    for (const peer of peers) await peer.stop();
    kamailio.kill('SIGTERM');
    await endProcessesMentioning(`${dir}/`);
  }
}

async function edge(): Promise<{ best: number; limits: string[] }> {
  const harness = new EdgeHarness({ dir: join(DIR, 'edge'), input: benchInput, probeFrom: CALLER });
  await harness.start();
  const peers = await standIns(harness.runDir, 2);
  try {
    const { best } = await ramp('(b) edge', join(DIR, 'edge'));
    return { best, limits: edgeLimits(harness.runDir) };
  } finally {
    for (const peer of peers) await peer.stop();
    await harness.stop();
  }
}

async function main(): Promise<void> {
  console.log(`edge-cps: rates ${RATES.join(', ')} calls/s, ${SECONDS} s each, zero failed calls required`);
  const a = await bare();
  const { best: b, limits } = await edge();
  console.log(`\n(a) bare forwarding Kamailio: ${a} calls/s`);
  console.log(`(b) rendered edge (allowlist + pike + dispatcher + rtpengine + topos): ${b} calls/s`);
  for (const limit of limits) console.log(`    (b) stopped because ${limit}`);
  console.log(`ratio (b)/(a): ${a > 0 ? (b / a).toFixed(2) : 'n/a'}   (goal ≥ 0.9)`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
