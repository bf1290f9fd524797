import { z } from 'zod';
import { ANONYMOUS_CALLER, type CallerNumber, callerNumberSchema } from './common';

/**
 * How far the network vouches for the caller's number (STIR/SHAKEN, as the carrier reports it): `A` full attestation
 * (the carrier knows the caller and the number), `B` partial, `C` gateway, `failed` a signature that did not verify,
 * `none` no verification at all. Ordered strongest first.
 */
export const ATTESTATION_LEVELS = ['A', 'B', 'C', 'failed', 'none'] as const;
export const attestationLevelSchema = z.enum(ATTESTATION_LEVELS);
export type AttestationLevel = z.infer<typeof attestationLevelSchema>;

/** The SIP edge's own headers towards LiveKit (any of this family from the carrier is removed first). */
export const CALLER_HEADERS = {
  attestation: 'X-Voice-Intake-Attestation',
  caller: 'X-Voice-Intake-Caller',
} as const;

/** The SIP participant attributes LiveKit SIP sets from those headers (the inbound trunk's headersToAttributes). */
export const CALLER_ATTRIBUTES = {
  attestation: 'voiceintake.attestation',
  caller: 'voiceintake.caller',
} as const;

/** The trunk's header → attribute mapping. */
export const CALLER_HEADERS_TO_ATTRIBUTES: Readonly<Record<string, string>> = {
  [CALLER_HEADERS.attestation]: CALLER_ATTRIBUTES.attestation,
  [CALLER_HEADERS.caller]: CALLER_ATTRIBUTES.caller,
};

export interface VerifiedCaller {
  readonly number: CallerNumber;
  readonly attestation: AttestationLevel;
}

/**
 * The caller as the edge vouched for it, from the SIP participant's attributes. Fails closed: a missing or unreadable
 * level is `none`, a missing or unreadable number is anonymous; nothing else the participant carries is believed.
 */
export function callerFromAttributes(attributes: Readonly<Record<string, string>>): VerifiedCaller {
  const attestation = attestationLevelSchema.safeParse(attributes[CALLER_ATTRIBUTES.attestation]);
  const number = callerNumberSchema.safeParse(attributes[CALLER_ATTRIBUTES.caller]);
  return {
    attestation: attestation.success ? attestation.data : 'none',
    number: number.success ? number.data : ANONYMOUS_CALLER,
  };
}
