import { describe, expect, it } from 'vitest';
import { redactDeep, redactPii } from '../src/redact';

describe('redactPii', () => {
  it.each([
    ['Call me on +1 415 555 0123 please', 'Call me on [PHONE] please'],
    ['my number is 415.555.0123.', 'my number is [PHONE].'],
    ['(415) 555-0123', '[PHONE]'],
    ['+1 (415) 555-0123, thanks', '[PHONE], thanks'],
    ['+44 20 7946 0958', '[PHONE]'],
    ['+442079460958', '[PHONE]'],
    ['4155550123', '[PHONE]'],
    ['tel:+14155550123', 'tel:[PHONE]'],
    ['number:4155550123;', 'number:[PHONE];'],
    ['--4155550123--', '--[PHONE]--'],
    ['415.555.0123.Thanks', '[PHONE].Thanks'],
    ['ring 4155550123-ext 12', 'ring [PHONE]-ext 12'],
    ['8 digits: 1234 5678', '8 digits: [PHONE]'],
    ['card 4111 1111 1111 1111 ok', 'card [CARD] ok'],
    ['card 4111-1111-1111-1111', 'card [CARD]'],
    ['ssn 123-45-6789', 'ssn [SSN]'],
    ['mail ada.l+intake@example.co.uk now', 'mail [EMAIL] now'],
  ])('masks PII written the way people write it: %j', (text, expected) => {
    expect(redactPii(text)).toBe(expected);
  });

  it.each([
    ['an S3 recording part key', 'recordings/SCL_3kX9p2mQ7vTz/part-000001.wav'],
    ['a part key of a digit-heavy call id', 'recordings/call-1764523976123/part-000012.wav'],
    ['a part key of a sanitised E.164 call id', 'recordings/-14155550123/part-000003.wav'],
    ['a transcript key', 'transcripts/2026/11/30/call-20261130-0001.json'],
    ['an audit segment key', 'audit/agent/call-1/00000012.jsonl'],
    ['an ISO timestamp', '2026-11-30T17:32:56.123Z'],
    ['an ISO timestamp with offset', '2026-11-30T17:32:56+01:00'],
    ['an ISO date in a sentence', 'on 2026-11-30 we spoke'],
    ['a UUID', '123e4567-e89b-12d3-a456-426614174000'],
    ['an all-digit UUID', '12345678-1234-4234-9234-123456789012'],
    ['a call id', 'call-1764523976123'],
    ['a SIP Call-ID made safe', '1234567890abcdef-10.0.0.12'],
    ['a short counter', 'part 12 of 3000, 1048576 bytes'],
  ])('leaves %s as it is', (_what, text) => {
    expect(redactPii(text)).toBe(text);
  });

  it('masks the free text around identifiers and keeps the identifiers', () => {
    expect(redactPii('stored recordings/call-17645/part-000001.wav at 2026-11-30T17:32:56Z for 415 555 0123')).toBe(
      'stored recordings/call-17645/part-000001.wav at 2026-11-30T17:32:56Z for [PHONE]',
    );
  });

  it('does not take a date-shaped prefix of a longer number for a date', () => {
    expect(redactPii('call 2026-11-3055')).toBe('call [PHONE]');
  });
});

describe('redactDeep', () => {
  it('masks a phone number hidden anywhere in a tool argument, as text or as a JSON number', () => {
    const payload = {
      arguments: {
        fields: { callback: '415.555.0123', notes: ['reach me on +1 (415) 555-0123 after six'] },
        phoneAsNumber: 4155550123,
        nested: [{ card: 4111111111111111 }],
      },
    };
    expect(redactDeep(payload, redactPii)).toEqual({
      arguments: {
        fields: { callback: '[PHONE]', notes: ['reach me on [PHONE] after six'] },
        phoneAsNumber: '[PHONE]',
        nested: [{ card: '[CARD]' }],
      },
    });
  });

  it('keeps record keys, timestamps, counters and non-strings of a recording stop record', () => {
    const stopped = {
      parts: ['recordings/call-1764523976123/part-000001.wav', 'recordings/call-1764523976123/part-000002.wav'],
      failedParts: [],
      consentRefused: false,
      startedAt: '2026-11-30T17:32:56.123Z',
      unsilencedSpans: [{ startMs: 1200, endMs: 3_600_000 }],
      sampleRate: 16000,
      missing: null,
    };
    expect(redactDeep(stopped, redactPii)).toEqual(stopped);
  });
});
