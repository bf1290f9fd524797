import { describe, expect, it } from 'vitest';
import { CALLER_ATTRIBUTES, callerFromAttributes, issueSessionHeader, verifySessionHeader } from '../src';

const SECRET = 'session-secret';
const NOW = Date.UTC(2026, 10, 30, 12);

describe('the caller as the edge vouched for it', () => {
  const attributes = (attestation?: string, caller?: string) => ({
    ...(attestation === undefined ? {} : { [CALLER_ATTRIBUTES.attestation]: attestation }),
    ...(caller === undefined ? {} : { [CALLER_ATTRIBUTES.caller]: caller }),
    'sip.phoneNumber': '+14155550999',
  });

  it('takes each level and the number as the edge set them', () => {
    for (const level of ['A', 'B', 'C', 'failed', 'none'] as const) {
      expect(callerFromAttributes(attributes(level, '+14155550123'))).toEqual({
        attestation: level,
        number: '+14155550123',
      });
    }
    expect(callerFromAttributes(attributes('A', 'anonymous'))).toEqual({ attestation: 'A', number: 'anonymous' });
  });

  it('fails closed on anything else: no level is none, no number is anonymous, never sip.phoneNumber', () => {
    for (const level of [undefined, '', 'a', 'A ', 'AA', 'passed', 'TN-Validation-Passed-A']) {
      expect(callerFromAttributes(attributes(level, '+14155550123')).attestation, String(level)).toBe('none');
    }
    for (const caller of [undefined, '', '14155550123', '+1', '+14155550123;x', 'Anonymous', '+0155550123']) {
      expect(callerFromAttributes(attributes('A', caller)).number, String(caller)).toBe('anonymous');
    }
  });
});

describe('the attestation in the signed MCP session header', () => {
  it('is signed with the binding, and absent means none', () => {
    const attested = issueSessionHeader(
      { callId: 'c1', callerNumber: '+14155550123', attestation: 'A' },
      SECRET,
      60,
      NOW,
    );
    expect(verifySessionHeader(attested, SECRET, NOW)).toMatchObject({ ok: true, session: { attestation: 'A' } });
    const unattested = issueSessionHeader({ callId: 'c1', callerNumber: '+14155550123' }, SECRET, 60, NOW);
    expect(verifySessionHeader(unattested, SECRET, NOW)).toMatchObject({ ok: true, session: { attestation: 'none' } });
  });

  it('cannot be raised without the secret', () => {
    const header = issueSessionHeader(
      { callId: 'c1', callerNumber: '+14155550123', attestation: 'C' },
      SECRET,
      60,
      NOW,
    );
    const [payload, signature] = header.split('.');
    const raised = { ...JSON.parse(Buffer.from(payload, 'base64url').toString()), attestation: 'A' };
    const forged = `${Buffer.from(JSON.stringify(raised)).toString('base64url')}.${signature}`;
    expect(verifySessionHeader(forged, SECRET, NOW)).toEqual({ ok: false, reason: 'bad signature' });
    expect(() =>
      issueSessionHeader({ callId: 'c1', callerNumber: '+14155550123', attestation: 'X' as 'A' }, SECRET),
    ).toThrow();
  });
});
