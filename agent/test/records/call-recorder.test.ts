import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import {
  type AuditRecord,
  type AuditSegmentObject,
  LocalHmacSealKey,
  MAX_TRANSCRIPT_TURNS,
  MAX_TURN_TEXT_CHARS,
  recordingPartKey,
  transcriptPartSchema,
  transcriptSchema,
  verifyAuditTrail,
} from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { CallRecorder, type CallRecorderOptions, fitTurnText } from '../../src/records/call-recorder';
import { redactPii } from '../../src/records/redact';
import { inMemoryS3 } from '../support/fake-aws';

const s3Mock = mockClient(S3Client);
let objects: Map<string, string>;
let failNextPuts: (count: number) => void;

beforeEach(() => {
  s3Mock.reset();
  ({ objects, failNextPuts } = inMemoryS3(s3Mock));
});

const startedAt = new Date('2026-11-24T15:00:00.000Z');
const sealKey = new LocalHmacSealKey('agent-recorder-test-secret-0123456789');

function recorder(overrides: Partial<CallRecorderOptions> = {}): CallRecorder {
  return new CallRecorder({
    s3: new S3Client({}),
    transcriptsBucket: 'transcripts',
    auditBucket: 'audit',
    sealKey,
    call: { callId: 'call-rec', roomName: 'call-rec-room', callerNumber: '+14155550123', startedAt },
    now: () => new Date('2026-11-24T15:05:00.000Z'),
    ...overrides,
  });
}

const at = (second: number) => new Date(startedAt.getTime() + second * 1000).toISOString();

/** The agent's sealed segments in the audit bucket (the in-memory S3 keys are `<bucket>/<key>`). */
function auditObjects(): AuditSegmentObject[] {
  return [...objects.entries()]
    .filter(([key]) => key.startsWith('audit/audit/agent/'))
    .map(([key, body]) => ({ key: key.slice('audit/'.length), body }));
}

function auditRecordsOf(prefix: string): AuditRecord[] {
  return [...objects.entries()]
    .filter(([key]) => key.startsWith(prefix))
    .sort(([a], [b]) => a.localeCompare(b))
    .flatMap(([, body]) =>
      body
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    )
    .filter((line) => line.type !== 'audit_seal') as AuditRecord[];
}

describe('call recorder', () => {
  it('flushes turns and audit records incrementally, as new objects', async () => {
    const rec = recorder();
    rec.addTurn({ speaker: 'agent', text: 'Thanks for calling.', startedAt: at(1), endedAt: at(2) });
    rec.audit('llm_request', 'model', { messages: ['hello'] });
    await rec.flush();
    expect([...objects.keys()].sort()).toEqual([
      'audit/audit/agent/call-rec/00000000.jsonl',
      'transcripts/transcript-parts/call-rec/000000.json',
    ]);

    rec.addTurn({ speaker: 'caller', text: 'My pipe burst.', startedAt: at(3), endedAt: at(5), confidence: 0.92 });
    rec.audit('tool_call', 'lookup_caller', {});
    rec.audit('tool_result', 'lookup_caller', { text: 'new caller' });
    await rec.flush();
    await rec.flush(); // nothing pending: writes nothing
    expect(objects.size).toBe(4);
    const part1 = transcriptPartSchema.parse(
      JSON.parse(objects.get('transcripts/transcript-parts/call-rec/000001.json')!),
    );
    expect(part1.turns).toMatchObject([{ seq: 1, speaker: 'caller', confidence: 0.92 }]);
    expect(objects.has('audit/audit/agent/call-rec/00000001.jsonl')).toBe(true);
    // Every record so far verifies, sealed; only the closing seal is missing while the call runs.
    expect(await verifyAuditTrail(auditObjects(), sealKey)).toMatchObject({
      ok: false,
      seq: 3,
      reason: expect.stringMatching(/no closing seal after record 2/),
    });
  });

  it('keeps what arrives while a flush is in flight for the next flush, losing nothing', async () => {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    s3Mock.on(PutObjectCommand).callsFake(async (input) => {
      await gate;
      objects.set(`${input.Bucket}/${input.Key}`, String(input.Body));
      return {};
    });
    const rec = recorder();
    rec.addTurn({ speaker: 'agent', text: 'Thanks for calling.', startedAt: at(1), endedAt: at(2) });
    rec.audit('session_start', 'started', {});
    const first = rec.flush();
    // Both PUTs of the first flush wait on the gate: what is recorded now arrives mid-flush.
    await new Promise((resolve) => setTimeout(resolve, 20));
    rec.addTurn({ speaker: 'caller', text: 'My pipe burst.', startedAt: at(3), endedAt: at(5) });
    rec.audit('tool_call', 'lookup_caller', {});
    release();
    await first;
    await rec.flush();
    const parts = [...objects.entries()]
      .filter(([key]) => key.startsWith('transcripts/transcript-parts/'))
      .flatMap(([, body]) => transcriptPartSchema.parse(JSON.parse(body)).turns.map((turn) => turn.text));
    expect(parts.sort()).toEqual(['My pipe burst.', 'Thanks for calling.']);
    expect(auditRecordsOf('audit/').map((record) => record.kind)).toEqual(['session_start', 'tool_call']);
    // Both sealed in order; only the closing seal is missing while the call runs.
    expect(await verifyAuditTrail(auditObjects(), sealKey)).toMatchObject({
      ok: false,
      reason: expect.stringMatching(/no closing seal after record 1/),
    });
  });

  it('records a turn longer than a transcript turn holds, cut and marked, masked before it is cut', () => {
    const rec = recorder({ redact: redactPii });
    // A card number straddling the cut: cutting first would leave too few of its digits to be masked.
    const text = `${'blah '.repeat(3_990)}my card is 4111 1111 1111 1111 and ${'blah '.repeat(1_000)}`;
    expect(text.indexOf('4111') + 19).toBeGreaterThan(MAX_TURN_TEXT_CHARS - 40);
    const turn = rec.addTurn({ speaker: 'caller', text, startedAt: at(1), endedAt: at(2) });
    expect(turn.text.length).toBeLessThanOrEqual(MAX_TURN_TEXT_CHARS);
    expect(turn.text.length).toBeGreaterThan(MAX_TURN_TEXT_CHARS - 10);
    expect(turn.text).toMatch(/ \[…\d+ characters not recorded\]$/);
    expect(turn.text).not.toMatch(/4111/);
    expect(turn.text).toContain('my card is [CARD]');
    const short = rec.addTurn({ speaker: 'caller', text: 'short', startedAt: at(3), endedAt: at(4) });
    expect(short.text).toBe('short');
    expect(fitTurnText('x'.repeat(MAX_TURN_TEXT_CHARS))).toBe('x'.repeat(MAX_TURN_TEXT_CHARS));
    const emoji = fitTurnText('😀'.repeat(MAX_TURN_TEXT_CHARS));
    expect(emoji.length).toBeLessThanOrEqual(MAX_TURN_TEXT_CHARS);
    expect(emoji).not.toMatch(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])/);
  });

  it('keeps records that failed to flush and writes them next time', async () => {
    const rec = recorder();
    rec.addTurn({ speaker: 'agent', text: 'Hello.', startedAt: at(1), endedAt: at(2) });
    failNextPuts(1);
    await expect(rec.flush()).rejects.toThrow(/Service Unavailable/);
    await rec.flush();
    expect(
      transcriptPartSchema.parse(JSON.parse(objects.get('transcripts/transcript-parts/call-rec/000000.json')!)).turns,
    ).toHaveLength(1);
  });

  it('writes the final transcript with every turn and closes the chain', async () => {
    const rec = recorder();
    rec.addTurn({ speaker: 'agent', text: 'Thanks for calling.', startedAt: at(1), endedAt: at(2) });
    await rec.flush();
    rec.addTurn({ speaker: 'caller', text: 'Bye.', startedAt: at(3), endedAt: at(4) });
    const transcript = await rec.finish('caller_hangup', { intakeType: 'general_inquiry', caseId: 'C-1' });
    const stored = transcriptSchema.parse(JSON.parse(objects.get('transcripts/transcripts/2026/11/24/call-rec.json')!));
    expect(stored).toEqual(transcript);
    expect(stored.turns.map((turn) => turn.seq)).toEqual([0, 1]);
    expect(stored).toMatchObject({ endReason: 'caller_hangup', caseId: 'C-1', intakeType: 'general_inquiry' });
    const chain = auditRecordsOf('audit/');
    expect(chain.at(-1)).toMatchObject({ kind: 'session_end', subject: 'caller_hangup' });
    expect(await verifyAuditTrail(auditObjects(), sealKey)).toMatchObject({ ok: true });
  });

  it('still writes a final transcript for a call with more turns than it holds, naming what its parts hold', async () => {
    const rec = recorder();
    const total = MAX_TRANSCRIPT_TURNS + 3;
    for (let turn = 0; turn < total; turn += 1)
      rec.addTurn({
        speaker: turn % 2 ? 'agent' : 'caller',
        text: `keyed in ${turn}#`,
        startedAt: at(turn),
        endedAt: at(turn),
      });
    const transcript = await rec.finish('caller_hangup');
    const stored = transcriptSchema.parse(JSON.parse(objects.get('transcripts/transcripts/2026/11/24/call-rec.json')!));
    expect(stored).toEqual(transcript);
    expect(stored.turns).toHaveLength(MAX_TRANSCRIPT_TURNS);
    expect(stored.turns.at(0)?.seq).toBe(0);
    expect(stored.turns.at(-1)?.seq).toBe(MAX_TRANSCRIPT_TURNS - 1);
    expect(stored.omittedTurns).toBe(3);
    // Every turn, the omitted ones too, is in the call's parts.
    const inParts = [...objects.entries()]
      .filter(([key]) => key.startsWith('transcripts/transcript-parts/call-rec/'))
      .flatMap(([, body]) => transcriptPartSchema.parse(JSON.parse(body)).turns.map((turn) => turn.seq));
    expect(new Set(inParts).size).toBe(total);
    expect(auditRecordsOf('audit/').find((record) => record.subject === 'transcript_turns_omitted')).toMatchObject({
      kind: 'error',
      payload: { omittedTurns: 3, keptTurns: MAX_TRANSCRIPT_TURNS },
    });
    expect(await verifyAuditTrail(auditObjects(), sealKey)).toMatchObject({ ok: true });
  });

  it('lets a worker that takes the call over continue the transcript and the chain unbroken', async () => {
    const first = recorder();
    first.addTurn({ speaker: 'agent', text: 'Thanks for calling.', startedAt: at(1), endedAt: at(2) });
    first.audit('llm_request', 'model', { n: 1 });
    await first.flush();
    first.addTurn({ speaker: 'caller', text: 'lost with the worker', startedAt: at(3), endedAt: at(4) });
    const saved = first.position; // what the session state held at the last write

    const second = recorder({ resume: { ...saved, nextTurnSeq: 1 } });
    second.addTurn({ speaker: 'caller', text: 'Hello? Are you there?', startedAt: at(10), endedAt: at(12) });
    second.audit('llm_request', 'model', { n: 2 });
    const transcript = await second.finish('caller_hangup');
    expect(transcript.turns.map((turn) => [turn.seq, turn.text])).toEqual([
      [0, 'Thanks for calling.'],
      [1, 'Hello? Are you there?'],
    ]);
    const verdict = await verifyAuditTrail(auditObjects(), sealKey);
    expect(verdict).toMatchObject({ ok: true });
    expect(verdict.records).toHaveLength(3);
  });

  it('names the records a killed worker never flushed when its successor carries on', async () => {
    const first = recorder();
    first.audit('llm_request', 'model', { n: 1 });
    await first.flush();
    first.audit('tool_call', 'lookup_caller', { arguments: {} }); // pending when the worker dies
    const second = recorder({ resume: first.position });
    second.audit('llm_request', 'model', { n: 2 });
    await second.finish('caller_hangup');
    expect(await verifyAuditTrail(auditObjects(), sealKey)).toMatchObject({
      ok: false,
      seq: 1,
      reason: expect.stringMatching(/records 1\.\.1 are missing/),
    });
  });

  it('records a tool call and its outcome in the shape the MCP server uses', async () => {
    const rec = recorder();
    rec.toolCall({
      name: 'request_human_transfer',
      arguments: { reason: 'billing', target: 'tel:+19005550199' },
      strippedArguments: ['target'],
      outcome: 'ok',
      isError: false,
      resultText: 'Transfer to front_desk.',
      durationMs: 12.4,
    });
    rec.toolCall({
      name: 'lookup_caller',
      arguments: null,
      outcome: 'rejected',
      isError: true,
      errorCode: -32602,
      durationMs: 3,
    });
    await rec.finish('caller_hangup');
    const records = (await verifyAuditTrail(auditObjects(), sealKey)).records;
    expect(records.map((record) => [record.kind, record.subject, record.payload])).toEqual([
      [
        'tool_call',
        'request_human_transfer',
        { arguments: { reason: 'billing', target: 'tel:+19005550199' }, strippedArguments: ['target'] },
      ],
      [
        'tool_result',
        'request_human_transfer',
        { outcome: 'ok', isError: false, text: 'Transfer to front_desk.', durationMs: 12 },
      ],
      ['tool_call', 'lookup_caller', { arguments: null }],
      ['tool_result', 'lookup_caller', { outcome: 'rejected', isError: true, text: null, code: -32602, durationMs: 3 }],
      ['session_end', 'caller_hangup', { endReason: 'caller_hangup' }],
    ]);
  });

  it('redacts PII from turns and audit payloads when configured', async () => {
    const rec = recorder({ redact: redactPii });
    const turn = rec.addTurn({
      speaker: 'caller',
      text: 'Call me on +1 415 555 0123 or ada@example.com',
      startedAt: at(1),
      endedAt: at(3),
    });
    expect(turn).toMatchObject({ text: 'Call me on [PHONE] or [EMAIL]', redacted: true });
    const record = rec.audit('tool_call', 'save_intake_progress', {
      fields: { email: 'ada@example.com', card: '4111 1111 1111 1111' },
    });
    expect(record.payload).toEqual({ fields: { email: '[EMAIL]', card: '[CARD]' } });
    expect(record.redacted).toBe(true);
    await rec.flush();
    expect([...objects.values()].join()).not.toMatch(/ada@example\.com|4111|555 0123/);
  });

  it('redacts a number the agent reads back in words, in its turn and in the model response it came from', async () => {
    const rec = recorder({ redact: redactPii });
    const readBack = 'I have four, one, five, five, five, five, oh, one, two, three. Is that right?';
    expect(rec.addTurn({ speaker: 'agent', text: readBack, startedAt: at(1), endedAt: at(3) }).text).toBe(
      'I have [PHONE]. Is that right?',
    );
    expect(rec.audit('llm_response', 'model', { text: readBack }).payload).toEqual({
      text: 'I have [PHONE]. Is that right?',
    });
    await rec.flush();
    expect([...objects.values()].join()).not.toMatch(/four, one, five/);
  });

  it('redacts caller text but keeps recording part keys and timestamps in the stop and end records', async () => {
    const rec = recorder({
      redact: redactPii,
      call: { callId: 'call-1764523976123', roomName: 'room', callerNumber: '+14155550123', startedAt },
    });
    const parts = [recordingPartKey('call-1764523976123', 1), recordingPartKey('call-1764523976123', 2)];
    const stopped = rec.audit('recording', 'stopped', { parts, failedParts: [], consentRefused: false });
    expect(stopped.payload).toEqual({ parts, failedParts: [], consentRefused: false });
    rec.toolCall({
      name: 'save_intake_progress',
      arguments: { fields: { callback: 'ring 415.555.0123 after six', altPhone: 4155550124 } },
      outcome: 'ok',
      isError: false,
      durationMs: 12,
    });
    const recording = {
      mode: 'announce' as const,
      sampleRate: 16_000 as const,
      startedAt: at(1),
      parts,
      failedParts: [],
    };
    const transcript = await rec.finish('caller_hangup', { recording });
    expect(transcript.recording).toEqual(recording);
    const records = auditRecordsOf('audit/audit/agent/call-1764523976123/');
    expect(records.find((record) => record.kind === 'session_end')?.payload).toEqual({
      endReason: 'caller_hangup',
      recording,
    });
    expect(records.find((record) => record.kind === 'tool_call')?.payload).toEqual({
      arguments: { fields: { callback: 'ring [PHONE] after six', altPhone: '[PHONE]' } },
    });
  });
});

describe('the agent seal key', () => {
  it('is KMS when a key is configured, the local secret otherwise, and required', async () => {
    const { auditSealKeyFor } = await import('../../src/records/seal-key');
    const arn = 'arn:aws:kms:us-east-1:123456789012:key/audit-seal';
    expect(auditSealKeyFor({ AUDIT_SEAL_KMS_KEY_ID: arn, AUDIT_SEAL_SECRET: 'x'.repeat(32) }).keyId).toBe(arn);
    expect(auditSealKeyFor({ AUDIT_SEAL_SECRET: 'x'.repeat(32) }).keyId).toMatch(/^local:[0-9a-f]{16}$/);
    expect(() => auditSealKeyFor({})).toThrow(/AUDIT_SEAL_KMS_KEY_ID or AUDIT_SEAL_SECRET/);
  });
});
