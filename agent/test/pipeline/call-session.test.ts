import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { initializeLogger } from '@livekit/agents';
import { AGENT_METRICS, transcriptKey, transcriptSchema } from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import type { IntakeCall } from '../../src/call-session';
import { RedisSessionStore } from '../../src/state/session-store';
import type { EarpieceOutput, PlayedSegment } from '../support/audio-io';
import { useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import { listeningTranscribe, type ModelTurn, speakingPolly, streamingBedrock } from '../support/fake-aws';
import { synthesizeSpeech } from '../support/speech';

/**
 * The whole call in one process, as production wires it (`prepareIntakeCall`, the same function the worker entry
 * uses): real espeak-ng speech down a paced phone line → real Silero VAD → our Transcribe plugin → our Bedrock plugin
 * → tools from a real MCP server process → our Polly plugin → an earpiece that plays in real time. AWS is faked at
 * the SDK boundary in the SDK's shapes; Redis is a real redis-server; S3 is an in-memory map behind the SDK mock.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CALLER = '+14155550142';
const CALL_ID = 'pipeline-call-1';
const startedAt = new Date();
const SAYS = {
  problem: 'Hello, I would like to report a broken water pipe in my kitchen.',
  goodbye: 'Actually that is all for today, thank you, goodbye.',
};
const GREETING = 'Hello, thanks for calling the intake line. How can I help you today?';
const EXPLANATION =
  'Thank you. I could not find a record for your number, so you are a new caller, which is fine. ' +
  'Here is how this works. I will ask you a few short questions about the problem, one at a time. ' +
  'Then I will read everything back to you, and once you confirm, I will submit it and give you a case number.';
const FAREWELL = 'Of course. Thank you for calling, goodbye.';

function lastUserContent(request: ConverseStreamCommandInput) {
  const messages = request.messages ?? [];
  const last = messages[messages.length - 1];
  return last?.role === 'user' ? (last.content ?? []) : [];
}

/** The model's side of the call, decided from what it is sent, as a scripted Claude would. */
function intakeModel(request: ConverseStreamCommandInput): ModelTurn {
  const content = lastUserContent(request);
  const toolResult = content.find((block) => block.toolResult)?.toolResult;
  if (toolResult)
    return toolResult.toolUseId?.endsWith('-end') || /Call ended/.test(JSON.stringify(toolResult))
      ? {}
      : { text: EXPLANATION };
  const said = content
    .map((block) => block.text ?? '')
    .join(' ')
    .toLowerCase();
  if (said.includes('water pipe')) return { toolUse: { name: 'lookup_caller', input: {} } };
  if (said.includes('goodbye'))
    return { text: FAREWELL, toolUse: { name: 'end_call', input: { reason: 'caller is done' } } };
  return { text: GREETING };
}

describe('intake call pipeline, in process', () => {
  const backends = useCallBackends();
  const metricLines: string[] = [];
  let objects: Map<string, string>;
  let heard: ReturnType<typeof listeningTranscribe>;
  let model: ReturnType<typeof streamingBedrock>;
  let spoken: ReturnType<typeof speakingPolly>;
  let intake: IntakeCall;
  let earpiece: EarpieceOutput;
  let hangUpReason: string | undefined;
  let greeting: PlayedSegment;
  let explanation: PlayedSegment;
  let farewell: PlayedSegment;
  let bargeInAt: number;

  beforeAll(async () => {
    ({ objects } = backends.freshAws());
    heard = listeningTranscribe(backends.transcribe, { utterances: [SAYS.problem, SAYS.goodbye] });
    model = streamingBedrock(backends.bedrock, intakeModel);
    spoken = speakingPolly(backends.polly);

    const call = await backends.openCall({ callId: CALL_ID, callerNumber: CALLER, startedAt, metricLines });
    ({ intake, earpiece } = call);
    const { line } = call;

    const greetingStarts = earpiece.nextSegment();
    await intake.greet();
    greeting = await greetingStarts;

    const explanationStarts = earpiece.nextSegment();
    await line.say(synthesizeSpeech(SAYS.problem));
    explanation = await explanationStarts;
    // Let the explanation play for a while, then talk over it.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    const farewellStarts = earpiece.nextSegment();
    await line.say(synthesizeSpeech(SAYS.goodbye), (at) => (bargeInAt = at));
    farewell = await farewellStarts;
    hangUpReason = await call.hungUp;
    await call.close();
  }, 120_000);

  it('hears the caller through the real VAD and the Transcribe plugin', () => {
    expect(heard.finals.map((final) => final.text)).toEqual([SAYS.problem, SAYS.goodbye]);
    const userTurns = intake.agent.chatCtx.items
      .filter((item) => item.type === 'message' && item.role === 'user')
      .map((item) => (item as { textContent?: string }).textContent);
    expect(userTurns).toEqual([SAYS.problem, SAYS.goodbye]);
  });

  it('calls an MCP tool on the real server and gives its result back to the model', () => {
    const toolUseRequest = model.requests.findIndex((request) =>
      JSON.stringify(request.messages).includes('"name":"lookup_caller"'),
    );
    expect(toolUseRequest).toBeGreaterThan(0);
    const toolResult = lastUserContent(model.requests[toolUseRequest]).find((block) => block.toolResult)?.toolResult;
    // The server's own words for a number it does not know: the result came from the MCP process, not from us.
    expect(JSON.stringify(toolResult?.content)).toContain('a new caller');
    expect(model.requests[0].toolConfig?.tools?.map((tool) => tool.toolSpec?.name)).toEqual(
      expect.arrayContaining(['lookup_caller', 'submit_intake', 'end_call']),
    );
  });

  it('speaks through Polly: real audio frames reach the earpiece', () => {
    expect(spoken.texts.join(' ')).toContain('How can I help you today?');
    expect(greeting.frames).toBeGreaterThan(100);
    expect(greeting.peak).toBeGreaterThan(1_000);
    expect(greeting.interrupted).toBe(false);
    expect(farewell.capturedMs).toBeGreaterThan(1_000);
  });

  it('lets the caller barge in: the agent stops talking and the cut reply is marked interrupted', () => {
    expect(explanation.interrupted).toBe(true);
    expect(explanation.finishedAt! - bargeInAt).toBeLessThan(3_000);
    expect(explanation.playedMs!).toBeLessThan(explanation.capturedMs);
    expect(earpiece.clearCalls).toBeGreaterThanOrEqual(1);
    const reply = intake.agent.chatCtx.items.find(
      (item) =>
        item.type === 'message' &&
        item.role === 'assistant' &&
        (item.textContent ?? '').startsWith('Thank you. I could not find'),
    );
    expect(reply && reply.type === 'message' && reply.interrupted).toBe(true);
    expect(hangUpReason).toBe('caller is done');
  });

  it('writes the transcript and an unbroken, sealed audit chain to S3', async () => {
    const transcriptObject = objects.get(`transcripts/${transcriptKey(CALL_ID, startedAt)}`);
    expect(transcriptObject).toBeDefined();
    const transcript = transcriptSchema.parse(JSON.parse(transcriptObject!));
    expect(transcript.endReason).toBe('agent_hangup');
    expect(transcript.turns.map((turn) => turn.speaker)).toEqual(['agent', 'caller', 'agent', 'caller', 'agent']);
    expect(transcript.turns[2].interrupted).toBe(true);
    expect(transcript.turns.map((turn) => turn.seq)).toEqual([0, 1, 2, 3, 4]);

    const records = await verifiedAuditRecords(objects, CALL_ID);
    const kinds = records.map((record) => record.kind);
    expect(kinds[0]).toBe('session_start');
    expect(kinds[kinds.length - 1]).toBe('session_end');
    for (const kind of ['llm_request', 'llm_response', 'tool_call', 'tool_result'] as const)
      expect(kinds).toContain(kind);
    const toolCall = records.find((record) => record.kind === 'tool_call');
    expect(toolCall?.subject).toBe('lookup_caller');
    const prompt = records.find(
      (record) => record.kind === 'llm_request' && JSON.stringify(record.payload).includes('water pipe'),
    );
    expect(prompt).toBeDefined();
    expect(
      records.some(
        (record) => record.kind === 'llm_response' && JSON.stringify(record.payload).includes('lookup_caller'),
      ),
    ).toBe(true);
  });

  it('keeps the session state in Redis and emits the latency metrics', async () => {
    const state = await new RedisSessionStore(backends.redis.client(), { ttlSeconds: 60 }).load(CALL_ID);
    expect(state?.status).toBe('ended');
    expect(state?.lastTurns.map((turn) => turn.speaker)).toContain('caller');
    const emitted = metricLines.map((line) => JSON.parse(line) as Record<string, unknown>);
    for (const name of [
      AGENT_METRICS.voiceToVoiceLatency,
      AGENT_METRICS.llmTimeToFirstToken,
      AGENT_METRICS.ttsTimeToFirstByte,
      AGENT_METRICS.toolLatency,
      AGENT_METRICS.endOfUtteranceDelay,
    ]) {
      expect(
        emitted.some((line) => typeof line[name] === 'number'),
        name,
      ).toBe(true);
    }
  });
});
