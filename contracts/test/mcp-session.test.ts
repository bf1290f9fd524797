import { describe, expect, it } from 'vitest';
import { issueSessionHeader, signSessionHeader, verifySessionHeader } from '../src';

const SECRET = 'session-secret';
const NOW = Date.UTC(2026, 10, 24, 12);

describe('signed MCP session header', () => {
  it('round-trips a binding', () => {
    const header = issueSessionHeader({ callId: 'call-1', callerNumber: '+14155550123' }, SECRET, 600, NOW);
    expect(verifySessionHeader(header, SECRET, NOW + 1000)).toMatchObject({
      ok: true,
      session: { callId: 'call-1', callerNumber: '+14155550123' },
    });
  });

  it('refuses a header whose payload was changed (another caller number)', () => {
    const header = issueSessionHeader({ callId: 'call-1', callerNumber: '+14155550123' }, SECRET, 600, NOW);
    const [, sig] = header.split('.');
    const forged = `${Buffer.from(JSON.stringify({ callId: 'call-1', callerNumber: '+14155550999', issuedAt: NOW / 1000, expiresAt: NOW / 1000 + 600 })).toString('base64url')}.${sig}`;
    expect(verifySessionHeader(forged, SECRET, NOW)).toEqual({ ok: false, reason: 'bad signature' });
  });

  it('refuses a wrong secret, expiry, garbage and absence', () => {
    const header = issueSessionHeader({ callId: 'call-1', callerNumber: 'anonymous' }, SECRET, 60, NOW);
    expect(verifySessionHeader(header, 'other', NOW)).toMatchObject({ ok: false, reason: 'bad signature' });
    expect(verifySessionHeader(header, SECRET, NOW + 61_000)).toEqual({ ok: false, reason: 'expired' });
    expect(verifySessionHeader('abc', SECRET, NOW)).toEqual({ ok: false, reason: 'malformed' });
    expect(verifySessionHeader(undefined, SECRET, NOW)).toEqual({ ok: false, reason: 'missing' });
    expect(() => signSessionHeader({ callId: 'x', callerNumber: '12', issuedAt: 0, expiresAt: 1 }, SECRET)).toThrow();
  });
});
