/**
 * Voice-to-voice at the caller, through the whole loopback path, with the AWS fake's service latencies at 0: what
 * our stack itself adds (edge, LiveKit SIP, LiveKit, endpointing, the agent). Transcribe's partial with every word
 * stable comes `--stable-after-ms` after the end of speech (200 by default, the latency benchmark's median; `off`:
 * none, so no turn is answered speculatively). A real softphone talks `--turns` times; a capture on the carrier side gives, per turn, the end of the caller's speech in the audio it sent and the
 * first agent audio in what came back. Also the CPU and peak memory of each component over the call.
 *
 *   npm run bench:e2e-call -w local [-- --turns 8 --stable-after-ms 200]
 *
 * Prints figures; no pass/fail.
 */
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { AGENT_METRICS } from '@voice-intake/contracts';
import { CallStack } from '../src/call-stack';
import { rms, SPEECH_RMS } from '../src/caller/audio';
import { Caller } from '../src/caller/caller';
import { type CapturedRtp, CarrierCapture } from '../src/caller/capture';
import { Softphone } from '../src/caller/softphone';
import { UsageSampler } from './process-usage';

const { values } = parseArgs({
  options: { turns: { type: 'string', default: '8' }, 'stable-after-ms': { type: 'string', default: '200' } },
});
const turns = Math.max(5, Number(values.turns));
const stableAfter = values['stable-after-ms'];
const stableAfterMs = stableAfter === 'off' ? null : Number(stableAfter);
if (stableAfterMs !== null && !(Number.isInteger(stableAfterMs) && stableAfterMs >= 0)) {
  throw new Error(`--stable-after-ms: a whole number of milliseconds or "off", not ${JSON.stringify(stableAfter)}`);
}
const RUN_DIR = resolve(__dirname, '..', '.local', 'bench-e2e-call');
const CALLER_RTP = { min: 40100, max: 40199 };
const LINES = [
  'I would like to report a broken window',
  'It happened on Monday morning',
  'The glass is all over the kitchen floor',
  'My neighbour saw it happen',
  'I can send you some pictures later',
  'The window faces the garden',
  'Nobody was hurt at all',
  'I rent the flat from a landlord',
  'The landlord lives abroad',
  'I hope that helps you',
];

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function row(name: string, samples: number[]): string {
  if (samples.length === 0) return `| ${name} | — | — | 0 |`;
  const [p50, p95] = [50, 95].map((p) => Math.round(percentile(samples, p)));
  return `| ${name} | ${p50} ms | ${p95} ms | ${samples.length} |`;
}

/** Wall-clock times (ms) of 20 ms packets carrying speech, in arrival order. */
function speechTimes(packets: CapturedRtp[]): number[] {
  return packets.filter((packet) => packet.samples.length > 0 && rms(packet.samples) >= SPEECH_RMS).map((p) => p.at);
}

async function main(): Promise<void> {
  const callerSays = LINES.slice(0, turns).map((line) => `${line}.`);
  const stack = new CallStack({
    runDir: RUN_DIR,
    fakeLatency: {
      transcribeFinalDelayMs: 0,
      transcribeStableAfterMs: stableAfterMs,
      bedrockTtftMs: 0,
      bedrockTokenIntervalMs: 0,
      pollyTtfbMs: 0,
    },
    defaultScenario: {
      callerSays: [...callerSays, 'Goodbye.'],
      intakeScript: false,
      replies: [
        {
          whenCallerSays: 'goodbye',
          say: 'Thank you, goodbye.',
          callTool: { name: 'end_call', input: { reason: 'done' } },
        },
        { whenCallerSays: '.', say: 'I see, thank you.' },
        { whenGreeting: true, say: 'Hello, how can I help?' },
      ],
    },
    ports: { moto: 15100, mcp: 18200, workerHealth: 18210 },
    readyTimeoutMs: 180_000,
  });
  const capture = new CarrierCapture({
    pcapPath: join(RUN_DIR, 'carrier-side.pcap'),
    logFile: join(RUN_DIR, 'tshark.log'),
    filter: `udp portrange ${CALLER_RTP.min}-${CALLER_RTP.max}`,
  });
  const phone = new Softphone({
    dir: join(RUN_DIR, 'caller'),
    ip: '127.0.3.2',
    rtpPorts: CALLER_RTP,
    controlPort: 18230,
    number: '+14155550199',
    maxCallSeconds: 240,
  });
  const caller = new Caller(phone, join(RUN_DIR, 'caller'));
  const sampler = new UsageSampler();
  try {
    console.log('starting the stack…');
    await stack.start();
    await capture.start({ ip: '127.0.0.1', port: CALLER_RTP.max });
    await phone.start();
    sampler.start();
    const callStarted = Date.now();
    await caller.call(stack.dialUri);
    await caller.listen({ timeoutMs: 60_000 });
    for (const line of callerSays.slice()) {
      const mark = caller.heardMs();
      await caller.say(line.replace(/\.$/, ''));
      await caller.listen({ afterMs: mark, quietMs: 1_200, timeoutMs: 30_000 });
    }
    await caller.say('Goodbye');
    await caller.waitForHangUp(60_000);
    const callSeconds = (Date.now() - callStarted) / 1000;
    const usage = sampler.stop();
    await capture.stop();

    const { rtp } = await capture.read();
    const inRange = (address: string) => {
      const port = Number(address.split(':')[1]);
      return port >= CALLER_RTP.min && port <= CALLER_RTP.max;
    };
    const sent = speechTimes(rtp.filter((packet) => inRange(packet.from)));
    const received = speechTimes(rtp.filter((packet) => inRange(packet.to)));
    // The end of each caller utterance: a sent speech packet followed by ≥ 700 ms without one.
    const utteranceEnds = sent.filter((at, index) => index === sent.length - 1 || sent[index + 1] - at > 700);
    const voiceToVoice: number[] = [];
    for (const end of utteranceEnds) {
      const answer = received.find((at) => at > end);
      if (answer !== undefined && answer - end < 10_000) voiceToVoice.push(answer - end);
    }

    // The agent's own view of each turn, from its metrics lines (EMF in the worker log).
    const metric = (name: string) =>
      stack
        .worker!.logLines()
        .map((line) => line[name])
        .filter((value): value is number => typeof value === 'number');
    const agentV2V = metric(AGENT_METRICS.voiceToVoiceLatency);
    const stableNote =
      stableAfterMs === null ? 'no stable partials' : `stable partials ${stableAfterMs} ms after speech`;
    console.log(
      `\nvoice-to-voice at the caller, ${voiceToVoice.length} turns, fake service latencies 0, ${stableNote}\n`,
    );
    console.log('| figure | p50 | p95 | n |\n|---|---|---|---|');
    console.log(row('**end of caller speech → first agent audio, at the caller**', voiceToVoice));
    console.log(row('agent: end of speech (VAD) → first audio out (`e2eLatency`)', agentV2V));
    console.log(row('agent: end-of-utterance delay (endpointing)', metric(AGENT_METRICS.endOfUtteranceDelay)));
    console.log(row('agent: STT final after end of speech', metric(AGENT_METRICS.sttFinalDelay)));
    console.log(row('agent: LLM time to first token', metric(AGENT_METRICS.llmTimeToFirstToken)));
    console.log(row('agent: TTS time to first byte', metric(AGENT_METRICS.ttsTimeToFirstByte)));
    console.log(row('agent: final after the stable words', metric(AGENT_METRICS.finalAfterPreflightWait)));
    const sum = (name: string) => metric(name).reduce((total, value) => total + value, 0);
    console.log(
      `\nanswered speculatively: ${sum(AGENT_METRICS.speculationHits)} kept, ` +
        `${sum(AGENT_METRICS.speculationCancels)} cancelled`,
    );
    if (voiceToVoice.length && agentV2V.length) {
      const transport = percentile(voiceToVoice, 50) - percentile(agentV2V, 50);
      console.log(`\nedge + LiveKit SIP + LiveKit both ways + VAD lag (p50 difference): ${Math.round(transport)} ms`);
    }
    console.log(`\nper component over one ${callSeconds.toFixed(0)} s call (CPU: share of one core; RSS: peak)\n`);
    console.log('| component | CPU ms per call | CPU % of a core | peak RSS |\n|---|---|---|---|');
    for (const [component, { cpuSeconds, peakRssBytes }] of [...usage].sort()) {
      const percent = ((cpuSeconds / callSeconds) * 100).toFixed(1);
      const rssMb = Math.round(peakRssBytes / 1048576);
      console.log(`| ${component} | ${Math.round(cpuSeconds * 1000)} | ${percent} % | ${rssMb} MB |`);
    }
  } finally {
    await phone.stop().catch(() => undefined);
    await capture.stop().catch(() => undefined);
    await stack.stop();
  }
}

main().catch((error) => {
  console.error(error);
  process.exitCode = 1;
});
