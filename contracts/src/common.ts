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

/** `a.b.0: message; c: message`: every zod issue on one line, each naming its field. */
export function describeIssues(issues: readonly { path: readonly PropertyKey[]; message: string }[]): string {
  return issues.map((issue) => `${issue.path.map(String).join('.') || '(root)'}: ${issue.message}`).join('; ');
}
