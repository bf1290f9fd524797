import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describeIssues } from '@voice-intake/contracts';
import { z } from 'zod';
import { ipv4Schema, parseIpv4Cidr } from './cidr';
import { EDGE_MEDIA_MODE_LOG_EVENTS } from './log-events';
import { type CallerPolicy, EDGE_INTERNAL_SIP_PORT, edgeSectionSchema, RTPENGINE_CONTROL_PORT } from './schema';

/**
 * Host facts that exist only on the booted instance. The CDK stack renders at synth with these tokens; the boot
 * script (and `fillHostPlaceholders`) replaces them with the values IMDSv2 reports.
 */
export const HOST_PLACEHOLDERS = {
  privateIp: '@EDGE_PRIVATE_IP@',
  publicIp: '@EDGE_PUBLIC_IP@',
} as const;

const hostAddressSchema = z.union([ipv4Schema, z.enum([HOST_PLACEHOLDERS.privateIp, HOST_PLACEHOLDERS.publicIp])]);
const portSchema = z.number().int().min(1).max(65535);
const hostnameSchema = z
  .string()
  .regex(
    /^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,62})(\.[A-Za-z0-9]([A-Za-z0-9-]{0,62}))*$/,
    'must be an IPv4 address or a DNS name',
  );
const absolutePathSchema = z.string().regex(/^\/[^\s"]*$/, 'must be an absolute path without spaces or quotes');

/** The scanner User-Agents dropped without an answer (a regular expression, as Kamailio's =~ reads it). */
export const SCANNER_USER_AGENTS = [
  'friendly-scanner',
  'sipvicious',
  'sipcli',
  'sip-scan',
  'sundayddr',
  'iWar',
  'VaxSIPUserAgent',
  'pplsip',
  'SIPScan',
  'smap',
];

export const hostFactsSchema = z
  .object({
    /** Address Kamailio binds for the carrier (5060 UDP/TCP, 5061 TLS): the private IP on EC2. */
    carrierSipIp: hostAddressSchema,
    /** Address the carrier is told (Via, Record-Route): the EIP on EC2; omit when it equals carrierSipIp. */
    carrierAdvertisedIp: hostAddressSchema.optional(),
    /** Address Kamailio binds for LiveKit: the private IP on EC2. */
    internalSipIp: hostAddressSchema,
    /** Port of the LiveKit-facing socket; differs from edge.sipPort when both sides share one IP. */
    internalSipPort: portSchema.default(EDGE_INTERNAL_SIP_PORT),
    /** Carrier-facing media address RTPEngine binds, and the one it writes into SDP (the EIP on EC2). */
    carrierMediaIp: hostAddressSchema,
    carrierMediaAdvertisedIp: hostAddressSchema.optional(),
    /** LiveKit-facing media address (private only). */
    internalMediaIp: hostAddressSchema,
    /**
     * How RTPEngine forwards media: `kernel` (production) loads xt_RTPENGINE and runs with table 0, falling back to
     * userspace (logged, counted, alarmed) when the module cannot load; `userspace` never tries (tests, local runs).
     */
    mediaForwarding: z.enum(['kernel', 'userspace']).default('kernel'),
    /** RTPEngine's control (ng) socket; Kamailio is its only client, so keep it on loopback. */
    rtpengineControl: z
      .object({
        ip: ipv4Schema.default('127.0.0.1'),
        port: portSchema.default(RTPENGINE_CONTROL_PORT),
        cliPort: portSchema.default(9900),
      })
      .strict()
      .default({ ip: '127.0.0.1', port: RTPENGINE_CONTROL_PORT, cliPort: 9900 }),
  })
  .strict();

export const livekitDestinationSchema = z
  .object({
    host: z.union([ipv4Schema, hostnameSchema]),
    port: portSchema.default(5060),
    transport: z.enum(['udp', 'tcp']).default('udp'),
  })
  .strict();

export const renderPathsSchema = z
  .object({
    /** Where the rendered tree lives on the host; files name each other by absolute path under it. */
    configDir: absolutePathSchema.default('/etc/voice-intake-edge'),
    /** Pid files and Kamailio's control socket. */
    runDir: absolutePathSchema.default('/run/voice-intake-edge'),
  })
  .strict();

/** Where the host-local topology-hiding Redis listens (a unix socket under the run directory). */
const toposRedisSocket = (runDir: string) => `${runDir}/topos/redis.sock`;

/**
 * The renderer's one input: the operator config's `edge` section plus what is particular to one host.
 * Documented field by field in edge-config/README.md.
 */
export const renderInputSchema = z
  .object({
    edge: edgeSectionSchema,
    host: hostFactsSchema,
    livekitSip: z
      .object({
        /** LiveKit SIP nodes known at render time; empty when the node sync (edge-livekit-nodes.sh) keeps the list. */
        destinations: z.array(livekitDestinationSchema).default([]),
        /** Port and transport for nodes given to edge-livekit-nodes.sh as bare addresses. */
        nodePort: portSchema.default(5060),
        nodeTransport: z.enum(['udp', 'tcp']).default('udp'),
      })
      .strict(),
    paths: renderPathsSchema.default({ configDir: '/etc/voice-intake-edge', runDir: '/run/voice-intake-edge' }),
    /**
     * Not operator config: `topoh` (stateless masking) exists only to measure it against `topos` with the leak classes
     * (test/edge-topology.integration.test.ts, README "topos, not topoh").
     */
    topologyHiding: z.enum(['topos', 'topoh']).default('topos'),
  })
  .strict()
  .superRefine((input, ctx) => {
    const { host, edge } = input;
    if (host.internalSipIp === host.carrierSipIp && [edge.sipPort, edge.tlsPort].includes(host.internalSipPort)) {
      ctx.addIssue({
        code: 'custom',
        path: ['host', 'internalSipPort'],
        message: `${host.internalSipPort} is taken by the carrier side on the same address ${host.carrierSipIp}`,
      });
    }
    // sun_path holds 107 bytes: a longer socket path would fail only when Kamailio starts.
    const toposSocket = toposRedisSocket(input.paths.runDir);
    if (Buffer.byteLength(toposSocket) > 107) {
      ctx.addIssue({
        code: 'custom',
        path: ['paths', 'runDir'],
        message: `is too long for a unix socket path (${toposSocket})`,
      });
    }
    const control = host.rtpengineControl.port;
    if (control >= edge.rtpPortRange.min && control <= edge.rtpPortRange.max) {
      ctx.addIssue({
        code: 'custom',
        path: ['host', 'rtpengineControl', 'port'],
        message: `${control} lies inside edge.rtpPortRange`,
      });
    }
  });

export type RenderInput = z.infer<typeof renderInputSchema>;
export type RenderInputData = z.input<typeof renderInputSchema>;

export class RenderInputError extends Error {
  override readonly name = 'RenderInputError';
}

/** Validates renderer input; one error whose message names every offending key. */
export function parseRenderInput(raw: unknown): RenderInput {
  const result = renderInputSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new RenderInputError(`invalid edge render input: ${describeIssues(result.error.issues)}`);
}

export interface RenderedFile {
  readonly content: string;
  readonly mode: number;
}

/** Rendered tree, keyed by path relative to paths.configDir. */
export type RenderedEdge = Record<string, RenderedFile>;

const TEMPLATE_DIR = join(__dirname, '..', 'templates');

/** `{{NAME}}` substitution; a template variable without a value is a bug, never an empty string. */
export function fillTemplate(templatePath: string, values: Record<string, string | number>): string {
  const text = readFileSync(join(TEMPLATE_DIR, templatePath), 'utf8');
  return text.replace(/\{\{([A-Z0-9_]+)\}\}/g, (_, name: string) => {
    const value = values[name];
    if (value === undefined) throw new Error(`template ${templatePath}: no value for {{${name}}}`);
    return String(value);
  });
}

/** Addresses and ports of the rendered edge, for tools (harness, tests, boot script) that need them. */
export function edgeLayout(input: RenderInput) {
  const { paths, host, edge } = input;
  return {
    kamailioCfg: `${paths.configDir}/kamailio/kamailio.cfg`,
    rtpengineConf: `${paths.configDir}/rtpengine/rtpengine.conf`,
    addressFile: `${paths.configDir}/kamailio/db/address`,
    callersFile: `${paths.configDir}/kamailio/db/callers`,
    dispatcherList: `${paths.configDir}/kamailio/dispatcher.list`,
    ctlSocket: `${paths.runDir}/kamailio_ctl`,
    kamailioPidFile: `${paths.runDir}/kamailio.pid`,
    rtpenginePidFile: `${paths.runDir}/rtpengine.pid`,
    /** Written before RTPEngine starts: RTPENGINE_TABLE=0 (kernel) or -1 (userspace), what the module allowed. */
    mediaModeFile: `${paths.runDir}/rtpengine-mode.env`,
    toposRedisConf: `${paths.configDir}/redis/topos-redis.conf`,
    toposRedisSocket: toposRedisSocket(paths.runDir),
    toposRedisPidFile: `${paths.runDir}/topos/redis.pid`,
    rtpengineControl: host.rtpengineControl,
    carrierSip: { ip: host.carrierSipIp, port: edge.sipPort },
    internalSip: { ip: host.internalSipIp, port: host.internalSipPort },
    kamailioMemoryArgs: kamailioMemoryArgs(edge.kamailio.sharedMemoryMb),
  };
}

/**
 * Kamailio's memory arguments: pool sizes, and TLSF as the allocator of both pools. With the packaged default (qm),
 * allocation was over half of a bare proxy's CPU under call load (free-list searches); TLSF allocates in constant
 * time and cut Kamailio's CPU per call by about two thirds (bare) and a third (edge). Figures: README, Benchmark.
 */
export function kamailioMemoryArgs(sharedMemoryMb: number, pkgMemoryMb = 16): string[] {
  return ['-x', 'tlsf', '-X', 'tlsf', '-m', String(sharedMemoryMb), '-M', String(pkgMemoryMb)];
}

/** The xt_RTPENGINE forwarding table RTPEngine uses in kernel mode (one RTPEngine per host). */
export const RTPENGINE_KERNEL_TABLE = 0;

/** permissions groups of the address table: carrier signalling sources, and carrier media addresses. */
export const ADDRESS_GROUPS = { signalling: 1, media: 2 } as const;

/**
 * db_text rows of the permissions `address` table: id:grp:ip_addr:mask:port:tag (port 0 = any). Group 1 is
 * `edge.allowlist` (who may send SIP), group 2 `edge.mediaAllowlist` (what the carrier's SDP may name).
 */
export function renderAddressRows(allowlist: readonly string[], mediaAllowlist: readonly string[] = []): string {
  const rows = [
    ...allowlist.map((cidr) => ({ cidr, group: ADDRESS_GROUPS.signalling, tag: 'allowlist' })),
    ...mediaAllowlist.map((cidr) => ({ cidr, group: ADDRESS_GROUPS.media, tag: 'media' })),
  ];
  return rows
    .map(({ cidr, group, tag }, index) => {
      const parsed = parseIpv4Cidr(cidr);
      if (!parsed) throw new Error(`allowlist entry ${cidr} is not a CIDR`);
      return `${index + 1}:${group}:${parsed.address}:${parsed.prefixLength}:0:${tag}`;
    })
    .join('\n');
}

/** db_text header of the htable `callers` table (the caller-number lists). */
export const CALLERS_TABLE_HEADER =
  'id(int,auto) key_name(string) key_type(int) value_type(int) key_value(string) expires(int)';

/**
 * Rows of the htable `callers` table: `deny.<entry>` and `allow.<entry>` (an entry is a number, or a prefix ending in
 * `*`), `allowlist` when an allow list is given and `anonymous.reject` when withheld numbers are refused, so a reload
 * switches either on and off. Integer value 1, no expiry.
 */
export function renderCallerRows(policy: Pick<CallerPolicy, 'deny' | 'allow' | 'anonymous'>): string {
  const keys = [
    ...(policy.anonymous === 'reject' ? ['anonymous.reject'] : []),
    ...policy.deny.map((entry) => `deny.${entry}`),
    ...(policy.allow ? ['allowlist', ...policy.allow.map((entry) => `allow.${entry}`)] : []),
  ];
  for (const key of keys) {
    if (!/^(allowlist|anonymous\.reject|(deny|allow)\.\+[0-9]{1,15}\*?)$/.test(key)) {
      throw new Error(`caller list entry ${key} is not a number`);
    }
  }
  const rows = [...new Set(keys)].map((key, index) => `${index + 1}:${key}:0:1:1:0`);
  return [`${CALLERS_TABLE_HEADER} `, ...rows].join('\n');
}

/** Attestation levels refused at the edge, as the regular expression Kamailio matches the call's level against. */
export function rejectAttestationPattern(levels: readonly string[]): string {
  // No level is empty: an empty alternation list must match nothing, not everything.
  return levels.length === 0 ? '^$' : `^(${[...new Set(levels)].join('|')})$`;
}

/**
 * Bounds on what may enter the edge at all (edge-host.cfg). topos packs every Via and Record-Route of a message into
 * an 8 KB buffer and, when they do not fit, sends the message unchanged: the routing-header bound keeps them well
 * inside it. A trunk's messages are a few KB with one or two Vias; LiveKit's replies carry the carrier's Vias plus one.
 */
export const SIP_LIMITS = {
  maxMessageBytes: 8192,
  maxHeaders: 64,
  maxVias: 8,
  maxRoutingBytes: 3072,
  maxIdentityBytes: 512,
  maxSdpLines: 64,
  /** Longer SDP lines are refused, not rewritten: a G.711 call's longest (a=rtpmap, a=fmtp, o=) is under 80 bytes. */
  maxSdpLineBytes: 256,
  /** E.164 (optional +, up to 15 digits) or a short extension: what LiveKit can match a trunk or rule on. */
  numberPattern: '^[+]?[0-9]{1,15}$',
} as const;

/**
 * Failures in a row (a ping or a call left unanswered for failoverTimeoutMs) before a LiveKit SIP node leaves the
 * rotation. One was a cliff: under a load spike a single late answer took every node out and the edge answered 503
 * until the next probe. Each call still pays at most one failoverTimeoutMs per dead node (it fails over at once).
 */
export const LIVEKIT_PROBING_THRESHOLD = 3;

/**
 * The SDP attributes (a=) the edge relays; every other one is removed. What a G.711 call with telephone-event needs
 * (codecs, packet time, direction, RTCP), and nothing that names software or people (a=tool, a=X-*, ...). ICE
 * attributes go too (RTPEngine's ICE=remove would drop them anyway).
 */
export const SDP_ATTRIBUTES_KEPT = [
  'rtpmap',
  'fmtp',
  'ptime',
  'maxptime',
  'sendrecv',
  'sendonly',
  'recvonly',
  'inactive',
  'rtcp',
  'rtcp-mux',
] as const;

/** rtpengine flags: each direction names where the message came from, then where it goes. */
export function rtpFlags(from: 'carrier' | 'internal'): string {
  const to = from === 'carrier' ? 'internal' : 'carrier';
  return `direction=${from} direction=${to} replace-origin replace-session-connection ICE=remove RTP/AVP strict-source`;
}

function listenLines(input: RenderInput): string {
  const { host, edge } = input;
  const carrierAdvertise = (port: number) =>
    host.carrierAdvertisedIp ? ` advertise ${host.carrierAdvertisedIp}:${port}` : '';
  const lines = [
    `listen=udp:${host.carrierSipIp}:${edge.sipPort}${carrierAdvertise(edge.sipPort)}`,
    `listen=tcp:${host.carrierSipIp}:${edge.sipPort}${carrierAdvertise(edge.sipPort)}`,
  ];
  if (edge.tls) lines.push(`listen=tls:${host.carrierSipIp}:${edge.tlsPort}${carrierAdvertise(edge.tlsPort)}`);
  lines.push(
    `listen=udp:${host.internalSipIp}:${host.internalSipPort}`,
    `listen=tcp:${host.internalSipIp}:${host.internalSipPort}`,
  );
  return lines.join('\n');
}

function mediaInterface(ip: string, advertised: string | undefined): string {
  return advertised && advertised !== ip ? `${ip}!${advertised}` : ip;
}

/**
 * The dispatcher list when no LiveKit node is known: Kamailio refuses to load (or reload) an empty list and would keep
 * the previous one, so "no node" is one disabled entry (flag 4: never selected, never probed) outside the LiveKit set.
 * The address is TEST-NET-1: nothing answers there. Calls then get 503 from DISPATCH.
 */
export const NO_NODE_ENTRY = '0 sip:192.0.2.1:5060;transport=udp 4 0';

/**
 * What topoh writes as the host of every masked Via, Contact and Record-Route: it has one for both sides, so neither
 * side's address (TEST-NET-1, nothing answers there). The key only shuffles a base64 alphabet: nothing to keep secret.
 */
export const TOPOH_MASK = { ip: '192.0.2.8', key: 'voice-intake-edge' } as const;

/** Renders every file of one edge host (Kamailio, RTPEngine, topos Redis, systemd units, scripts). Pure: no I/O but templates. */
export function renderEdge(raw: RenderInputData | RenderInput): RenderedEdge {
  const input = parseRenderInput(raw);
  const { edge, host, paths, livekitSip } = input;
  const layout = edgeLayout(input);
  const kamailioDir = `${paths.configDir}/kamailio`;
  const internalSocket = `udp:${host.internalSipIp}:${host.internalSipPort}`;

  const options = [
    edge.rejectWith === '403'
      ? '#!define EDGE_REJECT_403'
      : '# sources outside the allowlist are dropped without an answer',
    edge.tls
      ? `#!define WITH_TLS\n#!define EDGE_TLS_CONFIG "${kamailioDir}/tls.cfg"`
      : '# TLS off: no certificate configured',
    ...(input.topologyHiding === 'topoh'
      ? [
          '#!define EDGE_TOPOH',
          `#!define EDGE_TOPOH_MASK_IP "${TOPOH_MASK.ip}"`,
          `#!define EDGE_TOPOH_MASK_KEY "${TOPOH_MASK.key}"`,
        ]
      : []),
  ].join('\n');

  const files: Record<string, string> = {
    'kamailio/kamailio.cfg': fillTemplate('kamailio/kamailio.cfg', { EDGE_HOST_CFG: `${kamailioDir}/edge-host.cfg` }),
    'kamailio/edge-host.cfg': fillTemplate('kamailio/edge-host.cfg', {
      LISTEN: listenLines(input),
      INTERNAL_IP: host.internalSipIp,
      INTERNAL_PORT: host.internalSipPort,
      INTERNAL_SOCKET: internalSocket,
      UDP_CHILDREN: edge.kamailio.workers,
      TCP_CHILDREN: edge.kamailio.workers,
      TCP_MAX_CONNECTIONS: 2048,
      CTL_SOCKET: layout.ctlSocket,
      DB_DIR: `${kamailioDir}/db`,
      ALLOW_GROUP: ADDRESS_GROUPS.signalling,
      MEDIA_ALLOW_GROUP: ADDRESS_GROUPS.media,
      MAX_MESSAGE_BYTES: SIP_LIMITS.maxMessageBytes,
      MAX_HEADERS: SIP_LIMITS.maxHeaders,
      MAX_VIAS: SIP_LIMITS.maxVias,
      MAX_ROUTING_BYTES: SIP_LIMITS.maxRoutingBytes,
      MAX_IDENTITY_BYTES: SIP_LIMITS.maxIdentityBytes,
      MAX_SDP_LINES: SIP_LIMITS.maxSdpLines,
      MAX_SDP_LINE_BYTES: SIP_LIMITS.maxSdpLineBytes,
      SDP_SESSION_NAME: edge.sdpSessionName,
      SDP_ATTRIBUTES: SDP_ATTRIBUTES_KEPT.join('|'),
      NUMBER_PATTERN: SIP_LIMITS.numberPattern,
      // A lost 2xx is retransmitted for a few seconds; the carrier ACKs within the failover timeout plus that.
      ACK_WAIT_SECONDS: ackWaitSeconds(edge.failoverTimeoutMs),
      RTP_FLAGS_FROM_CARRIER: rtpFlags('carrier'),
      RTP_FLAGS_FROM_INTERNAL: rtpFlags('internal'),
      PIKE_SAMPLING_SECONDS: edge.pike.samplingTimeUnitSeconds,
      PIKE_DENSITY: edge.pike.reqsDensityPerUnit,
      BAN_SECONDS: edge.pike.banSeconds,
      SCANNER_UA: SCANNER_USER_AGENTS.join('|'),
      DISPATCHER_LIST: layout.dispatcherList,
      PING_INTERVAL_SECONDS: edge.livekitPingIntervalSeconds,
      PROBING_THRESHOLD: LIVEKIT_PROBING_THRESHOLD,
      FAILOVER_TIMEOUT_MS: edge.failoverTimeoutMs,
      RING_TIMEOUT_MS: edge.ringTimeoutSeconds * 1000,
      RTPENGINE_SOCK: `udp:${host.rtpengineControl.ip}:${host.rtpengineControl.port}`,
      TOPOS_REDIS_SOCKET: layout.toposRedisSocket,
      TOPOS_DIALOG_EXPIRE_SECONDS: edge.maxCallSeconds,
      // A call attempt (INVITE transaction) is over long before this: it rings 120 s at most (ringTimeoutSeconds).
      TOPOS_BRANCH_EXPIRE_SECONDS: 180,
      REJECT_ATTESTATION: rejectAttestationPattern(edge.callerPolicy.rejectAttestation),
      OPTIONS: options,
    }),
    'kamailio/dispatcher.list': fillTemplate('kamailio/dispatcher.list', {
      ENTRIES:
        livekitSip.destinations
          .map(
            (d) =>
              `1 sip:${d.host}:${d.port};transport=${d.transport} 0 0 socket=${d.transport}:${host.internalSipIp}:${host.internalSipPort}`,
          )
          .join('\n') || NO_NODE_ENTRY,
    }),
    'kamailio/db/address': fillTemplate('kamailio/address', {
      ENTRIES: renderAddressRows(edge.allowlist, edge.mediaAllowlist),
    }),
    'kamailio/db/callers': `${renderCallerRows(edge.callerPolicy)}\n`,
    'kamailio/db/version': fillTemplate('kamailio/version', {}),
    'rtpengine/rtpengine.conf': fillTemplate('rtpengine/rtpengine.conf', {
      CARRIER_MEDIA: mediaInterface(host.carrierMediaIp, host.carrierMediaAdvertisedIp),
      INTERNAL_MEDIA: host.internalMediaIp,
      CONTROL: `${host.rtpengineControl.ip}:${host.rtpengineControl.port}`,
      CLI: `${host.rtpengineControl.ip}:${host.rtpengineControl.cliPort}`,
      PORT_MIN: edge.rtpPortRange.min,
      PORT_MAX: edge.rtpPortRange.max,
      DELETE_DELAY: 5,
      FINAL_TIMEOUT: edge.maxCallSeconds,
      // An offer LiveKit never answers: the INVITE timer (the ring timeout) has ended the call by then.
      OFFER_TIMEOUT: edge.ringTimeoutSeconds + 10,
      PID_FILE: layout.rtpenginePidFile,
      TABLE: host.mediaForwarding === 'kernel' ? RTPENGINE_KERNEL_TABLE : -1,
    }),
    'redis/topos-redis.conf': fillTemplate('redis/topos-redis.conf', {
      SOCKET: layout.toposRedisSocket,
      PID_FILE: layout.toposRedisPidFile,
      DIR: dirname(layout.toposRedisSocket),
      MAX_MEMORY_MB: edge.kamailio.toposStoreMb,
    }),
    'systemd/voice-intake-topos-redis.service': fillTemplate('systemd/voice-intake-topos-redis.service', {
      CONFIG_DIR: paths.configDir,
    }),
    'systemd/voice-intake-rtpengine.service': fillTemplate('systemd/voice-intake-rtpengine.service', {
      CONFIG_DIR: paths.configDir,
      MODE_FILE: layout.mediaModeFile,
    }),
    'bin/edge-media-mode.sh': fillTemplate('bin/edge-media-mode.sh', {
      MODE_FILE: layout.mediaModeFile,
      TABLE: host.mediaForwarding === 'kernel' ? RTPENGINE_KERNEL_TABLE : -1,
      KERNEL_PHRASE: EDGE_MEDIA_MODE_LOG_EVENTS.kernel,
      USERSPACE_PHRASE: EDGE_MEDIA_MODE_LOG_EVENTS.userspace,
    }),
    'systemd/voice-intake-kamailio.service': fillTemplate('systemd/voice-intake-kamailio.service', {
      CONFIG_DIR: paths.configDir,
      RUN_DIR: paths.runDir,
      MEMORY_ARGS: layout.kamailioMemoryArgs.join(' '),
      CTL_SOCKET: layout.ctlSocket,
    }),
    'bin/edge-reload.sh': fillTemplate('bin/edge-reload.sh', {
      CTL_SOCKET: layout.ctlSocket,
      ADDRESS_FILE: layout.addressFile,
      CALLERS_FILE: layout.callersFile,
    }),
    'bin/edge-apply.sh': fillTemplate('bin/edge-apply.sh', {
      CONFIG_DIR: paths.configDir,
      CTL_SOCKET: layout.ctlSocket,
    }),
    'bin/edge-ready.sh': fillTemplate('bin/edge-ready.sh', {
      CTL_SOCKET: layout.ctlSocket,
      TOPOS_REDIS_SOCKET: layout.toposRedisSocket,
      RTPENGINE_CLI: `${host.rtpengineControl.ip}:${host.rtpengineControl.cliPort}`,
    }),
    'bin/edge-drain.sh': fillTemplate('bin/edge-drain.sh', {
      CTL_SOCKET: layout.ctlSocket,
      RTPENGINE_CLI: `${host.rtpengineControl.ip}:${host.rtpengineControl.cliPort}`,
      DRAIN_SECONDS: edge.drainSeconds,
    }),
    'bin/edge-livekit-nodes.sh': fillTemplate('bin/edge-livekit-nodes.sh', {
      DISPATCHER_LIST: layout.dispatcherList,
      DEFAULT_PORT: livekitSip.nodePort,
      TRANSPORT: livekitSip.nodeTransport,
      SOCKET: `${livekitSip.nodeTransport}:${host.internalSipIp}:${host.internalSipPort}`,
      CTL_SOCKET: layout.ctlSocket,
      NO_NODE_ENTRY,
    }),
  };
  if (edge.tls) {
    files['kamailio/tls.cfg'] = fillTemplate('kamailio/tls.cfg', {
      CERTIFICATE: `${paths.configDir}/tls/edge.crt`,
      PRIVATE_KEY: `${paths.configDir}/tls/edge.key`,
    });
  }
  return Object.fromEntries(
    Object.entries(files).map(([path, content]) => [path, { content, mode: path.startsWith('bin/') ? 0o755 : 0o644 }]),
  );
}

/** Seconds a 2xx may wait for its ACK before the call counts as never established and its media is freed. */
export function ackWaitSeconds(failoverTimeoutMs: number): number {
  return Math.ceil(failoverTimeoutMs / 1000) + 2;
}

/**
 * The tree without its whole-line comments (`#` not followed by `!`, so Kamailio's `#!define`s and shebangs stay),
 * for shipping where bytes count: EC2 user data holds 16 KB. The templates in the repository keep the comments.
 */
export function withoutCommentLines(rendered: RenderedEdge): RenderedEdge {
  const comment = /^\s*#(?!!)/;
  return Object.fromEntries(
    Object.entries(rendered).map(([path, file]) => [
      path,
      {
        ...file,
        content: file.content
          .split('\n')
          .filter((line) => !comment.test(line))
          .join('\n'),
      },
    ]),
  );
}

/** Replaces the host placeholders the way the boot script does (sed over the tree) — for tests and local use. */
export function fillHostPlaceholders(
  rendered: RenderedEdge,
  facts: { privateIp: string; publicIp: string },
): RenderedEdge {
  return Object.fromEntries(
    Object.entries(rendered).map(([path, file]) => [
      path,
      {
        ...file,
        content: file.content
          .replaceAll(HOST_PLACEHOLDERS.privateIp, facts.privateIp)
          .replaceAll(HOST_PLACEHOLDERS.publicIp, facts.publicIp),
      },
    ]),
  );
}

export function writeRendered(outDir: string, rendered: RenderedEdge): string[] {
  const written: string[] = [];
  for (const [path, file] of Object.entries(rendered)) {
    const target = join(outDir, path);
    mkdirSync(dirname(target), { recursive: true });
    writeFileSync(target, file.content, { mode: file.mode });
    written.push(target);
  }
  return written;
}
