/**
 * Agent density as production runs it: the worker bundle (`node agent/dist/main.mjs start`, a job process per call,
 * warm idle processes) against a real LiveKit Server, the AWS voice services faked over the wire with simulated
 * latencies, the MCP server, moto and Redis as processes. For each N, N rooms are dispatched to the agent as the SIP
 * dispatch rule does (`AgentDispatchClient.createDispatch`), and in each a caller (a `@livekit/rtc-node` participant
 * with the SIP attributes) speaks espeak-ng lines in real time, waits for the answer to play out, and speaks again.
 *
 *   npm run bench:production-density -w local [-- --calls 1,2,4,6 --seconds 60 --warmup 15]
 *
 * Per N it prints the RSS of the worker's main process and of each job process, the worker's CPU per call, the job
 * processes' event-loop delay (a probe loaded with NODE_OPTIONS=--import), the turns answered late — more than 50 ms
 * after the smallest N's median answer time, which is the simulated services plus the path itself — and how many calls
 * a task's CPU and memory would hold, with the formula. Prints figures; no pass/fail.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from '@livekit/rtc-node';
import { AccessToken, AgentDispatchClient } from 'livekit-server-sdk';
import { JOB_PROCESS } from '../../agent/src/job-process';
import { rms, SPEECH_SAMPLE_RATE, speechEndMs, synthesizeSpeech } from '../../agent/test/support/speech';
import { CallStack } from '../src/call-stack';
import { REPO_ROOT } from '../src/stack/binaries';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '1,2,4,6' },
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '15' },
    'task-vcpu': { type: 'string', default: '4' },
    'task-gib': { type: 'string', default: '8' },
    /** Extra node options for the worker and its job processes, e.g. V8 flags to compare. */
    'node-options': { type: 'string', default: '' },
  },
});
const steps = values.calls
  .split(',')
  .map(Number)
  .filter((n) => Number.isInteger(n) && n > 0);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const taskVcpu = Number(values['task-vcpu']);
const taskGib = Number(values['task-gib']);
if (steps.length === 0 || !(seconds > 0) || !(warmup >= 0)) throw new Error('--calls 1,2,4 --seconds >0 --warmup ≥0');

const RUN_DIR = resolve(__dirname, '..', '.local', 'bench-production-density');
const PROBE_DIR = join(RUN_DIR, 'probe');
const MB = 1024 * 1024;
const PAGE_BYTES = 4096;
const TICKS_PER_SECOND = 100;
const FRAME_SAMPLES = SPEECH_SAMPLE_RATE / 100; // 10 ms
const SPEECH_LEVEL = 300;
/** Quiet this long after agent audio: the answer has played out. */
const ANSWER_DONE_MS = 900;
const LATE_MARGIN_MS = 50;
/** Agent audio within this of earlier agent audio continues it. */
const OVERLAP_GAP_MS = 200;
/** What the budget keeps back: CPU headroom for bursts, memory for the worker's main process and the OS. */
const CPU_TARGET = 0.8;
const LATENCY = { transcribeFinalDelayMs: 300, bedrockTtftMs: 350, bedrockTokenIntervalMs: 15, pollyTtfbMs: 120 };
const LINES = [
  'I would like to report a broken water pipe in my kitchen.',
  'My name is Alex Morgan and I live on Main Street.',
  'It started yesterday evening and it is getting worse.',
  'Yes, that is correct, please go ahead.',
  'Can somebody come tomorrow morning?',
];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (value: number, digits = 1) => Math.round(value * 10 ** digits) / 10 ** digits;
function percentile(samples: readonly number[], p: number): number {
  if (samples.length === 0) return Number.NaN;
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))];
}

/** One caller in one room: publishes its lines in real time (silence between), times each answer. */
class BenchCaller {
  readonly room = new Room();
  /** ms from the end of the caller's speech to the agent's first audible audio, per answered turn. */
  readonly answers: { at: number; ms: number }[] = [];
  unanswered = 0;
  /** Turns whose end found the agent still talking: no answer time. */
  overlapped = 0;
  private readonly source = new AudioSource(SPEECH_SAMPLE_RATE, 1, 40);
  private utterance?: { samples: Int16Array; offset: number; speechEnd: number; done: () => void };
  private speechEndedAt?: number;
  private lastAgentAudioAt = 0;
  private heardAgent = false;
  private running = true;
  private tasks: Promise<void>[] = [];

  constructor(readonly index: number) {}

  async join(url: string, token: string): Promise<void> {
    this.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind === TrackKind.KIND_AUDIO) this.tasks.push(this.listen(track));
    });
    await this.room.connect(url, token, { autoSubscribe: true, dynacast: false });
    const track = LocalAudioTrack.createAudioTrack('caller', this.source);
    const options = new TrackPublishOptions();
    options.source = TrackSource.SOURCE_MICROPHONE;
    await this.room.localParticipant!.publishTrack(track, options);
    this.tasks.push(this.play(), this.converse());
  }

  /** A 10 ms frame every 10 ms (captureFrame waits while the 40 ms queue is full): the line's samples, or silence. */
  private async play(): Promise<void> {
    const silence = new Int16Array(FRAME_SAMPLES);
    while (this.running) {
      const current = this.utterance;
      let samples: Int16Array = silence;
      if (current) {
        samples = current.samples.subarray(current.offset, current.offset + FRAME_SAMPLES);
        current.offset += FRAME_SAMPLES;
        if (current.offset >= current.speechEnd && this.speechEndedAt === undefined) {
          this.speechEndedAt = performance.now();
        }
        if (current.offset >= current.samples.length) {
          this.utterance = undefined;
          current.done();
        }
        if (samples.length < FRAME_SAMPLES)
          samples = Int16Array.from({ length: FRAME_SAMPLES }, (_, i) => samples[i] ?? 0);
      }
      try {
        await this.source.captureFrame(new AudioFrame(samples, SPEECH_SAMPLE_RATE, 1, FRAME_SAMPLES));
      } catch {
        return;
      }
    }
  }

  private async listen(track: RemoteTrack): Promise<void> {
    const stream = new AudioStream(track, { sampleRate: SPEECH_SAMPLE_RATE, numChannels: 1 });
    for await (const frame of stream) {
      if (!this.running) break;
      if (rms(frame.data) < SPEECH_LEVEL) continue;
      const now = performance.now();
      const previous = this.lastAgentAudioAt;
      this.lastAgentAudioAt = now;
      this.heardAgent = true;
      if (this.speechEndedAt !== undefined) {
        // Audio right after earlier agent audio is the agent still talking (over the caller), not an answer.
        if (now - previous > OVERLAP_GAP_MS) this.answers.push({ at: Date.now(), ms: now - this.speechEndedAt });
        else this.overlapped += 1;
        this.speechEndedAt = undefined;
      }
    }
  }

  private say(text: string): Promise<void> {
    const samples = synthesizeSpeech(text);
    const speechEnd = Math.round((speechEndMs(samples) * SPEECH_SAMPLE_RATE) / 1000);
    return new Promise((done) => {
      this.speechEndedAt = undefined;
      this.utterance = { samples, offset: 0, speechEnd, done };
    });
  }

  /** Waits until the agent has spoken and then been quiet: its answer has played out. */
  private async answerPlayedOut(timeoutMs: number): Promise<boolean> {
    const deadline = performance.now() + timeoutMs;
    while (this.running && performance.now() < deadline) {
      if (this.heardAgent && performance.now() - this.lastAgentAudioAt > ANSWER_DONE_MS) return true;
      await sleep(50);
    }
    return false;
  }

  private async converse(): Promise<void> {
    await this.answerPlayedOut(30_000); // the greeting
    for (let turn = this.index; this.running; turn += 1) {
      this.heardAgent = false;
      await this.say(LINES[turn % LINES.length]);
      if (!(await this.answerPlayedOut(15_000)) && this.running) this.unanswered += 1;
      await sleep(500);
    }
  }

  async leave(): Promise<void> {
    this.running = false;
    await this.source.close().catch(() => undefined);
    await this.room.disconnect().catch(() => undefined);
    await Promise.race([Promise.all(this.tasks), sleep(5_000)]);
  }
}

interface ProcStat {
  pid: number;
  parent: number;
  cpuSeconds: number;
  rssBytes: number;
}

function readProc(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return {
      pid,
      parent: Number(fields[1]),
      cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND,
      rssBytes: Number(fields[21]) * PAGE_BYTES,
    };
  } catch {
    return undefined;
  }
}

/** The worker's main process and its children (the job processes), from /proc. */
function workerTree(mainPid: number): { main?: ProcStat; jobs: ProcStat[] } {
  const jobs: ProcStat[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProc(Number(entry));
    if (stat && stat.parent === mainPid) jobs.push(stat);
  }
  return { main: readProc(mainPid), jobs };
}

/** CPU ticks of one process by thread name (digits dropped: a pool's threads add up), from /proc. */
function threadTicks(pid: number): Map<string, number> {
  const ticks = new Map<string, number>();
  let tids: string[] = [];
  try {
    tids = readdirSync(`/proc/${pid}/task`);
  } catch {
    return ticks;
  }
  for (const tid of tids) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/[-_ ]?[0-9]+$/, '#');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(name, (ticks.get(name) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // the thread ended
    }
  }
  return ticks;
}

interface ProbeSample {
  at: number;
  pid: number;
  p50: number;
  p99: number;
  max: number;
}

function probeSamples(from: number, to: number, pids: ReadonlySet<number>): ProbeSample[] {
  if (!existsSync(PROBE_DIR)) return [];
  return readdirSync(PROBE_DIR)
    .filter((file) => pids.has(Number(file.split('.')[0])))
    .flatMap((file) => readFileSync(join(PROBE_DIR, file), 'utf8').split('\n').filter(Boolean))
    .map((line) => JSON.parse(line) as ProbeSample)
    .filter((sample) => sample.at >= from && sample.at <= to);
}

interface StepResult {
  calls: number;
  mainRssMB: number;
  jobRssMB: number[];
  idleRssMB: number[];
  coresUsed: number;
  answers: number[];
  unanswered: number;
  overlapped: number;
  loopP99: number;
  loopMax: number;
  /** Share of a core per call process, by thread name. */
  threads: [string, number][];
}

async function runStep(stack: CallStack, calls: number, mainPid: number): Promise<StepResult> {
  const livekit = stack.livekit;
  const dispatcher = new AgentDispatchClient(livekit.httpUrl, livekit.apiKey, livekit.apiSecret);
  const callers: BenchCaller[] = [];
  const rooms: string[] = [];
  try {
    for (let index = 0; index < calls; index += 1) {
      const room = `${livekit.livekit.roomPrefix}bench-${calls}-${index}-${Date.now()}`;
      const identity = `sip_+1415555${String(1000 + index)}`;
      const token = new AccessToken(livekit.apiKey, livekit.apiSecret, {
        identity,
        ttl: '1h',
        attributes: {
          'sip.phoneNumber': `+1415555${String(1000 + index)}`,
          'sip.callID': `SCL_bench${calls}x${index}`,
        },
      });
      token.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true });
      const caller = new BenchCaller(index);
      await caller.join(livekit.wsUrl, await token.toJwt());
      await dispatcher.createDispatch(room, livekit.livekit.agentName);
      callers.push(caller);
      rooms.push(room);
      await sleep(300); // calls arrive spread out, not in one burst
    }
    await sleep(warmup * 1000);

    const startedAt = Date.now();
    const before = workerTree(mainPid);
    const cpuBefore = new Map([before.main!, ...before.jobs].map((stat) => [stat.pid, stat.cpuSeconds]));
    const threadsBefore = new Map(before.jobs.map((job) => [job.pid, threadTicks(job.pid)]));
    const rssByPid = new Map<number, number[]>();
    const mainRss: number[] = [];
    const answersBefore = callers.map((caller) => caller.answers.length);
    const unansweredBefore = callers.reduce((sum, caller) => sum + caller.unanswered, 0);
    const overlappedBefore = callers.reduce((sum, caller) => sum + caller.overlapped, 0);
    while (Date.now() - startedAt < seconds * 1000) {
      await sleep(1_000);
      const tree = workerTree(mainPid);
      if (tree.main) mainRss.push(tree.main.rssBytes);
      for (const job of tree.jobs) rssByPid.set(job.pid, [...(rssByPid.get(job.pid) ?? []), job.rssBytes]);
    }
    const after = workerTree(mainPid);
    const threadsAfter = new Map(after.jobs.map((job) => [job.pid, threadTicks(job.pid)]));
    const endedAt = Date.now();
    let cpuSeconds = 0;
    for (const stat of [after.main!, ...after.jobs])
      cpuSeconds += stat.cpuSeconds - (cpuBefore.get(stat.pid) ?? stat.cpuSeconds);
    const coresUsed = cpuSeconds / ((endedAt - startedAt) / 1000);

    // Job processes with a call: those whose CPU over the window is well above an idle process's.
    const cpuOf = (pid: number) => {
      const end = after.jobs.find((job) => job.pid === pid)?.cpuSeconds ?? 0;
      return end - (cpuBefore.get(pid) ?? end);
    };
    const jobPids = [...rssByPid.keys()].sort((a, b) => cpuOf(b) - cpuOf(a));
    const busy = new Set(jobPids.slice(0, calls));
    const probe = probeSamples(startedAt, endedAt, busy);
    const threads = new Map<string, number>();
    for (const pid of busy) {
      for (const [name, ticks] of threadsAfter.get(pid) ?? []) {
        const used = ticks - (threadsBefore.get(pid)?.get(name) ?? 0);
        threads.set(name, (threads.get(name) ?? 0) + used / TICKS_PER_SECOND / ((endedAt - startedAt) / 1000) / calls);
      }
    }
    return {
      calls,
      mainRssMB: percentile(mainRss, 50) / MB,
      jobRssMB: [...busy].map((pid) => percentile(rssByPid.get(pid)!, 50) / MB),
      idleRssMB: jobPids.filter((pid) => !busy.has(pid)).map((pid) => percentile(rssByPid.get(pid)!, 50) / MB),
      coresUsed,
      answers: callers.flatMap((caller, i) => caller.answers.slice(answersBefore[i]).map((answer) => answer.ms)),
      unanswered: callers.reduce((sum, caller) => sum + caller.unanswered, 0) - unansweredBefore,
      overlapped: callers.reduce((sum, caller) => sum + caller.overlapped, 0) - overlappedBefore,
      loopP99: Math.max(...probe.map((sample) => sample.p99), 0),
      loopMax: Math.max(...probe.map((sample) => sample.max), 0),
      threads: [...threads].filter(([, share]) => share >= 0.002).sort((a, b) => b[1] - a[1]),
    };
  } finally {
    await Promise.all(callers.map((caller) => caller.leave()));
    await Promise.all(rooms.map((room) => livekit.roomService.deleteRoom(room).catch(() => undefined)));
    // The next step starts with no call in progress.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await stack.worker!.info().catch(() => ({ active_jobs: -1 }))).active_jobs !== 0) {
      await sleep(500);
    }
  }
}

async function main(): Promise<void> {
  execFileSync('npm', ['run', 'build', '-w', 'agent'], { cwd: REPO_ROOT, stdio: 'ignore' });
  rmSync(RUN_DIR, { recursive: true, force: true });
  const maxCalls = Math.max(...steps);
  const stack = new CallStack({
    runDir: RUN_DIR,
    fakeLatency: LATENCY,
    defaultScenario: {
      callerSays: Array.from({ length: 500 }, (_, i) => LINES[i % LINES.length]),
      intakeScript: false,
      replies: [
        { whenCallerSays: '.', say: 'Thanks, I have noted that. What else can you tell me about it?' },
        { whenGreeting: true, say: 'Hello, you are through to the intake line. How can I help?' },
      ],
    },
    // LiveKit only (no edge): one idle LiveKit SIP node the stack needs, off the loopback example's addresses.
    livekit: {
      edge: false,
      redisPort: 16490,
      apiPort: 17980,
      rtcTcpPort: 17981,
      rtcUdpPortRange: { min: 21200, max: 21299 },
      serverPrometheusPort: 17989,
      sipNodes: [
        {
          ip: '127.0.9.1',
          port: 5090,
          rtpPortRange: { min: 22600, max: 22699 },
          healthPort: 18481,
          prometheusPort: 18491,
        },
      ],
    },
    ports: { moto: 15300, mcp: 18400, workerHealth: 18410 },
    workerRuntime: 'bundle',
    workerEnv: {
      AGENT_MAX_CALLS: String(maxCalls + 1),
      NODE_OPTIONS: `--import ${pathToFileURL(join(__dirname, 'event-loop-probe.mjs')).href} ${values['node-options']}`,
      DENSITY_PROBE_DIR: PROBE_DIR,
    },
    readyTimeoutMs: 180_000,
  });
  const results: StepResult[] = [];
  try {
    await stack.start();
    mkdirSync(PROBE_DIR, { recursive: true });
    const mainPid = stack.worker!.process.pid!;
    await sleep(5_000); // the warm idle processes start and load Silero
    for (const calls of steps) {
      results.push(await runStep(stack, calls, mainPid));
      console.error(`N=${calls} done`);
    }
  } finally {
    await stack.stop().catch((error) => console.error(error));
  }

  const baseline = percentile(results[0].answers, 50);
  console.log(
    `production density: worker bundle on node ${process.version}, a job process per call, real LiveKit Server`,
  );
  console.log(
    `simulated services: STT final +${LATENCY.transcribeFinalDelayMs} ms, LLM TTFT ${LATENCY.bedrockTtftMs} ms ` +
      `+ ${LATENCY.bedrockTokenIntervalMs} ms/token, Polly TTFB ${LATENCY.pollyTtfbMs} ms; ${seconds} s per N after ` +
      `${warmup} s warm-up; job V8 flags ${JOB_PROCESS.v8Flags.join(' ')} ${values['node-options']}`,
  );
  console.log(
    `late turn: answer (end of caller speech → first agent audio) > N=${results[0].calls} median ` +
      `${round(baseline, 0)} ms + ${LATE_MARGIN_MS} ms`,
  );
  console.log(
    '| N | worker main RSS | job process RSS (median, max) | idle processes | CPU (cores) | CPU per call | ' +
      'event loop p99 / max (jobs) | turns | answer p50 / p95 | late | unanswered / agent still talking |',
  );
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const result of results) {
    const late = result.answers.filter((ms) => ms > baseline + LATE_MARGIN_MS).length;
    console.log(
      `| ${result.calls} | ${round(result.mainRssMB)} MB | ${round(percentile(result.jobRssMB, 50))} / ` +
        `${round(Math.max(...result.jobRssMB))} MB | ${result.idleRssMB.length} × ${round(percentile(result.idleRssMB, 50))} MB | ` +
        `${round(result.coresUsed, 2)} | ${round((result.coresUsed / result.calls) * 100, 1)} % | ` +
        `${round(result.loopP99)} / ${round(result.loopMax)} ms | ${result.answers.length} | ` +
        `${round(percentile(result.answers, 50), 0)} / ${round(percentile(result.answers, 95), 0)} ms | ${late} | ` +
        `${result.unanswered} / ${result.overlapped} |`,
    );
  }
  console.log(
    `per-process RSS at each N: ${results.map((r) => `N=${r.calls}: ${r.jobRssMB.map((mb) => round(mb, 0)).join(' ')}`).join('; ')}`,
  );

  for (const result of results) {
    const shares = result.threads.map(([name, share]) => `${name} ${round(share * 100)} %`).join(', ');
    console.log(`CPU of one call process by thread at N=${result.calls} (% of a core): ${shares}`);
  }

  // Extrapolation from each N: per-call CPU (the worker's whole tree / N) and per-call memory (a job process's median
  // RSS); the fixed part is the main process plus the idle processes seen. An N where turns went unanswered or the
  // agent was still talking at a turn's end had a starved host: its CPU per call reads low (work left undone).
  console.log(`extrapolation to a ${taskVcpu} vCPU / ${taskGib} GiB task (goal ≥ 50 calls):`);
  console.log(
    `  calls by CPU = floor(vCPU × ${CPU_TARGET} / CPU per call); calls by memory = ` +
      'floor((GiB × 1024 − main RSS − idle processes × idle RSS) / job RSS)',
  );
  for (const result of results) {
    const cpuPerCall = result.coresUsed / result.calls;
    const jobMB = percentile(result.jobRssMB, 50);
    const idleMB = result.idleRssMB.length > 0 ? percentile(result.idleRssMB, 50) : 0;
    const idleCount = result.idleRssMB.length;
    const byCpu = Math.floor((taskVcpu * CPU_TARGET) / cpuPerCall);
    const byMemory = Math.floor((taskGib * 1024 - result.mainRssMB - idleCount * idleMB) / jobMB);
    const starved = result.unanswered + result.overlapped > result.answers.length / 10;
    console.log(
      `  N=${result.calls}: by CPU floor(${taskVcpu} × ${CPU_TARGET} / ${round(cpuPerCall, 3)}) = ${byCpu}, by memory ` +
        `floor((${taskGib * 1024} − ${round(result.mainRssMB, 0)} − ${idleCount} × ${round(idleMB, 0)}) / ` +
        `${round(jobMB, 0)}) = ${byMemory} → ${Math.min(byCpu, byMemory)} calls, ${byCpu <= byMemory ? 'CPU' : 'memory'} ` +
        `first (per vCPU ${round((taskVcpu * CPU_TARGET) / cpuPerCall / taskVcpu)}, per GiB ` +
        `${round(byMemory / taskGib)})${starved ? '  [host starved at this N: CPU per call reads low]' : ''}`,
    );
  }
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
