import { stringify } from 'yaml';
import type { VoiceIntakeConfig } from '../config';

/**
 * Values only the host knows at start, or secrets that must not sit in a template: the generated YAML carries these
 * placeholders, and the task's config step replaces them (private IP from IMDSv2, the rest from Secrets Manager).
 */
export const LIVEKIT_PLACEHOLDERS = {
  nodeIp: '__NODE_IP__',
  apiKey: '__LIVEKIT_API_KEY__',
  apiSecret: '__LIVEKIT_API_SECRET__',
  redisPassword: '__REDIS_PASSWORD__',
} as const;

export interface LiveKitConfigInput {
  readonly livekit: VoiceIntakeConfig['livekit'];
  /** `host:port` of the Redis primary (TLS, AUTH). */
  readonly redisAddress: string;
  /** TLS to Redis (ElastiCache requires it; default true). Only a Redis on loopback goes without. */
  readonly redisTls?: boolean;
  /** Where the processes run when that is not an AWS host (loopback for tests); omitted: an EC2 host. */
  readonly network?: LiveKitNetwork;
}

/**
 * Network facts of a host that is not an EC2 host with one private interface, e.g. every process on 127.0.0.0/8.
 * Each field left out keeps LiveKit's own default (all addresses, all interfaces but loopback).
 */
export interface LiveKitNetwork {
  /** Addresses LiveKit Server's API/WebSocket and ICE TCP bind. */
  readonly bindAddresses?: readonly string[];
  /** Interfaces ICE gathers candidates on (e.g. ['lo']). */
  readonly interfaces?: readonly string[];
  /** Offer loopback ICE candidates: without them no client on 127.0.0.0/8 connects (wait_pc_connection timeout). */
  readonly enableLoopbackCandidate?: boolean;
  /** The address LiveKit SIP reaches the server's API on (its ws_url); default 127.0.0.1, the same host. */
  readonly serverAddress?: string;
  /**
   * The address LiveKit SIP names for its RTP in SDP (media_nat_1_to_1_ip), where that is not the node IP: its RTP
   * sockets bind 0.0.0.0, so on 127.0.0.0/8 packets leave from 127.0.0.1 whatever the node's address, and the edge
   * (strict source) takes media only from the address the SDP named.
   */
  readonly sipMediaAddress?: string;
}

function redisSection({ redisAddress, redisTls = true }: LiveKitConfigInput) {
  return { address: redisAddress, password: LIVEKIT_PLACEHOLDERS.redisPassword, use_tls: redisTls };
}

/**
 * LiveKit Server's config: multi-node through Redis (TLS + AUTH), node IP = the host's private address, no external
 * IP discovery and no TURN (both would leak or need public addresses: the edge is the only public part), ports from
 * our config.
 */
export function liveKitServerYaml(input: LiveKitConfigInput): string {
  const { livekit, network } = input;
  return stringify({
    port: livekit.apiPort,
    ...(network?.bindAddresses ? { bind_addresses: [...network.bindAddresses] } : {}),
    prometheus_port: livekit.serverPrometheusPort,
    rtc: {
      tcp_port: livekit.rtcTcpPort,
      port_range_start: livekit.rtcUdpPortRange.min,
      port_range_end: livekit.rtcUdpPortRange.max,
      use_external_ip: false,
      node_ip: LIVEKIT_PLACEHOLDERS.nodeIp,
      ...(network?.enableLoopbackCandidate !== undefined
        ? { enable_loopback_candidate: network.enableLoopbackCandidate }
        : {}),
      ...(network?.interfaces ? { interfaces: { includes: [...network.interfaces] } } : {}),
    },
    redis: redisSection(input),
    keys: { [LIVEKIT_PLACEHOLDERS.apiKey]: LIVEKIT_PLACEHOLDERS.apiSecret },
    turn: { enabled: false },
    room: { auto_create: true, empty_timeout: 30, departure_timeout: 10 },
    logging: { level: 'info', json: true },
  });
}

/**
 * LiveKit SIP's config: same Redis, talks to the LiveKit Server on its own host, SIP and RTP on the configured ports,
 * private addresses only (the edge anchors media toward the carrier), call and CPU limits so an overloaded node
 * refuses calls instead of degrading them.
 */
export function liveKitSipYaml(input: LiveKitConfigInput): string {
  const { livekit, network } = input;
  return stringify({
    api_key: LIVEKIT_PLACEHOLDERS.apiKey,
    api_secret: LIVEKIT_PLACEHOLDERS.apiSecret,
    ws_url: `ws://${network?.serverAddress ?? '127.0.0.1'}:${livekit.apiPort}`,
    redis: redisSection(input),
    sip_port: livekit.sipPort,
    rtp_port: `${livekit.sipRtpPortRange.min}-${livekit.sipRtpPortRange.max}`,
    use_external_ip: false,
    // Pins the address LiveKit SIP puts in Contact and SDP to the private IP, instead of the first interface it finds.
    nat_1_to_1_ip: LIVEKIT_PLACEHOLDERS.nodeIp,
    ...(network?.sipMediaAddress ? { media_nat_1_to_1_ip: network.sipMediaAddress } : {}),
    listen_ip: LIVEKIT_PLACEHOLDERS.nodeIp,
    max_active_calls: livekit.maxActiveCalls,
    max_cpu_utilization: livekit.maxCpuUtilization,
    health_port: livekit.sipHealthPort,
    prometheus_port: livekit.sipPrometheusPort,
    logging: { level: 'info', json: true },
  });
}

/** Replaces every placeholder; throws naming any that has no value, so a half-rendered config never starts. */
export function fillPlaceholders(template: string, values: Record<keyof typeof LIVEKIT_PLACEHOLDERS, string>): string {
  let filled = template;
  for (const [key, placeholder] of Object.entries(LIVEKIT_PLACEHOLDERS) as [
    keyof typeof LIVEKIT_PLACEHOLDERS,
    string,
  ][]) {
    const value = values[key];
    if (!value) throw new Error(`no value for ${placeholder}`);
    filled = filled.split(placeholder).join(value);
  }
  return filled;
}
