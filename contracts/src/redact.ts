/** Patterns for PII that callers say and models repeat: replaced before anything is written to a log. */
const PATTERNS: [RegExp, string][] = [
  [/\b[\w.+-]+@[\w-]+(\.[\w-]+)+\b/g, '[EMAIL]'],
  [/\b(?:\d[ -]?){13,19}\b/g, '[CARD]'],
  [/\b\d{3}-\d{2}-\d{4}\b/g, '[SSN]'],
  [/(\+?\d[\d ().-]{7,}\d)/g, '[PHONE]'],
];

/** Masks e-mail addresses, card-like numbers, US SSNs and phone numbers in free text. */
export function redactPii(text: string): string {
  return PATTERNS.reduce((current, [pattern, replacement]) => current.replace(pattern, replacement), text);
}

/** Applies `redact` to every string inside a JSON value; returns a new value. */
export function redactDeep(value: unknown, redact: (text: string) => string): unknown {
  if (typeof value === 'string') return redact(value);
  if (Array.isArray(value)) return value.map((item) => redactDeep(item, redact));
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, redactDeep(item, redact)]));
  }
  return value;
}
