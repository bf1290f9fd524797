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

/** The same digits in another Unicode block of ten (full-width, Arabic-Indic, mathematical bold…). */
function inScript(zero: number, text: string): string {
  return text.replace(/\d/g, (digit) => String.fromCodePoint(zero + Number(digit)));
}
const FULL_WIDTH = 0xff10;
const ARABIC_INDIC = 0x660;
const DEVANAGARI = 0x966;
const MATHEMATICAL_BOLD = 0x1d7ce;
const MATHEMATICAL_MONOSPACE = 0x1d7f6;

describe('redactPii: a phone number glued to a word or a phone link', () => {
  it.each([
    ['tel4155550123', 'tel[PHONE]'],
    ['at4155550123', 'at[PHONE]'],
    ['ring me at4155550123 tonight', 'ring me at[PHONE] tonight'],
    ['at+1 415 555 0123', 'at[PHONE]'],
    ['at415 555 0123', 'at[PHONE]'],
    ['call me4155550123please', 'call me[PHONE]please'],
    ['call me 4155550123a', 'call me [PHONE]a'],
    ['call me 4155550123cafe', 'call me [PHONE]cafe'],
    ['tel:+14155550123', 'tel:[PHONE]'],
    ['sms:4155550123', 'sms:[PHONE]'],
    ['callto:+44 20 7946 0958', 'callto:[PHONE]'],
    ['callto://+442079460958', 'callto://[PHONE]'],
    ['tel://4155550123/', 'tel://[PHONE]/'],
    ['whatsapp://send?phone=14155550123', 'whatsapp://send?phone=[PHONE]'],
    ['wa.me/14155550123', 'wa.me/[PHONE]'],
    ['https://wa.me/14155550123?text=hi', 'https://wa.me/[PHONE]?text=hi'],
    ['https://wa.me/14155550123/', 'https://wa.me/[PHONE]/'],
    ['https://t.me/+14155550123', 'https://t.me/[PHONE]'],
    ['https://signal.me/#p/+14155550123', 'https://signal.me/#p/[PHONE]'],
    ['phone:415-555-0123', 'phone:[PHONE]'],
    ['mobile=4155550123', 'mobile=[PHONE]'],
    ['#4155550123', '#[PHONE]'],
    ['Ｔｅｌ４１５５５５０１２３', 'Ｔｅｌ[PHONE]'],
    ['电话4155550123', '电话[PHONE]'],
    ['电话12345678转', '电话[PHONE]转'],
    ['415-555-0123x12', '[PHONE]x12'],
    ['4155550123ext12', '[PHONE]ext12'],
    ['mp3 12345678', 'mp3 [PHONE]'],
  ])('%j → %j', (text, expected) => {
    expect(redactPii(text)).toBe(expected);
  });

  it.each([
    ['a word glued to a counter', 'utf8 h264 mp3 1234567 win32'],
    ['a name-<digits> identifier', 'ph-4155550123'],
    ['a word-and-digits path segment', 'recordings/tel4155550123/part-000001.wav'],
    ['a word-and-digits file name', 'rec4155550123.wav'],
    ['a word-and-digits name with a suffix', 'room4155550123-a'],
    ['a word-and-digits key after an underscore', 'SIP_4155550123'],
    ['a takeover part key', 'recordings/call-1764523976123/part-r001-000002.wav'],
    ['a hex id that starts with ten digits', '1234567890abcdef'],
    ['a part key of a call id from a LiveKit room name', 'recordings/call-_-14155550123_Ab3dEf/part-000001.wav'],
    ['a Twilio-style call SID', 'CA1234567890abcdef1234567890abcdef'],
    ['a SHA-1', 'da39a3ee5e6b4b0d3255bfef95601890afd80709'],
    ['a URL path that is no phone link', 'https://example.com/v2/items/4155550123/parts'],
    ['a snake_case key', 'call_2026_11_30_0001 and SIP_4155550123'],
    ['a path segment behind a dash', 'audit/-4155550123/_4155550124/x'],
    ['an AWS account id in an ARN', 'arn:aws:kms:eu-west-1:123456789012:key/123e4567-e89b-12d3-a456-426614174000'],
    ['a UUID and a date in parentheses', '(12345678-1234-4234-9234-123456789012) (2026-11-30)'],
    ['a percent-encoded key', 'audit%2Fagent%2F00000012.jsonl recordings%2F-14155550123%2Fpart-000001.wav'],
    ['a file name in a path', 'audit/agent/4155550123.jsonl and C:\\calls\\4155550123\\a.wav'],
    ['dates written with slashes and dots', 'on 30.11.2026, 30/11/2026, 11/30/2026 or 2026/11/30'],
    ['an ISO date in Arabic-Indic digits', inScript(ARABIC_INDIC, 'on 2026-11-30 we spoke')],
    ['an ISO date in mathematical bold digits', inScript(MATHEMATICAL_BOLD, '2026-11-30')],
    ['an ISO date in mathematical monospace digits', inScript(MATHEMATICAL_MONOSPACE, '2026-11-30')],
  ])('leaves %s as it is', (_what, text) => {
    expect(redactPii(text)).toBe(text);
  });
});

describe('redactPii: digits of any script', () => {
  it.each([
    ['full-width', inScript(FULL_WIDTH, '4155550123')],
    [
      'full-width with full-width separators',
      `＋${inScript(FULL_WIDTH, '1')}（${inScript(FULL_WIDTH, '415')}）${inScript(FULL_WIDTH, '555')}－${inScript(FULL_WIDTH, '0123')}`,
    ],
    ['Arabic-Indic', inScript(ARABIC_INDIC, '4155550123')],
    ['Devanagari', inScript(DEVANAGARI, '+91 98765 43210')],
    ['mathematical bold (outside the BMP)', inScript(MATHEMATICAL_BOLD, '415 555 0123')],
    [
      'keycap emoji',
      '4\uFE0F\u20E31\uFE0F\u20E35\uFE0F\u20E35\uFE0F\u20E35\uFE0F\u20E35\uFE0F\u20E30\uFE0F\u20E31\uFE0F\u20E32\uFE0F\u20E33\uFE0F\u20E3',
    ],
  ])('masks a phone number in %s digits', (_script, number) => {
    expect(redactPii(`call ${number} now`)).toBe('call [PHONE] now');
  });

  it('masks a card in Arabic-Indic digits as a card (digit values are read, not guessed)', () => {
    expect(redactPii(inScript(ARABIC_INDIC, '4111 1111 1111 1111'))).toBe('[CARD]');
    expect(redactPii(inScript(ARABIC_INDIC, '4111 1111 1111 1112'))).toBe('[NUMBER]');
  });

  it('returns the text outside a masked span exactly as it came, not normalised', () => {
    const around = (digits: string) => `ﬁle Ｎｏ． cafe\u0301 ${digits} ½ Ⅻ ＡＢＣ ①②`;
    const text = around(inScript(FULL_WIDTH, '4155550123'));
    const masked = around('[PHONE]');
    expect(masked.normalize('NFKC')).not.toBe(masked);
    expect(redactPii(text)).toBe(masked);
  });
});

describe('redactPii: long numbers and IBANs', () => {
  it.each([
    ['DE89 3704 0044 0532 0130 00', '[IBAN]'],
    ['DE89370400440532013000', '[IBAN]'],
    ['my IBAN is GB29 NWBK 6016 1331 9268 19, thanks', 'my IBAN is [IBAN], thanks'],
    ['NL91ABNA0417164300.', '[IBAN].'],
    ['BE68539007547034 OKAY', '[IBAN] OKAY'],
    // A wrong check digit is no IBAN, but its digits are still a number.
    ['DE00 3704 0044 0532 0130 00', 'DE[NUMBER]'],
    ['de89 3704 0044 0532 0130 00', 'de[NUMBER]'],
    ['account 1234 5678 9012 3456 7890', 'account [NUMBER]'],
    ['account 12345678901234567890123456789', 'account [NUMBER]'],
    ['1234-5678-1234-5678', '[NUMBER]'],
    ['card 4111.1111.1111.1111', 'card [CARD]'],
    ['amex 3782 822463 10005', 'amex [CARD]'],
    ['+44 1234 5678 9012 3456', '[NUMBER]'],
  ])('%j → %j', (text, expected) => {
    expect(redactPii(text)).toBe(expected);
  });
});

describe('redactPii: what an attacker tries', () => {
  it.each([
    ['mixed separators', '415.555 0123', '[PHONE]'],
    ['no space after the area code', '(415)5550123', '[PHONE]'],
    ['an extension', '+1-415-555-0123 ext. 12', '[PHONE] ext. 12'],
    ['a newline', 'my number is 415\n555\n0123', 'my number is [PHONE]'],
    ['CRLF', '415\r\n555\r\n0123', '[PHONE]'],
    ['lots of spaces', '415          555          0123', '[PHONE]'],
    ['one digit at a time', '4 1 5 5 5 5 0 1 2 3', '[PHONE]'],
    ['zero-width spaces', '415\u200B555\u200B0123', '[PHONE]'],
    ['a flood of zero-width spaces', `415${'\u200B'.repeat(50)}5550123`, '[PHONE]'],
    ['soft hyphens', '415\u00AD555\u00AD0123', '[PHONE]'],
    ['zero-width joiners and a word joiner', '4\u200D1\u200C5\u20605550123', '[PHONE]'],
    ['bidi overrides', '\u202E4155550123\u202C', '\u202E[PHONE]\u202C'],
    ['no-break and thin spaces', '415\u00A0555\u2009\u202F0123', '[PHONE]'],
    ['Unicode dashes', '415\u2010555\u20130123 and 415\u2212555\u20140123', '[PHONE] and [PHONE]'],
    ['three separators in a row', '(415) - 555 - 0123', '[PHONE]'],
    ['underscores', '415_555_0123', '[PHONE]'],
    ['slashes', '415/555/0123', '[PHONE]'],
    ['an alternative after a slash', 'ring 415-555-0123/0124', 'ring [PHONE]'],
    ['a slash in front', 'call me on /4155550123', 'call me on /[PHONE]'],
    ['a slash behind', 'call 4155550123/ok', 'call [PHONE]/ok'],
    ['an account-id-shaped number outside an ARN', 'call :123456789012: now', 'call :[PHONE]: now'],
    ['a path in front', 'call me at a/4155550123 or x/tel4155550123.', 'call me at a/[PHONE] or x/tel[PHONE].'],
    [
      'a URL that ends in the number',
      'https://example.com/users/4155550123?x=1',
      'https://example.com/users/[PHONE]?x=1',
    ],
    ['an underscore in front', 'number _4155550123_', 'number _[PHONE]_'],
    ['percent-encoding', 'tel:%2B1%20415%20555%200123', 'tel:[PHONE]'],
    ['a percent-encoded byte in front', 'a%20b%2014155550123 and q=%2B14155550123', 'a%20b%20[PHONE] and q=[PHONE]'],
    ['a "+" number glued to a name', 'sip_+14155550123 and user-+14155550123', 'sip_[PHONE] and user-[PHONE]'],
    ['a reference glued in front', 'ref-7 415 555 0123', 'ref-7 [PHONE]'],
    ['a date in front', 'on 2026-11-30 415 555 0123', 'on 2026-11-30 [PHONE]'],
    ['a timestamp behind', '415 555 0123 2026-11-30T17:32:56Z', '[PHONE] 2026-11-30T17:32:56Z'],
    ['an SSN glued to a word', 'ssn123-45-6789', 'ssn[SSN]'],
    ['a card dressed as a UUID', '41111111-1111-1111-1111-000000000000', '[NUMBER]'],
    ['an e-mail with a +tag and capitals', 'Mail JANE.Doe+Intake@Example.COM now', 'Mail [EMAIL] now'],
    ['an e-mail with an IDN domain', 'josé@bücher.de', '[EMAIL]'],
    ['an e-mail with a punycode domain', 'jane@xn--bcher-kva.de', '[EMAIL]'],
    ['an e-mail glued to text', 'mailto:jane@example.com?subject=hi', 'mailto:[EMAIL]?subject=hi'],
    ['an e-mail with a zero-width space', 'jane\u200B@example\u200B.com', '[EMAIL]'],
    ['an e-mail with a full-width at sign', 'jane＠example.com', '[EMAIL]'],
    ['an e-mail in a SIP URI', 'sip:+14155550123@10.0.0.1', 'sip:[EMAIL]'],
    ['an e-mail with look-alike @ and dot', 'jane\uFE6Bexample\uFE52com', '[EMAIL]'],
    ['a bracketed e-mail', 'jane(at)example(dot)com', '[EMAIL]'],
    ['a bracketed e-mail with spaces and capitals', 'Jane.Doe [AT] example [dot] co [dot] uk', '[EMAIL]'],
    ['a spoken e-mail', 'write to jane at example dot com please', 'write to [EMAIL] please'],
    ['a spoken e-mail with a dot', 'it is jane.doe at example.co.uk', 'it is [EMAIL]'],
  ])('%s: %j', (_trick, text, expected) => {
    expect(redactPii(text)).toBe(expected);
  });

  it.each([
    [
      '"at" in prose',
      'meet me at noon at the office, call me at 415 555 0123',
      'meet me at noon at the office, call me at [PHONE]',
    ],
    ['"at" and "dot" without a common domain', 'look at the red dot on the map', 'look at the red dot on the map'],
  ])('leaves %s alone', (_what, text, expected) => {
    expect(redactPii(text)).toBe(expected);
  });

  it('gets pathological inputs right (patterns that backtrack would take minutes on these)', () => {
    expect(redactPii('1-'.repeat(50_000))).toBe('[NUMBER]-');
    expect(redactPii('12--'.repeat(25_000))).toBe('[NUMBER]--');
    expect(redactPii(`jane@${'a.'.repeat(50_000)}de`)).toBe('[EMAIL]');
    const noAt = 'a.'.repeat(50_000);
    expect(redactPii(noAt)).toBe(noAt);
    const fourDashes = '1----'.repeat(20_000);
    expect(redactPii(fourDashes)).toBe(fourDashes);
    expect(redactPii(`1${' '.repeat(100_000)}x`)).toBe(`1${' '.repeat(100_000)}x`);
    expect(redactPii(`${'tel'.repeat(30_000)}4155550123`)).toBe(`${'tel'.repeat(30_000)}[PHONE]`);
    const spokenNoise = 'a at b dot '.repeat(10_000);
    expect(redactPii(spokenNoise)).toBe(spokenNoise);
    expect(redactPii(`${'(at) '.repeat(20_000)}x`)).toBe(`${'(at) '.repeat(20_000)}x`);
  });
});

describe('redactPii: numbers said in words', () => {
  it.each([
    [
      'a caller, as ASR writes it',
      'my number is four one five five five five zero one two three.',
      'my number is [PHONE].',
    ],
    [
      'the agent reading it back',
      'I have four, one, five, five, five, five, zero, one, two, three. Is that right?',
      'I have [PHONE]. Is that right?',
    ],
    ['pauses written as full stops', 'Oh, four one five. Five five five. Zero one two three.', '[PHONE].'],
    ['"oh" for zero, mixed with numerals', 'call me at 415 555 oh one two three', 'call me at [PHONE]'],
    ['numerals then words', 'it is 415, five five five, 0123', 'it is [PHONE]'],
    ['hyphenated', 'four-one-five-five-five-five-zero-one-two-three', '[PHONE]'],
    ['commas without spaces', 'four,one,five,five,five,five,zero,one,two,three.', '[PHONE].'],
    ['double and triple', 'double five, triple seven, one two three', '[PHONE]'],
    ['tens and hundreds counted', 'it is four fifteen five five five, twelve hundred', 'it is [PHONE]'],
    ['any case', 'FOUR ONE FIVE FIVE FIVE FIVE ZERO ONE TWO THREE', '[PHONE]'],
    ['a card, by its check digit', 'four one one one, one one one one, one one one one, one one one one', '[CARD]'],
    [
      'a long account number',
      'one two three four five six seven eight nine one two three four five six seven',
      '[NUMBER]',
    ],
    ['invisible characters between the words', 'four\u200bone\u00adfive five five five zero one two three', '[PHONE]'],
    [
      'two numbers in one sentence',
      'nine one one two two two three three, or one two three four five six seven eight',
      '[PHONE], or [PHONE]',
    ],
  ])('masks %s', (_what, text, expected) => {
    expect(redactPii(text)).toBe(expected);
  });

  it.each([
    ['fewer than 8 digits', 'Your case number is C, four, seven, two, nine, one, eight, three.'],
    ['a year', 'it was twenty twenty six, in nineteen ninety nine before that'],
    ['an amount', 'one hundred and twenty three dollars, four thousand five hundred in all'],
    ['ordinary words', 'I have one, two or three things, and no one else; oh well, o yes'],
    ['a date beside a word', 'on 2026-11-30 one customer called'],
    ['an identifier beside words', 'call-1764523976123 one two, recordings/call-1/part-000001.wav one two three'],
    [
      'words joined by something else',
      'one/two/three/four/five/six/seven/eight and one_two_three_four_five_six_seven_eight',
    ],
    ['digits split by a word', 'four one five five, then five five zero one two three'],
  ])('leaves %s alone', (_what, text) => {
    expect(redactPii(text)).toBe(text);
  });

  it('stays linear on long runs and long gaps', () => {
    expect(redactPii('one '.repeat(25_000))).toBe('[NUMBER] ');
    const spaced = `one${' '.repeat(100_000)}!two`;
    expect(redactPii(spaced)).toBe(spaced);
    expect(redactPii('one ,'.repeat(20_000))).toBe('[NUMBER] ,');
    const doubled = 'one ;; '.repeat(20_000);
    expect(redactPii(doubled)).toBe(doubled);
  });
});

describe('redactPii: every way of writing a number, in every context', () => {
  const numbers = [
    '4155550123',
    '415-555-0123',
    '(415) 555-0123',
    '+1 415 555 0123',
    '+1.415.555.0123',
    '+1 (415)555-0123',
    '1 (415) 555 0123',
    '+44 20 7946 0958',
    '0044 20 7946 0958',
    '415\u200B555\u200B0123',
    inScript(FULL_WIDTH, '4155550123'),
    inScript(ARABIC_INDIC, '415-555-0123'),
    '415_555_0123',
    '415/555/0123',
    '415%20555%200123',
    '4111 1111 1111 1111',
    '123-45-6789',
    '1234 5678 9012 3456 7890',
  ];
  const contexts = [
    ['', ''],
    ['call ', ' now'],
    ['tel:', ''],
    ['(', ')'],
    ['"', '"'],
    ['at', ' please'],
    ['number=', '&x'],
    ['<b>', '</b>'],
    ['*', '*'],
    ['\n', '\n'],
    ['phone: ', '.'],
    ['wa.me/', ''],
    ['mailto:x?body=', ''],
    ['«', '»'],
    ['電話', '。'],
    ['#', '#'],
    ['--', '--'],
    ['{"p":"', '"}'],
    ['%20', '%20'],
    ['->', '<-'],
    ['$', ''],
    ['no. ', ','],
    ['https://x.io/?p=', ''],
    ['tel', ''],
    ['\u202E', '\u202C'],
    ['\u00A0', '\u00A0'],
  ];
  it.each(numbers)('leaves no digit of %j in any context', (number) => {
    for (const [before, after] of contexts) {
      const text = `${before}${number}${after}`;
      expect(redactPii(text).replace(/%[0-9A-F]{2}/g, ''), JSON.stringify(text)).not.toMatch(/\p{Nd}/u);
    }
  });
});

describe('redactPii: identifiers of this system, in every context', () => {
  const identifiers = [
    'recordings/call-1764523976123/part-000001.wav',
    'recordings/call-1764523976123/part-r001-000002.wav',
    'recordings/-14155550123/part-000003.wav',
    'recordings/call-_-14155550123_Ab3dEf/part-000001.wav',
    'transcripts/2026/11/30/call-20261130-0001.json',
    'audit/agent/call-1/00000012.jsonl',
    'audit/mcp/call-1764523976123/00000001.jsonl',
    's3://voice-intake-transcripts-123456789012/recordings/call-1/part-000001.wav',
    'arn:aws:kms:eu-west-1:123456789012:key/123e4567-e89b-12d3-a456-426614174000',
    '2026-11-30T17:32:56.123Z',
    '2026-11-30T17:32:56+01:00',
    '123e4567-e89b-12d3-a456-426614174000',
    '12345678-1234-4234-9234-123456789012',
    'call-1764523976123',
    '1234567890abcdef-10.0.0.12',
    'SCL_3kX9p2mQ7vTz',
    'CA1234567890abcdef1234567890abcdef',
    'da39a3ee5e6b4b0d3255bfef95601890afd80709',
    'eu.anthropic.claude-sonnet-4-20250514-v1:0',
    'Root=1-5759e988-bd862e3fe1be46a994272793',
  ];
  const contexts = [
    ['', ''],
    ['stored ', ' now'],
    ['"', '"'],
    ['(', ')'],
    ['at ', '.'],
    ['[', ']'],
  ];
  it.each(identifiers)('leaves %j as it is in any context', (identifier) => {
    for (const [before, after] of contexts) {
      const text = `${before}${identifier}${after}`;
      expect(redactPii(text)).toBe(text);
    }
  });
});

describe('redactDeep', () => {
  it('masks a phone number hidden anywhere in a tool argument, as text or as a JSON number', () => {
    const payload = {
      arguments: {
        fields: { callback: '415.555.0123', notes: ['reach me on +1 (415) 555-0123 after six'] },
        phoneAsNumber: 4155550123,
        nested: [{ card: 4111111111111111 }],
        account: 12345678901234567000,
      },
    };
    expect(redactDeep(payload, redactPii)).toEqual({
      arguments: {
        fields: { callback: '[PHONE]', notes: ['reach me on [PHONE] after six'] },
        phoneAsNumber: '[PHONE]',
        nested: [{ card: '[CARD]' }],
        account: '[NUMBER]',
      },
    });
  });

  it('masks PII a model writes as an object key, and keeps two keys masked alike apart', () => {
    const payload = { fields: { '+14155550123': 'callback', '415-555-0124': 'mobile', '[PHONE]': 'given', note: 'x' } };
    expect(redactDeep(payload, redactPii)).toEqual({
      fields: { '[PHONE]': 'callback', '[PHONE]#2': 'mobile', '[PHONE]#3': 'given', note: 'x' },
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
