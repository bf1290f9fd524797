import { z } from 'zod';
import { describeIssues } from './common';

/** `true`/`false` in an environment variable (anything else is an error naming the variable). */
export const envBoolean = z.enum(['true', 'false']).transform((value) => value === 'true');

/** A JSON value in an environment variable; a value that is not JSON reaches `schema` as the string, which names it. */
export const envJson = <T extends z.ZodType>(schema: T) =>
  z.preprocess((value) => {
    if (typeof value !== 'string') return value;
    try {
      return JSON.parse(value);
    } catch {
      return value;
    }
  }, schema);

type ErrorClass = new (message: string) => Error;

/**
 * Validates a process environment against `schema`; on failure throws `ErrorClass` with one message naming every bad
 * variable: `invalid <what>: MCP_PORT: …; LIVEKIT_URL: …`.
 */
export function parseEnvironment<T extends z.ZodType>(
  schema: T,
  env: NodeJS.ProcessEnv,
  what: string,
  ErrorClass: ErrorClass = Error,
): z.infer<T> {
  const result = schema.safeParse(env);
  if (!result.success) throw new ErrorClass(`invalid ${what}: ${describeIssues(result.error.issues)}`);
  return result.data;
}
