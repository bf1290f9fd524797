/**
 * Transcribe's streaming PII handling, as far as a script needs it: identification lists the entities of a final;
 * redaction also replaces each with `[PII]` in the transcript and its items. Types as the service names them.
 */

export const PII_TYPES = ['NAME', 'EMAIL', 'SSN', 'CREDIT_DEBIT_NUMBER', 'PHONE'] as const;
export type PiiType = (typeof PII_TYPES)[number];

export interface PiiSpan {
  type: PiiType;
  /** Character offsets in the text. */
  start: number;
  end: number;
  content: string;
}

const DETECTORS: [PiiType, RegExp][] = [
  ['EMAIL', /[\w.+-]+@[\w-]+(?:\.[\w-]+)+/g],
  ['SSN', /\b\d{3}-\d{2}-\d{4}\b/g],
  ['CREDIT_DEBIT_NUMBER', /\b(?:\d[ -]?){12,18}\d\b/g],
  ['PHONE', /\+?\(?\d[\d ()-]{5,16}\d\b/g],
  ['NAME', /(?<=\b(?:[Tt]his is|[Mm]y name is|I am|I'm) )[A-Z][a-z]+(?: [A-Z][a-z]+){0,3}/g],
];

/** The PII in `text`, earlier detectors winning where spans overlap; only `types` when given. */
export function findPii(text: string, types?: ReadonlySet<string>): PiiSpan[] {
  const spans: PiiSpan[] = [];
  for (const [type, pattern] of DETECTORS) {
    if (types && !types.has(type)) continue;
    for (const match of text.matchAll(pattern)) {
      const start = match.index;
      const end = start + match[0].length;
      if (spans.some((span) => start < span.end && end > span.start)) continue;
      spans.push({ type, start, end, content: match[0] });
    }
  }
  return spans.sort((a, b) => a.start - b.start);
}

/** `text` with every span replaced by `[PII]`, and the spans' places in the new text. */
export function redactPii(text: string, spans: PiiSpan[]): { text: string; spans: PiiSpan[] } {
  let out = '';
  let from = 0;
  const moved: PiiSpan[] = [];
  for (const span of spans) {
    out += text.slice(from, span.start);
    moved.push({ ...span, start: out.length, end: out.length + 5 });
    out += '[PII]';
    from = span.end;
  }
  return { text: out + text.slice(from), spans: moved };
}

/** Parses `x-amzn-transcribe-pii-entity-types` (comma-separated; ALL or absent = every type). */
export function piiTypesOf(header: string | undefined): { types?: Set<string>; unknown: string[] } {
  if (!header) return { unknown: [] };
  const names = header
    .split(',')
    .map((name) => name.trim())
    .filter(Boolean);
  if (names.includes('ALL')) return { unknown: [] };
  const known = new Set<string>([
    ...PII_TYPES,
    'BANK_ACCOUNT_NUMBER',
    'BANK_ROUTING',
    'CREDIT_DEBIT_CVV',
    'CREDIT_DEBIT_EXPIRY',
    'PIN',
    'ADDRESS',
  ]);
  return { types: new Set(names), unknown: names.filter((name) => !known.has(name)) };
}
