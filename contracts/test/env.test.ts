import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { describeIssues, envBoolean, envJson, parseEnvironment } from '../src';

describe('describeIssues', () => {
  it('names array elements by index and every unknown key by its full path', () => {
    const schema = z.strictObject({ edge: z.strictObject({ allowlist: z.array(z.string().min(3)) }) });
    const result = schema.safeParse({ edge: { allowlist: ['ok!', 'x'], extra: 1, other: 2 }, top: true });
    expect(result.success).toBe(false);
    const message = describeIssues(result.error!.issues);
    expect(message).toContain('edge.allowlist[1]: Too small');
    expect(message).toContain('edge.extra: unknown key; edge.other: unknown key');
    expect(message).toContain('top: unknown key');
  });

  it('says (root) for an issue about the whole value', () => {
    expect(describeIssues(z.object({}).safeParse(7).error!.issues)).toMatch(/^\(root\): /);
  });
});

describe('parseEnvironment', () => {
  class ThingError extends Error {}
  const schema = z.object({
    PORT: z.coerce.number().int().max(65535),
    ON: envBoolean,
    MAP: envJson(z.record(z.string(), z.string())),
  });

  it('returns the parsed values', () => {
    expect(parseEnvironment(schema, { PORT: '80', ON: 'true', MAP: '{"a":"b"}' }, 'thing')).toEqual({
      PORT: 80,
      ON: true,
      MAP: { a: 'b' },
    });
  });

  it('throws the given error class naming every bad variable, a non-JSON value included', () => {
    const parse = () =>
      parseEnvironment(schema, { PORT: '70000', ON: 'yes', MAP: '{oops' }, 'thing environment', ThingError);
    expect(parse).toThrow(ThingError);
    expect(parse).toThrow(/^invalid thing environment: PORT: .*; ON: .*; MAP: /);
  });
});
