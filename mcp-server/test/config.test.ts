import { describe, expect, it } from 'vitest';
import { readServerEnv } from '../src/config';

const BASE = { MCP_AUTH_TOKEN: 'a'.repeat(16), AUDIT_SEAL_SECRET: 's'.repeat(32) };

describe('MCP server environment', () => {
  it('takes a default transfer queue only when it is one of the targets, never an inherited name', () => {
    const targets = JSON.stringify({ front_desk: 'sip:desk@pbx.acme-clinic.com' });
    expect(readServerEnv({ ...BASE, TRANSFER_TARGETS: targets }).DEFAULT_TRANSFER_QUEUE).toBe('front_desk');
    for (const queue of ['billing', 'constructor', 'toString', '__proto__'])
      expect(() => readServerEnv({ ...BASE, TRANSFER_TARGETS: targets, DEFAULT_TRANSFER_QUEUE: queue }), queue).toThrow(
        /DEFAULT_TRANSFER_QUEUE: is not one of TRANSFER_TARGETS \(front_desk\)/,
      );
  });
});
