/*
 * Every string of a record is scanned (no list of "free text" fields to keep up to date: a tool argument, a model
 * response or a new payload field is covered the day it appears). What keeps identifiers intact is the patterns'
 * context: a number counts as PII only when it stands on its own, the way a person writes it. Digits glued to an
 * identifier (`recordings/<call>/part-000001.wav`, `2026-11-30T17:32:56.123Z`, a UUID, `call-1764523976123`) are
 * not: they follow a letter, digit, "_", "/" or "\", or a letter/digit and then "-" or ".", or are followed by a
 * letter, digit, "_", "/", "\", or "-"/"." and a digit.
 */
const STANDS_ALONE_BEFORE = String.raw`(?<![\p{L}\p{N}_/\\]|[\p{L}\p{N}_][-.])`;
const STANDS_ALONE_AFTER = String.raw`(?![\p{L}\p{N}_/\\]|[-.]\p{N})`;
/** A calendar date written the ISO way (2026-11-30) is a date, not an 8-digit phone number. */
const NOT_AN_ISO_DATE = String.raw`(?!(?:19|20)\d\d-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12]\d|3[01])(?!\d))`;

function standalone(body: string): RegExp {
  return new RegExp(`${STANDS_ALONE_BEFORE}${body}${STANDS_ALONE_AFTER}`, 'gu');
}

/** Patterns for PII that callers say and models repeat: replaced before anything is written to a log. */
const PATTERNS: [RegExp, string][] = [
  [/\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b/g, '[EMAIL]'],
  [standalone(String.raw`\d(?:[ -]?\d){12,18}`), '[CARD]'],
  [standalone(String.raw`\d{3}-\d{2}-\d{4}`), '[SSN]'],
  // +country code, (area code), 8 to 15 digits (E.164's most) grouped by spaces, dots, dashes or parentheses.
  [standalone(String.raw`${NOT_AN_ISO_DATE}[+(]?\d(?:[ ().-]{0,2}\d){7,14}`), '[PHONE]'],
];

/** Masks e-mail addresses, card-like numbers, US SSNs and phone numbers in free text; identifiers pass as they are. */
export function redactPii(text: string): string {
  return PATTERNS.reduce((current, [pattern, replacement]) => current.replace(pattern, replacement), text);
}

/**
 * Applies `redact` to every string inside a JSON value; returns a new value. A number is redacted too when its
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
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactDeep(item, redact)]));
  }
  return value;
}
