import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  callInsightsSchema,
  enrichedKeyForTranscript,
  enrichedRecordSchema,
  enrichmentErrorKeyForTranscript,
  intakeEnrichedDetailSchema,
  transcriptKey,
  transcriptSchema,
} from '../src';

describe('enrichment contracts', () => {
  it('converts the insights schema to a JSON Schema a model tool can take', () => {
    // What the model sends is the schema's input (its text is normalised after it is checked).
    const jsonSchema = z.toJSONSchema(callInsightsSchema, { io: 'input' }) as {
      type: string;
      required: string[];
      properties: Record<string, { description?: string; maxLength?: number }>;
    };
    expect(jsonSchema.type).toBe('object');
    expect(jsonSchema.required).toEqual(
      expect.arrayContaining(['summary', 'intent', 'intakeFields', 'urgency', 'sentiment', 'followUpActions']),
    );
    expect(jsonSchema.properties.intent).toMatchObject({
      maxLength: 200,
      description: "The caller's main reason for calling, as a short phrase.",
    });
  });

  it('refuses model text with control, escape or bidi-override characters, naming each field', () => {
    const result = callInsightsSchema.safeParse({
      summary: 'ok\u0007',
      intent: 'refund \u202Edeifirev\u202C',
      intakeFields: [{ name: 'full\u001b[2J_name', value: 'Ada\u2066', confidence: 0.9 }],
      urgency: 'normal',
      sentiment: 'neutral',
      followUpActions: ['Call back', 'Erase \u009b screen'],
    });
    expect(result.success).toBe(false);
    expect(result.error!.issues.map((issue) => issue.path.join('.')).sort()).toEqual([
      'followUpActions.1',
      'intakeFields.0.name',
      'intakeFields.0.value',
      'intent',
      'summary',
    ]);
    expect(result.error!.issues.find((issue) => issue.path[0] === 'intent')!.message).toContain('U+202E');
    const clean = callInsightsSchema.parse({
      summary: 'Caller reports a leak.\nCase filed.',
      intent: 'Cafe\u0301 order',
      intakeFields: [],
      urgency: 'normal',
      sentiment: 'neutral',
      followUpActions: [],
    });
    expect(clean.intent).toBe('Caf\u00e9 order');
  });

  it('rejects model output with out-of-range confidence and unknown keys', () => {
    const result = callInsightsSchema.safeParse({
      summary: 's',
      intent: 'i',
      intakeFields: [{ name: 'full_name', value: 'Ada', confidence: 1.5 }],
      urgency: 'normal',
      sentiment: 'neutral',
      followUpActions: [],
      extra: true,
    });
    expect(result.success).toBe(false);
    const paths = result.error!.issues.map((issue) => issue.path.join('.'));
    expect(paths).toContain('intakeFields.0.confidence');
  });

  it('keeps error records beside, not inside, the enriched prefix', () => {
    expect(enrichmentErrorKeyForTranscript('transcripts/2026/11/24/c1.json')).toBe(
      'enrichment-errors/2026/11/24/c1.json',
    );
    expect(intakeEnrichedDetailSchema.safeParse({}).success).toBe(false);
  });

  it('describes an enriched call the way consumers read it, and names the field that is wrong', () => {
    const key = transcriptKey('call-42', new Date('2026-11-24T15:00:00Z'));
    const insights = {
      summary: 'Caller reports a leak.',
      intent: 'report water damage',
      intakeFields: [{ name: 'full_name', value: 'Ada Lovelace', confidence: 0.9 }],
      urgency: 'high',
      sentiment: 'negative',
      followUpActions: ['Call back today'],
    };
    const record = enrichedRecordSchema.parse({
      schemaVersion: 1,
      callId: 'call-42',
      callerNumber: '+14155550123',
      transcriptKey: key,
      enrichedAt: '2026-11-24T15:02:00.000Z',
      modelId: 'anthropic.claude-haiku-4-5-20251001-v1:0',
      modelAttempts: 1,
      insights,
    });
    expect(record.insights.urgency).toBe('high');

    const detail = {
      schemaVersion: 1,
      callId: 'call-42',
      bucket: 'b',
      enrichedKey: enrichedKeyForTranscript(key),
      transcriptKey: key,
      callerNumber: '+14155550123',
      intent: insights.intent,
      urgency: 'high',
      sentiment: 'negative',
    };
    expect(intakeEnrichedDetailSchema.parse(detail).enrichedKey).toBe('enriched/2026/11/24/call-42.json');
    const wrong = intakeEnrichedDetailSchema.safeParse({ ...detail, urgency: 'critical', callId: 'bad id' });
    expect(wrong.success).toBe(false);
    expect(wrong.error!.issues.map((issue) => issue.path.join('.')).sort()).toEqual(['callId', 'urgency']);
  });

  it('bounds the case id and intake type wherever a call carries them, naming the field', () => {
    const transcript = {
      schemaVersion: 1,
      callId: 'call-42',
      roomName: 'intake-call-42',
      callerNumber: '+14155550123',
      startedAt: '2026-11-24T15:00:00.000Z',
      endedAt: '2026-11-24T15:01:00.000Z',
      endReason: 'caller_hangup',
      turns: [],
    };
    const key = transcriptKey('call-42', new Date(transcript.startedAt));
    const record = {
      schemaVersion: 1,
      callId: 'call-42',
      callerNumber: '+14155550123',
      transcriptKey: key,
      enrichedAt: '2026-11-24T15:02:00.000Z',
      modelId: 'model',
      modelAttempts: 1,
      insights: {
        summary: 's',
        intent: 'i',
        intakeFields: [],
        urgency: 'low',
        sentiment: 'neutral',
        followUpActions: [],
      },
    };
    const detail = {
      schemaVersion: 1,
      callId: 'call-42',
      bucket: 'transcripts-bucket',
      enrichedKey: enrichedKeyForTranscript(key),
      transcriptKey: key,
      callerNumber: '+14155550123',
      intent: 'i',
      urgency: 'low',
      sentiment: 'neutral',
    };
    const fits = { caseId: 'C'.repeat(64), intakeType: 't'.repeat(64) };
    const tooLong = { caseId: 'C'.repeat(300_000), intakeType: 't'.repeat(65) };
    for (const schema of [transcriptSchema, enrichedRecordSchema, intakeEnrichedDetailSchema]) {
      const value = schema === transcriptSchema ? transcript : schema === enrichedRecordSchema ? record : detail;
      expect(schema.safeParse({ ...value, ...fits }).success).toBe(true);
      const wrong = schema.safeParse({ ...value, ...tooLong });
      expect(wrong.success).toBe(false);
      expect(wrong.error!.issues.map((issue) => issue.path.join('.')).sort()).toEqual(['caseId', 'intakeType']);
    }
    const longIntent = intakeEnrichedDetailSchema.safeParse({ ...detail, intent: 'i'.repeat(201) });
    expect(longIntent.error!.issues.map((issue) => issue.path.join('.'))).toEqual(['intent']);
  });
});
