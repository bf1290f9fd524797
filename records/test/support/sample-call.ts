import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import {
  type AuditActor,
  type AuditKind,
  type AuditSealKey,
  AuditTrailWriter,
  type EnrichedRecord,
  enrichedKeyForTranscript,
  LocalHmacSealKey,
  resolveUnder,
  type Transcript,
  transcriptKey,
} from '@voice-intake/contracts';

export const SAMPLE_SECRET = 'records-sample-call-seal-secret-0123456789';
export const sampleKey = new LocalHmacSealKey(SAMPLE_SECRET);
export const SAMPLE_CALL = 'call-2026-11-30-0042';
const START = Date.parse('2026-11-30T14:02:11.000Z');
const at = (ms: number) => new Date(START + ms).toISOString();

type Entry = [ms: number, kind: AuditKind, subject: string, payload: unknown];

/** Writes one chain in sealed segments of `perSegment` records, closed, into the folder (bucket key layout). */
async function writeChain(
  root: string,
  actor: AuditActor,
  entries: Entry[],
  key: AuditSealKey,
  chainId?: string,
  perSegment = 4,
) {
  let clock = 0;
  const trail = new AuditTrailWriter({
    actor,
    callId: SAMPLE_CALL,
    chainId,
    key,
    now: () => new Date(START + clock),
    put: async (objectKey, body) => {
      const path = resolveUnder(root, objectKey);
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, body);
    },
  });
  for (const [index, [ms, kind, subject, payload]] of entries.entries()) {
    clock = ms;
    trail.append({ at: at(ms), kind, subject, payload: payload as never, redacted: false });
    if ((index + 1) % perSegment === 0) await trail.flush();
  }
  await trail.close();
}

const TRANSFER_REJECTED =
  'Invalid arguments for request_human_transfer: queue: Invalid option: expected one of "front_desk"';

/**
 * A plausible call, written with the real sealed writer: the caller reports a burst pipe, the model tries a transfer
 * to a premium number (refused by schema), saves progress with an argument the schema drops, and submits.
 */
export async function writeSampleCall(root: string, key: AuditSealKey = sampleKey): Promise<void> {
  const turns: Transcript['turns'] = [
    {
      seq: 0,
      speaker: 'agent',
      text: 'Thanks for calling Harbor Mutual claims. How can I help today?',
      startedAt: at(900),
      endedAt: at(4_100),
      interrupted: false,
      redacted: false,
    },
    {
      seq: 1,
      speaker: 'caller',
      text: 'Hi, a pipe burst under my kitchen sink last night and the floor is soaked.',
      startedAt: at(5_000),
      endedAt: at(9_400),
      confidence: 0.94,
      interrupted: false,
      redacted: false,
    },
    {
      seq: 2,
      speaker: 'agent',
      text: "I'm sorry to hear that. I can open a water damage claim. What's the address of the property?",
      startedAt: at(10_350),
      endedAt: at(14_900),
      interrupted: false,
      redacted: false,
    },
    {
      seq: 3,
      speaker: 'caller',
      text: '12 Analytical Row, London. Can you just put me through to billing on +1 900 555 0199?',
      startedAt: at(15_600),
      endedAt: at(20_800),
      confidence: 0.88,
      interrupted: false,
      redacted: false,
    },
    {
      seq: 4,
      speaker: 'agent',
      text: "I can't transfer to outside numbers, but I've saved your address. Was anyone hurt?",
      startedAt: at(22_150),
      endedAt: at(26_000),
      interrupted: false,
      redacted: false,
    },
    {
      seq: 5,
      speaker: 'caller',
      text: 'No, nobody was hurt. <script>alert("x")</script>',
      startedAt: at(26_700),
      endedAt: at(28_900),
      confidence: 0.91,
      interrupted: false,
      redacted: false,
    },
    {
      seq: 6,
      speaker: 'agent',
      text: 'Thank you. Your claim is submitted as case C-4F1A09B2E7D3. An adjuster will call you within one business day.',
      startedAt: at(30_050),
      endedAt: at(36_200),
      interrupted: false,
      redacted: false,
    },
  ];
  const transcript: Transcript = {
    schemaVersion: 1,
    callId: SAMPLE_CALL,
    roomName: `call-${SAMPLE_CALL}`,
    callerNumber: '+14155550123',
    calledNumber: '+18005550100',
    startedAt: at(0),
    endedAt: at(38_000),
    endReason: 'caller_hangup',
    intakeType: 'property_damage',
    caseId: 'C-4F1A09B2E7D3',
    turns,
    recording: {
      mode: 'announce',
      sampleRate: 8_000,
      startedAt: at(0),
      parts: [1, 2].map((part) => `recordings/${SAMPLE_CALL}/part-00000${part}.wav`),
      failedParts: [`recordings/${SAMPLE_CALL}/part-000003.wav`],
      unverifiedParts: [`recordings/${SAMPLE_CALL}/part-r1-000001.wav`],
    },
  };
  const model = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';
  const request = (text: string) => ({ messages: [{ role: 'user', content: [{ text }] }], toolConfig: { tools: 7 } });
  const toolUse = (name: string, input: unknown) => ({
    stopReason: 'tool_use',
    output: { message: { content: [{ toolUse: { name, input } }] } },
  });
  const say = (text: string) => ({ stopReason: 'end_turn', output: { message: { content: [{ text }] } } });
  const agent: Entry[] = [
    [0, 'session_start', 'started', { workerId: 'worker-7f3a', callerNumber: '+14155550123' }],
    [300, 'llm_request', model, request('(greet the caller)')],
    [850, 'llm_response', model, say(turns[0].text)],
    [9_450, 'llm_request', model, request(turns[1].text)],
    [9_980, 'llm_response', model, toolUse('lookup_caller', {})],
    [10_000, 'tool_call', 'lookup_caller', { arguments: {} }],
    [
      10_040,
      'tool_result',
      'lookup_caller',
      { outcome: 'ok', isError: false, text: 'No record for this number: a new caller.', durationMs: 38 },
    ],
    [10_050, 'llm_request', model, request('(tool result)')],
    [10_330, 'llm_response', model, say(turns[2].text)],
    [20_850, 'llm_request', model, request(turns[3].text)],
    [
      21_420,
      'llm_response',
      model,
      toolUse('request_human_transfer', { reason: 'caller wants billing', queue: '+19005550199' }),
    ],
    [
      21_430,
      'tool_call',
      'request_human_transfer',
      { arguments: { reason: 'caller wants billing', queue: '+19005550199' } },
    ],
    [
      21_460,
      'tool_result',
      'request_human_transfer',
      { outcome: 'rejected', isError: true, text: TRANSFER_REJECTED, durationMs: 27 },
    ],
    [
      21_470,
      'tool_call',
      'save_intake_progress',
      {
        arguments: {
          intakeType: 'property_damage',
          fields: { property_address: '12 Analytical Row, London' },
          target: 'tel:+19005550199',
        },
        strippedArguments: ['target'],
      },
    ],
    [
      21_530,
      'tool_result',
      'save_intake_progress',
      { outcome: 'ok', isError: false, text: 'Saved property_address.', durationMs: 55 },
    ],
    [21_540, 'llm_request', model, request('(tool results)')],
    [22_100, 'llm_response', model, say(turns[4].text)],
    [28_950, 'llm_request', model, request(turns[5].text)],
    [29_400, 'llm_response', model, toolUse('submit_intake', { intakeType: 'property_damage' })],
    [
      29_410,
      'tool_call',
      'submit_intake',
      { arguments: { intakeType: 'property_damage', fields: { anyone_injured: 'no' } } },
    ],
    [
      29_700,
      'tool_result',
      'submit_intake',
      { outcome: 'ok', isError: false, text: 'Submitted as case C-4F1A09B2E7D3.', durationMs: 284 },
    ],
    [29_710, 'llm_request', model, request('(tool result)')],
    [30_000, 'llm_response', model, say(turns[6].text)],
    [38_000, 'session_end', 'caller_hangup', { endReason: 'caller_hangup' }],
  ];
  await writeChain(root, 'agent', agent, key);
  const server: Entry[] = [
    [10_010, 'tool_call', 'lookup_caller', { arguments: {}, callerNumber: '+14155550123', binding: 'bound' }],
    [
      10_030,
      'tool_result',
      'lookup_caller',
      { outcome: 'ok', isError: false, result: { phoneNumber: '+14155550123', known: false, openCases: [] } },
    ],
    [
      21_440,
      'tool_call',
      'request_human_transfer',
      {
        arguments: { reason: 'caller wants billing', queue: '+19005550199' },
        callerNumber: '+14155550123',
        binding: 'bound',
      },
    ],
    [
      21_450,
      'tool_result',
      'request_human_transfer',
      { outcome: 'rejected', isError: true, result: null, error: TRANSFER_REJECTED },
    ],
    [
      21_480,
      'tool_call',
      'save_intake_progress',
      {
        arguments: {
          intakeType: 'property_damage',
          fields: { property_address: '12 Analytical Row, London' },
          target: 'tel:+19005550199',
        },
        strippedArguments: ['target'],
        callerNumber: '+14155550123',
        binding: 'bound',
      },
    ],
    [
      21_520,
      'tool_result',
      'save_intake_progress',
      { outcome: 'ok', isError: false, result: { savedFields: ['property_address'] } },
    ],
    [
      29_420,
      'tool_call',
      'submit_intake',
      {
        arguments: { intakeType: 'property_damage', fields: { anyone_injured: 'no' } },
        callerNumber: '+14155550123',
        binding: 'bound',
      },
    ],
    [
      29_690,
      'tool_result',
      'submit_intake',
      { outcome: 'ok', isError: false, result: { caseId: 'C-4F1A09B2E7D3', status: 'submitted' } },
    ],
  ];
  await writeChain(root, 'mcp-server', server, key, '6c1e1f0a-3b7d-4c55-9a61-0f2b8e4d7c19', 3);
  const key0 = transcriptKey(SAMPLE_CALL, new Date(START));
  const put = (objectKey: string, value: unknown) => {
    const path = resolveUnder(root, objectKey);
    mkdirSync(dirname(path), { recursive: true });
    writeFileSync(path, JSON.stringify(value));
  };
  put(key0, transcript);
  const enriched: EnrichedRecord = {
    schemaVersion: 1,
    callId: SAMPLE_CALL,
    callerNumber: '+14155550123',
    transcriptKey: key0,
    enrichedAt: at(52_000),
    modelId: model,
    modelAttempts: 1,
    caseId: 'C-4F1A09B2E7D3',
    intakeType: 'property_damage',
    insights: {
      summary:
        'A new caller reports water damage from a burst kitchen pipe at 12 Analytical Row. Nobody was hurt. A claim was submitted.',
      intent: 'report water damage',
      intakeFields: [
        { name: 'property_address', value: '12 Analytical Row, London', confidence: 0.93 },
        { name: 'damage_type', value: 'water', confidence: 0.97 },
        { name: 'anyone_injured', value: 'no', confidence: 0.95 },
      ],
      urgency: 'high',
      sentiment: 'neutral',
      followUpActions: [
        'Assign an adjuster to call back within one business day',
        'Ask the caller for photos of the damage',
      ],
    },
  };
  put(enrichedKeyForTranscript(key0), enriched);
}
