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

/**
 * The MCP server's tools: the names `callerTrust.tools` may gate (the server registers these and no other). A name
 * outside this list would gate nothing, so the config refuses it.
 */
export const MCP_TOOL_NAMES = [
  'lookup_caller',
  'verify_caller',
  'get_intake_form',
  'save_intake_progress',
  'submit_intake',
  'search_knowledge',
  'schedule_callback',
  'request_human_transfer',
] as const;
export type McpToolName = (typeof MCP_TOOL_NAMES)[number];

const isMcpToolName = (name: string): name is McpToolName => (MCP_TOOL_NAMES as readonly string[]).includes(name);

/** What a tool may require of the caller: at least this level (`none`: any but failed), or `never` (proof only). */
export const TRUST_REQUIREMENTS = ['A', 'B', 'C', 'none', 'never'] as const;
export const trustRequirementSchema = z.enum(TRUST_REQUIREMENTS);
export type TrustRequirement = z.infer<typeof trustRequirementSchema>;

const LEVEL_RANK: Record<AttestationLevel, number> = { A: 3, B: 2, C: 1, none: 0, failed: -1 };

/** Whether a caller at `level` meets `required` on attestation alone (identity proof aside). */
export function attestationMeets(level: AttestationLevel, required: TrustRequirement): boolean {
  if (required === 'never') return false;
  return LEVEL_RANK[level] >= LEVEL_RANK[required];
}

/**
 * How far the MCP server trusts the caller's number, by attestation and by identity proof (verify_caller: a case
 * number and the full name on that case, both checked against the case store). Enforced by the server, never by the
 * prompt. The default reveals a caller's cases on full attestation only, and gates nothing else.
 */
export const callerTrustSchema = z
  .object({
    /** lookup_caller tells the caller's name and open cases at this level or above; below, only whether one exists. */
    revealCasesAt: trustRequirementSchema.default('A'),
    /**
     * Tool name (one of MCP_TOOL_NAMES) → what it needs without identity proof; a proven caller passes every gate.
     * Unlisted: no gate. verify_caller is the proof itself, so it may not be `never`.
     */
    tools: z
      .record(z.string(), trustRequirementSchema)
      .superRefine((tools, ctx) => {
        for (const [name, required] of Object.entries(tools)) {
          if (!isMcpToolName(name)) {
            const message = `is not a tool of the MCP server (${MCP_TOOL_NAMES.join(', ')})`;
            ctx.addIssue({ code: 'custom', path: [name], message });
          } else if (name === 'verify_caller' && required === 'never') {
            const message = 'cannot be "never": verify_caller is how a caller proves identity, so no one could';
            ctx.addIssue({ code: 'custom', path: [name], message });
          }
        }
      })
      .default({}),
    /** Failed identity proofs a call may make before verify_caller refuses more (guessing case numbers). */
    maxProofAttempts: z.number().int().min(1).max(10).default(3),
  })
  .strict();

export type CallerTrust = z.infer<typeof callerTrustSchema>;
export const DEFAULT_CALLER_TRUST: CallerTrust = callerTrustSchema.parse({});
