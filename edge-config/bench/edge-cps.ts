/**
 * Calls per second through the edge on this machine, in one run:
 *   (a) a bare stateful record-routing Kamailio (bare-kamailio.cfg): the least a proxy does,
 *   (c) a reference SBC (reference-sbc.cfg): (a) plus media anchored by the same RTPEngine (rtpengine_manage), what
 *       an operator would otherwise run,
 *   (d) (c) plus topoh, stateless topology hiding, to price it against the edge's topos, and
 *   (b) our rendered edge (allowlist + pike + bounds + dispatcher + rtpengine_manage + topos), from loopback.json,
 *   (e) with --edge-topoh: (b) rendered with topoh instead of topos (what switching would save; it does not keep the
 *       edge's guarantees, README "topos, not topoh").
 * Each is driven by a sipp caller at rising rates; the figure is the highest rate whose calls all completed.
 * Prints each, (b)/(c) and (b)/(a), what each call cost in CPU per program (Kamailio, RTPEngine, the topos
 * Redis, the sipp stand-ins) at the highest rate all passed, and the topos Redis commands per call. On a machine
 * where all of them share the cores, that cost is what bounds the rate. A script, not a test: figures depend on the
 * machine and its load.
 *
 *   npm run bench -w edge-config [-- --rates 100,200,400 --seconds 4 --edge-topoh]
 */

import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import {
  EdgeHarness,
  endProcessesMentioning,
  kamcmd,
  pingRtpengine,
  processesMentioning,
  runSippCaller,
  StandIn,
} from '../harness/harness';
import {
  kamailioMemoryArgs,
  LIVEKIT_PROBING_THRESHOLD,
  parseRenderInput,
  renderEdge,
  rtpFlags,
  writeRendered,
} from '../src/render';

const ROOT = resolve(__dirname, '..');
const DIR = resolve(ROOT, '.local', 'bench');
const CALLER = '127.0.3.1';

const { values } = parseArgs({
  options: {
    rates: { type: 'string' },
    seconds: { type: 'string' },
    workers: { type: 'string' },
    'edge-topoh': { type: 'boolean' },
  },
});
const RATES = (values.rates ?? '400,600,800,1000,1200,1400,1600,1800,2000,2200,2500,3000,3500,4000')
  .split(',')
  .map(Number);
const SECONDS = Number(values.seconds ?? 4);

const loopback = JSON.parse(readFileSync(join(ROOT, 'examples', 'loopback.json'), 'utf8'));
// Both configs run with the same number of UDP workers (the example's unless --workers says otherwise).
const example = values.workers
  ? {
      ...loopback,
      edge: { ...loopback.edge, kamailio: { ...loopback.edge.kamailio, workers: Number(values.workers) } },
    }
  : loopback;
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
  /** Per call, of the counters the run reads (the topos Redis's commands by name for (b)). */
  countedPerCall?: Record<string, number>;
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

function cpuPerCall(
  before: Record<string, number>,
  after: Record<string, number>,
  calls: number,
): Record<string, number> {
  return Object.fromEntries(
    Object.entries(after).map(([name, ms]) => [name, Math.round(((ms - (before[name] ?? 0)) * 1000) / calls)]),
  );
}

function describeCpu(cpu: Record<string, number>): string {
  const total = Object.values(cpu).reduce((sum, us) => sum + us, 0);
  return `${Object.entries(cpu)
    .map(([name, us]) => `${name} ${us}`)
    .join(', ')}; total ${total} µs`;
}

function describeCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([name, n]) => `${name} ${n}`)
    .join(', ');
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
    limits.push(
      `a stand-in's answer came later than the failover timeout (${example.edge.failoverTimeoutMs} ms; the machine` +
        ` was saturated): those calls failed over, and ${LIVEKIT_PROBING_THRESHOLD} such failures in a row took the` +
        ' node out of the rotation until it answered a probe (503 when both were out)',
    );
  }
  if (log.includes('Too many open files'))
    limits.push(
      `RTPEngine ran out of file descriptors (this shell's limit: ${openFileLimit()}; the edge's systemd unit sets 65536)`,
    );
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
async function ramp(
  label: string,
  dir: string,
  counters?: () => Record<string, number>,
): Promise<{ best: number; steps: Step[] }> {
  const marker = `${dir}/`;
  const steps: Step[] = [];
  let best = 0;
  for (const [index, rate] of RATES.entries()) {
    if (index > 0) await new Promise((done) => setTimeout(done, DRAIN_MS));
    const calls = rate * SECONDS;
    const cpuBefore = cpuMsByProgram(marker);
    const countedBefore = counters?.();
    const result = await runSippCaller(
      {
        scenario: 'uac-call.xml',
        from: CALLER,
        to: { ip: '127.0.0.1', port: 5060 },
        calls,
        rate,
        durationMs: 100,
        timeoutSeconds: SECONDS + 30,
        mediaPort: 11000,
        extraArgs: ['-l', String(rate * 3)],
      },
      join(dir, 'calls'),
    );
    const cpuPerCallUs = cpuPerCall(cpuBefore, cpuMsByProgram(marker), calls);
    const ok = result.exitCode === 0 && result.failed === 0 && result.successful === calls;
    let countedPerCall: Record<string, number> | undefined;
    if (countedBefore) {
      const after = counters!();
      countedPerCall = Object.fromEntries(
        Object.entries(after)
          .map(([name, n]) => [name, Number(((n - (countedBefore[name] ?? 0)) / calls).toFixed(1))] as const)
          .filter(([, perCall]) => perCall > 0),
      );
    }
    steps.push({ rate, ok, successful: result.successful, failed: result.failed, cpuPerCallUs, countedPerCall });
    console.log(
      `  ${label}: ${rate} calls/s × ${SECONDS} s → ${result.successful} ok, ${result.failed} failed${ok ? '' : '  (stop)'}; CPU µs per call: ${describeCpu(cpuPerCallUs)}`,
    );
    // (e) leaves the store idle: nothing to print.
    if (countedPerCall && Object.keys(countedPerCall).length > 0)
      console.log(`      per call: ${describeCounts(countedPerCall)}`);
    if (!ok) break;
    best = rate;
  }
  return { best, steps };
}

async function standIns(runDir: string, count: number): Promise<StandIn[]> {
  const started: StandIn[] = [];
  for (const [index, destination] of example.livekitSip.destinations.slice(0, count).entries()) {
    const standIn = new StandIn({
      ip: destination.host,
      port: destination.port,
      mediaPort: 12000 + index * 100,
      runDir,
    });
    await standIn.start();
    started.push(standIn);
  }
  return started;
}

/** A bench Kamailio config (bench/*.cfg) with its {{NAME}} values filled, written to `dir`. */
/**
 * (d): topoh, stateless topology hiding (no store), priced on top of (c). One mask address for both sides is all
 * Kamailio 5.6's topoh has: on loopback both sides reach 127.0.0.1, on EC2 they could not (README, Topology hiding).
 */
const TOPOH = [
  'loadmodule "topoh.so"',
  'modparam("topoh", "mask_key", "bench-only-mask-key")',
  `modparam("topoh", "mask_ip", "${example.host.carrierSipIp}")`,
].join('\n');

function benchConfig(file: string, dir: string, ctl: string, topologyHiding = ''): string {
  const cfg = readFileSync(join(__dirname, file), 'utf8').replace(/\{\{(\w+)\}\}/g, (_, name: string) => {
    const values: Record<string, string | number> = {
      WORKERS: example.edge.kamailio.workers,
      CARRIER_IP: example.host.carrierSipIp,
      CARRIER_PORT: example.edge.sipPort,
      INTERNAL_IP: example.host.internalSipIp,
      INTERNAL_PORT: example.host.internalSipPort,
      CTL_SOCKET: ctl,
      DESTINATION: `${example.livekitSip.destinations[0].host}:${example.livekitSip.destinations[0].port}`,
      RTPENGINE_SOCK: `udp:${example.host.rtpengineControl.ip}:${example.host.rtpengineControl.port}`,
      RTP_FLAGS_FROM_CARRIER: rtpFlags('carrier'),
      RTP_FLAGS_FROM_INTERNAL: rtpFlags('internal'),
      TOPOLOGY_HIDING: topologyHiding,
    };
    if (values[name] === undefined) throw new Error(`${file}: no value for {{${name}}}`);
    return String(values[name]);
  });
  const cfgPath = join(dir, 'kamailio.cfg');
  writeFileSync(cfgPath, cfg);
  return cfgPath;
}

async function waitUntil(what: string, ready: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + 30_000;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`${what} did not start`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

/**
 * RTPEngine as the edge runs it (the rendered rtpengine.conf of the bench input, userspace), from `dir`: the
 * reference SBC anchors media through the very same daemon and configuration.
 */
async function startRtpengine(dir: string, runDir: string): Promise<ChildProcess> {
  const host = { ...benchInput.host, mediaForwarding: 'userspace' as const };
  const input = parseRenderInput({ ...benchInput, host, paths: { configDir: dir, runDir } });
  writeRendered(dir, { 'rtpengine/rtpengine.conf': renderEdge(input)['rtpengine/rtpengine.conf'] });
  const log = openSync(join(runDir, 'rtpengine.log'), 'a');
  const conf = join(dir, 'rtpengine', 'rtpengine.conf');
  const args = [`--config-file=${conf}`, '--foreground', '--log-stderr'];
  const rtpengine = spawn('rtpengine', args, { stdio: ['ignore', log, log] });
  closeSync(log);
  const { ip, port } = input.host.rtpengineControl;
  await waitUntil('rtpengine', () => pingRtpengine(ip, port));
  return rtpengine;
}

/** (a) or (c): a bench Kamailio config against one stand-in, with RTPEngine when the config anchors media. */
async function kamailioOnly(
  label: string,
  name: string,
  file: string,
  withRtpengine: boolean,
  topologyHiding = '',
): Promise<{ best: number; steps: Step[] }> {
  const dir = join(DIR, name);
  const runDir = join(dir, 'run');
  await endProcessesMentioning(`${dir}/`);
  mkdirSync(runDir, { recursive: true });
  const ctl = join(runDir, 'kamailio_ctl');
  const daemons: ChildProcess[] = [];
  let peers: StandIn[] = [];
  try {
    if (withRtpengine) daemons.push(await startRtpengine(dir, runDir));
    const cfgPath = benchConfig(file, dir, ctl, topologyHiding);
    const memory = kamailioMemoryArgs(example.edge.kamailio.sharedMemoryMb);
    daemons.push(spawn('kamailio', ['-DD', '-E', '-f', cfgPath, ...memory], { stdio: 'ignore' }));
    await waitUntil(`${label} kamailio`, () =>
      kamcmd(ctl, 'core.uptime').then(
        () => true,
        () => false,
      ),
    );
    peers = await standIns(runDir, 1);
    return await ramp(label, dir);
  } finally {
    for (const peer of peers) await peer.stop();
    for (const daemon of daemons.reverse()) daemon.kill('SIGTERM');
    await endProcessesMentioning(`${dir}/`);
  }
}

/** Commands the topos Redis has run so far, by name (INFO commandstats). */
function toposRedisCommands(socket: string): Record<string, number> {
  const info = execFileSync('redis-cli', ['-s', socket, 'INFO', 'commandstats'], { encoding: 'utf8' });
  const commands: Record<string, number> = {};
  for (const match of info.matchAll(/^cmdstat_(\w+):calls=(\d+)/gm)) commands[match[1]] = Number(match[2]);
  return commands;
}

async function edge(
  label = '(b) edge',
  topologyHiding: 'topos' | 'topoh' = 'topos',
): Promise<{ best: number; steps: Step[]; limits: string[] }> {
  const input = { ...benchInput, topologyHiding };
  const harness = new EdgeHarness({ dir: join(DIR, `edge-${topologyHiding}`), input, probeFrom: CALLER });
  await harness.start();
  const peers = await standIns(harness.runDir, 2);
  try {
    const toposCommands = () => toposRedisCommands(harness.layout.toposRedisSocket);
    const { best, steps } = await ramp(label, harness.configDir, toposCommands);
    return { best, steps, limits: edgeLimits(harness.runDir) };
  } finally {
    for (const peer of peers) await peer.stop();
    await harness.stop();
  }
}

async function main(): Promise<void> {
  console.log(`edge-cps: rates ${RATES.join(', ')} calls/s, ${SECONDS} s each, zero failed calls required`);
  const bare = await kamailioOnly('(a) bare', 'bare', 'bare-kamailio.cfg', false);
  const reference = await kamailioOnly('(c) reference SBC', 'reference', 'reference-sbc.cfg', true);
  const topoh = await kamailioOnly('(d) reference + topoh', 'topoh', 'reference-sbc.cfg', true, TOPOH);
  const { best: b, steps: edgeSteps, limits } = await edge();
  const edgeTopoh = values['edge-topoh'] ? await edge('(e) edge + topoh', 'topoh') : undefined;
  const [a, c, d] = [bare.best, reference.best, topoh.best];
  console.log(`\n(a) bare forwarding Kamailio: ${a} calls/s`);
  console.log(`(c) reference SBC (stateful record-routing Kamailio + RTPEngine via rtpengine_manage): ${c} calls/s`);
  console.log(`(d) reference SBC + topoh (stateless topology hiding): ${d} calls/s`);
  console.log(`(b) rendered edge (allowlist + pike + bounds + dispatcher + rtpengine + topos): ${b} calls/s`);
  for (const limit of limits) console.log(`    (b) stopped because ${limit}`);
  if (edgeTopoh) {
    console.log(`(e) rendered edge with topoh instead of topos: ${edgeTopoh.best} calls/s`);
    for (const limit of edgeTopoh.limits) console.log(`    (e) stopped because ${limit}`);
  }
  const top = RATES[RATES.length - 1];
  for (const [label, best] of [
    ['(a)', a],
    ['(c)', c],
    ['(d)', d],
    ['(b)', b],
    ...(edgeTopoh ? ([['(e)', edgeTopoh.best]] as const) : []),
  ] as const) {
    if (best === top)
      console.log(`    ${label} passed the top rate (${top}): its figure is a lower bound; extend --rates`);
  }
  const ratio = (x: number, y: number) => (y > 0 ? (x / y).toFixed(2) : 'n/a');
  console.log(`ratio (b)/(c): ${ratio(b, c)}   (goal ≥ 0.8)`);
  console.log(`ratio (b)/(a): ${ratio(b, a)}`);
  const common = Math.min(a, b, c, d, edgeTopoh?.best ?? b);
  const at = (steps: Step[]) => steps.find((step) => step.rate === common);
  const rows = [
    ['(a)', at(bare.steps)],
    ['(c)', at(reference.steps)],
    ['(d)', at(topoh.steps)],
    ['(b)', at(edgeSteps)],
    ...(edgeTopoh ? ([['(e)', at(edgeTopoh.steps)]] as const) : []),
  ] as const;
  if (common > 0 && rows.every(([, step]) => step)) {
    console.log(`CPU µs per call at ${common} calls/s, the highest rate all passed (the sipp caller not counted):`);
    for (const [label, step] of rows) console.log(`  ${label} ${describeCpu(step!.cpuPerCallUs)}`);
    const counted = at(edgeSteps)?.countedPerCall;
    if (counted) console.log(`  (b) topos Redis commands per call: ${describeCounts(counted)}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
