import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { initializeLogger } from '@livekit/agents';
import { type AuditRecord, type Transcript, transcriptKey, transcriptSchema } from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import { until, useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import { listeningTranscribe, speakingPolly, streamingBedrock } from '../support/fake-aws';

initializeLogger({ pretty: false, level: 'silent' });

const CALL_ID = 'pipeline-keypad-1';
const CARD = '4111111111111111';
const startedAt = new Date();

function lastUserText(request: ConverseStreamCommandInput): string {
  const last = request.messages?.at(-1);
  return last?.role === 'user' ? (last.content ?? []).map((block) => block.text ?? '').join(' ') : '';
}

/** A card number keyed in on the phone's keypad, one key every 150 ms, with PII redaction on. */
describe('keypad entry with PII_REDACTION=true', () => {
  const backends = useCallBackends();
  let objects: Map<string, string>;
  let bedrock: ReturnType<typeof streamingBedrock>;
  let afterGreeting: ConverseStreamCommandInput[];
  let transcript: Transcript;
  let records: AuditRecord[];
  beforeAll(async () => {
    ({ objects } = backends.freshAws());
    listeningTranscribe(backends.transcribe, { utterances: [] });
    bedrock = streamingBedrock(backends.bedrock, (request) =>
      lastUserText(request).includes('keyed in') ? { text: 'Thank you, I have the number.' } : { text: 'Hello.' },
    );
    speakingPolly(backends.polly, { msPerCharacter: 5 });
    const call = await backends.openCall({
      callId: CALL_ID,
      callerNumber: '+14155550142',
      startedAt,
      env: { PII_REDACTION: 'true' },
    });
    await call.intake.greet();
    const greetingRequests = bedrock.requests.length;
    for (const key of [...CARD, '#']) {
      call.intake.keyPressed(key);
      await new Promise((resolve) => setTimeout(resolve, 150));
    }
    await until(() => bedrock.requests.length > greetingRequests, 20_000);
    // Long enough for a request per key to have gone out, as it did when each key was a turn of its own.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    afterGreeting = bedrock.requests.slice(greetingRequests);
    await call.close();
    transcript = transcriptSchema.parse(JSON.parse(objects.get(`transcripts/${transcriptKey(CALL_ID, startedAt)}`)!));
    records = await verifiedAuditRecords(objects, CALL_ID);
  }, 90_000);

  it('asks the model once, with the keys in one message', () => {
    expect(afterGreeting).toHaveLength(1);
    expect(lastUserText(afterGreeting[0])).toBe(`(the caller keyed in ${CARD}#)`);
  });

  it('records the entry as one caller turn, masked as a card number', () => {
    const callerTurns = transcript.turns.filter((turn) => turn.speaker === 'caller');
    expect(callerTurns.map((turn) => turn.text)).toEqual(['(the caller keyed in [CARD]#)']);
    expect(JSON.stringify(transcript)).not.toContain('4111');
  });

  it('keeps the number out of the audit log too', () => {
    const requests = records.filter((record) => record.kind === 'llm_request');
    expect(JSON.stringify(requests.at(-1)?.payload)).toContain('(the caller keyed in [CARD]#)');
    expect(JSON.stringify(records)).not.toContain('4111');
  });
});
