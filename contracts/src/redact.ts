/*
 * Every string of a record is scanned (no list of "free text" fields to keep up to date: a tool argument, a model
 * response or a new payload field is covered the day it appears). Three passes, each linear in the text:
 *
 * 1. E-mail addresses → [EMAIL]: Unicode local parts and domains (IDN), `+tags`, any case, a full-width "＠", and
 *    glued to text (`mailto:jane@example.com` → `mailto:[EMAIL]`); dodged (`jane(at)example(dot)com`, any domain)
 *    or spoken (`jane at example dot com`, with a common top-level domain only: prose says "at" too).
 * 2. IBANs → [IBAN]: two capital letters, two check digits, 11–30 capitals/digits, spaced in fours or not, with a
 *    valid ISO 13616 checksum. One with a wrong checksum is left to pass 3, which masks its digits.
 * 3. Numbers. A number is a run of digits of any script (`\p{Nd}`: ASCII, full-width, Arabic-Indic…) joined by
 *    spaces, tabs, newlines (any amount) and up to three of `.`, `-`, `_`, `/`, `(`, `)` (and Unicode dashes) between
 *    two digits, optionally led by "+" or "(", all of them also percent-encoded (`%2B1%20415…`; a `%XX` in front is a
 *    separator, not a glued identifier, and `%2F` is a slash); invisible characters (zero-width spaces, soft hyphens,
 *    bidi controls, combining marks such as a keycap) are skipped wherever they are. Only the masked span is replaced:
 *    the text around it is returned byte for byte, never normalised. The part of a number that stands on its own is
 *    masked by its digit count: 8–15 → [PHONE] (13–19 with a valid Luhn digit and no "+" → [CARD]), 16 and more →
 *    [NUMBER] (account numbers), `123-45-6789` → [SSN]. Fewer than 8 digits (counters, sizes, durations) pass.
 *
 * What keeps identifiers intact is context. Digits glued to an identifier (`recordings/<call>/part-000001.wav`, a UUID,
 * `call-1764523976123`, `audit/agent/call-1/00000012.jsonl`, `SIP_123…`) are not PII: they follow a letter or digit and
 * then "-", "." or "_", or they are a path segment: after a "/" or "\" (maybe and a "-" or "_") with a letter shortly
 * before it in the same token, and followed by "/", "\", "_" or a file extension (`recordings/-14155550123/…`,
 * `audit/4155550123.jsonl`); or they are followed by a letter (but see below) or "-"/"." and a digit. A number led by
 * "+" is never glued that way (keys and ids hold no "+": `sip_+14155550123` is masked), and a number that ends a path
 * (`example.com/users/4155550123`) or starts a token (`/4155550123`, `4155550123/ok`) is no path segment. An AWS
 * account id in an ARN (`arn:aws:kms:eu-west-1:123456789012:key/…`) is kept. A space-separated group of a number that
 * is glued that way, a date (2026-11-30, 2026/11/30, 30.11.2026, 30/11/2026, 11/30/2026) and an all-digit UUID (version
 * and variant digit set; in parentheses or not) are kept and the rest of the number is judged on its own
 * (`ref-7 415 555 0123` → `ref-7 [PHONE]`).
 *
 * Glued to a word is not an identifier when the word stands alone (ASR glues words and numbers; people write
 * `tel4155550123`, `at+1 415 555 0123`): a letters-only word that does not itself follow a digit, "_", "/", "\", "-" or
 * "." makes the number PII from 10 digits (`tel4155550123` → `tel[PHONE]`; `mp3 1234567` and `utf8` pass), unless the
 * number is followed by "-"/"." and a letter or digit (a file name: `rec4155550123.wav`). The same holds for a word
 * right after the number, unless the number is bare ASCII digits and the word hex letters, 16 or more together
 * (`1234567890abcdef` is a hex id; `4155550123a` is not), and an extension (`4155550123x12`, `ext12`) never protects a
 * number. Letters of scripts written without spaces (Han, kana, Thai…) count as a space. Phone links are PII whatever
 * precedes them: the digits after a phone URI scheme (`tel:`, `sms:`, `callto://`, `whatsapp://`…) or `wa.me/`,
 * `t.me/`, `signal.me/#p/` are judged as standing alone.
 *
 * Known limits, kept on purpose: `name-<digits>` and `name_<digits>` (`ph-4155550123`, `call-1764523976123`) are
 * identifiers, and so is a number in a path segment; a hex id of letters only and then 10+ digits is masked like a
 * glued word; ",", "+", "*" or an emoji between digits split a number; superscript and circled digits are not digits;
 * spelled-out numbers are Transcribe's job.
 */

/** Invisible inside a number: format characters (ZWSP, soft hyphen, bidi controls, BOM) and combining marks. */
const INVISIBLE = String.raw`\p{Cf}\p{M}`;
/** Space between the groups of a number, any amount. */
const SPACE = String.raw`\p{Zs}\t\n\r\v\f\u2028\u2029`;
/** Punctuation inside a number, at most three between two digits: dots, dashes, "_", "/", parentheses… */
const PUNCT = String.raw`.\-_/()\u00B7\u2010-\u2015\u2212\u30FB\uFF08\uFF09\uFF0D\uFF0E\uFF65`;
/** The same, percent-encoded in a URL: space, "+", "-", ".", "/", "(", ")", "_". */
const ENCODED_PUNCT = '%(?:2[0BbDdEeFf89]|5[Ff])';
const BETWEEN_DIGITS = `[${SPACE}${INVISIBLE}]*(?:(?:[${PUNCT}]|${ENCODED_PUNCT})[${SPACE}${INVISIBLE}]*){0,3}`;
/**
 * A number: each quantifier's class is disjoint from what follows it, so a failed match backtracks linearly. It
 * never starts inside a percent-encoded byte: `%2014155550123` is "%20" and a number.
 */
const NUMBER = new RegExp(
  String.raw`(?<!%[0-9A-Fa-f]?)(?:[+(\uFF0B\uFF08]|%2[Bb8])?\p{Nd}(?:${BETWEEN_DIGITS}\p{Nd})*\p{M}*`,
  'gu',
);
const ENCODED_PUNCT_ANYWHERE = new RegExp(ENCODED_PUNCT, 'g');
const ENCODED_BYTE = /^%[0-9A-Fa-f]{2}$/;
const ENCODED_SLASH = /^%(?:2[Ff]|5[Cc])/;

const EMAIL_LOCAL = String.raw`\p{L}\p{N}\p{M}\p{Cf}._%+\-`;
const EMAIL_LABEL = String.raw`[\p{L}\p{N}\p{M}\p{Cf}_\-]+`;
const EMAIL_START = `(?<![${EMAIL_LOCAL}])[${EMAIL_LOCAL}]+`;
const AT_SIGN = String.raw`[@\uFF20\uFE6B]`;
const DOT_SIGN = String.raw`[.\uFF0E\u3002\uFF61\uFE52\u2024]`;
/** `jane@example.com`, with look-alike "@" and dots too. */
const PLAIN_DOMAIN = `${AT_SIGN}${EMAIL_LABEL}(?:${DOT_SIGN}${EMAIL_LABEL})+`;
/** `jane(at)example(dot)com`, `jane [at] example.com`: written to dodge a filter, so any domain counts. */
const BRACKETED_DOMAIN = String.raw`[ \t]*[([{][ \t]*at[ \t]*[)\]}][ \t]*${EMAIL_LABEL}(?:(?:[ \t]*[([{][ \t]*dot[ \t]*[)\]}][ \t]*|${DOT_SIGN})${EMAIL_LABEL})+`;
/** `jane at example dot com`, as speech is transcribed: only with a common top-level domain, prose has "at" too. */
const SPOKEN_DOT = String.raw`(?:[ \t]+dot[ \t]+|${DOT_SIGN})`;
const COMMON_TLD = 'com|org|net|edu|gov|io|co|uk|us|ca|au|nz|ie|de|fr|es|it|nl|be|ch|at|se|no|dk|pl|in|jp|info|biz|me';
const SPOKEN_DOMAIN = String.raw`[ \t]+at[ \t]+${EMAIL_LABEL}(?:${SPOKEN_DOT}${EMAIL_LABEL})*${SPOKEN_DOT}(?:${COMMON_TLD})(?![\p{L}\p{N}])`;
/** One pass for all three; it starts only where a run of local-part characters starts, which keeps `a.a.a…` linear. */
const EMAIL = new RegExp(`${EMAIL_START}(?:${PLAIN_DOMAIN}|${BRACKETED_DOMAIN}|${SPOKEN_DOMAIN})`, 'giu');

const IBAN = /(?<![\p{L}\p{N}_])[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\p{L}\p{N}_])/gu;

const LETTER = /[\p{L}\p{M}]/u;
const HEX_LETTERS = /^[a-f]+$|^[A-F]+$/;
const BARE_DIGITS = /^[0-9]+$/;
const LEADING_PLUS = /^(?:[+\uFF0B]|%2[Bb])/;
/** Scripts written without spaces between words: a letter of theirs before or after a number is a space. */
const UNSPACED_SCRIPT =
  /[\p{Script=Han}\p{Script=Hiragana}\p{Script=Katakana}\p{Script=Thai}\p{Script=Lao}\p{Script=Khmer}\p{Script=Myanmar}]/u;
const IDENTIFIER_CHAR = /[\p{L}\p{N}\p{M}_/\\]/u;
const WORD_NEIGHBOUR = /[\p{N}_/\\.-]/u;
const LETTER_OR_DIGIT = /[\p{L}\p{N}\p{M}_]/u;
const JOINER = /[-._/\\]/;
const SLASH = /[/\\]/;
/** How far back a path is looked for: enough for any key prefix, and it keeps a long token linear. */
const PATH_LOOKBACK = 64;
/** Matches (empty) at a number's start that follows a phone link; looks back a bounded distance only. */
const PHONE_LINK_BEFORE =
  /(?<=(?:^|[^\p{L}\p{N}_.-])(?:(?:wa|t)\.me\/|signal\.me\/#p\/|(?:tel|sms|smsto|mms|mmsto|callto|facetime|facetime-audio|sip|sips|whatsapp|viber|skype|fax):\/\/))/iuy;
/** Matches (empty) where an ARN's account id starts: `arn:aws:kms:eu-west-1:123456789012:key/…`. */
const AWS_ACCOUNT_IN_ARN = /(?<=\barn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]*:)(?=\d{12}:)/y;
const EXTENSION_AFTER = /(?:x|ext\.?|extension)\p{Nd}{1,6}(?![\p{L}\p{N}_/\\]|[-.][\p{L}\p{N}])/iuy;
/** Dates: 2026-11-30, 2026/11/30, 30.11.2026, 30/11/2026, 11/30/2026 (a date of ≤ 8 digits hides no phone). */
const DATES = [
  /^(?:19|20)\d\d([-/.])(?:0?[1-9]|1[0-2])\1(?:0?[1-9]|[12]\d|3[01])$/,
  /^(?:0?[1-9]|[12]\d|3[01])([/.])(?:0?[1-9]|1[0-2])\1(?:19|20)\d\d$/,
  /^(?:0?[1-9]|1[0-2])\/(?:0?[1-9]|[12]\d|3[01])\/(?:19|20)\d\d$/,
];
/** A UUID that happens to hold no hex letter: with a version (1–8) and variant (8, 9) digit, as generators write. */
const DIGIT_UUID = /^\d{8}-\d{4}-[1-8]\d{3}-[89]\d{3}-\d{12}$/;
const SSN = /^\d{3}-\d{2}-\d{4}$/;
const SPACE_RUN = new RegExp(`[${SPACE}]+`, 'gu');
const IS_SPACE = new RegExp(`[${SPACE}]`, 'u');
const IS_INVISIBLE = new RegExp(`[${INVISIBLE}]`, 'u');
const IS_DIGIT = /\p{Nd}/u;
const ALL_DIGITS = /\p{Nd}/gu;
/** Any UTF-16 unit beyond ASCII (surrogates included). */
const BEYOND_ASCII = /[\u0080-\uFFFF]/;
const IS_DASH = /[-\u2010-\u2015\u2212\uFF0D]/u;

/**
 * How the text touches one end of a number: not at all, as part of an identifier, as a word, as a phone link, or as
 * a path (`…/` before it: a segment only when the path goes on after it, else a slash in front of a number).
 */
type Contact = 'free' | 'identifier' | 'word' | 'link' | 'path';

/** Masks e-mail addresses, IBANs, card-like, account, US SSN and phone numbers in free text; identifiers pass. */
export function redactPii(text: string): string {
  return maskSpokenNumbers(text.replace(EMAIL, '[EMAIL]').replace(IBAN, maskIban)).replace(
    NUMBER,
    (number: string, start: number, whole: string) => maskNumber(whole, start, number),
  );
}

/** A spoken digit: how callers say a number and how the agent reads one back ("four one five, five five five…"). */
const SPOKEN_DIGITS: Record<string, string> = {
  zero: '0',
  oh: '0',
  o: '0',
  nought: '0',
  one: '1',
  two: '2',
  three: '3',
  four: '4',
  five: '5',
  six: '6',
  seven: '7',
  eight: '8',
  nine: '9',
};
/** Words that stand for more than one digit ("fifteen", "twelve hundred"): counted, never read as digit values. */
const SPOKEN_GROUPS: Record<string, number> = {
  ...Object.fromEntries(
    'ten eleven twelve thirteen fourteen fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy eighty ninety hundred'
      .split(' ')
      .map((word) => [word, 2]),
  ),
  thousand: 3,
};
/** "double five" is 55, "triple seven" 777. */
const SPOKEN_REPEATS: Record<string, number> = { double: 2, triple: 3 };
/** Only the words that can be part of a spoken number, and numerals: anything between two of them is their gap. */
const SPOKEN_WORD = `(?<![\\p{L}\\p{M}])(?:${[...Object.keys(SPOKEN_DIGITS), ...Object.keys(SPOKEN_GROUPS), ...Object.keys(SPOKEN_REPEATS)].join('|')})(?![\\p{L}\\p{M}])`;
const ANY_SPOKEN_WORD = new RegExp(SPOKEN_WORD, 'iu');
const SPOKEN_TOKEN = new RegExp(`${SPOKEN_WORD}|(?<!\\p{Nd})\\p{Nd}+`, 'giu');
/** Between two spoken digits: spaces, a comma or full stop with or without them (ASR punctuates pauses), or a hyphen. */
const SPOKEN_GAP = new RegExp(
  `^(?:[${SPACE}${INVISIBLE}]*[,.;:][${SPACE}${INVISIBLE}]*|[${SPACE}${INVISIBLE}]+|[${SPACE}]*[-\u2010-\u2015][${SPACE}]*)$`,
  'u',
);
/** A numeral among spoken digits ("415 five five five 0123") is joined by spaces or a comma only: never a date. */
const NUMERAL_GAP = new RegExp(`^[${SPACE}]*,?[${SPACE}]+$`, 'u');
const MAX_SPOKEN_GAP = 8;
const NUMERAL_NEIGHBOUR = /[\p{L}\p{N}\p{M}_./\\%+-]/u;

interface SpokenRun {
  start: number;
  end: number;
  /** The digits said, while every word was a digit (a run with "fifteen" in it is only counted). */
  digits: string | undefined;
  count: number;
  /** Spoken digit words in the run (a run of numerals alone is the number pattern's). */
  words: number;
  repeat: number;
}

/**
 * Numbers said in words, as ASR writes them and as the model writes what the agent will say: a run of spoken digits
 * (and numerals standing alone) of 8 or more digits is masked as a number in digits would be. Counting is generous on
 * purpose ("twelve hundred" counts four): a long amount read out in words may be masked, a phone number never missed.
 */
function maskSpokenNumbers(text: string): string {
  // Numerals alone are the number pattern's: without a spoken word there is nothing to do here.
  if (!ANY_SPOKEN_WORD.test(text)) return text;
  let masked = '';
  let copiedTo = 0;
  let run: SpokenRun | undefined;
  const close = () => {
    if (run && run.words > 0 && run.count >= 8) {
      masked += text.slice(copiedTo, run.start) + numberLabel(run.count, run.digits);
      copiedTo = run.end;
    }
    run = undefined;
  };
  let previousNumeral = false;
  for (const match of text.matchAll(SPOKEN_TOKEN)) {
    const token = match[0];
    const start = match.index;
    const end = start + token.length;
    const numeral = IS_DIGIT.test(token[0]);
    const word = token.toLowerCase();
    const standalone =
      !numeral || (!NUMERAL_NEIGHBOUR.test(text[start - 1] ?? ' ') && !NUMERAL_NEIGHBOUR.test(text[end] ?? ' '));
    if (!standalone) {
      close();
      continue;
    }
    const gap = run ? text.slice(run.end, start) : '';
    // A longer gap is no pause between digits (and the short test keeps the gap patterns linear).
    const joined = gap.length <= MAX_SPOKEN_GAP && (numeral || previousNumeral ? NUMERAL_GAP : SPOKEN_GAP).test(gap);
    if (run && !joined) close();
    run ??= { start, end, digits: '', count: 0, words: 0, repeat: 1 };
    run.end = end;
    previousNumeral = numeral;
    if (numeral) {
      const digits = canonicalise(token).replace(/\D/g, '');
      run.digits = run.digits === undefined ? undefined : run.digits + digits.repeat(run.repeat);
      run.count += digits.length * run.repeat;
      run.repeat = 1;
    } else if (word in SPOKEN_REPEATS) {
      run.repeat = SPOKEN_REPEATS[word];
      run.count += 1;
    } else if (word in SPOKEN_DIGITS) {
      run.words += 1;
      run.digits = run.digits === undefined ? undefined : run.digits + SPOKEN_DIGITS[word].repeat(run.repeat);
      // "double" already counted one of its digits.
      run.count += run.repeat === 1 ? 1 : run.repeat - 1;
      run.repeat = 1;
    } else {
      run.words += 1;
      run.digits = undefined;
      run.count += SPOKEN_GROUPS[word];
      run.repeat = 1;
    }
  }
  close();
  return masked + text.slice(copiedTo);
}

interface Group {
  from: number;
  to: number;
}

function maskNumber(text: string, start: number, number: string): string {
  // Counters, sizes and times: nothing shorter than 8 digits is PII, whatever touches it.
  if (countDigits(number) < 8) return number;
  const end = start + number.length;
  let before = contactBefore(text, start, number);
  const after = contactAfter(text, end, number, before);
  if (before === 'path') before = after === 'identifier' ? 'identifier' : 'free';
  const groups = splitGroups(number);
  const last = groups.length - 1;
  const kept = groups.map(({ from, to }) => {
    const canonical = canonicalise(number.slice(from, to)).replace(/^\(|\)$/g, '');
    return DATES.some((date) => date.test(canonical)) || DIGIT_UUID.test(canonical);
  });
  if (before === 'identifier') kept[0] = true;
  if (after === 'identifier') kept[last] = true;

  let masked = '';
  let copiedTo = 0;
  for (let first = 0; first <= last; first++) {
    if (kept[first]) continue;
    let final = first;
    while (final < last && !kept[final + 1]) final++;
    const gluedBefore = first === 0 && before === 'word';
    const gluedAfter = final === last && after === 'word';
    let [from, to] = [first, final];
    let label = classify(number, groups, from, to, gluedBefore || gluedAfter ? 10 : 8);
    if (label === undefined && (gluedBefore || gluedAfter)) {
      // Too short for a number glued to a word: the glued group belongs to the word, the rest stands alone.
      if (gluedBefore) from++;
      if (gluedAfter) to--;
      label = from <= to ? classify(number, groups, from, to, 8) : undefined;
    }
    if (label !== undefined) {
      masked += number.slice(copiedTo, groups[from].from) + label;
      copiedTo = groups[to].to;
    }
    first = final;
  }
  return masked + number.slice(copiedTo);
}

/** The label for the digits of groups `from..to`, or undefined when they are not PII. */
function classify(number: string, groups: Group[], from: number, to: number, minDigits: number): string | undefined {
  const canonical = canonicalise(number.slice(groups[from].from, groups[to].to));
  if (SSN.test(canonical)) return '[SSN]';
  const digits = canonical.replace(/\D/g, '');
  if (digits.length < minDigits) return undefined;
  return numberLabel(digits.length, canonical.startsWith('+') ? undefined : digits);
}

/**
 * The label of a number of `count` digits: a card when its digits (when known, and not led by `+`) are 13–19 with a
 * valid Luhn digit, else a phone number up to 15 digits, a number beyond.
 */
function numberLabel(count: number, digits: string | undefined): string {
  if (digits !== undefined && digits.length >= 13 && digits.length <= 19 && luhnValid(digits)) return '[CARD]';
  return count <= 15 ? '[PHONE]' : '[NUMBER]';
}

function countDigits(number: string): number {
  let count = 0;
  for (const _ of number.matchAll(ALL_DIGITS)) count++;
  return count;
}

/** The space-separated groups of a number, as offsets into it. */
function splitGroups(number: string): Group[] {
  if (!IS_SPACE.test(number)) return [{ from: 0, to: number.length }];
  const groups: Group[] = [];
  let from = 0;
  for (const space of number.matchAll(SPACE_RUN)) {
    groups.push({ from, to: space.index });
    from = space.index + space[0].length;
  }
  groups.push({ from, to: number.length });
  return groups;
}

/** ASCII digits, "-" for every dash, a space for any space, invisible characters dropped; for classifying only. */
function canonicalise(encoded: string): string {
  const span = encoded.includes('%')
    ? encoded.replace(ENCODED_PUNCT_ANYWHERE, (byte) => String.fromCharCode(Number.parseInt(byte.slice(1), 16)))
    : encoded;
  if (!BEYOND_ASCII.test(span)) return span;
  let out = '';
  for (const char of span) {
    if (IS_DIGIT.test(char)) out += digitValue(char);
    else if (IS_INVISIBLE.test(char)) continue;
    else if (IS_SPACE.test(char)) out += ' ';
    else if (IS_DASH.test(char)) out += '-';
    else if (char === '\uFF0B') out += '+';
    else if (char === '\uFF08') out += '(';
    else if (char === '\uFF09') out += ')';
    else out += char;
  }
  return out;
}

const digitValues = new Map<string, number>();

/** Unicode assigns every decimal digit in runs of ten, 0 to 9: the value is the distance from the run's zero. */
function digitValue(char: string): number {
  const code = char.codePointAt(0)!;
  if (code < 0x80) return code - 0x30;
  let value = digitValues.get(char);
  if (value === undefined) {
    let zero = code;
    while (IS_DIGIT.test(String.fromCodePoint(zero - 1))) zero--;
    value = (code - zero) % 10;
    digitValues.set(char, value);
  }
  return value;
}

function contactBefore(text: string, start: number, number: string): Contact {
  const previous = charBefore(text, start);
  if (previous === undefined) return 'free';
  // A percent-encoded byte in front (`%20`, `%3A`) is a separator, though it ends in a hex digit or letter; an
  // encoded slash (`recordings%2F…`) is a path's like a slash.
  const encoded = start >= 3 ? text.slice(start - 3, start) : '';
  if (ENCODED_BYTE.test(encoded)) return ENCODED_SLASH.test(encoded) && inPath(text, start - 3) ? 'path' : 'free';
  PHONE_LINK_BEFORE.lastIndex = start;
  if (PHONE_LINK_BEFORE.test(text)) return 'link';
  AWS_ACCOUNT_IN_ARN.lastIndex = start;
  if (AWS_ACCOUNT_IN_ARN.test(text)) return 'identifier';
  if (LETTER.test(previous)) {
    if (UNSPACED_SCRIPT.test(previous)) return 'free';
    let wordStart = start - previous.length;
    for (let char = charBefore(text, wordStart); char !== undefined && LETTER.test(char); ) {
      wordStart -= char.length;
      char = charBefore(text, wordStart);
    }
    const beforeWord = charBefore(text, wordStart);
    if (beforeWord === undefined || !WORD_NEIGHBOUR.test(beforeWord)) return 'word';
    return SLASH.test(beforeWord) ? 'path' : 'identifier';
  }
  if (JOINER.test(previous)) {
    // Keys and ids replace "+" (`recordings/-14155550123/…`): a "+" after a joiner is a phone number's.
    if (LEADING_PLUS.test(number)) return 'free';
    const beforeThat = charBefore(text, start - 1);
    if (!SLASH.test(previous) && beforeThat !== undefined && LETTER_OR_DIGIT.test(beforeThat)) return 'identifier';
    // After a path (`recordings/-14155550123/…`), but not after a slash in front of a number (`/4155550123`).
    const slash = SLASH.test(previous)
      ? start - 1
      : beforeThat !== undefined && SLASH.test(beforeThat)
        ? start - 2
        : -1;
    return slash >= 0 && inPath(text, slash) ? 'path' : 'free';
  }
  return IDENTIFIER_CHAR.test(previous) ? 'identifier' : 'free';
}

/** Whether a letter comes shortly before the slash at `slash`, in the same token: the slash is a path's. */
function inPath(text: string, slash: number): boolean {
  for (let index = slash - 1; index >= Math.max(0, slash - PATH_LOOKBACK); index--) {
    const char = text[index];
    if (IS_SPACE.test(char)) return false;
    if (LETTER.test(char)) return true;
  }
  return false;
}

function contactAfter(text: string, end: number, number: string, before: Contact): Contact {
  const next = charAt(text, end);
  if (next === undefined) return 'free';
  EXTENSION_AFTER.lastIndex = end;
  if (EXTENSION_AFTER.test(text)) return 'free';
  if (LETTER.test(next)) {
    if (UNSPACED_SCRIPT.test(next)) return 'free';
    let wordEnd = end;
    for (let char = charAt(text, wordEnd); char !== undefined && LETTER.test(char); char = charAt(text, wordEnd)) {
      wordEnd += char.length;
    }
    // Digits and then hex letters, as long as the shortest common hex id, are one (`1234567890abcdef`).
    const word = text.slice(end, wordEnd);
    if (HEX_LETTERS.test(word) && BARE_DIGITS.test(number) && number.length + word.length >= 16) return 'identifier';
    return standsAloneAfter(text, wordEnd, true) ? 'word' : 'identifier';
  }
  // A path goes on after a number that is itself a path segment; a number that starts a token is no segment.
  const segment = before === 'identifier' || before === 'path';
  if (next === '/' || next === '\\' || next === '_' || ENCODED_SLASH.test(text.slice(end, end + 3))) {
    return segment ? 'identifier' : 'free';
  }
  return standsAloneAfter(text, end, before === 'word' || before === 'path') ? 'free' : 'identifier';
}

/** Whether what starts at `index` does not continue an identifier (`strict`: nor a file extension or `-suffix`). */
function standsAloneAfter(text: string, index: number, strict: boolean): boolean {
  const next = charAt(text, index);
  if (next === undefined) return true;
  if (IDENTIFIER_CHAR.test(next)) return false;
  if (next === '-' || next === '.') {
    const nextButOne = charAt(text, index + 1);
    if (nextButOne !== undefined && (IS_DIGIT.test(nextButOne) || (strict && LETTER_OR_DIGIT.test(nextButOne))))
      return false;
  }
  return true;
}

function charBefore(text: string, index: number): string | undefined {
  if (index <= 0) return undefined;
  const low = text.charCodeAt(index - 1);
  const pair = index >= 2 && low >= 0xdc00 && low <= 0xdfff && /[\uD800-\uDBFF]/.test(text[index - 2]);
  return pair ? text.slice(index - 2, index) : text[index - 1];
}

function charAt(text: string, index: number): string | undefined {
  if (index >= text.length) return undefined;
  return String.fromCodePoint(text.codePointAt(index)!);
}

/** Luhn's check digit, as every payment card number carries. */
function luhnValid(digits: string): boolean {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let digit = digits.charCodeAt(digits.length - 1 - i) - 0x30;
    if (i % 2 === 1) digit = digit * 2 > 9 ? digit * 2 - 9 : digit * 2;
    sum += digit;
  }
  return sum % 10 === 0;
}

/** The IBAN and what follows it; the pattern may have taken a capitalised word after it for a group of four. */
function maskIban(candidate: string): string {
  const groups = candidate.split(' ');
  for (let count = groups.length; count > 0; count--) {
    if (ibanChecksumValid(groups.slice(0, count).join(''))) return ['[IBAN]', ...groups.slice(count)].join(' ');
  }
  return candidate;
}

/** ISO 13616: the country code and check digits moved to the end, letters as 10–35, the whole ≡ 1 mod 97. */
function ibanChecksumValid(compact: string): boolean {
  if (compact.length < 15 || compact.length > 34) return false;
  let remainder = 0;
  for (const char of compact.slice(4) + compact.slice(0, 4)) {
    const value = Number.parseInt(char, 36);
    remainder = (value > 9 ? remainder * 100 + value : remainder * 10 + value) % 97;
  }
  return remainder === 1;
}

/**
 * Applies `redact` to every string inside a JSON value, object keys included; returns a new value. A number is redacted too when its
 * digits would be (a model may send a phone number as a JSON number): it becomes the masked string. Counters, sizes
 * and durations are too short to look like PII and stay numbers.
 */
export function redactDeep(value: unknown, redact: (text: string) => string): unknown {
  if (typeof value === 'string') return redact(value);
  if (typeof value === 'number') {
    const digits = String(value);
    const masked = redact(digits);
    return masked === digits ? value : masked;
  }
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, redact));
  if (value !== null && typeof value === 'object') {
    // Keys are text a model writes too (`{"+14155550123": "callback"}`); two keys masked alike stay two entries.
    const entries: [string, unknown][] = [];
    const taken = new Set<string>();
    for (const [key, item] of Object.entries(value)) {
      let masked = redact(key);
      for (let copy = 2; taken.has(masked); copy++) masked = `${redact(key)}#${copy}`;
      taken.add(masked);
      entries.push([masked, redactDeep(item, redact)]);
    }
    return Object.fromEntries(entries);
  }
  return value;
}
