/**
 * Latency overhead: how much time the pipeline itself adds between the caller's end of speech and the first audio
 * frame of the answer, above the latencies the services are given (simulated) and the turn-taking wait configured.
 *
 *   npm run bench:latency -w agent -- [--turns 20] [--stt-final 350] [--ttft 350] [--token-ms 15] [--ttfb 120]
 *
 * One call, as production wires it (`prepareIntakeCall`): espeak-ng speech down a paced line → Silero VAD →
 * Transcribe plugin → Bedrock plugin → Polly plugin → a real-time earpiece. The fake services take exactly the given
 * times. LiveKit starts the LLM on the final transcript (preemptive generation) and the TTS once the turn is
 * committed (endpointing minDelay after the end of speech, and not before the final transcript) and a first sentence
 * exists (when the next sentence's first token arrives), so the expected delay of a turn is
 *   max(max(minDelay, STT final), STT final + LLM TTFT + first-sentence tokens × token interval) + TTS TTFB
 * and the overhead is what was measured above that.
 */
import { parseArgs } from 'node:util';
import { voice } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { PHONE_TURN_HANDLING } from '../src/call-session';
import { localAgentEnv, openCall } from '../test/support/call-harness';
import { listeningTranscribe, speakingPolly, streamingBedrock } from '../test/support/fake-aws';
import { speechEndMs, synthesizeSpeech } from '../test/support/speech';
import { CALLER_LINES, percentile, round, sleep, startBenchBackends } from './support';

const { values } = parseArgs({
  options: {
    turns: { type: 'string', default: '20' },
    'stt-final': { type: 'string', default: '350' },
    ttft: { type: 'string', default: '350' },
    'token-ms': { type: 'string', default: '15' },
    ttfb: { type: 'string', default: '120' },
  },
});
const turns = Number(values.turns);
const sttFinalMs = Number(values['stt-final']);
const ttftMs = Number(values.ttft);
const tokenMs = Number(values['token-ms']);
const ttfbMs = Number(values.ttfb);
const END_SILENCE_MS = 300; // how long the fake Transcribe waits for silence; part of the STT final delay

const REPLY = 'Sure, I can help with that. Tell me a little more about it, please.';
// The sentence tokenizer releases the first sentence when the next one begins: token number N (counting from 0),
// N being the first sentence's token count, which arrives N token intervals after the first token.
const firstSentenceTokens = REPLY.split('.')[0].match(/\S+/g)?.length ?? 0;

async function main() {
  const backends = await startBenchBackends();
  listeningTranscribe(backends.mocks.transcribe, {
    utterances: Array.from({ length: turns }, (_, index) => CALLER_LINES[index % CALLER_LINES.length]),
    endSilenceMs: END_SILENCE_MS,
    finalDelayMs: Math.max(0, sttFinalMs - END_SILENCE_MS),
  });
  streamingBedrock(backends.mocks.bedrock, () => ({ text: REPLY }), { ttftMs, tokenIntervalMs: tokenMs });
  speakingPolly(backends.mocks.polly, { ttfbMs, msPerCharacter: 40 });

  const call = await openCall({
    env: localAgentEnv(backends.redis.port, backends.mcp.url),
    callId: 'bench-latency',
    callerNumber: '+14155550100',
    vad: await silero.VAD.load({ minSilenceDuration: 0.45 }),
    redis: backends.redis.client(),
  });
  const frameworkE2e: number[] = [];
  call.intake.session.on(voice.AgentSessionEventTypes.ConversationItemAdded, ({ item }) => {
    if (item.type === 'message' && item.role === 'assistant' && item.metrics.e2eLatency !== undefined)
      frameworkE2e.push(item.metrics.e2eLatency * 1000);
  });
  const lastSpeaking: number[] = [];
  call.intake.session.on(voice.AgentSessionEventTypes.MetricsCollected, ({ metrics }) => {
    if (metrics.type === 'eou_metrics') lastSpeaking.push(metrics.lastSpeakingTimeMs);
  });
  await call.intake.greet();

  const measured: number[] = [];
  const vadLag: number[] = [];
  let missed = 0;
  for (let turn = 0; turn < turns; turn += 1) {
    const samples = synthesizeSpeech(CALLER_LINES[turn % CALLER_LINES.length]);
    let speechStartedAt = 0;
    const eouSeen = lastSpeaking.length;
    const answer = call.earpiece.nextSegment();
    await call.line.say(samples, (at) => (speechStartedAt = at));
    const segment = await Promise.race([answer, sleep(15_000).then(() => undefined)]);
    if (!segment) {
      missed += 1; // the turn was not taken (VAD or STT missed it): reported, not measured
      continue;
    }
    const speechEnd = speechStartedAt + speechEndMs(samples);
    measured.push(segment.startedAt - speechEnd);
    // Where the VAD put the end of speech, against where it really was (LiveKit times endpointing from the former).
    if (lastSpeaking.length > eouSeen) vadLag.push(lastSpeaking[lastSpeaking.length - 1] - speechEnd);
    while (segment.finishedAt === undefined) await sleep(20);
    await sleep(400);
  }
  await call.close();
  await backends.stop();

  const turnWait = Math.max(PHONE_TURN_HANDLING.endpointing.minDelay, sttFinalMs);
  const firstSentenceReady = sttFinalMs + ttftMs + firstSentenceTokens * tokenMs;
  const expected = Math.max(turnWait, firstSentenceReady) + ttfbMs;
  const overhead = measured.map((value) => value - expected);
  const row = (label: string, list: number[]) =>
    `${label.padEnd(44)} p50 ${String(round(percentile(list, 50))).padStart(7)} ms   p95 ${String(round(percentile(list, 95))).padStart(7)} ms`;
  console.log(
    `agent latency benchmark: ${turns} turns (${missed} not answered), one call, real Silero VAD, simulated services`,
  );
  console.log(
    `simulated: STT final ${sttFinalMs} ms after speech end, LLM TTFT ${ttftMs} ms + ${tokenMs} ms/token, Polly TTFB ${ttfbMs} ms`,
  );
  console.log(`configured: endpointing minDelay ${PHONE_TURN_HANDLING.endpointing.minDelay} ms (VAD turn detection)`);
  console.log(
    `expected per turn: max(${turnWait}, ${sttFinalMs} + ${ttftMs} + ${firstSentenceTokens}×${tokenMs}) + ${ttfbMs} = ${expected} ms (LLM starts on the final transcript)`,
  );
  console.log(row('end of speech → first audio frame', measured));
  console.log(row('overhead above expected', overhead));
  console.log(row("VAD's end of speech after the real one", vadLag));
  console.log(row("LiveKit's own e2eLatency (for reference)", frameworkE2e.slice(1)));
  console.log(`overhead goal: p95 ≤ 15 ms → ${percentile(overhead, 95) <= 15 ? 'met' : 'not met'}`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
