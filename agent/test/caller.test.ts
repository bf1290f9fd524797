import { describe, expect, it } from 'vitest';
import { callerOf } from '../src/caller';

describe('the caller the agent binds into its MCP session', () => {
  it("is the edge's, even where LiveKit's own number differs (a withheld number stays withheld)", () => {
    const attributes = {
      'voiceintake.attestation': 'B',
      'voiceintake.caller': 'anonymous',
      'sip.phoneNumber': '+14155550123',
    };
    expect(callerOf(attributes)).toEqual({ number: 'anonymous', attestation: 'B' });
  });

  it('falls back to sip.phoneNumber without the edge, never attested', () => {
    expect(callerOf({ 'sip.phoneNumber': '14155550123' })).toEqual({ number: '+14155550123', attestation: 'none' });
    // A level without the edge's caller attribute is not the edge's: it is ignored.
    expect(callerOf({ 'sip.phoneNumber': '+14155550123', 'voiceintake.attestation': 'A' })).toEqual({
      number: '+14155550123',
      attestation: 'none',
    });
    expect(callerOf({})).toEqual({ number: 'anonymous', attestation: 'none' });
  });
});
