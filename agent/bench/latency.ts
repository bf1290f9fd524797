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
 *
 * With `--realistic`, the services' latencies are drawn from distributions instead (seeded, so both runs see the same
 * draws) and the same caller turns are played to two calls in one run: one without speculation (the LLM starts on
 * Transcribe's final, fixed endpointing) and one with it (the LLM starts on Transcribe's stable words, endpointing by
 * the words); see `realisticRun` below and agent/README.md for the options and their sources.
 */
import { parseArgs } from 'node:util';
import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { type VAD, voice } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { type IntakeCallOptions, PHONE_ENDPOINTING_BY_TEXT, PHONE_TURN_HANDLING } from '../src/call-session';
import { normaliseTranscript } from '../src/plugins/aws/stt';
import { localAgentEnv, openCall } from '../test/support/call-harness';
import {
  listeningTranscribe,
  type ModelTurn,
  type ScriptedUtterance,
  speakingPolly,
  streamingBedrock,
} from '../test/support/fake-aws';
import { concatSamples, SPEECH_SAMPLE_RATE, speechEndMs, speechSpanMs, synthesizeSpeech } from '../test/support/speech';
import { CALLER_LINES, lognormal, percentile, round, seededRandom, sleep, startBenchBackends } from './support';

const { values } = parseArgs({
  options: {
    turns: { type: 'string', default: '20' },
    'stt-final': { type: 'string', default: '350' },
    ttft: { type: 'string', default: '350' },
    'token-ms': { type: 'string', default: '15' },
    ttfb: { type: 'string', default: '120' },
    realistic: { type: 'boolean', default: false },
    seed: { type: 'string', default: '15' },
    'final-p50': { type: 'string', default: '700' },
    'final-p99': { type: 'string', default: '1900' },
    'stable-p50': { type: 'string', default: '200' },
    'stable-p99': { type: 'string', default: '800' },
    'ttft-p50': { type: 'string', default: '600' },
    'ttft-p99': { type: 'string', default: '2000' },
    'ttfb-p50': { type: 'string', default: '150' },
    'ttfb-p99': { type: 'string', default: '400' },
    pause: { type: 'string', default: '800' },
    'min-delay': { type: 'string', default: String(PHONE_TURN_HANDLING.endpointing.minDelay) },
    'vad-silence': { type: 'string', default: '0.45' },
    wideband: { type: 'boolean', default: false },
    'preemptive-tts': { type: 'boolean', default: false },
    verbose: { type: 'boolean', default: false },
    'speculative-endpointing': { type: 'string', default: 'text' },
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

async function constantRun() {
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

/**
 * A caller turn of the realistic run: one utterance, or two with a pause between (the caller breathes after "and" or
 * half a phone number, and goes on: a turn-taker that answers in the pause has ended the turn falsely). `stable` is
 * what Transcribe's stable partial said where its final revised it: an answer started on it must never be heard.
 */
interface TurnScript {
  parts: string[];
  stable?: (string | undefined)[];
}

const TURN_SET: TurnScript[] = [
  { parts: ['I would like to report a broken water pipe in my kitchen.'] },
  {
    parts: ['My name is Alex Morgan and I live on Main Street.'],
    stable: ['My name is Alex Morgan and I live on Maine'],
  },
  { parts: ['It started yesterday evening and', 'it is getting worse every hour.'] },
  { parts: ['Yes, that is correct, please go ahead.'] },
  { parts: ['My phone number is five five five,', 'zero one four two.'] },
  { parts: ['Can somebody come tomorrow morning?'] },
  { parts: ['The water is coming from under the sink.'] },
  { parts: ['We rent the flat from a housing association.'] },
  { parts: ['There is water on the floor and', 'in the cupboard underneath.'] },
  { parts: ['No, nobody has been hurt.'] },
];

const SPECULATIVE_REPLY = 'Sure, I can help with that. Tell me a little more, please.';
/** What the fake model says when it was given words the caller did not say: heard, it would be a wrong answer. */
const UNSAID_MARKER = 'UNSAID';

interface RunFigures {
  label: string;
  voiceToVoice: number[];
  overhead: number[];
  speculative: number;
  answered: number;
  missed: number;
  falseEnds: number;
  requests: number;
  wastedRequests: number;
  wastedOutputTokens: number;
  unsaidAnswers: number;
  speculationHits: number;
  speculationCancels: number;
  /** Where Silero put the end of speech, after the real one. */
  vadLag: number[];
}

/** Draws of one turn's service timings: the same for both runs (every model request of a turn gets its TTFT). */
interface TurnDraw {
  finalAfterMs: number[];
  stableAfterMs: number[];
  ttftMs: number;
  ttfbMs: number;
}

async function realisticRun() {
  const turnCount = Number(values.turns);
  const seed = Number(values.seed);
  const dist = (name: string) => Number(values[name as keyof typeof values]);
  const random = seededRandom(seed);
  const turns = Array.from({ length: turnCount }, (_, index) => TURN_SET[index % TURN_SET.length]);
  const draws: TurnDraw[] = turns.map((turn) => {
    const finalAfterMs = turn.parts.map(() => lognormal(random, dist('final-p50'), dist('final-p99')));
    // The stable partial comes before the final (Transcribe's final is its last word on the segment).
    const stableAfterMs = finalAfterMs.map((finalMs) =>
      Math.min(lognormal(random, dist('stable-p50'), dist('stable-p99')), finalMs - 20),
    );
    const ttftMs = lognormal(random, dist('ttft-p50'), dist('ttft-p99'));
    const ttfbMs = lognormal(random, dist('ttfb-p50'), dist('ttfb-p99'));
    return { finalAfterMs, stableAfterMs, ttftMs, ttfbMs };
  });
  const pauseMs = Number(values.pause);
  // Phone audio: band-limited through an 8 kHz channel unless --wideband.
  const narrowband = !values.wideband;
  const samples = turns.map((turn) => turn.parts.map((part) => synthesizeSpeech(part, { narrowband })));
  const utterances: ScriptedUtterance[] = turns.flatMap((turn, index) =>
    turn.parts.map((part, partIndex) => ({
      text: part,
      speechMs: speechSpanMs(samples[index][partIndex]),
      finalAfterMs: draws[index].finalAfterMs[partIndex],
      stableAfterMs: draws[index].stableAfterMs[partIndex],
      stableText: turn.stable?.[partIndex],
    })),
  );
  const unsaid = new Set(
    turns.flatMap((turn) =>
      (turn.stable ?? [])
        .filter((stable): stable is string => stable !== undefined)
        .map((stable) => normaliseTranscript(stable)),
    ),
  );
  const vad = await silero.VAD.load({ minSilenceDuration: Number(values['vad-silence']) });
  const textEndpointing = values['speculative-endpointing'] === 'text';
  const minDelay = Number(values['min-delay']);
  const turnHandling = { ...PHONE_TURN_HANDLING, endpointing: { ...PHONE_TURN_HANDLING.endpointing, minDelay } };
  const byText = { ...PHONE_ENDPOINTING_BY_TEXT, defaultMs: minDelay, completeMs: minDelay };
  const runs = [
    await playCall('without speculation', { speculate: false, endpointingByText: false, turnHandling }),
    await playCall(
      `with speculation${textEndpointing ? '' : ' (fixed endpointing)'}${values['preemptive-tts'] ? ' (TTS before the commit)' : ''}`,
      {
        speculate: true,
        endpointingByText: textEndpointing ? byText : false,
        // --preemptive-tts: Polly starts on the speculative reply too; its audio still waits for the commit.
        turnHandling: values['preemptive-tts']
          ? { ...turnHandling, preemptiveGeneration: { ...turnHandling.preemptiveGeneration, preemptiveTts: true } }
          : turnHandling,
      },
    ),
  ];
  report(runs);

  async function playCall(
    label: string,
    turnTaking: Pick<IntakeCallOptions, 'speculate' | 'endpointingByText' | 'turnHandling'>,
  ): Promise<RunFigures> {
    const backends = await startBenchBackends();
    // The turn being played: its draws serve every request made during it (the greeting gets the medians).
    let current: TurnDraw | undefined;
    const transcribeLog = listeningTranscribe(backends.mocks.transcribe, { utterances });
    const reply = (request: ConverseStreamCommandInput): ModelTurn => {
      const last = request.messages?.at(-1);
      const said = normaliseTranscript((last?.content ?? []).map((block) => block.text ?? '').join(' '));
      return { text: unsaid.has(said) ? `${UNSAID_MARKER}. ${SPECULATIVE_REPLY}` : SPECULATIVE_REPLY };
    };
    const model = streamingBedrock(backends.mocks.bedrock, reply, {
      ttftMs: () => current?.ttftMs ?? dist('ttft-p50'),
      tokenIntervalMs: tokenMs,
    });
    const polly = speakingPolly(backends.mocks.polly, {
      ttfbMs: () => current?.ttfbMs ?? dist('ttfb-p50'),
      msPerCharacter: 10,
    });
    const metricLines: string[] = [];
    const call = await openCall({
      env: localAgentEnv(backends.redis.port, backends.mcp.url),
      callId: `bench-speculation-${turnTaking.speculate ? 'on' : 'off'}`,
      callerNumber: '+14155550100',
      vad: vad as VAD,
      redis: backends.redis.client(),
      metricLines,
      turnTaking,
    });
    const commits: number[] = [];
    const lastSpeaking: number[] = [];
    call.intake.session.on(voice.AgentSessionEventTypes.MetricsCollected, ({ metrics }) => {
      if (metrics.type !== 'eou_metrics') return;
      commits.push(metrics.timestamp);
      lastSpeaking.push(metrics.lastSpeakingTimeMs);
    });
    await call.intake.greet();
    const figures: RunFigures = {
      label,
      voiceToVoice: [],
      overhead: [],
      speculative: 0,
      answered: 0,
      missed: 0,
      falseEnds: 0,
      requests: 0,
      wastedRequests: 0,
      wastedOutputTokens: 0,
      unsaidAnswers: 0,
      speculationHits: 0,
      speculationCancels: 0,
      vadLag: [],
    };
    const firstSentenceTokens = SPECULATIVE_REPLY.split('.')[0].match(/\S+/g)?.length ?? 0;
    for (let index = 0; index < turns.length; index += 1) {
      const parts = samples[index];
      const silence = new Int16Array(Math.round((pauseMs * SPEECH_SAMPLE_RATE) / 1000));
      const audio = concatSamples(...parts.flatMap((part, partIndex) => (partIndex === 0 ? [part] : [silence, part])));
      const lastPartOffsetMs = ((audio.length - parts.at(-1)!.length) / SPEECH_SAMPLE_RATE) * 1000;
      const windowStart = Date.now();
      current = draws[index];
      const segmentsBefore = call.earpiece.segments.length;
      const callsBefore = model.calls.length;
      const pollyBefore = polly.calls.length;
      const finalsBefore = transcribeLog.finals.length;
      let startedAt = 0;
      await call.line.say(audio, (at) => (startedAt = at));
      const speechEnd = startedAt + lastPartOffsetMs + speechEndMs(parts.at(-1)!);
      // The answer: the first segment that starts after the caller really finished.
      const deadline = Date.now() + 15_000;
      let answer = call.earpiece.segments.slice(segmentsBefore).find((segment) => segment.startedAt >= speechEnd);
      while (!answer && Date.now() < deadline) {
        await sleep(10);
        answer = call.earpiece.segments.slice(segmentsBefore).find((segment) => segment.startedAt >= speechEnd);
      }
      const early = call.earpiece.segments.slice(segmentsBefore).filter((segment) => segment.startedAt < speechEnd);
      if (early.length > 0) figures.falseEnds += 1;
      if (!answer) {
        figures.missed += 1;
        continue;
      }
      const heard = answer;
      while (heard.finishedAt === undefined) await sleep(20);
      await sleep(400);
      figures.answered += 1;
      figures.voiceToVoice.push(heard.startedAt - speechEnd);
      // The request that was heard: the last one made before the answer began.
      const turnCalls = model.calls.slice(callsBefore).filter((entry) => entry.startedAt <= heard.startedAt);
      const used = turnCalls.at(-1);
      const lastFinal = transcribeLog.finals.slice(finalsBefore).at(-1);
      const lastStable = transcribeLog.stables.filter((stable) => stable.sentAt >= windowStart).at(-1);
      // Answered on the stable words: the request heard left after the last part's stable partial, before its final.
      if (used && lastFinal && lastStable && used.startedAt >= lastStable.sentAt && used.startedAt < lastFinal.sentAt)
        figures.speculative += 1;
      // Expected from what the services and turn-taking did: the answer can start once the turn is committed and the
      // first sentence is written, plus Polly's first byte for it.
      const commitIndex = commits.findLastIndex((at) => at >= windowStart && at <= heard.startedAt);
      const commitAt = commitIndex >= 0 ? commits[commitIndex] : undefined;
      if (commitIndex >= 0) figures.vadLag.push(lastSpeaking[commitIndex] - speechEnd);
      // The answer's first sentence went to Polly once the turn was committed and the sentence written.
      const ttsFrom = Math.max(commitAt ?? Number.POSITIVE_INFINITY, used?.startedAt ?? 0) - 5;
      const ttsCall = polly.calls
        .slice(pollyBefore)
        .find((entry) => entry.requestedAt >= ttsFrom && entry.requestedAt <= heard.startedAt);
      if (used && commitAt !== undefined && ttsCall) {
        const sentenceReady = used.startedAt + used.ttftMs + firstSentenceTokens * tokenMs;
        figures.overhead.push(heard.startedAt - (Math.max(commitAt, sentenceReady) + ttsCall.ttfbMs));
      }
      if (values.verbose) {
        const at = (time: number | undefined) => (time === undefined ? '-' : String(Math.round(time - speechEnd)));
        console.log(
          `${label} turn ${index}: stable ${at(lastStable?.sentAt)} final ${at(lastFinal?.sentAt)} ` +
            `request ${at(used?.startedAt)} (ttft ${Math.round(used?.ttftMs ?? 0)}) commit ${at(commitAt)} ` +
            `tts ${at(ttsCall?.requestedAt)} (ttfb ${Math.round(ttsCall?.ttfbMs ?? 0)}) audio ${at(heard.startedAt)}` +
            `${early.length > 0 ? ' FALSE END' : ''}`,
        );
      }
    }
    await sleep(500);
    await call.close();
    // Every request beyond one per answered turn (and the greeting) was work nobody heard.
    const turnCalls = model.calls.slice(1);
    figures.requests = turnCalls.length;
    figures.wastedRequests = Math.max(0, turnCalls.length - figures.answered);
    const totalTokens = turnCalls.reduce((sum, entry) => sum + entry.outputTokens, 0);
    const replyTokens = SPECULATIVE_REPLY.match(/\S+\s*/g)?.length ?? 0;
    figures.wastedOutputTokens = Math.max(0, totalTokens - figures.answered * replyTokens);
    figures.unsaidAnswers = polly.texts.filter((text) => text.includes(UNSAID_MARKER)).length;
    for (const line of metricLines) {
      const parsed = JSON.parse(line) as Record<string, unknown>;
      figures.speculationHits += Number(parsed.SpeculationHits ?? 0);
      figures.speculationCancels += Number(parsed.SpeculationCancels ?? 0);
    }
    await backends.stop();
    return figures;
  }

  function report(runs: RunFigures[]) {
    const ms = (list: number[], p: number) => `${String(round(percentile(list, p), 0)).padStart(6)} ms`;
    console.log(
      `agent latency benchmark, realistic services: ${turnCount} caller turns per run (seed ${seed}), real Silero VAD`,
    );
    console.log(
      `simulated (lognormal p50/p99): Transcribe final ${dist('final-p50')}/${dist('final-p99')} ms after speech end, ` +
        `stable partial ${dist('stable-p50')}/${dist('stable-p99')} ms, Bedrock TTFT ${dist('ttft-p50')}/${dist('ttft-p99')} ms ` +
        `+ ${tokenMs} ms/token, Polly TTFB ${dist('ttfb-p50')}/${dist('ttfb-p99')} ms; pause in two-part turns ${pauseMs} ms`,
    );
    console.log(
      `turn-taking: endpointing minDelay ${minDelay} ms${textEndpointing ? ` (with speculation: ${byText.openMs} ms after open endings)` : ''}, ` +
        `Silero minSilenceDuration ${values['vad-silence']} s, ${narrowband ? '8 kHz (narrowband)' : 'wideband'} speech`,
    );
    const goal = dist('ttft-p50') + dist('ttfb-p50') + 250;
    for (const run of runs) {
      console.log(`\n${run.label}`);
      console.log(
        `  voice-to-voice (speech end → first audio)  p50 ${ms(run.voiceToVoice, 50)}  p95 ${ms(run.voiceToVoice, 95)}`,
      );
      console.log(
        `  agent overhead above services + turn wait   p50 ${ms(run.overhead, 50)}  p95 ${ms(run.overhead, 95)}`,
      );
      console.log(
        `  answered ${run.answered}, missed ${run.missed}; answered on the stable partial ${run.speculative} ` +
          `(${round((100 * run.speculative) / Math.max(1, run.answered), 0)} %)`,
      );
      console.log(
        `  LLM requests ${run.requests}, wasted ${run.wastedRequests} (${run.wastedOutputTokens} output tokens + ` +
          `${run.wastedRequests} × the prompt); SpeculationHits ${run.speculationHits}, SpeculationCancels ${run.speculationCancels}`,
      );
      console.log(`  false ends of turn ${run.falseEnds}; answers to words not said ${run.unsaidAnswers}`);
      console.log(`  Silero's end of speech after the real one  p50 ${ms(run.vadLag, 50)}  p95 ${ms(run.vadLag, 95)}`);
    }
    const [off, on] = runs;
    const p95Gain = 1 - percentile(on.voiceToVoice, 95) / percentile(off.voiceToVoice, 95);
    console.log('\ngoals');
    console.log(
      `  p50 with speculation ≤ TTFT p50 + TTFB p50 + 250 = ${goal} ms: ${round(percentile(on.voiceToVoice, 50), 0)} ms → ` +
        `${percentile(on.voiceToVoice, 50) <= goal ? 'met' : 'not met'}`,
    );
    console.log(`  p95 ≥ 30 % below without: ${round(100 * p95Gain, 0)} % → ${p95Gain >= 0.3 ? 'met' : 'not met'}`);
    console.log(`  answers to words not said = 0: ${on.unsaidAnswers + off.unsaidAnswers === 0 ? 'met' : 'NOT MET'}`);
    console.log(
      `  false ends of turn no more than without (${on.falseEnds} vs ${off.falseEnds}): ${on.falseEnds <= off.falseEnds ? 'met' : 'not met'}`,
    );
    console.log(
      `  overhead p95 ≤ 15 ms: ${round(percentile(on.overhead, 95), 0)} ms with, ${round(percentile(off.overhead, 95), 0)} ms without`,
    );
  }
}

(values.realistic ? realisticRun() : constantRun()).then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
