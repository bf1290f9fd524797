import { ATTESTATION_LEVELS } from '@voice-intake/contracts';
import { z } from 'zod';
import { ipv4CidrSchema, ipv4ToInt, parseIpv4Cidr } from './cidr';

/** Twilio Elastic SIP Trunking signalling sources, one /30 per Twilio edge (all of them: Twilio fails over). */
export const TWILIO_SIGNALLING_CIDRS = [
  '54.172.60.0/30', // Virginia
  '54.244.51.0/30', // Oregon
  '54.171.127.192/30', // Ireland
  '35.156.191.128/30', // Frankfurt
  '54.65.63.192/30', // Tokyo
  '54.169.127.128/30', // Singapore
  '54.252.254.64/30', // Sydney
  '177.71.206.192/30', // São Paulo
] as const;

/** Twilio media sources (the per-region media ranges were retired in 2023–24). */
export const TWILIO_MEDIA_CIDRS = ['168.86.128.0/18'] as const;

/**
 * How wide a carrier source may be without `allowAnyCarrierSource`: no one entry wider than a /8, and no more than a
 * /8's worth of addresses in one list. Carriers publish /30s to /16s (Twilio's widest is a /18); anything wider is
 * most of the internet, however it is split (0.0.0.0/1 + 128.0.0.0/1 is 0.0.0.0/0).
 */
export const WIDEST_CARRIER_PREFIX = 8;
export const MAX_CARRIER_ADDRESSES = 2 ** (32 - WIDEST_CARRIER_PREFIX);

const portSchema = z.number().int().min(1).max(65535);

/** Ports an edge host keeps for itself (defaults of the host facts, src/render.ts): the LiveKit-facing SIP socket. */
export const EDGE_INTERNAL_SIP_PORT = 5080;
/** RTPEngine's control (ng) socket, on loopback; Kamailio is its only client. */
export const RTPENGINE_CONTROL_PORT = 2223;

export const portRangeSchema = z
  .object({ min: portSchema, max: portSchema })
  .strict()
  .superRefine((range, ctx) => {
    if (range.min > range.max) {
      ctx.addIssue({ code: 'custom', message: `is reversed (min ${range.min} > max ${range.max})` });
    }
  });

export const pikeSchema = z
  .object({
    /** Requests allowed from one source per sampling interval before it is treated as a flood. */
    reqsDensityPerUnit: z.number().int().min(1).max(100_000).default(200),
    samplingTimeUnitSeconds: z.number().int().min(1).max(60).default(2),
    /** How long a flooding source stays banned. */
    banSeconds: z.number().int().min(10).max(86_400).default(300),
  })
  .strict();

/** An E.164 number (+ and up to 15 digits) or, ending in `*`, every number that starts with those digits. */
export const callerNumberEntrySchema = z
  .string()
  .regex(/^\+[1-9][0-9]{0,14}\*?$/, 'must be an E.164 number (+ then up to 15 digits), or a prefix of one ending in *');

export const callerPolicySchema = z
  .object({
    /** Levels refused with 603 Decline; every other level passes, flagged in X-Voice-Intake-Attestation. */
    rejectAttestation: z.array(z.enum(ATTESTATION_LEVELS)).default(['failed']),
    /** A withheld or unreadable caller number: let it through as `anonymous`, or refuse it (433). */
    anonymous: z.enum(['allow', 'reject']).default('allow'),
    /** Numbers and prefixes refused with 603 Decline. Reloaded on running hosts. */
    deny: z.array(callerNumberEntrySchema).max(10_000).default([]),
    /** When given, only these numbers and prefixes may call (603 otherwise); deny wins over allow. Reloaded. */
    allow: z.array(callerNumberEntrySchema).max(10_000).optional(),
  })
  .strict();

export type CallerPolicy = z.infer<typeof callerPolicySchema>;

/**
 * The `edge` section of the operator config: everything the SIP edge (Kamailio + RTPEngine hosts, their
 * security group) is tuned by. Composed into the whole `voiceIntake` schema by the CDK app, and the input
 * (with per-host facts) of the renderer.
 */
export const edgeSectionSchema = z
  .object({
    /** Carrier signalling sources allowed to reach SIP (5060 UDP/TCP, 5061 TLS) and Kamailio's allowlist. */
    allowlist: z
      .array(ipv4CidrSchema)
      .min(1)
      .default([...TWILIO_SIGNALLING_CIDRS]),
    /** Carrier media sources allowed to reach the RTP range. */
    mediaAllowlist: z
      .array(ipv4CidrSchema)
      .min(1)
      .default([...TWILIO_MEDIA_CIDRS]),
    /** A list wider than carriers need (see WIDEST_CARRIER_PREFIX) is refused unless this is true. */
    allowAnyCarrierSource: z.boolean().default(false),
    hostsPerAz: z.number().int().min(1).max(4).default(2),
    instanceType: z
      .string()
      .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type such as c7i.large')
      .default('c7i.large'),
    /**
     * The edge image, pinned: region → AMI id. Without it, a deployment with account and region looks up
     * `amiSsmParameter` once and keeps the answer in cdk.context.json (commit it); upgrading is then
     * `cdk context --reset` on that key and a deploy, which replaces the hosts one per AZ at a time, drained.
     */
    amiIds: z
      .record(
        z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'keys are regions such as us-east-1'),
        z.string().regex(/^ami-[0-9a-f]{8,17}$/, 'must be an AMI id'),
      )
      .optional(),
    amiSsmParameter: z
      .string()
      .regex(/^\/[\w./-]+$/, 'must be an SSM parameter path')
      .default('/aws/service/debian/release/12/latest/amd64'),
    sipPort: portSchema.default(5060),
    tlsPort: portSchema.default(5061),
    rtpPortRange: portRangeSchema.default({ min: 10000, max: 20000 }),
    /** What a source outside the allowlist gets: nothing (default; scanners learn nothing) or a 403. */
    rejectWith: z.enum(['drop', '403']).default('drop'),
    pike: pikeSchema.default({ reqsDensityPerUnit: 200, samplingTimeUnitSeconds: 2, banSeconds: 300 }),
    /** A LiveKit SIP node that sends nothing back within this many ms gets the call's next node instead. */
    failoverTimeoutMs: z.number().int().min(500).max(30_000).default(3000),
    /**
     * How long a call may ring at a LiveKit SIP node without being answered (no room member publishing audio, a
     * number no trunk holds): then the edge cancels it there, answers the carrier 480 and frees the media.
     */
    ringTimeoutSeconds: z.number().int().min(5).max(120).default(30),
    /** OPTIONS keepalive interval towards the LiveKit SIP nodes; a node that answers again is used again. */
    livekitPingIntervalSeconds: z.number().int().min(1).max(300).default(10),
    /**
     * The longest call the edge carries: RTPEngine ends media older than this, and topology-hiding records (what
     * routes a call's BYE) are kept this long.
     */
    maxCallSeconds: z.number().int().min(600).max(86_400).default(10_800),
    /**
     * How long a host being replaced waits for its calls to end after it stops taking new ones (edge-drain.sh);
     * then it hands over anyway. At most 35 min: a host replacement (boot, drain) must fit CloudFormation's hour.
     */
    drainSeconds: z.number().int().min(0).max(2_100).default(900),
    /**
     * Kamailio sizing: SIP worker processes per transport, shared memory (peak measured ~190 MB at 600 calls/s) and
     * the memory of the host-local Redis that holds topology-hiding records (a few KB per call).
     */
    kamailio: z
      .object({
        workers: z.number().int().min(1).max(64).default(4),
        sharedMemoryMb: z.number().int().min(64).max(8192).default(256),
        toposStoreMb: z.number().int().min(32).max(8192).default(256),
      })
      .strict()
      .default({ workers: 4, sharedMemoryMb: 256, toposStoreMb: 256 }),
    /**
     * The SDP session name (s=) the edge writes into every SDP it relays, both ways, in place of the sender's (LiveKit
     * writes `LiveKit`, a carrier often its SBC's product): neither side learns what runs on the other. `-` is RFC
     * 4566's "no name". Letters, digits, `.`, `_` and `-` only: it is written into Kamailio's config as a literal.
     */
    sdpSessionName: z
      .string()
      .regex(/^[A-Za-z0-9._-]{1,32}$/, 'must be 1-32 letters, digits, ".", "_" or "-"')
      .default('-'),
    /** Who may call: attestation levels refused, caller-number deny/allow lists, withheld numbers. */
    callerPolicy: callerPolicySchema.default({ rejectAttestation: ['failed'], anonymous: 'allow', deny: [] }),
    /** ACM-independent TLS material for 5061: Secrets Manager secret names holding PEM cert and key. */
    tls: z
      .object({ certificateSecretName: z.string().min(1), privateKeySecretName: z.string().min(1) })
      .strict()
      .optional(),
  })
  .strict()
  .superRefine((edge, ctx) => {
    if (isArmInstanceType(edge.instanceType)) {
      ctx.addIssue({
        code: 'custom',
        path: ['instanceType'],
        message: `${edge.instanceType} is an Arm (Graviton) type: the edge image and packages are x86_64 (amd64); choose an x86 type such as c7i.large`,
      });
    }
    if (!edge.allowAnyCarrierSource) {
      for (const key of ['allowlist', 'mediaAllowlist'] as const) {
        for (const { index, message } of overlyWideSources(edge[key])) {
          ctx.addIssue({
            code: 'custom',
            path: [key, index],
            message: `${message}; set edge.allowAnyCarrierSource: true if opening the edge that wide is intended`,
          });
        }
      }
    }
    for (const { path, message } of securityGroupRuleProblems(edge)) ctx.addIssue({ code: 'custom', path, message });
    const { min, max } = edge.rtpPortRange;
    for (const [name, port] of [
      ['sipPort', edge.sipPort],
      ['tlsPort', edge.tlsPort],
    ] as const) {
      if (port >= min && port <= max) {
        ctx.addIssue({ code: 'custom', path: ['rtpPortRange'], message: `${min}-${max} overlaps ${name} ${port}` });
      }
    }
    for (const [name, port] of [
      ['sipPort', edge.sipPort],
      ['tlsPort', edge.tlsPort],
    ] as const) {
      if (port === EDGE_INTERNAL_SIP_PORT) {
        const message = `${port} is the edge's own LiveKit-facing SIP port on the same address: choose another`;
        ctx.addIssue({ code: 'custom', path: [name], message });
      }
    }
    for (const [what, port] of [
      ['the LiveKit-facing SIP port', EDGE_INTERNAL_SIP_PORT],
      ["RTPEngine's control port", RTPENGINE_CONTROL_PORT],
    ] as const) {
      if (port >= min && port <= max)
        ctx.addIssue({ code: 'custom', path: ['rtpPortRange'], message: `${min}-${max} overlaps ${what} ${port}` });
    }
    if (edge.sipPort === edge.tlsPort) {
      ctx.addIssue({ code: 'custom', path: ['tlsPort'], message: `must differ from sipPort ${edge.sipPort}` });
    }
  });

/**
 * Whether an EC2 instance type is Arm (Graviton, or the a1 family): a `g` among the letters after the generation
 * (c7g, m6gd, t4g, im4gn, is4gen, g5g), as EC2 names them. A name that does not parse is taken as x86.
 */
export function isArmInstanceType(instanceType: string): boolean {
  const match = /^([a-z]+)(\d{1,2})([a-z-]*)\./.exec(instanceType);
  return match !== null && (match[1] === 'a' || match[3].includes('g'));
}

/** Rules one security group may hold per direction (the default quota); a prefix-list rule counts as its MaxEntries. */
export const SECURITY_GROUP_RULE_QUOTA = 60;
/** Where carriers (Twilio among them) take SIP: the edge sends in-dialog requests there (5060 UDP/TCP, 5061 TLS). */
export const CARRIER_SIP_PORT = 5060;
export const CARRIER_TLS_PORT = 5061;
/** Egress rules of the edge besides the carrier's: LiveKit SIP's group (SIP UDP, SIP TCP, RTP) and HTTPS, HTTP. */
export const EDGE_OTHER_EGRESS_RULES = 5;
/** Room to grow each carrier prefix list to without resizing it, where the security group quota allows. */
const SIGNALLING_HEADROOM = 20;
const MEDIA_HEADROOM = 10;

/** TCP port ranges for SIP and, with TLS, SIP/TLS: one range when the two ports are adjacent. */
export function sipTcpPortRanges(sipPort: number, tlsPort: number | undefined): [number, number][] {
  if (tlsPort === undefined) return [[sipPort, sipPort]];
  if (Math.abs(tlsPort - sipPort) === 1) return [[Math.min(sipPort, tlsPort), Math.max(sipPort, tlsPort)]];
  return [
    [sipPort, sipPort],
    [tlsPort, tlsPort],
  ];
}

type RuleSizingInput = Pick<EdgeSection, 'allowlist' | 'mediaAllowlist' | 'sipPort' | 'tlsPort' | 'tls'>;

/**
 * The edge security group's rules, as the quota counts them (each prefix-list rule once per entry its list may hold):
 * in, SIP/UDP and SIP/TCP(/TLS) from the signalling list and RTP from the media list; out, the same towards the
 * carrier's ports, RTP to the media list and EDGE_OTHER_EGRESS_RULES more. The signalling list keeps up to
 * SIGNALLING_HEADROOM entries of room where that fits the quota.
 */
export function edgeSecurityGroupSizing(edge: RuleSizingInput) {
  const media = Math.max(MEDIA_HEADROOM, edge.mediaAllowlist.length);
  const inboundPerEntry = 1 + sipTcpPortRanges(edge.sipPort, edge.tls ? edge.tlsPort : undefined).length;
  const outboundPerEntry = 1 + sipTcpPortRanges(CARRIER_SIP_PORT, edge.tls ? CARRIER_TLS_PORT : undefined).length;
  const fitting = Math.min(
    Math.floor((SECURITY_GROUP_RULE_QUOTA - media) / inboundPerEntry),
    Math.floor((SECURITY_GROUP_RULE_QUOTA - media - EDGE_OTHER_EGRESS_RULES) / outboundPerEntry),
  );
  const signalling = Math.max(edge.allowlist.length, Math.min(SIGNALLING_HEADROOM, fitting));
  return {
    /** MaxEntries of the carrier prefix lists. */
    prefixListSizes: { signalling, media },
    inboundRules: signalling * inboundPerEntry + media,
    outboundRules: signalling * outboundPerEntry + media + EDGE_OTHER_EGRESS_RULES,
  };
}

function securityGroupRuleProblems(edge: RuleSizingInput): { path: (string | number)[]; message: string }[] {
  const sizing = edgeSecurityGroupSizing(edge);
  const worst = Math.max(sizing.inboundRules, sizing.outboundRules);
  if (worst <= SECURITY_GROUP_RULE_QUOTA) return [];
  const direction = sizing.inboundRules >= sizing.outboundRules ? 'inbound' : 'outbound';
  const rules = `${worst} ${direction} rules in the edge security group (a prefix-list rule counts once per entry), more than the ${SECURITY_GROUP_RULE_QUOTA} AWS allows by default`;
  // TLS on a port not next to sipPort adds a rule per entry; blame it when the lists alone would fit.
  if (edge.tls && edgeSecurityGroupFits({ ...edge, tls: undefined })) {
    const ports = `tlsPort ${edge.tlsPort} not next to sipPort ${edge.sipPort}`;
    return [{ path: ['tls'], message: `with ${ports}, ${edge.allowlist.length} allowlist entries need ${rules}` }];
  }
  const problems: { path: (string | number)[]; message: string }[] = [];
  if (edge.mediaAllowlist.length > MEDIA_HEADROOM)
    problems.push({ path: ['mediaAllowlist'], message: `${edge.mediaAllowlist.length} entries need ${rules}` });
  if (edge.allowlist.length > SIGNALLING_HEADROOM || problems.length === 0)
    problems.push({ path: ['allowlist'], message: `${edge.allowlist.length} entries need ${rules}` });
  return problems;
}

function edgeSecurityGroupFits(edge: RuleSizingInput): boolean {
  const sizing = edgeSecurityGroupSizing(edge);
  return Math.max(sizing.inboundRules, sizing.outboundRules) <= SECURITY_GROUP_RULE_QUOTA;
}

/**
 * The entries of a carrier list that open the edge wider than any carrier needs: one wider than
 * /WIDEST_CARRIER_PREFIX, and the entry at which the list's distinct addresses (overlaps counted once) pass
 * MAX_CARRIER_ADDRESSES. Entries that are not CIDRs are left to the CIDR check.
 */
export function overlyWideSources(cidrs: readonly string[]): { index: number; message: string }[] {
  const found: { index: number; message: string }[] = [];
  const ranges: [number, number][] = [];
  let reported = false;
  cidrs.forEach((cidr, index) => {
    const parsed = parseIpv4Cidr(cidr);
    if (!parsed) return;
    if (parsed.prefixLength < WIDEST_CARRIER_PREFIX) {
      const addresses = (2 ** (32 - parsed.prefixLength)).toLocaleString('en-US');
      const message =
        parsed.prefixLength === 0
          ? 'opens the edge to the whole internet'
          : `"${cidr}" is wider than /${WIDEST_CARRIER_PREFIX} (${addresses} addresses)`;
      found.push({ index, message });
      reported = true;
      return;
    }
    const start = ipv4ToInt(parsed.address);
    ranges.push([start, start + 2 ** (32 - parsed.prefixLength)]);
    const covered = coveredAddresses(ranges);
    if (!reported && covered > MAX_CARRIER_ADDRESSES) {
      found.push({
        index,
        message: `brings the list to ${covered.toLocaleString('en-US')} addresses, more than a /${WIDEST_CARRIER_PREFIX}`,
      });
      reported = true;
    }
  });
  return found;
}

/** Distinct addresses in half-open [start, end) ranges. */
function coveredAddresses(ranges: readonly [number, number][]): number {
  const sorted = [...ranges].sort((a, b) => a[0] - b[0]);
  let total = 0;
  let reach = 0;
  for (const [start, end] of sorted) {
    if (end <= reach) continue;
    total += end - Math.max(start, reach);
    reach = end;
  }
  return total;
}

export type EdgeSection = z.infer<typeof edgeSectionSchema>;
export type EdgeSectionInput = z.input<typeof edgeSectionSchema>;
