import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { callInsightsSchema, enrichmentErrorKeyForTranscript, intakeEnrichedDetailSchema } from '../src';

describe('enrichment contracts', () => {
  it('converts the insights schema to a JSON Schema a model tool can take', () => {
    const jsonSchema = z.toJSONSchema(callInsightsSchema) as { type: string; required: string[]; properties: Record<string, unknown> };
    expect(jsonSchema.type).toBe('object');
    expect(jsonSchema.required).toEqual(expect.arrayContaining(['summary', 'intent', 'intakeFields', 'urgency', 'sentiment', 'followUpActions']));
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
    expect(enrichmentErrorKeyForTranscript('transcripts/2026/11/24/c1.json')).toBe('enrichment-errors/2026/11/24/c1.json');
    expect(intakeEnrichedDetailSchema.safeParse({}).success).toBe(false);
  });
});
