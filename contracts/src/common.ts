import { z } from 'zod';

/** Bump when a record's shape changes incompatibly; readers reject versions they do not know. */
export const SCHEMA_VERSION = 1 as const;

/** E.164: '+', country code, up to 15 digits in all, no leading zero. */
export const e164Schema = z
  .string()
  .regex(/^\+[1-9]\d{6,14}$/, 'must be an E.164 number such as +14155550123');

/** What the carrier gives us when the caller withheld their number. */
export const ANONYMOUS_CALLER = 'anonymous' as const;

export const callerNumberSchema = z.union([e164Schema, z.literal(ANONYMOUS_CALLER)]);

/** A call id is our own stable id for one phone call (also the LiveKit room name's suffix). */
export const callIdSchema = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9._:-]+$/, 'may hold only letters, digits, ".", "_", ":" and "-"');

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
