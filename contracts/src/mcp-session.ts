import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { attestationLevelSchema } from './caller';
import { callerNumberSchema, callIdSchema } from './common';

/**
 * The agent binds each MCP request to the call it serves with this header, signed with a secret the model never sees.
 * Tools take the caller's number from here, never from the model's arguments.
 */
export const MCP_SESSION_HEADER = 'x-voice-intake-session';

export const mcpSessionSchema = z.object({
  callId: callIdSchema,
  callerNumber: callerNumberSchema,
  /** How far the network vouched for callerNumber (the SIP edge's level); absent means none, the least trust. */
  attestation: attestationLevelSchema.default('none'),
  /** Seconds since the epoch. */
  issuedAt: z.number().int().nonnegative(),
  expiresAt: z.number().int().nonnegative(),
});

export type McpSession = z.infer<typeof mcpSessionSchema>;

function signature(encodedPayload: string, secret: string): Buffer {
  return createHmac('sha256', secret).update(encodedPayload).digest();
}

/** `<base64url(JSON payload)>.<base64url(HMAC-SHA256)>`. */
export function signSessionHeader(session: z.input<typeof mcpSessionSchema>, secret: string): string {
  const encoded = Buffer.from(JSON.stringify(mcpSessionSchema.parse(session))).toString('base64url');
  return `${encoded}.${signature(encoded, secret).toString('base64url')}`;
}

/** A session for `ttlSeconds` from `now`. */
export function issueSessionHeader(
  binding: Pick<McpSession, 'callId' | 'callerNumber'> & Partial<Pick<McpSession, 'attestation'>>,
  secret: string,
  ttlSeconds = 3_600,
  now = Date.now(),
): string {
  const issuedAt = Math.floor(now / 1000);
  return signSessionHeader({ ...binding, issuedAt, expiresAt: issuedAt + ttlSeconds }, secret);
}

export type SessionVerdict = { ok: true; session: McpSession } | { ok: false; reason: string };

/** Checks form, signature (constant time), schema and expiry. */
export function verifySessionHeader(value: string | undefined, secret: string, now = Date.now()): SessionVerdict {
  if (!value) return { ok: false, reason: 'missing' };
  const [encoded, sent, extra] = value.split('.');
  if (!encoded || !sent || extra !== undefined) return { ok: false, reason: 'malformed' };
  const expected = signature(encoded, secret);
  const given = Buffer.from(sent, 'base64url');
  if (given.length !== expected.length || !timingSafeEqual(given, expected))
    return { ok: false, reason: 'bad signature' };
  let payload: unknown;
  try {
    payload = JSON.parse(Buffer.from(encoded, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const parsed = mcpSessionSchema.safeParse(payload);
  if (!parsed.success) return { ok: false, reason: 'malformed' };
  if (parsed.data.expiresAt * 1000 <= now) return { ok: false, reason: 'expired' };
  return { ok: true, session: parsed.data };
}
