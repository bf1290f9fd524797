/**
 * Local harness: runs RTPEngine (userspace) and Kamailio on a rendered tree, on loopback, plus sipp stand-ins and
 * callers. Idempotent: every start first ends whatever an earlier (possibly crashed) run left behind in the same
 * directory, so stale pid files and held ports never block a second run. Readiness is waited on (RTPEngine's
 * control port answers a ping, kamcmd answers, SIP answers), never slept on.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { EDGE_LOG_EVENTS } from '../src/log-events';
import {
  edgeLayout,
  parseRenderInput,
  type RenderInput,
  type RenderInputData,
  renderEdge,
  writeRendered,
} from '../src/render';
import { acquireLoopbackLock, releaseLoopbackLock } from './loopback-lock';

const execFileAsync = promisify(execFile);

export const SCENARIO_DIR = resolve(__dirname, 'scenarios');
/** The number test calls dial (the edge refuses a Request-URI user that is no plausible number). */
export const INTAKE_NUMBER = '+15550100100';
/** Calls to this number are hung up by the LiveKit stand-in (standin-uas.xml matches it). */
export const HANGS_UP_NUMBER = '+15550100199';
/** sipp's sample recordings (Debian sip-tester); uac_pcap plays them relative to the working directory. */
export const SIPP_PCAP_DIR = '/usr/share/sip-tester';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

async function waitFor<T>(
  what: string,
  timeoutMs: number,
  attempt: () => Promise<T | undefined>,
  alive?: () => string | undefined,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = alive?.();
    if (dead) throw new Error(`${what}: ${dead}`);
    const result = await attempt().catch(() => undefined);
    if (result !== undefined) return result;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${timeoutMs} ms`);
    await sleep(100);
  }
}

/** Processes whose command line names `marker` (a run or config directory), this one excepted. */
export function processesMentioning(marker: string): number[] {
  const pids: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (cmdline.includes(marker)) pids.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return pids;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Ends every process whose command line names `marker` (our run directory): TERM, then KILL after 5 s. */
export async function endProcessesMentioning(marker: string): Promise<number[]> {
  const pids = processesMentioning(marker);
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGTERM');
    } catch {
      // already gone
    }
  }
  const deadline = Date.now() + 5000;
  while (pids.some(isAlive) && Date.now() < deadline) await sleep(50);
  for (const pid of pids.filter(isAlive)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  while (pids.some(isAlive)) await sleep(20);
  return pids;
}

function spawnLogged(command: string, args: string[], logFile: string, cwd?: string): ChildProcess {
  const log = openSync(logFile, 'a');
  const child = spawn(command, args, { stdio: ['ignore', log, log], cwd });
  closeSync(log);
  return child;
}

function exitDescription(child: ChildProcess, logFile: string): string | undefined {
  if (child.exitCode === null && child.signalCode === null) return undefined;
  const tail = existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-15).join('\n') : '';
  return `exited (${child.exitCode ?? child.signalCode}); last log lines:\n${tail}`;
}

/** Ends a child with `signal` (SIGKILL at once to play a crash), then SIGKILL if it is still there after 5 s. */
async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((done) => child.once('exit', () => done()));
  child.kill(signal);
  const killed = await Promise.race([exited.then(() => true), sleep(5000).then(() => false)]);
  if (!killed) {
    child.kill('SIGKILL');
    await exited;
  }
}

/** RTPEngine ng-protocol ping over UDP: "<cookie> d7:command4:pinge" → "<cookie> d6:result4:ponge". */
export function pingRtpengine(ip: string, port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((done) => {
    const socket = createSocket('udp4');
    const cookie = `ping${Math.random().toString(36).slice(2, 10)}`;
    const timer = setTimeout(() => finish(false), timeoutMs);
    const finish = (ok: boolean) => {
      clearTimeout(timer);
      socket.close();
      done(ok);
    };
    socket.on('error', () => finish(false));
    socket.on('message', (message) => finish(message.toString().startsWith(cookie) && message.includes('pong')));
    socket.send(`${cookie} d7:command4:pinge`, port, ip);
  });
}

export async function kamcmd(ctlSocket: string, ...args: string[]): Promise<string> {
  const { stdout } = await execFileAsync('kamcmd', ['-s', `unix:${ctlSocket}`, ...args], { timeout: 10_000 });
  return stdout;
}

/** RTPEngine's running totals ("list totals" on its CLI port) as name → number. */
export async function rtpengineTotals(ip: string, cliPort: number): Promise<Record<string, number>> {
  const { stdout } = await execFileAsync('rtpengine-ctl', ['-ip', ip, '-port', String(cliPort), 'list', 'totals'], {
    timeout: 10_000,
  });
  const totals: Record<string, number> = {};
  for (const line of stdout.split('\n')) {
    const match = /^\s*([A-Za-z][^:]*?)\s*:\s*([\d.]+)\s*$/.exec(line);
    if (match) totals[match[1]] = Number(match[2]);
  }
  return totals;
}

export interface SipExchangeOptions {
  readonly from: string;
  readonly to: { ip: string; port: number };
  readonly waitMs?: number;
  /** Stop waiting at the first reply (default), or collect everything that arrives within waitMs. */
  readonly collect?: boolean;
}

/** Sends one raw UDP datagram from `from` (port chosen by the OS) and returns what comes back within waitMs. */
export function sendUdp(payload: string | Buffer, options: SipExchangeOptions): Promise<string[]> {
  return new Promise((done, fail) => {
    const socket = createSocket('udp4');
    const replies: string[] = [];
    const finish = () => {
      clearTimeout(timer);
      socket.close();
      done(replies);
    };
    const timer = setTimeout(finish, options.waitMs ?? 1000);
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.close();
      fail(error);
    });
    socket.on('message', (message) => {
      replies.push(message.toString());
      if (!options.collect) finish();
    });
    socket.bind(0, options.from, () => {
      const { port } = socket.address();
      const text = typeof payload === 'string' ? payload.replaceAll('{{LOCAL_PORT}}', String(port)) : payload;
      socket.send(text, options.to.port, options.to.ip);
    });
  });
}

/** A minimal out-of-dialog request; `{{LOCAL_PORT}}` is filled with the sending port by sendUdp. */
export function sipRequest(
  method: string,
  from: string,
  to: { ip: string; port: number },
  extraHeaders: string[] = [],
  callId = `${method.toLowerCase()}-${Math.random().toString(36).slice(2)}`,
): string {
  return [
    `${method} sip:edge@${to.ip}:${to.port} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from}:{{LOCAL_PORT}};branch=z9hG4bK${Math.random().toString(36).slice(2)}`,
    'Max-Forwards: 70',
    `From: <sip:probe@${from}>;tag=${Math.random().toString(36).slice(2)}`,
    `To: <sip:edge@${to.ip}>`,
    `Call-ID: ${callId}`,
    `CSeq: 1 ${method}`,
    `Contact: <sip:probe@${from}:{{LOCAL_PORT}}>`,
    ...extraHeaders,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/** One media stream of a call in RTPEngine: its local and remote address, packets received, packets refused. */
export interface RtpengineStream {
  readonly local: string;
  readonly remote: string;
  readonly packets: number;
  readonly errors: number;
}

export interface EdgeHarnessOptions {
  /** Directory the edge is rendered into and run from (files reference each other by absolute path under it). */
  readonly dir: string;
  /** Renderer input; `paths` is replaced by dir. */
  readonly input: RenderInputData;
  /** An allowlisted loopback address to prove SIP is served (OPTIONS → 200) before start() returns. */
  readonly probeFrom?: string;
  /** Extra RTPEngine command-line options, which override its rendered config file (the bench's delete delay). */
  readonly rtpengineArgs?: readonly string[];
}

/** The topos Redis, RTPEngine and Kamailio on a rendered tree. */
export class EdgeHarness {
  readonly input: RenderInput;
  readonly layout: ReturnType<typeof edgeLayout>;
  readonly runDir: string;
  private toposRedis?: ChildProcess;
  private rtpengine?: ChildProcess;
  private kamailio?: ChildProcess;
  private holdsLoopbackLock = false;

  constructor(private readonly options: EdgeHarnessOptions) {
    const dir = resolve(options.dir);
    this.runDir = join(dir, 'run');
    // Userspace forwarding whatever the input says: no kernel module on test machines.
    const host = { ...options.input.host, mediaForwarding: 'userspace' as const };
    this.input = parseRenderInput({ ...options.input, host, paths: { configDir: dir, runDir: this.runDir } });
    this.layout = edgeLayout(this.input);
  }

  get configDir(): string {
    return this.input.paths.configDir;
  }

  get kamailioPid(): number | undefined {
    return this.kamailio?.pid;
  }

  get kamailioLog(): string {
    return join(this.runDir, 'kamailio.log');
  }

  /**
   * Renders (again) and starts the daemons; ends leftovers of an earlier run in the same directory first. Waits for
   * the loopback addresses while another test process holds them (held until stop()).
   */
  async start(): Promise<void> {
    if (!this.holdsLoopbackLock) {
      await acquireLoopbackLock();
      this.holdsLoopbackLock = true;
    }
    await endProcessesMentioning(`${this.configDir}/`);
    rmSync(this.runDir, { recursive: true, force: true });
    mkdirSync(this.runDir, { recursive: true });
    writeRendered(this.configDir, renderEdge(this.input));

    await this.startToposStore();

    const rtpLog = join(this.runDir, 'rtpengine.log');
    const { ip, port } = this.layout.rtpengineControl;
    this.rtpengine = spawnLogged(
      'rtpengine',
      [
        `--config-file=${this.layout.rtpengineConf}`,
        '--foreground',
        '--log-stderr',
        ...(this.options.rtpengineArgs ?? []),
      ],
      rtpLog,
    );
    const rtpengine = this.rtpengine;
    await waitFor(
      'rtpengine control port',
      30_000,
      async () => ((await pingRtpengine(ip, port)) ? true : undefined),
      () => exitDescription(rtpengine, rtpLog),
    );

    this.kamailio = spawnLogged(
      'kamailio',
      [
        '-DD',
        '-E',
        '-f',
        this.layout.kamailioCfg,
        '-P',
        this.layout.kamailioPidFile,
        ...this.layout.kamailioMemoryArgs,
      ],
      this.kamailioLog,
    );
    const kamailio = this.kamailio;
    await waitFor(
      'kamcmd',
      30_000,
      () => kamcmd(this.layout.ctlSocket, 'core.uptime'),
      () => exitDescription(kamailio, this.kamailioLog),
    );
    if (this.options.probeFrom) {
      const probeFrom = this.options.probeFrom;
      await waitFor(
        'kamailio SIP',
        30_000,
        async () => {
          const replies = await sendUdp(sipRequest('OPTIONS', probeFrom, this.layout.carrierSip), {
            from: probeFrom,
            to: this.layout.carrierSip,
            waitMs: 500,
          });
          return replies.some((reply) => reply.startsWith('SIP/2.0 200')) ? true : undefined;
        },
        () => exitDescription(kamailio, this.kamailioLog),
      );
    }
  }

  /** Starts the topology-hiding Redis and waits until it answers PING. */
  async startToposStore(): Promise<void> {
    const redisLog = join(this.runDir, 'topos-redis.log');
    mkdirSync(dirname(this.layout.toposRedisSocket), { recursive: true });
    this.toposRedis = spawnLogged('redis-server', [this.layout.toposRedisConf], redisLog);
    const toposRedis = this.toposRedis;
    await waitFor(
      'topos redis',
      30_000,
      async () => {
        const { stdout } = await execFileAsync('redis-cli', ['-s', this.layout.toposRedisSocket, 'ping'], {
          timeout: 2000,
        });
        return stdout.trim() === 'PONG' ? true : undefined;
      },
      () => exitDescription(toposRedis, redisLog),
    );
  }

  /** Kills the topology-hiding Redis (as a crash would), leaving Kamailio running. */
  killToposStore(): Promise<void> {
    return stopChild(this.toposRedis, 'SIGKILL');
  }

  async stop(): Promise<void> {
    await stopChild(this.kamailio);
    await stopChild(this.rtpengine);
    await stopChild(this.toposRedis);
    // Anything they left (Kamailio children of a killed parent) or a stand-in started against this directory.
    await endProcessesMentioning(`${this.configDir}/`);
    if (this.holdsLoopbackLock) {
      this.holdsLoopbackLock = false;
      releaseLoopbackLock();
    }
  }

  kamcmd(...args: string[]): Promise<string> {
    return kamcmd(this.layout.ctlSocket, ...args);
  }

  rtpengineTotals(): Promise<Record<string, number>> {
    return rtpengineTotals(this.layout.rtpengineControl.ip, this.layout.rtpengineControl.cliPort);
  }

  /** Media sessions RTPEngine holds now (its own, i.e. not foreign). */
  async rtpengineSessions(): Promise<number> {
    const { ip, cliPort } = this.layout.rtpengineControl;
    const args = ['-ip', ip, '-port', String(cliPort), 'list', 'numsessions'];
    const { stdout } = await execFileAsync('rtpengine-ctl', args, { timeout: 10_000 });
    const match = /sessions own:\s*(\d+)/i.exec(stdout);
    if (!match) throw new Error(`rtpengine-ctl list numsessions: unexpected output ${stdout}`);
    return Number(match[1]);
  }

  /**
   * RTPEngine's per-stream counters of one call (`list sessions <call-id>`): local and remote address, packets
   * received and packets refused (errors: from a source other than the negotiated one).
   */
  async rtpengineStreams(callId: string): Promise<RtpengineStream[]> {
    const { ip, cliPort } = this.layout.rtpengineControl;
    const args = ['-ip', ip, '-port', String(cliPort), 'list', 'sessions', callId];
    const { stdout } = await execFileAsync('rtpengine-ctl', args, { timeout: 10_000 });
    return [...stdout.matchAll(/Port\s+(\S+)\s+<>\s+([\d.]+:\d+)[^\n]*?\s(\d+) p, \d+ b, (\d+) e/g)].map((m) => ({
      local: m[1],
      remote: m[2],
      packets: Number(m[3]),
      errors: Number(m[4]),
    }));
  }

  /** Kamailio's statistics (the edge's refusal counters among them), by name without the group prefix. */
  async counters(): Promise<Record<string, number>> {
    const counters: Record<string, number> = {};
    for (const line of (await this.kamcmd('stats.get_statistics', 'all')).split('\n')) {
      const match = /^\s*"?[\w.-]+:([\w.-]+) = (\d+)"?\s*$/.exec(line);
      if (match) counters[match[1]] = Number(match[2]);
    }
    return counters;
  }

  /**
   * The counters once each of `rises` has risen that much over `before` (or `timeoutMs` passed), read again
   * `settleMs` later: a test's datagram may still be on its way on a loaded host, and a count that goes on rising
   * (a message counted twice) still shows. The caller asserts on what it gets.
   */
  async countersAfter(
    before: Record<string, number>,
    rises: Record<string, number>,
    { timeoutMs = 5_000, settleMs = 300 } = {},
  ): Promise<Record<string, number>> {
    const deadline = Date.now() + timeoutMs;
    const risen = (now: Record<string, number>) =>
      Object.entries(rises).every(([name, rise]) => (now[name] ?? 0) - (before[name] ?? 0) >= rise);
    while (!risen(await this.counters()) && Date.now() < deadline) await sleep(100);
    await sleep(settleMs);
    return this.counters();
  }

  /**
   * The events (`EDGE_LOG_EVENTS` keys) Kamailio's log lines naming `text` (a Call-ID) would count in CloudWatch, one
   * entry per line that holds any counted phrase: what the edge stack's metric filters make of this call.
   */
  countedLogEvents(text: string): { line: string; events: string[] }[] {
    const phrases = Object.entries(EDGE_LOG_EVENTS);
    return readFileSync(this.kamailioLog, 'utf8')
      .split('\n')
      .filter((line) => line.includes(text))
      .map((line) => ({ line, events: phrases.filter(([, phrase]) => line.includes(phrase)).map(([event]) => event) }))
      .filter(({ events }) => events.length > 0);
  }
}

export interface StandInOptions {
  readonly ip: string;
  readonly port: number;
  readonly mediaPort: number;
  /** Directory for the message trace (named after ip) — put it under the edge dir so stop() ends the stand-in. */
  readonly runDir: string;
}

/** A LiveKit SIP stand-in: sipp UAS answering OPTIONS and calls, echoing RTP. */
export class StandIn {
  private child?: ChildProcess;
  readonly messageFile: string;
  readonly logFile: string;

  constructor(readonly options: StandInOptions) {
    this.messageFile = join(options.runDir, `standin-${options.ip}-messages.log`);
    this.logFile = join(options.runDir, `standin-${options.ip}.log`);
  }

  get running(): boolean {
    return this.child !== undefined && this.child.exitCode === null && this.child.signalCode === null;
  }

  async start(): Promise<void> {
    const { ip, port, mediaPort } = this.options;
    mkdirSync(this.options.runDir, { recursive: true });
    this.child = spawnLogged(
      'sipp',
      [
        '-sf',
        join(SCENARIO_DIR, 'standin-uas.xml'),
        '-i',
        ip,
        '-p',
        String(port),
        '-mi',
        ip,
        '-mp',
        String(mediaPort),
        '-rtp_echo',
        '-nostdin',
        '-trace_msg',
        '-message_file',
        this.messageFile,
        '-trace_err',
        '-error_file',
        join(this.options.runDir, `standin-${ip}-errors.log`),
        '-max_recv_loops',
        '10000',
      ],
      this.logFile,
    );
    const child = this.child;
    await waitFor(
      `stand-in ${ip}:${port}`,
      30_000,
      async () => {
        const replies = await sendUdp(sipRequest('OPTIONS', '127.0.0.1', { ip, port }), {
          from: '127.0.0.1',
          to: { ip, port },
          waitMs: 500,
        });
        return replies.some((reply) => reply.startsWith('SIP/2.0 200')) ? true : undefined;
      },
      () => exitDescription(child, this.logFile),
    );
  }

  async stop(): Promise<void> {
    // A paused stand-in would hold SIGTERM until continued.
    if (this.running) this.resume();
    await stopChild(this.child);
  }

  /** Freezes the stand-in (SIGSTOP): what reaches it meanwhile waits in its socket, as on a node stalled by load. */
  pause(): void {
    this.child?.kill('SIGSTOP');
  }

  resume(): void {
    this.child?.kill('SIGCONT');
  }

  /** Every SIP message the stand-in received so far (sipp's message trace), as raw text blocks. */
  receivedMessages(): string[] {
    if (!existsSync(this.messageFile)) return [];
    return receivedInTrace(readFileSync(this.messageFile, 'utf8'));
  }

  receivedInvites(): string[] {
    return this.receivedMessages().filter((block) => /^\s*INVITE /m.test(block));
  }
}

export interface SippCallOptions {
  readonly scenario:
    | 'uac-call.xml'
    | 'uac-call-rtp.xml'
    | 'uac-call-hung-up.xml'
    | 'uac-expect-503.xml'
    | 'uac-expect-unanswered.xml';
  /** The number called (Request-URI user; INTAKE_NUMBER by default); the stand-in hangs up calls to HANGS_UP_NUMBER. */
  readonly service?: string;
  readonly from: string;
  readonly to: { ip: string; port: number };
  readonly calls?: number;
  readonly rate?: number;
  /** Call length (pause after ACK), ms. */
  readonly durationMs?: number;
  readonly localPort?: number;
  readonly mediaPort?: number;
  readonly timeoutSeconds?: number;
  readonly extraArgs?: string[];
}

/** The messages a sipp trace (-trace_msg) shows as received, as raw text blocks. */
export function receivedInTrace(trace: string): string[] {
  return trace.split(/^-{10,} .*$/m).filter((block) => /message received/.test(block));
}

export interface SippResult {
  readonly exitCode: number;
  readonly successful: number;
  readonly failed: number;
  readonly output: string;
  readonly callIds: string[];
  /** sipp's message trace: everything it sent and received. */
  readonly messages: string;
  /** The last row of sipp's statistics file (-trace_stat) by column name, e.g. `Retransmissions(C)`. */
  readonly stats: Readonly<Record<string, string>>;
}

/** Runs a sipp caller to completion. Exit code 0 = every call succeeded (sipp's own verdict). */
export async function runSippCaller(options: SippCallOptions, workDir: string): Promise<SippResult> {
  mkdirSync(workDir, { recursive: true });
  const tag = `${options.from}-${Date.now()}`;
  const statFile = join(workDir, `sipp-${tag}.csv`);
  const messageFile = join(workDir, `sipp-${tag}-messages.log`);
  const args = [
    `${options.to.ip}:${options.to.port}`,
    '-sf',
    join(SCENARIO_DIR, options.scenario),
    '-i',
    options.from,
    '-p',
    String(options.localPort ?? 5070),
    '-mi',
    options.from,
    '-mp',
    String(options.mediaPort ?? 36000),
    '-m',
    String(options.calls ?? 1),
    '-r',
    String(options.rate ?? 10),
    '-d',
    String(options.durationMs ?? 500),
    '-s',
    options.service ?? INTAKE_NUMBER,
    '-nostdin',
    '-timeout',
    `${options.timeoutSeconds ?? 30}s`,
    '-timeout_error',
    '-trace_stat',
    '-stf',
    statFile,
    '-trace_msg',
    '-message_file',
    messageFile,
    ...(options.extraArgs ?? []),
  ];
  const child = spawn('sipp', args, {
    cwd: options.scenario === 'uac-call-rtp.xml' ? SIPP_PCAP_DIR : workDir,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout?.on('data', (chunk) => {
    output = (output + chunk.toString()).slice(-20_000);
  });
  child.stderr?.on('data', (chunk) => {
    output = (output + chunk.toString()).slice(-20_000);
  });
  const exitCode = await new Promise<number>((done) =>
    child.on('exit', (code, signal) => done(code ?? (signal ? 128 : 1))),
  );
  const stats = existsSync(statFile) ? readFileSync(statFile, 'utf8').trim().split('\n') : [];
  let successful = 0;
  let failed = 0;
  let lastStats: Record<string, string> = {};
  if (stats.length >= 2) {
    const header = stats[0].split(';');
    const last = stats[stats.length - 1].split(';');
    lastStats = Object.fromEntries(header.map((name, index) => [name, last[index] ?? '']));
    successful = Number(last[header.indexOf('SuccessfulCall(C)')]);
    failed = Number(last[header.indexOf('FailedCall(C)')]);
  }
  const messages = existsSync(messageFile) ? readFileSync(messageFile, 'utf8') : '';
  const callIds = [...new Set([...messages.matchAll(/^Call-ID:\s*(\S+)/gim)].map((m) => m[1]))];
  return { exitCode, successful, failed, output, callIds, messages, stats: lastStats };
}
