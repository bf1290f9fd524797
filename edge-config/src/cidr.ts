import { z } from 'zod';

const OCTET = /^(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)$/;

export function isIpv4(value: string): boolean {
  const parts = value.split('.');
  return parts.length === 4 && parts.every((part) => OCTET.test(part));
}

/** Parses "a.b.c.d/len"; returns undefined for anything else (including host bits set past the prefix). */
export function parseIpv4Cidr(value: string): { address: string; prefixLength: number } | undefined {
  // The prefix length as written canonically: /8, never /08 or /00.
  const match = /^([^/]+)\/(0|[1-9]\d?)$/.exec(value);
  if (!match) return undefined;
  const [, address, lengthText] = match;
  const prefixLength = Number(lengthText);
  if (!isIpv4(address) || prefixLength > 32) return undefined;
  return { address, prefixLength };
}

export function ipv4ToInt(address: string): number {
  return address.split('.').reduce((acc, octet) => acc * 256 + Number(octet), 0);
}

/** True when the address has no bits set beyond the prefix (10.0.0.0/8 yes, 10.0.0.1/8 no). */
export function isNetworkAddress(address: string, prefixLength: number): boolean {
  const hostBits = 32 - prefixLength;
  return hostBits === 0 || ipv4ToInt(address) % 2 ** hostBits === 0;
}

export const ipv4Schema = z.string().refine(isIpv4, { message: 'is not a valid IPv4 address' });

export const ipv4CidrSchema = z.string().superRefine((value, ctx) => {
  const parsed = parseIpv4Cidr(value);
  if (!parsed) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a valid IPv4 CIDR (a.b.c.d/0-32)` });
    return;
  }
  if (!isNetworkAddress(parsed.address, parsed.prefixLength)) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" has host bits set beyond /${parsed.prefixLength}; write the network address`,
    });
  }
});
