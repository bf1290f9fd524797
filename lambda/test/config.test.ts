import { describe, expect, it } from 'vitest';
import { readEnrichmentEnv } from '../src/enrichment/config';

const REQUIRED = {
  MODEL_ID: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
  EVENT_BUS_NAME: 'intake-bus',
  IDEMPOTENCY_TABLE_NAME: 'idempotency',
  TRANSCRIPTS_BUCKET_NAME: 'transcripts-bucket',
};

describe('enrichment environment', () => {
  it('fills the defaults the README documents', () => {
    expect(readEnrichmentEnv(REQUIRED)).toEqual({
      ...REQUIRED,
      MAX_TRANSCRIPT_BYTES: 1_048_576,
      BEDROCK_MAX_ATTEMPTS: 5,
      BEDROCK_RETRY_BASE_MS: 400,
      IDEMPOTENCY_TTL_SECONDS: 604_800,
    });
  });

  it('names every missing or bad variable', () => {
    let message = '';
    try {
      readEnrichmentEnv({ MODEL_ID: 'm', BEDROCK_MAX_ATTEMPTS: '50', MAX_TRANSCRIPT_BYTES: 'lots' });
    } catch (error) {
      message = (error as Error).message;
    }
    for (const variable of [
      'EVENT_BUS_NAME',
      'IDEMPOTENCY_TABLE_NAME',
      'TRANSCRIPTS_BUCKET_NAME',
      'MAX_TRANSCRIPT_BYTES',
      'BEDROCK_MAX_ATTEMPTS',
    ]) {
      expect(message).toContain(variable);
    }
    expect(message).toMatch(/^invalid enrichment environment: /);
    expect(message).not.toContain('MODEL_ID');
  });
});
