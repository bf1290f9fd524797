import {
  ENRICHMENT_EVENT_SOURCE,
  INTAKE_ENRICHED_DETAIL_TYPE,
  type IntakeEnrichedDetail,
  intakeEnrichedDetailSchema,
} from '@voice-intake/contracts';
import { describe, expect, it } from 'vitest';
import { EVENT_ENTRY_MAX_BYTES, intakeEnrichedEntry } from '../src/enrichment/enrich';

const detail: IntakeEnrichedDetail = {
  schemaVersion: 1,
  callId: 'call-7f3a',
  bucket: 'transcripts-bucket',
  enrichedKey: 'enriched/2026/11/24/call-7f3a.json',
  transcriptKey: 'transcripts/2026/11/24/call-7f3a.json',
  callerNumber: '+14155550123',
  intent: 'report water damage',
  urgency: 'high',
  sentiment: 'negative',
  caseId: 'CASE-1042',
};

describe('the IntakeEnriched entry, checked before anything is written', () => {
  it('is the detail, as its contract reads it, on the bus', () => {
    const result = intakeEnrichedEntry(detail, 'intake-bus');
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.entry).toMatchObject({
      EventBusName: 'intake-bus',
      Source: ENRICHMENT_EVENT_SOURCE,
      DetailType: INTAKE_ENRICHED_DETAIL_TYPE,
    });
    expect(intakeEnrichedDetailSchema.parse(JSON.parse(result.entry.Detail!))).toEqual(detail);
    expect(EVENT_ENTRY_MAX_BYTES).toBe(262_144);
  });

  it('refuses a detail that does not fit its contract, naming the field', () => {
    const result = intakeEnrichedEntry({ ...detail, caseId: 'C'.repeat(300_000) }, 'intake-bus');
    expect(result).toEqual({ ok: false, problem: expect.stringMatching(/^IntakeEnriched detail: caseId: /) });
  });

  it('refuses an entry over the size limit, naming its largest field', () => {
    const bytes = (value: IntakeEnrichedDetail) =>
      Buffer.byteLength(ENRICHMENT_EVENT_SOURCE) +
      Buffer.byteLength(INTAKE_ENRICHED_DETAIL_TYPE) +
      Buffer.byteLength(JSON.stringify(value));
    const exact = bytes(detail);
    expect(intakeEnrichedEntry(detail, 'intake-bus', exact).ok).toBe(true);
    const result = intakeEnrichedEntry(detail, 'intake-bus', exact - 1);
    expect(result).toEqual({
      ok: false,
      problem: `IntakeEnriched detail: transcriptKey: the event entry is ${exact} bytes, over the ${exact - 1}-byte limit`,
    });
  });
});
