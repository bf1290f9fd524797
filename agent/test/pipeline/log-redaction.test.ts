import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { initializeLogger } from '@livekit/agents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PII_FIELD_WITHHELD, withholdFrameworkPii } from '../../src/log-redaction';
import { until, useCallBackends } from '../support/call-backends';
import { listeningTranscribe, type ModelTurn, speakingPolly, streamingBedrock } from '../support/fake-aws';

const CARD = '4111111111111111';
const PHONE = '+1 415 555 0123';

// The framework's log lines, as production writes them (JSON to stdout at info).
const frameworkLines: string[] = [];
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
  if (String(chunk).startsWith('{"level"')) {
    frameworkLines.push(String(chunk));
    return true;
  }
  return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;
// As the worker does with PII_REDACTION=true, before the framework's logger is set up.
withholdFrameworkPii();
initializeLogger({ pretty: false, level: 'info' });

function lastUser(request: ConverseStreamCommandInput): string {
  const last = request.messages?.at(-1);
  return JSON.stringify(last?.role === 'user' ? last.content : []);
}

/** A model that writes a card number into a tool's arguments and a phone number into its hang-up reason. */
function model(request: ConverseStreamCommandInput): ModelTurn {
  const said = lastUser(request);
  if (said.includes('toolResult') && said.includes('Call ended')) return {};
  if (said.includes('toolResult'))
    return { text: 'Goodbye.', toolUse: { name: 'end_call', input: { reason: `caller will ring back on ${PHONE}` } } };
  if (said.includes('keyed in'))
    return {
      text: 'Let me note that.',
      toolUse: {
        name: 'save_intake_progress',
        input: { intakeType: 'general_inquiry', fields: { card_number: CARD, callback_phone: PHONE } },
      },
    };
  return { text: 'Hello, how can I help?' };
}

describe('logs with PII_REDACTION=true', () => {
  const backends = useCallBackends();
  const logLines: string[] = [];
  let hangUpReason: string;
  beforeAll(async () => {
    backends.freshAws();
    listeningTranscribe(backends.transcribe, { utterances: [] });
    streamingBedrock(backends.bedrock, model);
    speakingPolly(backends.polly, { msPerCharacter: 5 });
    const call = await backends.openCall({
      callId: 'pipeline-log-redaction-1',
      callerNumber: '+14155550142',
      env: { PII_REDACTION: 'true' },
      logLines,
    });
    await call.intake.greet();
    for (const key of '12#') call.intake.keyPressed(key);
    hangUpReason = await call.hungUp;
    await until(() => logLines.some((line) => line.includes('agent hangs up')));
    await call.close();
  }, 90_000);
  afterAll(() => {
    process.stdout.write = write;
  });

  it("withholds the tool call's arguments in the framework's log", () => {
    const executing = frameworkLines
      .map((line) => JSON.parse(line))
      .filter((line) => line.msg === 'Executing LLM tool call');
    expect(executing.map((line) => line.function)).toEqual(['save_intake_progress', 'end_call']);
    for (const line of executing) expect(line['lk.pii.arguments']).toBe(PII_FIELD_WITHHELD);
    expect(frameworkLines.join('')).not.toContain(CARD);
    expect(frameworkLines.join('')).not.toContain('415 555');
  });

  it("masks the model's hang-up reason in the call's log", () => {
    expect(hangUpReason).toContain(PHONE);
    const hangUp = logLines.map((line) => JSON.parse(line)).find((line) => line.msg === 'agent hangs up');
    expect(hangUp.reason).toBe('caller will ring back on [PHONE]');
    expect(logLines.join('')).not.toContain('415 555');
  });
});
