import {
  ANONYMOUS_CALLER,
  type AttestationLevel,
  CALLER_ATTRIBUTES,
  callerFromAttributes,
  e164Schema,
} from '@voice-intake/contracts';

/**
 * The caller as the SIP edge vouched for it (its headers, mapped to attributes by the trunk). Without them (a trunk
 * not behind our edge) LiveKit's own sip.phoneNumber, never attested.
 */
export function callerOf(attributes: Record<string, string>): { number: string; attestation: AttestationLevel } {
  if (attributes[CALLER_ATTRIBUTES.caller] !== undefined) return callerFromAttributes(attributes);
  const raw = attributes['sip.phoneNumber'];
  const parsed = e164Schema.safeParse(raw?.startsWith('+') ? raw : raw ? `+${raw}` : undefined);
  return { number: parsed.success ? parsed.data : ANONYMOUS_CALLER, attestation: 'none' };
}
