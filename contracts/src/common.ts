import { z } from 'zod';

/** Bump when a record's shape changes incompatibly; readers reject versions they do not know. */
export const SCHEMA_VERSION = 1 as const;

/** E.164: '+', country code, up to 15 digits in all, no leading zero. */
export const e164Schema = z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 number such as +14155550123');

/** What the carrier gives us when the caller withheld their number. */
export const ANONYMOUS_CALLER = 'anonymous' as const;

export const callerNumberSchema = z.union([e164Schema, z.literal(ANONYMOUS_CALLER)]);

/** A call id is our own stable id for one phone call (also the LiveKit room name's suffix). */
export const callIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'may hold only letters, digits, ".", "_", ":" and "-"')
  // A call id becomes a path segment (S3 keys, local folders): "." and ".." would name the folder or its parent.
  .refine((id) => id !== '.' && id !== '..', 'must not be "." or ".."');

export const isoTimestampSchema = z.iso.datetime({ offset: true });

export type CallerNumber = z.infer<typeof callerNumberSchema>;
export type CallId = z.infer<typeof callIdSchema>;

/** `edge.allowlist[0]` from zod's path ['edge', 'allowlist', 0]. */
export function formatIssuePath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((acc, segment) => {
    if (typeof segment === 'number') return `${acc}[${segment}]`;
    return acc === '' ? String(segment) : `${acc}.${String(segment)}`;
  }, '');
}

/** What describeIssues needs of a zod issue (unknown keys arrive as one issue listing them all). */
export interface DescribableIssue {
  readonly code?: string;
  readonly path: readonly PropertyKey[];
  readonly message: string;
  readonly keys?: readonly string[];
}

/**
 * Every zod issue on one line, each naming its field: `edge.allowlist[0]: message; extra: unknown key`. The one
 * formatter for operator config, environments, renderer input and records alike.
 */
export function describeIssues(issues: readonly DescribableIssue[]): string {
  return issues
    .flatMap((issue) =>
      issue.code === 'unrecognized_keys' && issue.keys
        ? issue.keys.map((key) => `${formatIssuePath([...issue.path, key])}: unknown key`)
        : [`${formatIssuePath(issue.path) || '(root)'}: ${issue.message}`],
    )
    .join('; ');
}

/**
 * Characters that must not reach a stored field a person or a model reads back: C0/C1 controls other than tab and
 * line breaks (terminal escapes such as ESC[31m), DEL, and the bidi embeddings, overrides and isolates that make text
 * display in another order than it is stored (U+202A-U+202E, U+2066-U+2069).
 */
// biome-ignore lint/suspicious/noControlCharactersInRegex: matching control characters is this pattern's purpose
const UNSAFE_TEXT = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/u;

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

/** Why a string may not be stored, or undefined when it may: unsafe characters or a lone surrogate. */
export function unsafeTextReason(text: string): string | undefined {
  if (LONE_SURROGATE.test(text)) return 'must not contain a lone surrogate (broken UTF-16)';
  const found = UNSAFE_TEXT.exec(text);
  if (found) {
    const code = found[0].codePointAt(0)!.toString(16).toUpperCase().padStart(4, '0');
    return `must not contain control or bidi-override characters (found U+${code})`;
  }
  return undefined;
}

/**
 * A string that is stored and read back: control and bidi-override characters and lone surrogates are refused (the
 * error names the field), the rest is normalised to NFC so one text has one form.
 */
export function storedText<T extends z.ZodString>(base: T) {
  return base
    .superRefine((text, ctx) => {
      const reason = unsafeTextReason(text);
      if (reason) ctx.addIssue({ code: 'custom', message: reason });
    })
    .transform((text) => text.normalize('NFC'));
}
