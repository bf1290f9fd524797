/**
 * Calls per second through the edge on this machine, in one run:
 *   (a) a bare stateful record-routing Kamailio (bare-kamailio.cfg), and
 *   (b) our rendered edge (allowlist + pike + dispatcher + rtpengine_manage + topos), from examples/loopback.json.
 * Each is driven by a sipp caller at rising rates; the figure is the highest rate whose calls all completed.
 * Prints both and the ratio (b)/(a), and what each call cost in CPU per program (Kamailio, RTPEngine, the topos
 * Redis, the sipp stand-ins) at the highest rate both passed: on a machine where all of them share the cores, that
 * cost is what bounds the rate. A script, not a test: figures depend on the machine and its load.
 *
 *   npm run bench -w edge-config [-- --rates 100,200,400 --seconds 4]
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { execFileSync, spawn } from 'node:child_process';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { EdgeHarness, endProcessesMentioning, kamcmd, processesMentioning, runSippCaller, StandIn } from '../harness/harness';
import { kamailioMemoryArgs } from '../src/render';

const ROOT = resolve(__dirname, '..');
const DIR = resolve(ROOT, '.local', 'bench');
const CALLER = '127.0.3.1';

const { values } = parseArgs({ options: { rates: { type: 'string' }, seconds: { type: 'string' }, workers: { type: 'string' } } });
const RATES = (values.rates ?? '400,600,800,1000,1200,1400,1600,1800,2000,2200,2500,3000,3500,4000').split(',').map(Number);
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
  /** CPU time per call (µs) of each program serving the calls, by command name; the sipp caller is not counted. */
  cpuPerCallUs: Record<string, number>;
}

const CLOCK_TICKS_PER_SECOND = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());

/** CPU time (user + system, ms) used so far by the processes whose command line names `marker`, by command name. */
function cpuMsByProgram(marker: string): Record<string, number> {
  const used: Record<string, number> = {};
  for (const pid of processesMentioning(marker)) {
    try {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      // utime and stime are fields 14 and 15 of stat(5); here counted from field 3 (state).
      used[name] = (used[name] ?? 0) + ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_SECOND;
    } catch {
      // ended meanwhile
    }
  }
  return used;
}

function cpuPerCall(before: Record<string, number>, after: Record<string, number>, calls: number): Record<string, number> {
  return Object.fromEntries(Object.entries(after).map(([name, ms]) => [name, Math.round(((ms - (before[name] ?? 0)) * 1000) / calls)]));
}

function describeCpu(cpu: Record<string, number>): string {
  const total = Object.values(cpu).reduce((sum, us) => sum + us, 0);
  return `${Object.entries(cpu).map(([name, us]) => `${name} ${us}`).join(', ')}; total ${total} µs`;
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

/** Raises the rate until a step has a failed call. The programs serving the calls run from `dir` (their CPU is counted). */
async function ramp(label: string, dir: string): Promise<{ best: number; steps: Step[] }> {
  const marker = `${dir}/`;
  const steps: Step[] = [];
  let best = 0;
  for (const [index, rate] of RATES.entries()) {
    if (index > 0) await new Promise((done) => setTimeout(done, DRAIN_MS));
    const calls = rate * SECONDS;
    const cpuBefore = cpuMsByProgram(marker);
    const result = await runSippCaller(
      { scenario: 'uac-call.xml', from: CALLER, to: { ip: '127.0.0.1', port: 5060 }, calls, rate, durationMs: 100, timeoutSeconds: SECONDS + 30, mediaPort: 11000, extraArgs: ['-l', String(rate * 3)] },
      join(dir, 'calls'),
    );
    const cpuPerCallUs = cpuPerCall(cpuBefore, cpuMsByProgram(marker), calls);
    const ok = result.exitCode === 0 && result.failed === 0 && result.successful === calls;
    steps.push({ rate, ok, successful: result.successful, failed: result.failed, cpuPerCallUs });
    console.log(`  ${label}: ${rate} calls/s × ${SECONDS} s → ${result.successful} ok, ${result.failed} failed${ok ? '' : '  (stop)'}; CPU µs per call: ${describeCpu(cpuPerCallUs)}`);
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

async function bare(): Promise<{ best: number; steps: Step[] }> {
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
    return await ramp('(a) bare', dir);
  } finally {
    for (const peer of peers) await peer.stop();
    kamailio.kill('SIGTERM');
    await endProcessesMentioning(`${dir}/`);
  }
}

async function edge(): Promise<{ best: number; steps: Step[]; limits: string[] }> {
  const harness = new EdgeHarness({ dir: join(DIR, 'edge'), input: benchInput, probeFrom: CALLER });
  await harness.start();
  const peers = await standIns(harness.runDir, 2);
  try {
    const { best, steps } = await ramp('(b) edge', harness.configDir);
    return { best, steps, limits: edgeLimits(harness.runDir) };
  } finally {
    for (const peer of peers) await peer.stop();
    await harness.stop();
  }
}

async function main(): Promise<void> {
  console.log(`edge-cps: rates ${RATES.join(', ')} calls/s, ${SECONDS} s each, zero failed calls required`);
  const { best: a, steps: bareSteps } = await bare();
  const { best: b, steps: edgeSteps, limits } = await edge();
  console.log(`\n(a) bare forwarding Kamailio: ${a} calls/s`);
  console.log(`(b) rendered edge (allowlist + pike + dispatcher + rtpengine + topos): ${b} calls/s`);
  for (const limit of limits) console.log(`    (b) stopped because ${limit}`);
  const top = RATES[RATES.length - 1];
  for (const [label, best] of [['(a)', a], ['(b)', b]] as const) {
    if (best === top) console.log(`    ${label} passed the top rate (${top}): its figure is a lower bound; extend --rates`);
  }
  console.log(`ratio (b)/(a): ${a > 0 ? (b / a).toFixed(2) : 'n/a'}   (goal ≥ 0.9)`);
  const common = Math.min(a, b);
  const bareCpu = bareSteps.find((step) => step.rate === common)?.cpuPerCallUs;
  const edgeCpu = edgeSteps.find((step) => step.rate === common)?.cpuPerCallUs;
  if (bareCpu && edgeCpu) {
    console.log(`CPU µs per call at ${common} calls/s (the sipp caller not counted):`);
    console.log(`  (a) ${describeCpu(bareCpu)}`);
    console.log(`  (b) ${describeCpu(edgeCpu)}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
