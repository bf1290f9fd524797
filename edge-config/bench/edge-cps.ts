/**
 * Calls per second through the edge on this machine, in one run:
 *   (a) a bare stateful record-routing Kamailio (bare-kamailio.cfg): the least a proxy does,
 *   (c) a reference SBC (reference-sbc.cfg): (a) plus media anchored by the same RTPEngine (rtpengine_manage), what
 *       an operator would otherwise run,
 *   (d) (c) plus topoh, stateless topology hiding, to price it against the edge's topos, and
 *   (b) our rendered edge (allowlist + pike + bounds + dispatcher + rtpengine_manage + topos), from loopback.json,
 *   (e) with --edge-topoh: (b) rendered with topoh instead of topos (what switching would save; it does not keep the
 *       edge's guarantees, README "topos, not topoh").
 * Each is driven by sipp callers at rising rates; the figure is the highest rate whose calls all completed, and for
 * each configuration the script says which limit ended it: RTPEngine's descriptors or ports, the dispatcher's
 * failover, the cores being saturated, UDP datagrams dropped on full receive buffers, or the sipp caller not keeping
 * the rate.
 * Prints each, (b)/(c) and (b)/(a), what each call cost in CPU per program (Kamailio, RTPEngine, the topos
 * Redis, the sipp stand-ins) at the highest rate all passed, and the topos Redis commands per call. On a machine
 * where all of them share the cores, that cost is what bounds the rate. A script, not a test: figures depend on the
 * machine and its load.
 *
 *   npm run bench -w edge-config [-- --rates 100,200,400 --seconds 4 --edge-topoh --delete-delay 0 --callers 2
 *                                    --only c,b]
 *
 * --delete-delay N gives every configuration's RTPEngine the same delete delay (its command line overrides the
 * rendered config; default: the rendered one, 5 s) so that a host's descriptor limit is not the shared ceiling;
 * --callers N splits the load over N sipp callers (same address, their own ports) when one sipp is the bound.
 */

import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs, promisify } from 'node:util';
import {
  EdgeHarness,
  endProcessesMentioning,
  kamcmd,
  pingRtpengine,
  processesMentioning,
  runSippCaller,
  type SippResult,
  StandIn,
} from '../harness/harness';
import {
  kamailioMemoryArgs,
  LIVEKIT_PROBING_THRESHOLD,
  parseRenderInput,
  type RenderedFile,
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
    'delete-delay': { type: 'string' },
    callers: { type: 'string' },
    only: { type: 'string' },
  },
});
const RATES = (values.rates ?? '400,600,800,1000,1200,1400,1600,1800,2000,2200,2500,3000,3500,4000')
  .split(',')
  .map(Number);
const SECONDS = Number(values.seconds ?? 4);
const CALLERS = Number(values.callers ?? 1);
if (!Number.isInteger(CALLERS) || CALLERS < 1 || CALLERS > 8) throw new Error('--callers: an integer from 1 to 8');

const loopback = JSON.parse(readFileSync(join(ROOT, 'examples', 'loopback.json'), 'utf8'));
// Both configs run with the same number of UDP workers (the example's unless --workers says otherwise).
const example = values.workers
  ? {
      ...loopback,
      edge: { ...loopback.edge, kamailio: { ...loopback.edge.kamailio, workers: Number(values.workers) } },
    }
  : loopback;
// One sipp source carries the whole load: pike's per-source limit is raised so it measures cost, not blocking.
// Every call holds RTPEngine ports through its delete delay: the range is as wide as the loopback allows, the
// sipp peers' own media ports sit below it, and each rate starts once the previous rate's ports are free again —
// otherwise the figure measures port exhaustion left over from the last step, not what the edge costs.
const RTP_RANGE = { min: 20000, max: 64999 };
const benchInput = {
  ...example,
  edge: { ...example.edge, pike: { ...example.edge.pike, reqsDensityPerUnit: 100_000 }, rtpPortRange: RTP_RANGE },
};

/** The rendered RTPEngine config of the bench input, its paths under `dir`. */
function renderedRtpengineConf(dir: string, runDir: string): RenderedFile {
  const host = { ...benchInput.host, mediaForwarding: 'userspace' as const };
  const input = parseRenderInput({ ...benchInput, host, paths: { configDir: dir, runDir } });
  return renderEdge(input)['rtpengine/rtpengine.conf'];
}

function renderedDeleteDelay(): number {
  const delay = renderedRtpengineConf(DIR, join(DIR, 'run')).content.match(/^delete-delay\s*=\s*(\d+)\s*$/m)?.[1];
  if (delay === undefined) throw new Error('the rendered rtpengine.conf sets no delete-delay');
  return Number(delay);
}

// Every configuration's RTPEngine gets the same delete delay on its command line (which overrides the config file),
// so a shorter one lifts the descriptor ceiling for all alike; production keeps what the renderer writes.
const DELETE_DELAY_S = values['delete-delay'] === undefined ? renderedDeleteDelay() : Number(values['delete-delay']);
if (!Number.isInteger(DELETE_DELAY_S) || DELETE_DELAY_S < 0)
  throw new Error('--delete-delay: a whole number of seconds, 0 or more');
const RTPENGINE_ARGS = [`--delete-delay=${DELETE_DELAY_S}`];
// A deleted session's sockets close on RTPEngine's next once-a-second timer run after the delay: 2 s covers that and
// the last calls of a step ending (7 s for the rendered 5 s, as before).
const DRAIN_MS = DELETE_DELAY_S * 1000 + 2_000;

const execFileAsync = promisify(execFile);

/** RTPEngine's delete delay as the running daemon reports it (proves the command line took effect). */
async function runningDeleteDelay(): Promise<number> {
  const { ip, cliPort } = parseRenderInput({ ...benchInput, paths: { configDir: DIR, runDir: DIR } }).host
    .rtpengineControl;
  const { stdout } = await execFileAsync('rtpengine-ctl', ['-ip', ip, '-port', String(cliPort), 'list', 'deletedelay']);
  const delay = stdout.match(/(\d+)/)?.[1];
  if (delay === undefined) throw new Error(`rtpengine-ctl list deletedelay: unexpected output ${stdout}`);
  return Number(delay);
}

async function checkDeleteDelay(what: string): Promise<void> {
  const running = await runningDeleteDelay();
  if (running !== DELETE_DELAY_S)
    throw new Error(`${what}: RTPEngine runs with delete delay ${running} s, not the ${DELETE_DELAY_S} s asked for`);
}

interface Step {
  rate: number;
  ok: boolean;
  successful: number;
  failed: number;
  /** CPU time per call (µs) of each program serving the calls, by command name; the sipp caller is not counted. */
  cpuPerCallUs: Record<string, number>;
  /** Per call, of the counters the run reads (the topos Redis's commands by name for (b)). */
  countedPerCall?: Record<string, number>;
  load: StepLoad;
}

/** How the machine and the sipp callers fared during a step: tells the edge's limits from the bench's own. */
interface StepLoad {
  /** Calls per second the callers really started (their INVITEs' first sending times). */
  startedRate: number;
  /** CPU time of each sipp caller per second of load, % of one core (sipp is single-threaded). */
  sippCorePercent: number;
  /** Share of all cores idle during the load (the first `SECONDS` of the step), %. */
  idlePercent: number;
  /** sipp's counters summed over the callers: retransmissions, failed calls by cause, watchdog (sipp late). */
  sipp: Record<string, number>;
  /** Error replies the callers received, by status code (503 when the edge had no node or could not anchor). */
  errorReplies: Record<string, number>;
  /** UDP datagrams the kernel dropped because a socket's receive buffer was full (RcvbufErrors). */
  udpDropped: number;
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

/** CPU time (ms) of this process's ended children it has reaped (cutime + cstime): the sipp callers of a step. */
function reapedChildrenCpuMs(): number {
  const stat = readFileSync('/proc/self/stat', 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // cutime and cstime are fields 16 and 17 of stat(5); here counted from field 3 (state).
  return ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS_PER_SECOND;
}

/** UDP datagrams dropped so far on full receive buffers (/proc/net/snmp, this network namespace). */
function udpReceiveBufferErrors(): number {
  const [header, counts] = readFileSync('/proc/net/snmp', 'utf8')
    .split('\n')
    .filter((line) => line.startsWith('Udp:'))
    .map((line) => line.split(/\s+/));
  return Number(counts?.[header.indexOf('RcvbufErrors')] ?? 0);
}

/** Idle and total time of all cores so far, in clock ticks (/proc/stat; guest time is already in user). */
function coreTimes(): { idle: number; total: number } {
  const [user, nice, system, idle, iowait, irq, softirq, steal] = readFileSync('/proc/stat', 'utf8')
    .split('\n')[0]
    .trim()
    .split(/\s+/)
    .slice(1)
    .map(Number);
  return { idle: idle + iowait, total: user + nice + system + idle + iowait + irq + softirq + steal };
}

/** Calls per second the callers started: first sending time of each call's INVITE in sipp's message traces. */
function startedRate(traces: string[]): number {
  const firstSent = new Map<string, number>();
  for (const trace of traces) {
    const invites =
      /^-+ (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\r?\n\w+ message sent[^\n]*\n\s*INVITE [\s\S]*?^Call-ID:\s*(\S+)/gm;
    for (const [, time, callId] of trace.matchAll(invites)) {
      if (!firstSent.has(callId)) firstSent.set(callId, Date.parse(time.replace(' ', 'T').slice(0, 23)));
    }
  }
  const times = [...firstSent.values()];
  if (times.length < 2) return 0;
  const spanMs = Math.max(...times) - Math.min(...times);
  return spanMs > 0 ? Math.round(((times.length - 1) * 1000) / spanMs) : 0;
}

/** Error replies (3xx–6xx) received in sipp's message traces, by status code. */
function errorReplies(traces: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const trace of traces)
    for (const [, code] of trace.matchAll(/^\w+ message received[^\n]*\n\s*SIP\/2\.0 ([3-6]\d\d)/gm))
      counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}

/** sipp's counters that tell why calls failed or came late, summed over the callers, the non-zero ones. */
const SIPP_COUNTERS = [
  'Retransmissions',
  'FailedCallRejected',
  'FailedMaxUDPRetrans',
  'FailedUnexpectedMessage',
  'FailedTimeoutOnRecv',
  'FailedTimeoutOnSend',
  'FailedCannotSendMessage',
  'FailedOutboundCongestion',
  'DeadCallMsgs',
  'OutOfCallMsgs',
  'WatchdogMajor',
  'WatchdogMinor',
];

function sippCounters(results: SippResult[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of SIPP_COUNTERS) {
    const sum = results.reduce((total, result) => total + Number(result.stats[`${name}(C)`] ?? 0), 0);
    if (sum > 0) counts[name] = sum;
  }
  return counts;
}

function describeLoad(load: StepLoad): string {
  const counters = Object.entries(load.sipp).map(([name, n]) => `${name} ${n}`);
  return (
    `callers started ${load.startedRate}/s at ${load.sippCorePercent} % of a core each` +
    `${counters.length > 0 ? ` (${counters.join(', ')})` : ''}; cores ${load.idlePercent} % idle` +
    `${load.udpDropped > 0 ? `; ${load.udpDropped} UDP datagrams dropped on full receive buffers` : ''}`
  );
}

/**
 * What ended a ramp at `step`: the limits in RTPEngine's and Kamailio's logs (`runDir`), the cores, the callers, and
 * how sipp saw the failed calls. More than one may hold; none found is said too.
 */
function stepLimits(step: Step, runDir: string): string[] {
  const { load, rate } = step;
  const limits = logLimits(runDir);
  if (load.idlePercent < 5)
    limits.push(`the ${cpus().length} cores were saturated (${load.idlePercent} % idle during the load)`);
  const sippLate = (load.sipp.WatchdogMajor ?? 0) + (load.sipp.WatchdogMinor ?? 0);
  if (load.startedRate < rate * 0.97 || load.sippCorePercent >= 90 || sippLate > 0)
    limits.push(
      `the sipp caller${CALLERS > 1 ? 's' : ''} did not keep the rate: started ${load.startedRate} of ${rate} calls/s,` +
        ` ${load.sippCorePercent} % of a core each, ${sippLate} watchdog warnings (sipp's own loop late)`,
    );
  if (load.udpDropped > 0)
    limits.push(
      `${load.udpDropped} UDP datagrams were dropped on full socket receive buffers (a receiver fell behind a burst;` +
        ' sipp retransmits them)',
    );
  if (load.sipp.Retransmissions)
    limits.push(`answers came late: sipp retransmitted ${load.sipp.Retransmissions} times (requests queued)`);
  const causes: Record<string, string> = {
    FailedCallRejected: 'an error reply the scenario could take',
    FailedMaxUDPRetrans: 'no answer after all retransmissions',
    FailedUnexpectedMessage: 'a message the scenario did not expect (an error reply to the INVITE among them)',
    FailedTimeoutOnRecv: 'a timeout waiting for a reply',
    FailedCannotSendMessage: 'sipp could not send',
    FailedOutboundCongestion: "sipp's own socket congested",
  };
  for (const [counter, cause] of Object.entries(causes))
    if (load.sipp[counter]) limits.push(`${load.sipp[counter]} calls failed on ${cause}`);
  const replies = Object.entries(load.errorReplies).map(([code, n]) => `${n} × ${code}`);
  if (replies.length > 0) limits.push(`the callers received error replies: ${replies.join(', ')}`);
  if (step.successful + step.failed < step.rate * SECONDS)
    limits.push(`${step.rate * SECONDS - step.successful - step.failed} calls unfinished when sipp gave up`);
  if (limits.length === 0) limits.push('no limit found in the logs or counters');
  return limits;
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

/** Why calls were refused, from RTPEngine's and (the edge's) Kamailio's logs: the limit a failed step ran into. */
function logLimits(runDir: string): string[] {
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
      `RTPEngine ran out of file descriptors (this shell's limit: ${openFileLimit()}; the edge's systemd unit sets` +
        ` 65536; every call holds four through the ${DELETE_DELAY_S} s delete delay)`,
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
  runDir: string,
  counters?: () => Record<string, number>,
): Promise<Ramp> {
  const marker = `${dir}/`;
  const steps: Step[] = [];
  let best = 0;
  for (const [index, rate] of RATES.entries()) {
    if (index > 0) await new Promise((done) => setTimeout(done, DRAIN_MS));
    const calls = rate * SECONDS;
    const cpuBefore = cpuMsByProgram(marker);
    const countedBefore = counters?.();
    const sippCpuBefore = reapedChildrenCpuMs();
    const coresBefore = coreTimes();
    const udpDroppedBefore = udpReceiveBufferErrors();
    let coresDuringLoad = coresBefore;
    const loadEnds = setTimeout(() => {
      coresDuringLoad = coreTimes();
    }, SECONDS * 1000);
    // The calls split over the callers, each from its own SIP and media ports (same address: one allowlisted source).
    const results = await Promise.all(
      Array.from({ length: CALLERS }, (_, index) => {
        const share = Math.floor(calls / CALLERS) + (index < calls % CALLERS ? 1 : 0);
        return runSippCaller(
          {
            scenario: 'uac-call.xml',
            from: CALLER,
            to: { ip: '127.0.0.1', port: 5060 },
            calls: share,
            rate: rate / CALLERS,
            durationMs: 100,
            timeoutSeconds: SECONDS + 30,
            localPort: 5070 + index,
            mediaPort: 11000 + index * 10,
            extraArgs: ['-l', String(Math.ceil((rate * 3) / CALLERS))],
          },
          join(dir, 'calls'),
        );
      }),
    );
    clearTimeout(loadEnds);
    if (coresDuringLoad === coresBefore) coresDuringLoad = coreTimes();
    const cpuPerCallUs = cpuPerCall(cpuBefore, cpuMsByProgram(marker), calls);
    const successful = results.reduce((sum, result) => sum + result.successful, 0);
    const failed = results.reduce((sum, result) => sum + result.failed, 0);
    const ok = results.every((result) => result.exitCode === 0) && failed === 0 && successful === calls;
    const load: StepLoad = {
      startedRate: startedRate(results.map((result) => result.messages)),
      sippCorePercent: Math.round(((reapedChildrenCpuMs() - sippCpuBefore) * 100) / (CALLERS * SECONDS * 1000)),
      idlePercent: Math.round(
        ((coresDuringLoad.idle - coresBefore.idle) * 100) / Math.max(1, coresDuringLoad.total - coresBefore.total),
      ),
      sipp: sippCounters(results),
      errorReplies: errorReplies(results.map((result) => result.messages)),
      udpDropped: udpReceiveBufferErrors() - udpDroppedBefore,
    };
    let countedPerCall: Record<string, number> | undefined;
    if (countedBefore) {
      const after = counters!();
      countedPerCall = Object.fromEntries(
        Object.entries(after)
          .map(([name, n]) => [name, Number(((n - (countedBefore[name] ?? 0)) / calls).toFixed(1))] as const)
          .filter(([, perCall]) => perCall > 0),
      );
    }
    const step: Step = { rate, ok, successful, failed, cpuPerCallUs, countedPerCall, load };
    steps.push(step);
    console.log(
      `  ${label}: ${rate} calls/s × ${SECONDS} s → ${successful} ok, ${failed} failed${ok ? '' : '  (stop)'}; CPU µs per call: ${describeCpu(cpuPerCallUs)}`,
    );
    console.log(`      ${describeLoad(load)}`);
    // (e) leaves the store idle: nothing to print.
    if (countedPerCall && Object.keys(countedPerCall).length > 0)
      console.log(`      per call: ${describeCounts(countedPerCall)}`);
    if (!ok) return { best, steps, limits: stepLimits(step, runDir) };
    best = rate;
  }
  return { best, steps, limits: [] };
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
  writeRendered(dir, { 'rtpengine/rtpengine.conf': renderedRtpengineConf(dir, runDir) });
  const log = openSync(join(runDir, 'rtpengine.log'), 'a');
  const conf = join(dir, 'rtpengine', 'rtpengine.conf');
  const args = [`--config-file=${conf}`, '--foreground', '--log-stderr', ...RTPENGINE_ARGS];
  const rtpengine = spawn('rtpengine', args, { stdio: ['ignore', log, log] });
  closeSync(log);
  const { ip, port } = benchInput.host.rtpengineControl;
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
): Promise<Ramp> {
  const dir = join(DIR, name);
  const runDir = join(dir, 'run');
  await endProcessesMentioning(`${dir}/`);
  mkdirSync(runDir, { recursive: true });
  const ctl = join(runDir, 'kamailio_ctl');
  const daemons: ChildProcess[] = [];
  let peers: StandIn[] = [];
  try {
    if (withRtpengine) {
      daemons.push(await startRtpengine(dir, runDir));
      await checkDeleteDelay(label);
    }
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
    return await ramp(label, dir, runDir);
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

async function edge(label = '(b) edge', topologyHiding: 'topos' | 'topoh' = 'topos'): Promise<Ramp> {
  const input = { ...benchInput, topologyHiding };
  const harness = new EdgeHarness({
    dir: join(DIR, `edge-${topologyHiding}`),
    input,
    probeFrom: CALLER,
    rtpengineArgs: RTPENGINE_ARGS,
  });
  let peers: StandIn[] = [];
  try {
    await harness.start();
    await checkDeleteDelay(label);
    peers = await standIns(harness.runDir, 2);
    const toposCommands = () => toposRedisCommands(harness.layout.toposRedisSocket);
    return await ramp(label, harness.configDir, harness.runDir, toposCommands);
  } finally {
    for (const peer of peers) await peer.stop();
    await harness.stop();
  }
}

interface Ramp {
  best: number;
  steps: Step[];
  limits: string[];
}

/** The configurations, in the order they run by default, each with how it is described in the summary. */
const CONFIGURATIONS: Record<string, { summary: string; run: () => Promise<Ramp> }> = {
  a: {
    summary: 'bare forwarding Kamailio',
    run: () => kamailioOnly('(a) bare', 'bare', 'bare-kamailio.cfg', false),
  },
  c: {
    summary: 'reference SBC (stateful record-routing Kamailio + RTPEngine via rtpengine_manage)',
    run: () => kamailioOnly('(c) reference SBC', 'reference', 'reference-sbc.cfg', true),
  },
  d: {
    summary: 'reference SBC + topoh (stateless topology hiding)',
    run: () => kamailioOnly('(d) reference + topoh', 'topoh', 'reference-sbc.cfg', true, TOPOH),
  },
  b: {
    summary: 'rendered edge (allowlist + pike + bounds + dispatcher + rtpengine + topos)',
    run: () => edge(),
  },
  e: {
    summary: 'rendered edge with topoh instead of topos',
    run: () => edge('(e) edge + topoh', 'topoh'),
  },
};

// --only c,b runs those, in that order: two configurations back to back see more nearly the same load from whatever
// else shares the machine than the whole sequence does.
const ONLY = (values.only ?? (values['edge-topoh'] ? 'a,c,d,b,e' : 'a,c,d,b')).split(',');
for (const key of ONLY)
  if (!CONFIGURATIONS[key]) throw new Error(`--only: no configuration "${key}" (one of a, b, c, d, e)`);

async function main(): Promise<void> {
  console.log(
    `edge-cps: rates ${RATES.join(', ')} calls/s, ${SECONDS} s each, zero failed calls required; RTPEngine delete` +
      ` delay ${DELETE_DELAY_S} s (${DRAIN_MS / 1000} s between rates), ${CALLERS} sipp caller${CALLERS > 1 ? 's' : ''}` +
      `; load average ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`,
  );
  const ramps: Record<string, Ramp> = {};
  for (const key of ONLY) ramps[key] = await CONFIGURATIONS[key].run();
  const order = Object.keys(CONFIGURATIONS).filter((key) => ramps[key]);
  console.log(`\nload average now ${readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ')}`);
  const top = RATES[RATES.length - 1];
  for (const key of order) {
    const { best, limits } = ramps[key];
    console.log(`(${key}) ${CONFIGURATIONS[key].summary}: ${best} calls/s`);
    for (const limit of limits) console.log(`    (${key}) stopped: ${limit}`);
    if (best === top)
      console.log(`    (${key}) passed the top rate (${top}): its figure is a lower bound; extend --rates`);
  }
  const ratio = (x?: number, y?: number) => (x !== undefined && y !== undefined && y > 0 ? (x / y).toFixed(2) : 'n/a');
  console.log(`ratio (b)/(c): ${ratio(ramps.b?.best, ramps.c?.best)}   (goal ≥ 0.8)`);
  console.log(`ratio (b)/(a): ${ratio(ramps.b?.best, ramps.a?.best)}`);
  // The edge fails a call over once its answer is 2 s late, the bench configs wait as long as sipp retransmits: at a
  // rate where answers come late (retransmissions) the others still pass while the edge fails. Rates whose answers
  // all came within sipp's first retransmission timer (500 ms) compare the configurations on the same footing.
  const onTime = (steps: Step[]) =>
    Math.max(0, ...steps.filter((step) => step.ok && !step.load.sipp.Retransmissions).map((step) => step.rate));
  const onTimes = Object.fromEntries(order.map((key) => [key, onTime(ramps[key].steps)]));
  console.log(
    `highest rate passed without a retransmission: ${order.map((key) => `(${key}) ${onTimes[key]}`).join(', ')};` +
      ` ratio (b)/(c) ${ratio(onTimes.b, onTimes.c)}`,
  );
  const common = Math.min(...order.map((key) => ramps[key].best));
  const at = (key: string) => ramps[key].steps.find((step) => step.rate === common);
  if (common > 0 && order.every((key) => at(key))) {
    console.log(`CPU µs per call at ${common} calls/s, the highest rate all passed (the sipp caller not counted):`);
    for (const key of order) console.log(`  (${key}) ${describeCpu(at(key)!.cpuPerCallUs)}`);
    const counted = ramps.b && at('b')?.countedPerCall;
    if (counted) console.log(`  (b) topos Redis commands per call: ${describeCounts(counted)}`);
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
