/**
 * Density: how many calls one worker process holds. N concurrent calls in this process, each with its own session,
 * Silero VAD stream (one model per process, as in production), Transcribe/Bedrock/Polly plugins, MCP session, recorder
 * and Redis state, a caller talking in real time and the agent answering; services are fakes with realistic delays.
 *
 *   npm run bench:density -w agent -- [--calls 12] [--seconds 60] [--warmup 15]
 *
 * Prints CPU per call (share of one core), the calls that fit in 4 vCPU at 80 % utilisation, and RSS per call
 * (process RSS with N calls minus the RSS with the model loaded and no call, divided by N). LiveKit Agents 1.9 runs
 * each job in its own process, so it also prints what one idle job process holds (worker module + Silero loaded).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import * as silero from '@livekit/agents-plugin-silero';
import { localAgentEnv, type OpenCall, openCall } from '../test/support/call-harness';
import { listeningTranscribe, speakingPolly, streamingBedrock } from '../test/support/fake-aws';
import { synthesizeSpeech } from '../test/support/speech';
import { CALLER_LINES, percentile, round, sleep, startBenchBackends } from './support';

const { values } = parseArgs({
  options: {
    calls: { type: 'string', default: '12' },
    seconds: { type: 'string', default: '60' },
    warmup: { type: 'string', default: '15' },
  },
});
const calls = Number(values.calls);
const seconds = Number(values.seconds);
const warmup = Number(values.warmup);
const MB = 1024 * 1024;

const gc = (globalThis as { gc?: () => void }).gc;
function settledRss(): number {
  gc?.();
  return process.memoryUsage().rss;
}

/** CPU ticks per thread name (Linux /proc), to show where the time goes: the event loop, libuv's pool, ONNX Runtime. */
function threadTicks(): Map<string, number> {
  const ticks = new Map<string, number>();
  const tasks = `/proc/${process.pid}/task`;
  if (!existsSync(tasks)) return ticks;
  for (const tid of readdirSync(tasks)) {
    try {
      const stat = readFileSync(`${tasks}/${tid}/stat`, 'utf8');
      const name = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')).replace(/[0-9]+$/, '#');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks.set(name, (ticks.get(name) ?? 0) + Number(fields[11]) + Number(fields[12]));
    } catch {
      // the thread ended
    }
  }
  return ticks;
}

/** One caller: says a line, waits for the answer to play out, pauses, and again, until stopped. */
async function converse(call: OpenCall, index: number, running: () => boolean, counters: { turns: number }) {
  await call.intake.greet();
  for (let turn = index; running(); turn += 1) {
    const answer = call.earpiece.nextSegment();
    await call.line.say(synthesizeSpeech(CALLER_LINES[turn % CALLER_LINES.length]));
    const segment = await Promise.race([answer, sleep(15_000).then(() => undefined)]);
    while (segment && segment.finishedAt === undefined && running()) await sleep(50);
    if (segment) counters.turns += 1;
    await sleep(600);
  }
}

async function main() {
  const backends = await startBenchBackends();
  // Far more lines than any run uses: every utterance any caller says gets a transcript.
  listeningTranscribe(backends.mocks.transcribe, {
    utterances: Array.from({ length: 100_000 }, (_, i) => CALLER_LINES[i % CALLER_LINES.length]),
    endSilenceMs: 200,
    finalDelayMs: 300,
  });
  streamingBedrock(
    backends.mocks.bedrock,
    (request) => {
      // First answer of each call looks the caller up (an MCP round trip), later ones just talk.
      const userTurns = (request.messages ?? []).filter(
        (message) => message.role === 'user' && message.content?.some((block) => block.text),
      ).length;
      const askedTools = JSON.stringify(request.messages ?? []).includes('lookup_caller');
      return userTurns === 2 && !askedTools
        ? { toolUse: { name: 'lookup_caller', input: {} } }
        : { text: 'Thanks, I have noted that. What else can you tell me about it?' };
    },
    { ttftMs: 400, tokenIntervalMs: 20 },
  );
  speakingPolly(backends.mocks.polly, { ttfbMs: 150 });
  for (const line of CALLER_LINES) synthesizeSpeech(line);

  const vad = await silero.VAD.load({ minSilenceDuration: 0.45 });
  const env = localAgentEnv(backends.redis.port, backends.mcp.url, { RECORD_FLUSH_MS: '2000' });
  const redis = backends.redis.client();
  await sleep(1_000);
  const baselineRss = settledRss();

  let running = true;
  const counters = { turns: 0 };
  const open: OpenCall[] = [];
  const conversations: Promise<void>[] = [];
  for (let index = 0; index < calls; index += 1) {
    const call = await openCall({
      env,
      callId: `bench-density-${index}`,
      callerNumber: `+1415555${String(1000 + index)}`,
      vad,
      redis,
    });
    open.push(call);
    conversations.push(converse(call, index, () => running, counters));
    await sleep(200); // calls arrive spread out, not in one burst
  }
  await sleep(warmup * 1000);

  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  const turnsBefore = counters.turns;
  const cpuBefore = process.cpuUsage();
  const threadsBefore = threadTicks();
  const startedAt = performance.now();
  const rssSamples: number[] = [];
  while (performance.now() - startedAt < seconds * 1000) {
    await sleep(1_000);
    rssSamples.push(process.memoryUsage().rss);
  }
  const cpu = process.cpuUsage(cpuBefore);
  const threadsAfter = threadTicks();
  const elapsedMs = performance.now() - startedAt;
  lag.disable();
  const turnsDone = counters.turns - turnsBefore;

  running = false;
  await Promise.race([Promise.all(conversations), sleep(20_000)]);
  await Promise.all(open.map((call) => call.close().catch(() => undefined)));
  await backends.stop();

  const coresUsed = (cpu.user + cpu.system) / 1000 / elapsedMs;
  const corePerCall = coresUsed / calls;
  const rssPerCall = (percentile(rssSamples, 50) - baselineRss) / calls;
  console.log(
    `agent density benchmark: ${calls} concurrent calls in one process for ${seconds} s (after ${warmup} s warm-up)`,
  );
  console.log(
    `services simulated: STT final 500 ms after speech, LLM TTFT 400 ms + 20 ms/token, Polly TTFB 150 ms; real Silero VAD, MCP server, Redis`,
  );
  console.log(`turns answered during the window: ${turnsDone} (${round(turnsDone / calls, 1)} per call)`);
  console.log(
    `process CPU: ${round(coresUsed * 100)} % of one core  →  ${round(corePerCall * 100, 2)} % of a core per call`,
  );
  console.log(`calls per 4 vCPU at 80 % CPU: ${Math.floor((4 * 0.8) / corePerCall)}   (goal ≥ 50)`);
  console.log(
    `RSS: ${round(baselineRss / MB)} MB with the model loaded, ${round(percentile(rssSamples, 50) / MB)} MB median with ${calls} calls  →  ${round(rssPerCall / MB)} MB per call   (goal ≤ 60)`,
  );
  const byThread = [...threadsAfter]
    .map(([name, after]) => [name, (after - (threadsBefore.get(name) ?? 0)) * 10] as const)
    .filter(([, ms]) => ms > 0)
    .sort((a, b) => b[1] - a[1]);
  if (byThread.length > 0)
    console.log(
      `CPU by thread: ${byThread.map(([name, ms]) => `${name} ${round((ms / elapsedMs) * 100)} %`).join(', ')}`,
    );
  console.log(
    `event-loop delay: p50 ${round(lag.percentile(50) / 1e6)} ms, p99 ${round(lag.percentile(99) / 1e6)} ms, max ${round(lag.max / 1e6)} ms`,
  );
  const jobProcessRss = Number(
    execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', join(__dirname, 'job-process-rss.ts')], {
      cwd: join(__dirname, '..'),
      encoding: 'utf8',
    })
      .trim()
      .split('\n')
      .pop(),
  );
  console.log(`one idle job process (agents 1.9 runs a process per job): ${round(jobProcessRss / MB)} MB RSS`);
  if (Number.isNaN(jobProcessRss)) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
