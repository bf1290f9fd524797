import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { initializeLogger } from '@livekit/agents';
import { AGENT_METRICS, type AuditRecord, transcriptKey, transcriptSchema } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { normaliseTranscript } from '../../src/plugins/aws/stt';
import type { PlayedSegment } from '../support/audio-io';
import { useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import type { OpenCall } from '../support/call-harness';
import { listeningTranscribe, type ModelTurn, speakingPolly, streamingBedrock } from '../support/fake-aws';
import { speechSpanMs, synthesizeSpeech } from '../support/speech';

/**
 * Speculative turn-taking in the whole call (production wiring, real VAD, real MCP server and Redis, AWS faked at the
 * SDK boundary): Transcribe's stable partial says something the final then revises. The answer started on the stable
 * words — an `end_call` — must never be heard, recorded or executed; an answer started on stable words the final
 * confirms is kept, and heard before the final could have started it.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CALLER = '+14155550177';
const CALL_ID = 'pipeline-speculation-1';
const startedAt = new Date();
const SAYS = {
  /** Transcribe's stable partial misses "do not"; its final has it. */
  revised: 'I do not want to end the call yet.',
  revisedStable: 'I want to end the call',
  /** Stable words the final confirms (punctuation aside). */
  confirmed: 'My name is Alex Morgan.',
  confirmedStable: 'My name is Alex Morgan',
};
const GREETING = 'Hello, this is the intake line. How can I help?';
const GOODBYE = 'Goodbye then, thank you for calling.';
const STAY = 'Of course, take your time.';
const THANKS = 'Thank you, Alex. What is the call about?';
const STABLE_AFTER_MS = 100;
const FINAL_AFTER_MS = 1_400;

function userText(request: ConverseStreamCommandInput): string {
  const last = request.messages?.at(-1);
  return last?.role === 'user' ? (last.content ?? []).map((block) => block.text ?? '').join(' ') : '';
}

/** The model answers what it is given: told the caller wants to end the call, it says goodbye and hangs up. */
function model(request: ConverseStreamCommandInput): ModelTurn {
  const said = normaliseTranscript(userText(request));
  if (said === normaliseTranscript(SAYS.revisedStable))
    return { text: GOODBYE, toolUse: { name: 'end_call', input: { reason: 'caller asked to end the call' } } };
  if (said === normaliseTranscript(SAYS.revised)) return { text: STAY };
  if (said === normaliseTranscript(SAYS.confirmed)) return { text: THANKS };
  return { text: GREETING };
}

describe('speculative turn-taking, in process', () => {
  const backends = useCallBackends();
  const metricLines: string[] = [];
  let call: OpenCall | undefined;
  let objects: Map<string, string>;
  let heard: ReturnType<typeof listeningTranscribe>;
  let llm: ReturnType<typeof streamingBedrock>;
  let spoken: ReturnType<typeof speakingPolly>;
  let hungUp: string | undefined;
  const answers: PlayedSegment[] = [];
  let records: AuditRecord[] = [];

  beforeAll(async () => {
    ({ objects } = backends.freshAws());
    const revised = synthesizeSpeech(SAYS.revised);
    const confirmed = synthesizeSpeech(SAYS.confirmed);
    heard = listeningTranscribe(backends.transcribe, {
      utterances: [
        {
          text: SAYS.revised,
          speechMs: speechSpanMs(revised),
          stableText: SAYS.revisedStable,
          stableAfterMs: STABLE_AFTER_MS,
          finalAfterMs: FINAL_AFTER_MS,
        },
        {
          text: SAYS.confirmed,
          speechMs: speechSpanMs(confirmed),
          stableText: SAYS.confirmedStable,
          stableAfterMs: STABLE_AFTER_MS,
          finalAfterMs: FINAL_AFTER_MS,
        },
      ],
    });
    llm = streamingBedrock(backends.bedrock, model);
    spoken = speakingPolly(backends.polly, { msPerCharacter: 20 });

    call = await backends.openCall({ callId: CALL_ID, callerNumber: CALLER, startedAt, metricLines });
    void call.hungUp.then((reason) => (hungUp = reason));
    await call.intake.greet();
    for (const samples of [revised, confirmed]) {
      const next = call.earpiece.nextSegment();
      await call.line.say(samples);
      const answer = await next;
      answers.push(answer);
      while (answer.finishedAt === undefined) await new Promise((resolve) => setTimeout(resolve, 20));
    }
    await call.close();
    records = await verifiedAuditRecords(objects, CALL_ID);
  }, 120_000);

  afterAll(async () => {
    await call?.close().catch(() => undefined);
  });

  const requestsSaying = (text: string) =>
    llm.calls.filter((_, index) => normaliseTranscript(userText(llm.requests[index])) === normaliseTranscript(text));

  it('started answering the stable words before Transcribe’s final came', () => {
    const [stableFirst, stableSecond] = heard.stables;
    expect(heard.stables.map((stable) => stable.text)).toEqual([SAYS.revisedStable, SAYS.confirmedStable]);
    const speculative = requestsSaying(SAYS.revisedStable);
    expect(speculative).toHaveLength(1);
    expect(speculative[0].startedAt).toBeGreaterThanOrEqual(stableFirst.sentAt);
    expect(speculative[0].startedAt).toBeLessThan(heard.finals[0].sentAt);
    // The model wrote its goodbye and the end_call in full before the final arrived: only confirmation was missing.
    expect(speculative[0].outputTokens).toBeGreaterThan(0);
    const kept = requestsSaying(SAYS.confirmedStable);
    expect(kept).toHaveLength(1);
    expect(kept[0].startedAt).toBeGreaterThanOrEqual(stableSecond.sentAt);
    expect(kept[0].startedAt).toBeLessThan(heard.finals[1].sentAt);
  });

  it('never lets the caller hear, or the agent act on, words the final did not confirm', () => {
    expect(spoken.texts.join(' ')).not.toContain('Goodbye then');
    expect(hungUp).toBeUndefined();
    // The revised turn was answered from the final's words.
    expect(requestsSaying(SAYS.revised)).toHaveLength(1);
    expect(spoken.texts.join(' ')).toContain(STAY);
    // The confirmed turn was answered once, by the speculation: no second request after the final.
    expect(spoken.texts.join(' ')).toContain(THANKS);
    expect(answers).toHaveLength(2);
  });

  it('keeps the cancelled speculation out of the transcript and the audit log, and marks the kept one', () => {
    const transcript = transcriptSchema.parse(
      JSON.parse(objects.get(`transcripts/${transcriptKey(CALL_ID, startedAt)}`)!),
    );
    // The confirmed turn reads as the stable words the reply answered (the final said the same, with a full stop).
    expect(transcript.turns.filter((turn) => turn.speaker === 'caller').map((turn) => turn.text)).toEqual([
      SAYS.revised,
      SAYS.confirmedStable,
    ]);
    expect(JSON.stringify(transcript)).not.toContain('Goodbye then');
    const chain = JSON.stringify(records);
    expect(chain).not.toContain('Goodbye then');
    expect(chain).not.toContain(SAYS.revisedStable);
    expect(records.filter((record) => record.kind === 'tool_call')).toEqual([]);
    const requests = records.filter((record) => record.kind === 'llm_request');
    // Greeting, the revised turn (answered after its final) and the confirmed one (answered on its stable words).
    expect(requests).toHaveLength(3);
    // Both caller turns were answered before endpointing committed them (the revised one on its final): marked so.
    const speculative = requests.filter((record) => (record.payload as { speculative?: boolean }).speculative);
    expect(speculative).toHaveLength(2);
    const onStable = speculative.find((record) => JSON.stringify(record.payload).includes(SAYS.confirmedStable));
    expect(onStable).toBeDefined();
    // Its response, released with it once the turn committed, follows it.
    const index = records.indexOf(onStable!);
    expect(records[index + 1]?.kind).toBe('llm_response');
    expect(JSON.stringify(records[index + 1]?.payload)).toContain(THANKS);
  });

  it('counts the kept and the cancelled speculation and the wait for the final in EMF metrics', () => {
    const emitted = metricLines.map((line) => JSON.parse(line) as Record<string, number | undefined>);
    const sum = (name: string) => emitted.reduce((total, line) => total + (line[name] ?? 0), 0);
    expect(sum(AGENT_METRICS.speculationHits)).toBeGreaterThanOrEqual(1);
    expect(sum(AGENT_METRICS.speculationCancels)).toBeGreaterThanOrEqual(1);
    const waits = emitted
      .map((line) => line[AGENT_METRICS.finalAfterPreflightWait])
      .filter((wait) => wait !== undefined);
    expect(waits).toHaveLength(2);
    for (const wait of waits) {
      expect(wait).toBeGreaterThan(FINAL_AFTER_MS - STABLE_AFTER_MS - 200);
      expect(wait).toBeLessThan(FINAL_AFTER_MS - STABLE_AFTER_MS + 500);
    }
  });
});
