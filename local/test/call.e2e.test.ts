/**
 * A real phone call through the real path: baresip (the caller, 127.0.3.1) → the SIP edge (Kamailio + RTPEngine +
 * topos) → LiveKit SIP v1.11.0 → LiveKit Server v1.13.5 → our agent worker (`main.ts start`, a job process per
 * call) with Transcribe, Bedrock and Polly faked over the wire, the MCP server with its DynamoDB case store, records in
 * S3, DynamoDB and EventBridge served by moto. One suite, serial: it starts everything in beforeAll and ends all of
 * it in afterAll, which also runs when beforeAll failed.
 */
import { join, resolve } from 'node:path';
import { GetObjectCommand } from '@aws-sdk/client-s3';
import {
  AGENT_METRICS,
  type AuditRecord,
  canonicalJson,
  enrichedKeyForTranscript,
  LocalHmacSealKey,
  S3_PREFIXES,
  type Transcript,
  transcriptPartSchema,
  transcriptSchema,
} from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RECORDING_NOTICE } from '../../agent/src/records/call-audio';
import { S3Source } from '../../records/src/source';
import { type CallVerification, describeVerification, verifyCall } from '../../records/src/verify';
import { CallStack } from '../src/call-stack';
import { Caller } from '../src/caller/caller';
import { CarrierCapture } from '../src/caller/capture';
import { Softphone } from '../src/caller/softphone';

const RUN_DIR = resolve(__dirname, '..', '.local', 'call-e2e');
const CALLER_NUMBER = '+14155550123';
const CALLER_IP = '127.0.3.1';
const CALLER_RTP = { min: 40000, max: 40099 };
/** What the fake Transcribe returns for the two lines of the intake call, in order. */
const INTAKE_SCRIPT = [
  'Hi, this is Jane Doe, calling about a billing question on my last invoice.',
  'No, that is all. Goodbye.',
];
const LINES = {
  intro: 'Hi this is Jane Doe calling about a billing question on my last invoice',
  goodbye: 'No that is all goodbye',
};
/**
 * The intro as Transcribe revises it: its stable partial heard the caller ask to hang up, its final did not. The fake
 * model answers those words with a marked goodbye and end_call: wherever that answer turns up (spoken, transcribed,
 * recorded, executed), the caller got an answer to words they did not say.
 */
const UNSAID_MARKER = 'UNSAID';
const REVISED_INTRO = { final: INTAKE_SCRIPT[0], stable: 'Hi, this is Jane Doe. Please hang up now.' };
const ANSWER_TO_UNSAID = {
  whenCallerSays: 'please hang up now',
  say: `${UNSAID_MARKER}. Goodbye then.`,
  callTool: { name: 'end_call', input: { reason: UNSAID_MARKER } },
};

const stack = new CallStack({
  runDir: RUN_DIR,
  // The fake Transcribe ends an utterance after this much silence; on a loaded machine packets bunch up and leave
  // gaps inside a sentence, so it is longer than the service's to keep one line one utterance.
  // Its partial with every word stable comes 400 ms after the end of speech, before the final: the agent answers on
  // it, and the final confirms (or revises) the words.
  fakeLatency: { transcribeEndSilenceMs: 900, transcribeStableAfterMs: 400 },
  // What the fake Transcribe returns for each utterance it hears, in order (per call).
  defaultScenario: {
    callerSays: INTAKE_SCRIPT,
  },
  readyTimeoutMs: 120_000,
  // LiveKit SIP answers only once the agent publishes audio. Four calls at once start job processes beyond the idle
  // ones, which on a loaded 2-core host can take longer than the loopback example's 10 s ring timeout (the edge then
  // cancels with 487/480); production's default is 30 s.
  livekit: { edge: { overrides: { ringTimeoutSeconds: 30 } } },
  // Calls are recorded as an operator would announce it: the notice first, stereo parts under recordings/.
  workerEnv: { RECORDING_MODE: 'announce', RECORDING_SAMPLE_RATE: '8000' },
});
const capture = new CarrierCapture({
  pcapPath: join(RUN_DIR, 'carrier-side.pcap'),
  logFile: join(RUN_DIR, 'tshark.log'),
  filter: `udp port 5062 or udp portrange ${CALLER_RTP.min}-${CALLER_RTP.max}`,
});
const phone = new Softphone({
  dir: join(RUN_DIR, 'caller'),
  ip: CALLER_IP,
  rtpPorts: CALLER_RTP,
  controlPort: 18130,
  number: CALLER_NUMBER,
  maxCallSeconds: 150,
});
const caller = new Caller(phone, join(RUN_DIR, 'caller'));
/** Four more callers, 127.0.3.11–14, for the concurrent calls. */
const crowd = [11, 12, 13, 14].map((host, index) => {
  const rtpPorts = { min: 40200 + index * 100, max: 40299 + index * 100 };
  const dir = join(RUN_DIR, `caller-${host}`);
  const softphone = new Softphone({
    dir,
    ip: `127.0.3.${host}`,
    rtpPorts,
    controlPort: 18131 + index,
    number: `+1415555${String(100 + host).padStart(4, '0')}`,
    maxCallSeconds: 150,
  });
  return new Caller(softphone, dir);
});

/** What the first call left behind, for the assertions after it. */
const firstCall: {
  greeting?: { startMs: number; endMs: number };
  intro?: { heardAtMs: number };
  afterIntro?: { startMs: number; endMs: number };
  afterKey?: { startMs: number; endMs: number };
  goodbyeAtMs?: number;
  closedAt?: number;
  callId?: string;
} = {};

beforeAll(async () => {
  await stack.start();
  await capture.start({ ip: CALLER_IP, port: 5062 });
  await phone.start();
  for (const member of crowd) await member.phone.start();
}, 300_000);

afterAll(async () => {
  for (const member of crowd) await member.phone.stop().catch(() => undefined);
  await phone.stop().catch(() => undefined);
  await capture.stop().catch(() => undefined);
  await stack.stop();
}, 120_000);

async function waitForObjects(bucket: string, prefix: string, count: number, timeoutMs = 30_000) {
  const deadline = Date.now() + timeoutMs;
  let objects = await stack.objects(bucket, prefix);
  while (objects.length < count && Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, 250));
    objects = await stack.objects(bucket, prefix);
  }
  return objects;
}

/** The call's records in moto, read back as `npm run audit:verify` reads them from S3. */
const recordSource = () =>
  new S3Source(stack.s3(), { audit: stack.cloud!.auditBucket.name, transcripts: stack.cloud!.transcriptsBucket.name });
const sealKey = () => new LocalHmacSealKey(stack.auditSealSecret);

/** Verifies every chain of a call, waiting up to 30 s for the closing seals (the MCP server seals on session end). */
async function verifiedCall(callId: string): Promise<CallVerification> {
  const deadline = Date.now() + 30_000;
  let verification = await verifyCall(recordSource(), callId, sealKey());
  while (!verification.ok && Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, 500));
    verification = await verifyCall(recordSource(), callId, sealKey());
  }
  return verification;
}

/** Hangs up until the softphone's call with the edge (not a call of its own, e.g. to a transfer target) is closed. */
async function hangUpEdgeCall(eventsBefore: number): Promise<void> {
  const closed = () =>
    phone.events.slice(eventsBefore).some((event) => event.type === 'CALL_CLOSED' && event.peeruri === stack.dialUri);
  for (let attempt = 0; attempt < 5 && !closed(); attempt++) {
    await phone.hangup().catch(() => undefined);
    await new Promise((done) => setTimeout(done, 1_000));
  }
  expect(closed(), 'the call with the edge is over').toBe(true);
}

/** The worker's EMF lines for one call, summed by metric. */
function callMetrics(callId: string): { sum: (name: string) => number; count: (name: string) => number } {
  const lines = stack.worker!.logLines().filter((line) => line.callId === callId && line._aws);
  const values = (name: string) => lines.map((line) => line[name]).filter((value) => typeof value === 'number');
  return {
    sum: (name) => (values(name) as number[]).reduce((total, value) => total + value, 0),
    count: (name) => values(name).length,
  };
}

/** A prompt's newest item, when it is the caller's message: the request answers that turn. */
function answeredCallerWords(record: AuditRecord): string | undefined {
  const items = (record.payload as { messages?: { type?: string; role?: string; content?: unknown[] }[] }).messages;
  const last = items?.at(-1);
  return last?.type === 'message' && last.role === 'user' ? (last.content ?? []).join(' ') : undefined;
}

async function rtpengineSessions(): Promise<number> {
  return (await stack.livekit.edge!.rtpengineTotals())['Owned sessions'] ?? Number.NaN;
}

describe('a phone call through the edge, LiveKit and the agent', () => {
  it('greets, takes the request with MCP tools, hears a key press, says goodbye and hangs up', async () => {
    await caller.call(stack.dialUri);
    firstCall.greeting = await caller.listen({ quietMs: 2_500, timeoutMs: 60_000 });

    const mark = caller.heardMs();
    await caller.say(LINES.intro);
    firstCall.intro = { heardAtMs: mark };
    // The agent looks the caller up, saves and submits the request, speaking between tools: quiet for 3 s = done.
    firstCall.afterIntro = await caller.listen({ afterMs: mark, quietMs: 3_000, timeoutMs: 60_000 });

    const beforeKey = caller.heardMs();
    await caller.pressKey('5');
    firstCall.afterKey = await caller.listen({ afterMs: beforeKey, timeoutMs: 30_000 });

    firstCall.goodbyeAtMs = caller.heardMs();
    await caller.say(LINES.goodbye);
    const closed = await caller.waitForHangUp(60_000);
    firstCall.closedAt = closed.at;

    // Speech where expected: greeting before the caller spoke, an answer after each of the caller's turns.
    const heard = caller.heardSegments();
    expect(firstCall.greeting.endMs).toBeLessThan(mark);
    expect(firstCall.greeting.endMs - firstCall.greeting.startMs).toBeGreaterThan(1_500);
    expect(firstCall.afterIntro.startMs).toBeGreaterThan(mark);
    expect(firstCall.afterKey.startMs).toBeGreaterThanOrEqual(beforeKey);
    expect(heard.some((segment) => segment.startMs > firstCall.goodbyeAtMs!)).toBe(true);
  });

  it('the agent heard the caller, called the MCP tools, saw the key and ended the call (fake services)', () => {
    const sessions = stack.fake!.sessions;
    const requests = sessions.flatMap((session) => session.bedrock.requests);
    const tools = requests.map((request) => request.reply.tool).filter(Boolean);
    const intakeTools = ['lookup_caller', 'save_intake_progress', 'submit_intake', 'end_call'];
    expect(tools).toEqual(expect.arrayContaining(intakeTools));
    const heardWords = sessions.flatMap((session) => session.transcribe.utterances.map((utterance) => utterance.text));
    expect(heardWords).toEqual(INTAKE_SCRIPT);
    const spoken = sessions.flatMap((session) => session.polly.texts).join(' ');
    expect(spoken).toMatch(/You pressed 5/);
    expect(spoken).toMatch(/Goodbye/);
  });

  it('the final transcript, audit chains that verify, the case in DynamoDB, the session ended in Redis', async () => {
    const bucket = stack.cloud!.transcriptsBucket.name;
    // The job writes the final transcript as it shuts down, just after the hang-up.
    const finals = await waitForObjects(bucket, S3_PREFIXES.transcripts, 1);
    expect(finals).toHaveLength(1);
    const transcript = transcriptSchema.parse(JSON.parse(finals[0].body));
    firstCall.callId = transcript.callId;
    expect(transcript.callerNumber).toBe(CALLER_NUMBER);
    expect(transcript.endReason).toBe('agent_hangup');
    const callerTurns = transcript.turns.filter((turn) => turn.speaker === 'caller').map((turn) => turn.text);
    const said = [expect.stringMatching(/Jane Doe/), expect.stringMatching(/keyed in 5\b/)];
    expect(callerTurns).toEqual(expect.arrayContaining(said));
    const greeting = (turn: { speaker: string; text: string }) =>
      turn.speaker === 'agent' && /reached the intake/.test(turn.text);
    expect(transcript.turns.some(greeting)).toBe(true);

    // Every audit chain of the call (the agent's, each MCP server chain) verifies sealed closed, as audit:verify
    // checks it, and the agent's holds the tools. The MCP server seals its chain when the agent ends its session.
    const verification = await verifiedCall(firstCall.callId);
    expect(verification.ok, describeVerification(verification).join('\n')).toBe(true);
    expect(verification.chains.map((chain) => chain.name)).toEqual(
      expect.arrayContaining(['agent', expect.stringMatching(/^mcp-server\//)]),
    );
    const agentKinds = verification.chains
      .filter((chain) => chain.actor === 'agent')
      .flatMap((chain) => chain.records.map((record) => record.kind));
    const kinds = ['session_start', 'llm_request', 'llm_response', 'tool_call', 'tool_result'];
    expect(agentKinds).toEqual(expect.arrayContaining(kinds));

    const cases = await stack.cases();
    const submitted = cases.filter((item) => item.pk?.S?.startsWith('CASE#'));
    expect(submitted).toHaveLength(1);
    expect(submitted[0].status?.S).toBe('submitted');
    expect(submitted[0].callerNumber?.S).toBe(CALLER_NUMBER);

    const state = await stack.sessionState(transcript.callId);
    expect(state?.status).toBe('ended');
  });

  it("answered on Transcribe's stable words: speculation hits, each turn's held records in the chain once", async () => {
    const callId = firstCall.callId!;
    // The fake stabilised every line before its final, in the final's words.
    const utterances = stack.fake!.sessions.flatMap((session) => session.transcribe.utterances);
    expect(utterances.map(({ text, stable }) => ({ text, stable }))).toEqual(
      INTAKE_SCRIPT.map((text) => ({ text, stable: text })),
    );
    // The worker took the preflight path (each preflight settled by its final) and kept what it started on it.
    const metrics = callMetrics(callId);
    expect(metrics.count(AGENT_METRICS.finalAfterPreflightWait)).toBeGreaterThanOrEqual(1);
    expect(metrics.sum(AGENT_METRICS.speculationHits)).toBeGreaterThanOrEqual(1);
    // The reply to each caller turn was requested before the turn was committed, held, and recorded once it was:
    // one request answers each turn, none went into the chain twice.
    const agent = (await verifiedCall(callId)).chains.find((chain) => chain.actor === 'agent')!;
    const requests = agent.records.filter((record) => record.kind === 'llm_request');
    const payloads = requests.map((record) => canonicalJson(record.payload));
    expect(new Set(payloads).size).toBe(payloads.length);
    const answering = (words: RegExp) => requests.filter((record) => words.test(answeredCallerWords(record) ?? ''));
    const intro = answering(/Jane Doe/);
    expect(intro).toHaveLength(1);
    expect(intro[0].payload).toMatchObject({ speculative: true });
    expect(answering(/that is all/)).toHaveLength(1);
    const responses = agent.records.filter((record) => record.kind === 'llm_response');
    expect(responses).toHaveLength(requests.length);
  });

  it('recorded the call: the notice first, stereo parts in S3 with the caller left and the agent right', async () => {
    const bucket = stack.cloud!.transcriptsBucket.name;
    const [final] = await waitForObjects(bucket, S3_PREFIXES.transcripts, 1);
    const transcript = transcriptSchema.parse(JSON.parse(final.body));
    expect(transcript.turns[0]).toMatchObject({ speaker: 'agent', text: DEFAULT_RECORDING_NOTICE });
    const recording = transcript.recording!;
    expect(recording).toMatchObject({ mode: 'announce', sampleRate: 8_000, failedParts: [] });
    const stored = await stack.objects(bucket, `${S3_PREFIXES.recordings}${transcript.callId}/`);
    expect(stored.map((object) => object.key).sort()).toEqual(recording.parts);
    // The parts read back as one stereo track: 100 ms windows where only the caller, and where only the agent, is heard.
    const windows = { callerOnly: 0, agentOnly: 0 };
    for (const key of recording.parts) {
      const object = await stack.s3().send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      const wav = Buffer.from(await object.Body!.transformToByteArray());
      expect(wav.toString('ascii', 0, 4)).toBe('RIFF');
      expect(wav.readUInt16LE(22)).toBe(2);
      const step = 800 * 4; // 100 ms of stereo frames at 8 kHz
      for (let at = 44; at + step <= wav.length; at += step) {
        let left = 0;
        let right = 0;
        for (let i = at; i < at + step; i += 4) {
          left = Math.max(left, Math.abs(wav.readInt16LE(i)));
          right = Math.max(right, Math.abs(wav.readInt16LE(i + 2)));
        }
        if (left > 1_000 && right < 50) windows.callerOnly += 1;
        if (right > 1_000 && left < 300) windows.agentOnly += 1;
      }
    }
    expect(windows.callerOnly).toBeGreaterThan(10);
    expect(windows.agentOnly).toBeGreaterThan(10);
  });

  it('enrichment runs on the final transcript: the enriched record is in S3, its event reached the bus', async () => {
    const bucket = stack.cloud!.transcriptsBucket.name;
    const [final] = await stack.objects(bucket, S3_PREFIXES.transcripts);
    const outcome = await stack.enrich(final.key);
    expect(outcome).toMatchObject({ status: 'enriched', callId: firstCall.callId });
    const enriched = await stack.objects(bucket, enrichedKeyForTranscript(final.key));
    expect(enriched).toHaveLength(1);
    expect(JSON.parse(enriched[0].body)).toMatchObject({ callId: firstCall.callId });
    const events = await stack.enrichedEvents();
    expect(events).toHaveLength(1);
    const detail = expect.objectContaining({ callId: firstCall.callId });
    expect(events[0]).toMatchObject({ source: 'voice-intake.enrichment', detail });
  });

  it('the carrier side saw only the edge: BYE from it, no private address, media from its public ports', async () => {
    await capture.stop();
    const { sip, rtp } = await capture.read();
    const edge = stack.livekit.edge!.layout.carrierSip;
    const edgeAddress = `${edge.ip}:${edge.port}`;
    const invite = sip.find((message) => message.firstLine === 'INVITE');
    expect(invite?.to).toBe(edgeAddress);
    const bye = sip.find((message) => message.firstLine === 'BYE');
    expect(bye, 'the agent hung up: a BYE reached the caller').toBeDefined();
    expect(bye!.from).toBe(edgeAddress);
    expect(bye!.to).toBe(`${CALLER_IP}:5062`);
    // Nothing of the private side (LiveKit's side of the edge, the LiveKit SIP nodes) reaches the carrier.
    for (const message of sip) {
      expect(message.text, message.firstLine).not.toMatch(/127\.0\.[12]\.\d+/);
      expect(message.text, message.firstLine).not.toMatch(/^X-Lk-/im);
    }
    // Media to the caller (its RTP ports; on loopback its packets leave from 127.0.0.1 and RTPEngine answers there)
    // comes from RTPEngine's carrier-side range only.
    const callerPort = (address: string) => Number(address.split(':')[1]);
    const toCaller = rtp.filter(
      (packet) => callerPort(packet.to) >= CALLER_RTP.min && callerPort(packet.to) <= CALLER_RTP.max,
    );
    expect(toCaller.length).toBeGreaterThan(100);
    const range = { min: 30000, max: 34999 };
    for (const port of new Set(toCaller.map((packet) => Number(packet.from.split(':')[1])))) {
      expect(port).toBeGreaterThanOrEqual(range.min);
      expect(port).toBeLessThanOrEqual(range.max);
    }
    // The key press crossed the edge as an RFC 4733 event.
    expect(rtp.some((packet) => packet.payloadType === 101 || packet.payloadType === 96)).toBe(true);
  });

  it('leaves nothing behind: RTPEngine holds no session and the worker logged no session error', async () => {
    const deadline = Date.now() + 20_000;
    let sessions = await rtpengineSessions();
    while (sessions !== 0 && Date.now() < deadline) {
      await new Promise((done) => setTimeout(done, 250));
      sessions = await rtpengineSessions();
    }
    expect(sessions).toBe(0);
    // One framework error is not ours and loses nothing: LiveKit Agents publishes each agent state change as a room
    // attribute without awaiting it, and a change racing the job's room disconnect is aborted and logged as an error.
    const frameworkStateRace = (line: Record<string, unknown>) =>
      line.msg === 'Failed to update agent state attributes' && (line.err as { name?: string })?.name === 'AbortError';
    const errors = stack
      .worker!.logLines()
      .filter((line) => typeof line.level === 'number' && line.level >= 50 && !frameworkStateRace(line));
    expect(errors, JSON.stringify(errors.slice(0, 3))).toEqual([]);
    // The worker's latency metrics (EMF lines): present, and never LiveKit's -1 for a reply cancelled early.
    const { llmTimeToFirstToken, ttsTimeToFirstByte, endOfUtteranceDelay } = AGENT_METRICS;
    const names = [llmTimeToFirstToken, ttsTimeToFirstByte, endOfUtteranceDelay];
    const latencies = stack.worker!.logLines().flatMap((line) => names.map((name) => line[name]));
    const values = latencies.filter((value): value is number => typeof value === 'number');
    expect(values.length).toBeGreaterThan(3);
    expect(values.filter((value) => value < 0)).toEqual([]);
  });
});

describe('more calls on the same stack', () => {
  /** One short intake call: greeting, the request, goodbye, the agent hangs up. */
  async function shortCall(who: Caller): Promise<void> {
    await who.call(stack.dialUri, 90_000);
    await who.listen({ quietMs: 2_500, timeoutMs: 90_000 });
    const mark = who.heardMs();
    await who.say(LINES.intro);
    await who.listen({ afterMs: mark, quietMs: 3_000, timeoutMs: 90_000 });
    await who.say(LINES.goodbye);
    await who.waitForHangUp(90_000);
  }

  it('four concurrent calls complete, each with its own final transcript', async () => {
    const earlier = await stack.objects(stack.cloud!.transcriptsBucket.name, S3_PREFIXES.transcripts);
    const before = new Set(earlier.map((object) => object.key));
    await Promise.all(crowd.map((member) => shortCall(member)));
    const finals = (await waitForObjects(stack.cloud!.transcriptsBucket.name, S3_PREFIXES.transcripts, before.size + 4))
      .filter((object) => !before.has(object.key))
      .map((object) => transcriptSchema.parse(JSON.parse(object.body)));
    expect(finals.map((transcript) => transcript.callerNumber).sort()).toEqual(
      crowd.map((member) => member.phone.options.number).sort(),
    );
    for (const transcript of finals) {
      expect(transcript.endReason).toBe('agent_hangup');
      expect(transcript.turns.some((turn) => turn.speaker === 'caller' && /Jane Doe/.test(turn.text))).toBe(true);
    }
  }, 300_000);

  it('a stable partial the final revises: its answer is never heard, recorded, transcribed or acted on', async () => {
    const bucket = stack.cloud!.transcriptsBucket.name;
    const before = new Set((await stack.objects(bucket, S3_PREFIXES.transcripts)).map((object) => object.key));
    stack.fake!.register('default', { callerSays: [REVISED_INTRO, INTAKE_SCRIPT[1]], replies: [ANSWER_TO_UNSAID] });
    // The final comes 1.7 s after the end of speech (1.3 s after the stable words): the speculation surely reaches the
    // model before the final cancels it, and the turn still commits on the final (endpointing waits up to 3 s for it).
    stack.fake!.setLatency({ transcribeFinalDelayMs: 800 });
    try {
      await shortCall(caller);
    } finally {
      stack.fake!.register('default', { callerSays: INTAKE_SCRIPT });
      stack.fake!.setLatency({ transcribeFinalDelayMs: 0 });
    }
    // This caller's final transcript (an earlier call's may land meanwhile).
    const deadline = Date.now() + 30_000;
    let transcript: Transcript | undefined;
    while (!transcript && Date.now() < deadline) {
      transcript = (await stack.objects(bucket, S3_PREFIXES.transcripts))
        .filter((object) => !before.has(object.key))
        .map((object) => transcriptSchema.parse(JSON.parse(object.body)))
        .find((candidate) => candidate.callerNumber === CALLER_NUMBER);
      if (!transcript) await new Promise((done) => setTimeout(done, 250));
    }
    if (!transcript) throw new Error(`no final transcript of ${CALLER_NUMBER} within 30 s`);

    // The revision happened and was answered speculatively: the stable words reached the model, which said the
    // marked goodbye and called end_call on them.
    const sessions = stack.fake!.sessions;
    expect(sessions.flatMap((session) => session.transcribe.utterances)).toContainEqual(
      expect.objectContaining({ text: REVISED_INTRO.final, stable: REVISED_INTRO.stable }),
    );
    const onUnsaid = sessions
      .flatMap((session) => session.bedrock.requests)
      .filter((request) => /please hang up now/i.test(request.callerWords ?? ''));
    expect(onUnsaid.length).toBeGreaterThanOrEqual(1);
    expect(onUnsaid[0].reply).toMatchObject({ text: expect.stringContaining(UNSAID_MARKER), tool: 'end_call' });
    expect(callMetrics(transcript.callId).sum(AGENT_METRICS.speculationCancels)).toBeGreaterThanOrEqual(1);

    // Never spoken: Polly was never asked to say it (the reply's speech waits for the commit).
    const spoken = sessions.flatMap((session) => session.polly.texts);
    expect(spoken.filter((text) => text.includes(UNSAID_MARKER))).toEqual([]);
    // Never transcribed: the caller's turn is the final's words, and the call went on with the intake.
    expect(transcript.endReason).toBe('agent_hangup');
    const text = transcript.turns.map((turn) => turn.text).join('\n');
    expect(text).not.toMatch(/hang up now|UNSAID|Goodbye then/i);
    expect(transcript.turns).toContainEqual(
      expect.objectContaining({ speaker: 'caller', text: expect.stringMatching(/billing question/) }),
    );
    expect(text).toMatch(/request is recorded/);
    // Never recorded or acted on: no chain of the call holds the words or the answer; end_call was called once and
    // the agent hung up once, both for the caller's goodbye.
    const verification = await verifiedCall(transcript.callId);
    expect(verification.ok, describeVerification(verification).join('\n')).toBe(true);
    const records = verification.chains.flatMap((chain) => chain.records);
    expect(JSON.stringify(records)).not.toMatch(/hang up now|UNSAID|Goodbye then/i);
    const endCalls = records
      .filter((record) => record.kind === 'llm_response')
      .flatMap((record) => (record.payload as { toolCalls?: { name: string }[] }).toolCalls ?? [])
      .filter((call) => call.name === 'end_call');
    expect(endCalls).toHaveLength(1);
    const hangUps = stack
      .worker!.logLines()
      .filter((line) => line.msg === 'agent hangs up' && line.callId === transcript.callId);
    expect(hangUps.map((line) => line.reason)).toEqual(['the caller said goodbye']);
  }, 240_000);

  it('a LiveKit SIP node killed between calls: the next call lands on the other within failoverTimeoutMs', async () => {
    const [first, second] = stack.livekit.sipNodes;
    await first.kill();
    const failoverTimeoutMs = stack.livekit.edge!.input.edge.failoverTimeoutMs;
    try {
      const invites = () => (second.log().match(/"processing invite"/g) ?? []).length;
      const invitesBefore = invites();
      const eventsBefore = phone.events.length;
      const started = Date.now();
      await shortCall(caller);
      const ringing = phone.events.slice(eventsBefore).find((event) => event.type === 'CALL_RINGING');
      expect(invites()).toBe(invitesBefore + 1);
      // LiveKit SIP rings as soon as it has the INVITE: the edge gave up on the dead node within its timeout.
      expect(ringing, 'a 180 from the surviving node').toBeDefined();
      expect(ringing!.at - started).toBeLessThan(failoverTimeoutMs + 1_500);
    } finally {
      await first.start();
    }
  }, 240_000);

  it('the agent asks for a person: the REFER reaches the softphone through the edge with the target', async () => {
    stack.fake!.register('default', { callerSays: ['I would like to speak to a person please.'] });
    const transferCapture = new CarrierCapture({
      pcapPath: join(RUN_DIR, 'transfer.pcap'),
      logFile: join(RUN_DIR, 'tshark-transfer.log'),
      filter: 'udp port 5062',
    });
    await transferCapture.start({ ip: CALLER_IP, port: 5062 });
    const eventsBefore = phone.events.length;
    // Stopped whatever happens: a failed wait would otherwise leave tshark (and its dumpcap) capturing.
    try {
      await caller.call(stack.dialUri, 60_000);
      await caller.listen({ quietMs: 2_500, timeoutMs: 60_000 });
      await caller.say('I would like to speak to a person please');
      const transfer = await phone.waitForEvent('TRANSFER', 60_000, eventsBefore);
      expect(transfer.param).toContain(stack.transferTarget.replace(/^sip:/, ''));
    } finally {
      await transferCapture.stop();
    }
    const { sip } = await transferCapture.read();
    const refer = sip.find((message) => message.firstLine === 'REFER');
    const edge = stack.livekit.edge!.layout.carrierSip;
    expect(refer?.from, 'the REFER came from the edge').toBe(`${edge.ip}:${edge.port}`);
    expect(refer!.text).toMatch(new RegExp(`^Refer-To:\\s*<?${stack.transferTarget.replace(/[.+]/g, '\\$&')}`, 'mi'));
    expect(refer!.text).not.toMatch(/127\.0\.[12]\.\d+/);
    // baresip follows the REFER with a call of its own to the target (nobody there), which becomes its current
    // call: hang up until the call with the edge is closed too.
    await hangUpEdgeCall(eventsBefore);
  }, 240_000);

  it('the job process killed mid-call: what was said is in S3, the agent comes back and carries on', async () => {
    stack.fake!.register('default', { callerSays: INTAKE_SCRIPT });
    // The job that takes the call over has a new connection to the fake, so a new session: it hears only the goodbye.
    const resumedScript = { callerSays: ['No, that is all. Goodbye.'] };
    const earlierParts = await stack.objects(stack.cloud!.transcriptsBucket.name, S3_PREFIXES.transcriptParts);
    const partsBefore = new Set(earlierParts.map((object) => object.key));
    await caller.call(stack.dialUri, 60_000);
    await caller.listen({ quietMs: 2_500, timeoutMs: 60_000 });
    const mark = caller.heardMs();
    await caller.say(LINES.intro);
    await caller.listen({ afterMs: mark, quietMs: 3_000, timeoutMs: 60_000 });
    // The job process of this call: the worker received this call's job last (calls here come one at a time), and
    // the job's own log lines carry its job id and pid.
    const requests = stack.worker!.logLines().filter((line) => line.msg === 'received job request');
    const jobId = requests[requests.length - 1]?.jobId as string;
    const jobLine = stack
      .worker!.logLines()
      .filter((line) => line.jobID === jobId && typeof line.pid === 'number')
      .pop();
    expect(jobLine, `a log line of job ${jobId}`).toBeDefined();
    const jobPid = jobLine!.pid as number;
    // Two flush intervals: whatever was said is flushed before the kill.
    await new Promise((done) => setTimeout(done, 2_500));
    stack.fake!.register('default', resumedScript);
    process.kill(jobPid, 'SIGKILL');
    const parts = (await stack.objects(stack.cloud!.transcriptsBucket.name, S3_PREFIXES.transcriptParts))
      .filter((object) => !partsBefore.has(object.key))
      .map((object) => transcriptPartSchema.parse(JSON.parse(object.body)));
    // This call's parts (an earlier call's last part may land meanwhile): the call in which Jane Doe spoke.
    const spokeJane = parts.filter((part) => part.turns.some((turn) => /Jane Doe/.test(turn.text)));
    const callIds = new Set(spokeJane.map((part) => part.callId));
    expect(callIds.size).toBe(1);
    const [callId] = callIds;
    const turns = parts.filter((part) => part.callId === callId).flatMap((part) => part.turns);
    expect(turns.some((turn) => turn.speaker === 'agent' && /reached the intake line/.test(turn.text))).toBe(true);
    expect(turns.some((turn) => turn.speaker === 'caller' && /Jane Doe/.test(turn.text))).toBe(true);
    // Up to the kill: every segment the killed job flushed is sealed; only the closing seal is missing.
    const killed = (await verifyCall(recordSource(), callId!, sealKey())).chains.find(
      (chain) => chain.actor === 'agent',
    );
    expect(killed?.verdict).toMatchObject({ ok: false, reason: expect.stringMatching(/no closing seal/) });
    const audit = killed!.records;
    expect(audit.map((record) => record.kind)).toEqual(expect.arrayContaining(['session_start', 'tool_call']));

    // The worker sees the job gone with the caller alone in the room and dispatches the agent again: the new job
    // claims the session state, apologises and carries on; the caller's goodbye ends the call as usual.
    const afterKill = caller.heardMs();
    const apology = await caller.listen({ afterMs: afterKill, timeoutMs: 60_000 });
    expect(apology.endMs - apology.startMs).toBeGreaterThan(500);
    const goodbyeMark = caller.heardMs();
    await caller.say(LINES.goodbye);
    await caller.listen({ afterMs: goodbyeMark, timeoutMs: 60_000 });
    await caller.waitForHangUp(60_000);
    const final = (await waitForObjects(stack.cloud!.transcriptsBucket.name, S3_PREFIXES.transcripts, 1))
      .map((object) => transcriptSchema.parse(JSON.parse(object.body)))
      .find((transcript) => transcript.callId === callId);
    expect(final?.endReason).toBe('agent_hangup');
    expect(final!.turns.some((turn) => turn.speaker === 'caller' && /Jane Doe/.test(turn.text))).toBe(true);
    // The recording went on through the takeover (announce mode): the new job's parts a segment of their own, after
    // the killed job's, all of them stored.
    const recording = final!.recording!;
    expect(recording.resumedAt).toHaveLength(1);
    expect(recording.parts.some((key) => /\/part-r1-\d{6}\.wav$/.test(key))).toBe(true);
    expect(recording.parts.findIndex((key) => key.includes('/part-r1-'))).toBeGreaterThan(0);
    const storedParts = await stack.objects(stack.cloud!.transcriptsBucket.name, `${S3_PREFIXES.recordings}${callId}/`);
    const storedKeys = new Set(storedParts.map((object) => object.key));
    for (const key of recording.parts) expect(storedKeys.has(key), key).toBe(true);
    const resumed = (await verifiedCall(callId!)).chains.find((chain) => chain.actor === 'agent');
    expect(
      resumed?.verdict.ok,
      resumed && describeVerification({ callId: callId!, chains: [resumed], ok: false }).join(''),
    ).toBe(true);
    expect(resumed!.records.some((record) => record.kind === 'session_start' && record.subject === 'resumed')).toBe(
      true,
    );
  }, 300_000);
});
