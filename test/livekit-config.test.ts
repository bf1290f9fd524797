import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { parseConfig } from '../lib/config';
import { fillPlaceholders, LIVEKIT_PLACEHOLDERS, liveKitServerYaml, liveKitSipYaml } from '../lib/livekit/config-yaml';
import { repoConfigInput } from './support/synth';

const { livekit } = parseConfig(repoConfigInput());
const input = { livekit, redisAddress: 'master.voice-intake.abc123.use1.cache.amazonaws.com:6380' };

describe('LiveKit Server config', () => {
  const config = parse(liveKitServerYaml(input));

  it('uses the private node IP, no external IP discovery and no TURN', () => {
    expect(config.rtc.use_external_ip).toBe(false);
    expect(config.rtc.node_ip).toBe(LIVEKIT_PLACEHOLDERS.nodeIp);
    expect(config.turn).toEqual({ enabled: false });
    expect(config.rtc.turn_servers).toBeUndefined();
    expect(config.rtc.stun_servers).toBeUndefined();
  });

  it('joins the multi-node cluster through Redis over TLS with AUTH', () => {
    expect(config.redis).toEqual({
      address: input.redisAddress,
      password: LIVEKIT_PLACEHOLDERS.redisPassword,
      use_tls: true,
    });
  });

  it('takes its ports from config and its keys from the secret', () => {
    expect(config.port).toBe(7880);
    expect(config.rtc.tcp_port).toBe(7881);
    expect([config.rtc.port_range_start, config.rtc.port_range_end]).toEqual([50000, 60000]);
    expect(config.prometheus_port).toBe(6789);
    expect(config.keys).toEqual({ [LIVEKIT_PLACEHOLDERS.apiKey]: LIVEKIT_PLACEHOLDERS.apiSecret });
  });

  it('follows config changes', () => {
    const custom = parseConfig(
      repoConfigInput({ livekit: { apiPort: 7980, rtcUdpPortRange: { min: 40000, max: 45000 } } }),
    ).livekit;
    const changed = parse(liveKitServerYaml({ ...input, livekit: custom }));
    expect(changed.port).toBe(7980);
    expect([changed.rtc.port_range_start, changed.rtc.port_range_end]).toEqual([40000, 45000]);
  });
});

describe('LiveKit SIP config', () => {
  const config = parse(liveKitSipYaml(input));

  it('listens on the private address with SIP and RTP ports from config', () => {
    expect(config.sip_port).toBe(5060);
    expect(config.rtp_port).toBe('10000-20000');
    expect(config.use_external_ip).toBe(false);
    expect(config.listen_ip).toBe(LIVEKIT_PLACEHOLDERS.nodeIp);
    // Contact and SDP carry the private IP, never a guess among the host's interfaces (docker0, ecs-bridge…).
    expect(config.nat_1_to_1_ip).toBe(LIVEKIT_PLACEHOLDERS.nodeIp);
  });

  it('uses only keys LiveKit SIP reads (a misspelt key would be ignored silently)', () => {
    // The yaml tags of LiveKit SIP's Config struct (pkg/config/config.go) that a deployment like ours may set.
    const known = [
      'redis',
      'api_key',
      'api_secret',
      'ws_url',
      'health_port',
      'prometheus_port',
      'pprof_port',
      'sip_port',
      'sip_port_listen',
      'sip_hostname',
      'tcp',
      'tls',
      'rtp_port',
      'logging',
      'cluster_id',
      'max_cpu_utilization',
      'max_active_calls',
      'sip_trunk_ids',
      'use_external_ip',
      'local_net',
      'nat_1_to_1_ip',
      'listen_ip',
      'media_use_external_ip',
      'media_nat_1_to_1_ip',
      'media_timeout',
      'media_timeout_initial',
      'symmetric_rtp',
      'hide_inbound_port',
      'add_record_route',
      'audio_dtmf',
      'enable_jitter_buffer',
      'codecs',
    ];
    expect(Object.keys(config).filter((key) => !known.includes(key))).toEqual([]);
    // use_external_ip and nat_1_to_1_ip together make LiveKit SIP refuse to start.
    expect(config.use_external_ip && config.nat_1_to_1_ip).toBeFalsy();
  });

  it('shares Redis with the server and reaches it on the same host', () => {
    expect(config.redis).toEqual({
      address: input.redisAddress,
      password: LIVEKIT_PLACEHOLDERS.redisPassword,
      use_tls: true,
    });
    expect(config.ws_url).toBe('ws://127.0.0.1:7880');
    expect(config.api_key).toBe(LIVEKIT_PLACEHOLDERS.apiKey);
  });

  it('limits calls and CPU, and exposes health and metrics', () => {
    expect(config.max_active_calls).toBe(100);
    expect(config.max_cpu_utilization).toBe(0.9);
    expect(config.health_port).toBe(8080);
    expect(config.prometheus_port).toBe(6790);
  });
});

describe('placeholders', () => {
  it('are all replaced, and a missing value is named', () => {
    const values = { nodeIp: '10.40.16.12', apiKey: 'APIabc', apiSecret: 'secret-xyz', redisPassword: 'p@ss:word' };
    const filled = fillPlaceholders(liveKitSipYaml(input), values);
    expect(filled).not.toMatch(/__[A-Z_]+__/);
    const config = parse(filled);
    expect(config.listen_ip).toBe('10.40.16.12');
    expect(config.redis.password).toBe('p@ss:word');
    expect(() => fillPlaceholders(liveKitServerYaml(input), { ...values, redisPassword: '' })).toThrow(
      /__REDIS_PASSWORD__/,
    );
  });
});

describe('livekit config validation', () => {
  it('refuses overlapping port ranges and clashing ports, naming the key', () => {
    expect(() => parseConfig({ livekit: { sipRtpPortRange: { min: 55000, max: 56000 } } })).toThrow(
      /livekit\.sipRtpPortRange: overlaps rtcUdpPortRange/,
    );
    expect(() => parseConfig({ livekit: { sipHealthPort: 7880 } })).toThrow(
      /livekit\.sipHealthPort: 7880 is also apiPort/,
    );
    expect(() => parseConfig({ livekit: { minHosts: 5, maxHosts: 2 } })).toThrow(
      /livekit\.minHosts: must not exceed maxHosts/,
    );
    expect(() => parseConfig({ livekit: { serverImage: 'livekit/livekit-server' } })).toThrow(
      /livekit\.serverImage: must be pinned: give a release tag or an @sha256: digest/,
    );
  });
});

describe('a host that is not an EC2 host (loopback, for tests)', () => {
  const network = {
    bindAddresses: ['127.0.0.1'],
    interfaces: ['lo'],
    enableLoopbackCandidate: true,
    serverAddress: '127.0.0.9',
  };
  const local = { ...input, redisAddress: '127.0.0.1:16390', redisTls: false, network };

  it('binds, gathers ICE and reaches the server where it is told, as typed input', () => {
    const server = parse(liveKitServerYaml(local));
    expect(server.bind_addresses).toEqual(['127.0.0.1']);
    expect(server.rtc.enable_loopback_candidate).toBe(true);
    expect(server.rtc.interfaces).toEqual({ includes: ['lo'] });
    expect(server.redis.use_tls).toBe(false);
    const sip = parse(liveKitSipYaml(local));
    expect(sip.ws_url).toBe('ws://127.0.0.9:7880');
    const password = LIVEKIT_PLACEHOLDERS.redisPassword;
    expect(sip.redis).toEqual({ address: '127.0.0.1:16390', password, use_tls: false });
    expect(sip.media_nat_1_to_1_ip).toBeUndefined();
    // Where RTP leaves from another address than the node's (0.0.0.0 sockets on loopback), the SDP names that one.
    const media = parse(liveKitSipYaml({ ...local, network: { ...network, sipMediaAddress: '127.0.0.1' } }));
    expect(media.media_nat_1_to_1_ip).toBe('127.0.0.1');
    expect(media.nat_1_to_1_ip).toBe(LIVEKIT_PLACEHOLDERS.nodeIp);
  });

  it('leaves a deployment config without those keys (LiveKit defaults, Redis over TLS)', () => {
    const server = parse(liveKitServerYaml(input));
    expect(server.bind_addresses).toBeUndefined();
    expect(server.rtc.enable_loopback_candidate).toBeUndefined();
    expect(server.rtc.interfaces).toBeUndefined();
    const sip = parse(liveKitSipYaml({ ...input, redisTls: undefined }));
    expect(sip.redis.use_tls).toBe(true);
    expect(sip.media_nat_1_to_1_ip).toBeUndefined();
  });
});
