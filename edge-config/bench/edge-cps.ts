/**
 * Calls per second through the edge on this machine, in one run:
 *   (a) a bare stateful record-routing Kamailio (bare-kamailio.cfg), and
 *   (b) our rendered edge (allowlist + pike + dispatcher + rtpengine_manage), from examples/loopback.json.
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

const ROOT = resolve(__dirname, '..');
const DIR = resolve(ROOT, '.local', 'bench');
const CALLER = '127.0.3.1';

const { values } = parseArgs({ options: { rates: { type: 'string' }, seconds: { type: 'string' } } });
const RATES = (values.rates ?? '200,400,600,800,1000,1200,1500,2000,2500').split(',').map(Number);
const SECONDS = Number(values.seconds ?? 4);

const example = JSON.parse(readFileSync(join(ROOT, 'examples', 'loopback.json'), 'utf8'));
// One sipp source carries the whole load: pike's per-source limit is raised so it measures cost, not blocking;
// the RTP range is widened because every call holds ports for RTPEngine's delete delay.
const benchInput = {
  ...example,
  edge: { ...example.edge, pike: { ...example.edge.pike, reqsDensityPerUnit: 100_000 }, rtpPortRange: { min: 20000, max: 60000 } },
};

interface Step {
  rate: number;
  ok: boolean;
  successful: number;
  failed: number;
}

async function ramp(label: string, dir: string): Promise<{ best: number; steps: Step[] }> {
  const steps: Step[] = [];
  let best = 0;
  for (const rate of RATES) {
    const calls = rate * SECONDS;
    const result = await runSippCaller(
      { scenario: 'uac-call.xml', from: CALLER, to: { ip: '127.0.0.1', port: 5060 }, calls, rate, durationMs: 100, timeoutSeconds: SECONDS + 30, extraArgs: ['-l', String(rate * 3)] },
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
    const standIn = new StandIn({ ip: destination.host, port: destination.port, mediaPort: 40000 + index * 100, runDir });
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
  const kamailio = spawn('kamailio', ['-DD', '-E', '-f', cfgPath, '-m', '256', '-M', '16'], { stdio: 'ignore' });
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

async function edge(): Promise<number> {
  const harness = new EdgeHarness({ dir: join(DIR, 'edge'), input: benchInput, probeFrom: CALLER });
  await harness.start();
  const peers = await standIns(harness.runDir, 2);
  try {
    return (await ramp('(b) edge', join(DIR, 'edge'))).best;
  } finally {
    for (const peer of peers) await peer.stop();
    await harness.stop();
  }
}

async function main(): Promise<void> {
  console.log(`edge-cps: rates ${RATES.join(', ')} calls/s, ${SECONDS} s each, zero failed calls required`);
  const a = await bare();
  const b = await edge();
  console.log(`\n(a) bare forwarding Kamailio: ${a} calls/s`);
  console.log(`(b) rendered edge (allowlist + pike + dispatcher + rtpengine): ${b} calls/s`);
  console.log(`ratio (b)/(a): ${a > 0 ? (b / a).toFixed(2) : 'n/a'}`);
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
