/** Renderer: schema errors name the key; rendered files say what the config says; kamailio -c accepts them. */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  EDGE_LOG_EVENTS,
  EDGE_MEDIA_MODE_LOG_EVENTS,
  RTPENGINE_LOG_EVENTS,
  UNCOUNTED_LOG_EVENTS,
} from '../src/log-events';
import {
  ackWaitSeconds,
  CALLERS_TABLE_HEADER,
  fillHostPlaceholders,
  HOST_PLACEHOLDERS,
  parseRenderInput,
  type RenderInputData,
  rejectAttestationPattern,
  renderCallerRows,
  renderEdge,
  SDP_ATTRIBUTES_KEPT,
  SIP_LIMITS,
  withoutCommentLines,
  writeRendered,
} from '../src/render';
import { edgeSectionSchema } from '../src/schema';

const LOOPBACK: RenderInputData = JSON.parse(
  readFileSync(resolve(__dirname, '..', 'examples', 'loopback.json'), 'utf8'),
);
const scratch = mkdtempSync(join(tmpdir(), 'edge-render-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** What the CDK stack renders at synth: the default edge section, host facts as placeholders. */
const CDK_DEFAULT: RenderInputData = {
  edge: edgeSectionSchema.parse({}),
  host: {
    carrierSipIp: HOST_PLACEHOLDERS.privateIp,
    carrierAdvertisedIp: HOST_PLACEHOLDERS.publicIp,
    internalSipIp: HOST_PLACEHOLDERS.privateIp,
    carrierMediaIp: HOST_PLACEHOLDERS.privateIp,
    carrierMediaAdvertisedIp: HOST_PLACEHOLDERS.publicIp,
    internalMediaIp: HOST_PLACEHOLDERS.privateIp,
  },
  livekitSip: { destinations: [{ host: 'livekit-sip.voice-intake.internal' }] },
};

function kamailioCheck(
  input: RenderInputData,
  name: string,
  facts = { privateIp: '127.0.0.1', publicIp: '192.0.2.10' },
) {
  const dir = join(scratch, name);
  mkdirSync(join(dir, 'run'), { recursive: true });
  const rendered = fillHostPlaceholders(
    renderEdge({ ...input, paths: { configDir: dir, runDir: join(dir, 'run') } }),
    facts,
  );
  writeRendered(dir, rendered);
  const result = spawnSync('kamailio', ['-c', '-f', join(dir, 'kamailio', 'kamailio.cfg')], { encoding: 'utf8' });
  // A missing kamailio is a broken test machine, not a config verdict ("npm run setup" installs it).
  if (result.error) throw new Error(`cannot run kamailio -c: ${result.error.message}`);
  return { dir, rendered, status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('renderer input', () => {
  it('names the offending key', () => {
    expect(() => parseRenderInput({ ...LOOPBACK, host: { ...LOOPBACK.host, internalSipIp: '127.0.1.300' } })).toThrow(
      /host\.internalSipIp: is not a valid IPv4 address/,
    );
    expect(() => parseRenderInput({ ...LOOPBACK, edge: { ...LOOPBACK.edge, allowlist: ['0.0.0.0/0'] } })).toThrow(
      /edge\.allowlist\[0\]: opens the edge/,
    );
    expect(() => parseRenderInput({ ...LOOPBACK, livekitSip: { destinations: [{ host: 'bad host' }] } })).toThrow(
      /livekitSip\.destinations\[0\]\.host/,
    );
    expect(() => parseRenderInput({ ...LOOPBACK, livekitSip: { destinations: [], nodeTransport: 'tls' } })).toThrow(
      /livekitSip\.nodeTransport/,
    );
    expect(() => parseRenderInput({ ...LOOPBACK, host: { ...LOOPBACK.host, internalSipIp: '127.0.0.1' } })).toThrow(
      /host\.internalSipPort: 5060 is taken/,
    );
    expect(() => parseRenderInput({ ...LOOPBACK, extra: 1 })).toThrow(/extra: unknown key/);
    expect(() => parseRenderInput({ ...LOOPBACK, edge: { ...LOOPBACK.edge, maxCallSeconds: 60 } })).toThrow(
      /edge\.maxCallSeconds/,
    );
    expect(() =>
      parseRenderInput({ ...LOOPBACK, paths: { configDir: '/opt/edge', runDir: `/run/${'x'.repeat(100)}` } }),
    ).toThrow(/paths\.runDir: is too long for a unix socket path/);
    expect(() => parseRenderInput({ ...LOOPBACK, topologyHiding: 'none' })).toThrow(/topologyHiding/);
  });

  it('takes only E.164 numbers and prefixes in the caller lists, and known attestation levels', () => {
    const withPolicy = (callerPolicy: unknown) => ({ ...LOOPBACK, edge: { ...LOOPBACK.edge, callerPolicy } });
    // Anything Kamailio would read as more than a number (a key separator, a newline, a wildcard inside) is refused.
    for (const entry of ['15550100', '+1555:1', '+1555\n2:deny.+1', '+1*5', '+0555', '+1234567890123456', '*', '+']) {
      const parse = () => parseRenderInput(withPolicy({ deny: [entry] }));
      expect(parse, entry).toThrow(/edge\.callerPolicy\.deny\[0\]: must be an E\.164/);
    }
    expect(() => parseRenderInput(withPolicy({ allow: ['+1 555'] }))).toThrow(/edge\.callerPolicy\.allow\[0\]/);
    const levels = () => parseRenderInput(withPolicy({ rejectAttestation: ['D'] }));
    expect(levels).toThrow(/edge\.callerPolicy\.rejectAttestation\[0\]/);
    expect(() => parseRenderInput(withPolicy({ anonymous: 'maybe' }))).toThrow(/edge\.callerPolicy\.anonymous/);
    expect(() => parseRenderInput(withPolicy({ denied: [] }))).toThrow(/edge\.callerPolicy\.denied: unknown key/);
    const defaults = { rejectAttestation: ['failed'], anonymous: 'allow', deny: [] };
    expect(edgeSectionSchema.parse({}).callerPolicy).toEqual(defaults);
  });
});

describe('rendered edge', () => {
  const files = renderEdge({ ...LOOPBACK, paths: { configDir: '/opt/edge', runDir: '/run/edge' } });

  it('turns the allowlist and the media allowlist into the permissions address table (groups 1 and 2)', () => {
    const rows = files['kamailio/db/address'].content.trim().split('\n').slice(1);
    expect(rows).toEqual(['1:1:127.0.3.0:24:0:allowlist', '2:2:127.0.3.0:24:0:media']);
    const twilio = renderEdge(CDK_DEFAULT)['kamailio/db/address'].content;
    expect(twilio).toContain(':2:168.86.128.0:18:0:media');
    expect(twilio).not.toMatch(/:1:168\.86\.128\.0:/);
  });

  it('turns the caller policy into the htable callers table and the refused attestation levels', () => {
    const table = (callerPolicy: object) =>
      renderEdge({ ...LOOPBACK, edge: { ...LOOPBACK.edge, callerPolicy } })['kamailio/db/callers'].content;
    const rows = (callerPolicy: object) => table(callerPolicy).trim().split('\n').slice(1);
    expect(table({})).toBe(`${CALLERS_TABLE_HEADER} \n`);
    const denied = ['1:deny.+1555*:0:1:1:0', '2:deny.+15550100777:0:1:1:0'];
    expect(rows({ deny: ['+1555*', '+15550100777'] })).toEqual(denied);
    // An allow list, even an empty one, switches the allow check on; withheld numbers refused by a row too.
    expect(rows({ allow: [], anonymous: 'reject' })).toEqual(['1:anonymous.reject:0:1:1:0', '2:allowlist:0:1:1:0']);
    const both = ['1:deny.+1:0:1:1:0', '2:allowlist:0:1:1:0', '3:allow.+1:0:1:1:0'];
    expect(rows({ deny: ['+1', '+1'], allow: ['+1'] })).toEqual(both);
    expect(() => renderCallerRows({ deny: ['+1:2'], anonymous: 'allow' })).toThrow(/not a number/);
    expect(files['kamailio/db/version'].content).toMatch(/^callers:2$/m);
    expect(files['kamailio/edge-host.cfg'].content).toContain('#!define EDGE_REJECT_ATTESTATION "^(failed)$"');
    expect(rejectAttestationPattern([])).toBe('^$');
    expect(rejectAttestationPattern(['failed', 'none', 'failed'])).toBe('^(failed|none)$');
  });

  it('bounds what may enter and how long a 2xx waits for its ACK', () => {
    const host = files['kamailio/edge-host.cfg'].content;
    expect(host).toMatch(new RegExp(`^#!define EDGE_MAX_MESSAGE_BYTES ${SIP_LIMITS.maxMessageBytes}$`, 'm'));
    expect(host).toMatch(new RegExp(`^#!define EDGE_MAX_VIAS ${SIP_LIMITS.maxVias}$`, 'm'));
    expect(host).toMatch(/^#!define EDGE_MAX_ROUTING_BYTES 3072$/m);
    expect(host).toContain('#!define EDGE_NUMBER_PATTERN "^[+]?[0-9]{1,15}$"');
    // failoverTimeoutMs 2000 in the example: 2 s plus 2 s for a lost 2xx's retransmissions.
    expect(host).toMatch(/^#!define EDGE_ACK_WAIT_SECONDS 4$/m);
    expect(host).toContain('unacked=>size=12;autoexpire=4;');
    expect(ackWaitSeconds(2500)).toBe(5);
    // topos packs Vias and Record-Routes into 8 KB: the bound leaves it room to spare.
    expect(SIP_LIMITS.maxRoutingBytes).toBeLessThan(8192 / 2);
  });

  it('has RTPEngine take media only from the address each SDP names', () => {
    const rendered = renderEdge(CDK_DEFAULT);
    const conf = rendered['rtpengine/rtpengine.conf'].content;
    expect(conf).toMatch(/^endpoint-learning = off$/m);
    // An offer never answered is freed 10 s after the longest ring (edge.ringTimeoutSeconds, 30 by default).
    expect(conf).toMatch(/^offer-timeout = 40$/m);
    const longRing = renderEdge({ ...CDK_DEFAULT, edge: { ...CDK_DEFAULT.edge, ringTimeoutSeconds: 90 } });
    expect(longRing['rtpengine/rtpengine.conf'].content).toMatch(/^offer-timeout = 100$/m);
    expect(conf).toMatch(/^log-level-core = 6$/m);
    const host = rendered['kamailio/edge-host.cfg'].content;
    const flags = (name: string) => new RegExp(`^#!define EDGE_RTP_FLAGS_FROM_${name} "(.*)"$`, 'm').exec(host)?.[1];
    expect(flags('CARRIER')).toMatch(/^direction=carrier direction=internal .* strict-source$/);
    expect(flags('INTERNAL')).toMatch(/^direction=internal direction=carrier .* strict-source$/);
  });

  it('writes one neutral SDP session name (edge.sdpSessionName, "-" by default) and keeps only the listed attributes', () => {
    const host = (edge: object) =>
      renderEdge({ ...LOOPBACK, edge: { ...LOOPBACK.edge, ...edge } })['kamailio/edge-host.cfg'].content;
    expect(host({})).toMatch(/^#!define EDGE_SDP_SESSION_NAME "-"$/m);
    expect(host({ sdpSessionName: 'call' })).toMatch(/^#!define EDGE_SDP_SESSION_NAME "call"$/m);
    // Anything Kamailio's config would read as more than a literal (a quote, a PV, a newline) never gets there.
    for (const name of ['', 'a"b', '$ru', 'a\nb', 'Live Kit', 'x'.repeat(33)]) {
      expect(() => parseRenderInput({ ...LOOPBACK, edge: { ...LOOPBACK.edge, sdpSessionName: name } }), name).toThrow(
        /edge\.sdpSessionName: must be 1-32 letters/,
      );
    }
    const attributes = /^#!define EDGE_SDP_ATTRIBUTES "(.*)"$/m.exec(host({}))?.[1] ?? '';
    expect(attributes).toBe(`^a=(${SDP_ATTRIBUTES_KEPT.join('|')})(:|$)`);
    const kept = new RegExp(attributes);
    for (const line of ['a=rtpmap:8 PCMA/8000', 'a=fmtp:101 0-16', 'a=ptime:20', 'a=sendrecv', 'a=rtcp:30001'])
      expect(line, line).toMatch(kept);
    for (const line of ['a=tool:LiveKit', 'a=X-node:1', 'a=rtpmapx:1', 'a=label:1', 'a=candidate:1 1 udp'])
      expect(line, line).not.toMatch(kept);
    // Carrier in-dialog next hops are matched by address and port, LiveKit-side sources by address.
    expect(host({})).toMatch(/^#!define EDGE_DS_MATCH_ADDRESS_PORT 2$/m);
    expect(files['kamailio/kamailio.cfg'].content).toMatch(
      /ds_is_from_list\(EDGE_DS_SET, EDGE_DS_MATCH_ADDRESS_PORT, "\$var\(nexthop\)"\)/,
    );
  });

  it('lists every LiveKit SIP node on the internal socket', () => {
    const list = files['kamailio/dispatcher.list'].content;
    expect(list).toContain('1 sip:127.0.2.1:5060;transport=udp 0 0 socket=udp:127.0.1.1:5060');
    expect(list).toContain('1 sip:127.0.2.2:5060;transport=udp 0 0 socket=udp:127.0.1.1:5060');
  });

  it('feeds pike, failover and rejection from the edge section', () => {
    const host = renderEdge({
      ...LOOPBACK,
      edge: {
        ...LOOPBACK.edge,
        rejectWith: '403',
        pike: { reqsDensityPerUnit: 77, samplingTimeUnitSeconds: 3, banSeconds: 600 },
      },
    })['kamailio/edge-host.cfg'].content;
    expect(host).toMatch(/^#!define EDGE_PIKE_DENSITY 77$/m);
    expect(host).toMatch(/^#!define EDGE_PIKE_SAMPLING_SECONDS 3$/m);
    expect(host).toContain('autoexpire=600;');
    expect(host).toMatch(/^#!define EDGE_REJECT_403$/m);
    expect(files['kamailio/edge-host.cfg'].content).not.toMatch(/^#!define EDGE_REJECT_403$/m);
    expect(files['kamailio/edge-host.cfg'].content).toMatch(/^#!define EDGE_FR_TIMER 2000$/m);
  });

  it('bounds ringing by edge.ringTimeoutSeconds, never restarted by repeated 180s', () => {
    expect(files['kamailio/edge-host.cfg'].content).toMatch(/^#!define EDGE_FR_INV_TIMER 10000$/m);
    const defaults = renderEdge(CDK_DEFAULT)['kamailio/edge-host.cfg'].content;
    expect(defaults).toMatch(/^#!define EDGE_FR_INV_TIMER 30000$/m);
    const config = files['kamailio/kamailio.cfg'].content;
    expect(config).toMatch(/^modparam\("tm", "fr_inv_timer", EDGE_FR_INV_TIMER\)$/m);
    expect(config).toMatch(/^modparam\("tm", "restart_fr_on_each_reply", 0\)$/m);
    const bad = (ringTimeoutSeconds: number) => () =>
      parseRenderInput({ ...LOOPBACK, edge: { ...LOOPBACK.edge, ringTimeoutSeconds } });
    expect(bad(4)).toThrow(/edge\.ringTimeoutSeconds/);
    expect(bad(121)).toThrow(/edge\.ringTimeoutSeconds/);
  });

  it('counts only replies a LiveKit SIP node sent as alive (never the 408 tm makes for an unanswered ping)', () => {
    const config = files['kamailio/kamailio.cfg'].content;
    const codes = /^modparam\("dispatcher", "ds_ping_reply_codes", "([^"]*)"\)$/m.exec(config)?.[1];
    expect(codes?.split(';')).toEqual(['class=2', 'code=403', 'code=404', 'code=405', 'code=488']);
    expect(config).toMatch(/^modparam\("dispatcher", "ds_probing_mode", 1\)$/m);
  });

  it('splits RTPEngine into a carrier side advertising the EIP and a private internal side', () => {
    const conf = renderEdge(CDK_DEFAULT)['rtpengine/rtpengine.conf'].content;
    expect(conf).toContain(
      `interface = carrier/${HOST_PLACEHOLDERS.privateIp}!${HOST_PLACEHOLDERS.publicIp};internal/${HOST_PLACEHOLDERS.privateIp}`,
    );
    expect(conf).toMatch(/^table = 0$/m);
    expect(conf).toMatch(/^port-min = 10000$/m);
  });

  it('advertises the EIP on carrier sockets only', () => {
    const host = renderEdge(CDK_DEFAULT)['kamailio/edge-host.cfg'].content;
    expect(host).toContain(
      `listen=udp:${HOST_PLACEHOLDERS.privateIp}:5060 advertise ${HOST_PLACEHOLDERS.publicIp}:5060`,
    );
    expect(host).toMatch(new RegExp(`^listen=udp:${HOST_PLACEHOLDERS.privateIp}:5080$`, 'm'));
  });

  it('keeps topology-hiding records in a host-local Redis on a unix socket, as long as the longest call', () => {
    const input = {
      ...LOOPBACK,
      edge: { ...LOOPBACK.edge, maxCallSeconds: 7200, kamailio: { toposStoreMb: 64 } },
      paths: { configDir: '/opt/edge', runDir: '/run/edge' },
    };
    const rendered = renderEdge(input);
    const redis = rendered['redis/topos-redis.conf'].content;
    expect(redis).toMatch(/^port 0$/m); // nothing on the network
    expect(redis).toMatch(/^unixsocket \/run\/edge\/topos\/redis\.sock$/m);
    expect(redis).toMatch(/^maxmemory 64mb$/m);
    expect(redis).toMatch(/^maxmemory-policy noeviction$/m);
    expect(redis).toMatch(/^save ""$/m);
    const host = rendered['kamailio/edge-host.cfg'].content;
    expect(host).toContain('#!define EDGE_TOPOS_REDIS "name=topos;unix=/run/edge/topos/redis.sock;db=0"');
    expect(host).toMatch(/^#!define EDGE_TOPOS_DIALOG_EXPIRE 7200$/m);
    expect(rendered['rtpengine/rtpengine.conf'].content).toMatch(/^final-timeout = 7200$/m);
    expect(rendered['kamailio/kamailio.cfg'].content).toMatch(/^loadmodule "topos_redis\.so"$/m);
    expect(rendered['systemd/voice-intake-kamailio.service'].content).toMatch(
      /^Requires=.*voice-intake-topos-redis\.service/m,
    );
    expect(rendered['systemd/voice-intake-topos-redis.service'].content).toContain(
      'ExecStart=/usr/bin/redis-server /opt/edge/redis/topos-redis.conf',
    );
  });

  it('runs Kamailio with the TLSF allocator and the configured memory pools', () => {
    const rendered = renderEdge({
      ...LOOPBACK,
      edge: { ...LOOPBACK.edge, kamailio: { sharedMemoryMb: 512 } },
      paths: { configDir: '/opt/edge', runDir: '/run/edge' },
    });
    const unit = rendered['systemd/voice-intake-kamailio.service'].content;
    expect(unit).toMatch(
      /^ExecStart=\/usr\/sbin\/kamailio -DD -E -f \/opt\/edge\/kamailio\/kamailio\.cfg -P \/run\/edge\/kamailio\.pid -x tlsf -X tlsf -m 512 -M 16$/m,
    );
  });

  it('logs every counted event with the phrase its CloudWatch metric filter looks for, and counts it', () => {
    const config = files['kamailio/kamailio.cfg'].content;
    for (const [event, phrase] of Object.entries(EDGE_LOG_EVENTS)) {
      if (RTPENGINE_LOG_EVENTS.includes(event as keyof typeof EDGE_LOG_EVENTS)) continue;
      expect(config, event).toMatch(new RegExp(`xlog\\("L_[A-Z]+", "[^"]*${phrase}`));
      if (UNCOUNTED_LOG_EVENTS.includes(event as keyof typeof EDGE_LOG_EVENTS)) continue;
      expect(config, event).toContain(`modparam("statistics", "variable", "${event}")`);
      expect(config, event).toContain(`update_stat("${event}", "+1")`);
    }
  });

  it('writes no log line a metric filter would count for two events (each phrase is in no other)', () => {
    const config = files['kamailio/kamailio.cfg'].content;
    const phrases = Object.values(EDGE_LOG_EVENTS);
    // Every phrase has a space: a value logged as one word (a Call-ID, a URI without spaces) can spell none of them.
    for (const phrase of phrases) expect(phrase).toContain(' ');
    for (const phrase of phrases)
      expect(
        phrases.filter((other) => other !== phrase && other.includes(phrase)),
        phrase,
      ).toEqual([]);
    const lines = [...config.matchAll(/xlog\("L_[A-Z]+", "([^"]*)"\)/g)].map((match) => match[1]);
    expect(lines.length).toBeGreaterThan(20);
    for (const line of lines)
      expect(phrases.filter((phrase) => line.includes(phrase)).length, line).toBeLessThanOrEqual(1);
  });

  it('counts SDP it cannot rebuild as sdpRefusals, naming the side, and only RTPEngine failures as mediaAnchorFailures', () => {
    const config = files['kamailio/kamailio.cfg'].content;
    const route = (name: string) => {
      const start = config.indexOf(`route[${name}] {`);
      expect(start, name).toBeGreaterThan(0);
      return config.slice(start, config.indexOf('\n}\n', start));
    };
    const counted = (text: string) => [...text.matchAll(/update_stat\("(\w+)"/g)].map((match) => match[1]);
    const privacy = route('SDP_PRIVACY');
    expect(counted(privacy)).toEqual(['sdpRefusals']);
    // The request refused and the reply dropped each say so, and from which side.
    const logged = [...privacy.matchAll(/xlog\("L_[A-Z]+", "([^"]*)"\)/g)].map((match) => match[1]);
    expect(logged).toEqual([
      expect.stringMatching(/SDP not rewritable .* from \$var\(sdpfrom\) \$si:\$sp, dropped/),
      expect.stringMatching(/SDP not rewritable .* from \$var\(sdpfrom\) \$si:\$sp, refused/),
    ]);
    expect(privacy).toContain('$var(sdpfrom) = "carrier";');
    expect(privacy).toMatch(/if \(route\(FROM_INTERNAL\)\) \$var\(sdpfrom\) = "LiveKit";/);
    // The sender's Content-Type reaches the log only as type/subtype: its parameters are the sender's free text.
    expect(privacy).not.toMatch(/"content type " \+ \$cT\b/);
    expect(route('MEDIA')).toContain('update_stat("mediaAnchorFailures", "+1")');
    expect(config.match(/update_stat\("mediaAnchorFailures"/g)).toHaveLength(1);
    // A new call's offer and an in-dialog one are rebuilt (and refused as such) before their addresses are checked.
    for (const name of ['NEW_CALL', 'WITHINDLG']) {
      const body = route(name);
      expect(body.indexOf('route(SDP_PRIVACY)'), name).toBeGreaterThan(0);
      expect(body.indexOf('route(SDP_PRIVACY)'), name).toBeLessThan(body.indexOf('route(CARRIER_SDP)'));
    }
  });

  it("checks an answer's SDP before looking up its transaction, and anchors it only after", () => {
    // A reply dropped after the lookup stays the worker's transaction (tm never sees it): its next new call gets 500.
    const config = files['kamailio/kamailio.cfg'].content;
    const start = config.indexOf('reply_route {');
    const replies = config.slice(start, config.indexOf('\n}\n', start));
    const at = (text: string) => replies.indexOf(text);
    expect(at('route(SDP_PRIVACY)')).toBeGreaterThan(0);
    expect(at('route(SDP_PRIVACY)')).toBeLessThan(at('route(CARRIER_SDP)'));
    expect(at('route(CARRIER_SDP)')).toBeLessThan(at('if (!t_check_trans())'));
    expect(at('if (!t_check_trans())')).toBeLessThan(at('route(MEDIA)'));
  });

  it('renders through the CLI with --local', () => {
    const out = join(scratch, 'cli');
    const stdout = execFileSync(
      'npx',
      [
        'tsx',
        resolve(__dirname, '..', 'src', 'cli.ts'),
        '--config',
        resolve(__dirname, '..', 'examples', 'loopback.json'),
        '--out',
        out,
        '--local',
      ],
      { encoding: 'utf8' },
    );
    expect(stdout).toContain(`into ${out}`);
    expect(readFileSync(join(out, 'kamailio', 'kamailio.cfg'), 'utf8')).toContain(
      `import_file "${out}/kamailio/edge-host.cfg"`,
    );
  });
});

describe('kamailio -c', () => {
  it('accepts the default CDK config rendered with placeholder host facts', () => {
    const check = kamailioCheck(CDK_DEFAULT, 'cdk-default');
    expect(check.output).toContain('config file ok');
    expect(check.status).toBe(0);
  });

  it('accepts a caller policy with both lists and every level refused', () => {
    const rejectAttestation = ['A', 'B', 'C', 'failed', 'none'];
    const callerPolicy = { rejectAttestation, anonymous: 'reject', deny: ['+1*'], allow: ['+44*'] };
    const input = { ...LOOPBACK, edge: { ...LOOPBACK.edge, callerPolicy } } as RenderInputData;
    const check = kamailioCheck(input, 'callers');
    expect(check.status, check.output).toBe(0);
  });

  it('accepts a session name other than the default', () => {
    const check = kamailioCheck(
      { ...LOOPBACK, edge: { ...LOOPBACK.edge, sdpSessionName: 'voice.call_1' } },
      'sdp-name',
    );
    expect(check.status, check.output).toBe(0);
  });

  it('accepts the loopback example', () => {
    const check = kamailioCheck(LOOPBACK, 'loopback');
    expect(check.status, check.output).toBe(0);
  });

  it('swaps topos for topoh only when the renderer is told to (comparison runs), and both load', () => {
    const topos = kamailioCheck(LOOPBACK, 'topos');
    expect(topos.rendered['kamailio/edge-host.cfg'].content).not.toMatch(/EDGE_TOPOH/);
    const topoh = kamailioCheck({ ...LOOPBACK, topologyHiding: 'topoh' }, 'topoh');
    expect(topoh.status, topoh.output).toBe(0);
    const host = topoh.rendered['kamailio/edge-host.cfg'].content;
    expect(host).toMatch(/^#!define EDGE_TOPOH$/m);
    expect(host).toMatch(/^#!define EDGE_TOPOH_MASK_IP "192\.0\.2\.8"$/m);
    // The config as Kamailio reads it (#!ifdef applied): one module or the other, never both.
    const loaded = (dir: string) =>
      execFileSync('kamailio', ['--cfg-print', '-f', join(dir, 'kamailio', 'kamailio.cfg')], { encoding: 'utf8' })
        .split('\n')
        .filter((line) => /^loadmodule "topo/.test(line));
    expect(loaded(topoh.dir)).toEqual(['loadmodule "topoh.so"']);
    expect(loaded(topos.dir)).toEqual(['loadmodule "topos.so"', 'loadmodule "topos_redis.so"']);
  });

  it('accepts TLS on 5061 when a certificate is configured', () => {
    const input = {
      ...CDK_DEFAULT,
      edge: edgeSectionSchema.parse({ tls: { certificateSecretName: 'edge/cert', privateKeySecretName: 'edge/key' } }),
    };
    const dir = join(scratch, 'tls');
    mkdirSync(join(dir, 'tls'), { recursive: true });
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=edge.test',
        '-keyout',
        join(dir, 'tls', 'edge.key'),
        '-out',
        join(dir, 'tls', 'edge.crt'),
      ],
      { stdio: 'ignore' },
    );
    const check = kamailioCheck(input, 'tls');
    expect(check.rendered['kamailio/edge-host.cfg'].content).toContain(
      'listen=tls:127.0.0.1:5061 advertise 192.0.2.10:5061',
    );
    expect(check.status, check.output).toBe(0);
    expect(check.output).toMatch(/tls: 127\.0\.0\.1 \[127\.0\.0\.1\]:5061/);
  });
});

describe('media forwarding mode (in-kernel in production, userspace when the module cannot load)', () => {
  /** Runs the rendered bin/edge-media-mode.sh with stand-in modprobe/iptables (each exits with the code given). */
  function runModeScript(name: string, fakes: { modprobe: number; iptables: number; control: boolean }) {
    const dir = join(scratch, `media-mode-${name}`);
    const run = join(dir, 'run');
    const bin = join(dir, 'fake-bin');
    mkdirSync(bin, { recursive: true });
    const calls = join(dir, 'calls.log');
    for (const tool of ['modprobe', 'iptables'] as const) {
      const path = join(bin, tool);
      // `-C` (is the rule there?) answers no, so the script has to insert each rule.
      const check = tool === 'iptables' ? 'case "$1" in -C) exit 1;; esac\n' : '';
      writeFileSync(path, `#!/bin/sh\necho "${tool} $*" >> ${calls}\n${check}exit ${fakes[tool]}\n`);
      chmodSync(path, 0o755);
    }
    const control = join(dir, 'proc-control');
    if (fakes.control) writeFileSync(control, '');
    mkdirSync(run, { recursive: true }); // systemd's RuntimeDirectory on a host
    const rendered = renderEdge({ ...CDK_DEFAULT, paths: { configDir: dir, runDir: run } });
    writeRendered(dir, rendered);
    const result = spawnSync(join(dir, 'bin', 'edge-media-mode.sh'), [], {
      encoding: 'utf8',
      env: { PATH: `${bin}:/usr/bin:/bin`, RTPENGINE_PROC_CONTROL: control },
    });
    const readOr = (path: string) => {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return '';
      }
    };
    const mode = readOr(join(run, 'rtpengine-mode.env'));
    return { status: result.status, stdout: result.stdout, mode, calls: readOr(calls) };
  }

  it('renders table 0 for hosts, -1 for loopback runs, and a unit that starts RTPEngine in the mode found', () => {
    const production = renderEdge(CDK_DEFAULT);
    expect(production['rtpengine/rtpengine.conf'].content).toMatch(/^table = 0$/m);
    expect(renderEdge(LOOPBACK)['rtpengine/rtpengine.conf'].content).toMatch(/^table = -1$/m);
    const unit = production['systemd/voice-intake-rtpengine.service'].content;
    expect(unit).toMatch(/^ExecStartPre=\/etc\/voice-intake-edge\/bin\/edge-media-mode\.sh$/m);
    expect(unit).toMatch(/^EnvironmentFile=-\/run\/voice-intake-edge\/rtpengine-mode\.env$/m);
    expect(unit).toMatch(/^ExecStart=\/usr\/bin\/rtpengine [^\n]*\\\n\s+--table=\$\{RTPENGINE_TABLE\} /m);
    expect(production['bin/edge-media-mode.sh'].mode).toBe(0o755);
  });

  it('forwards in the kernel when xt_RTPENGINE loads and its iptables rule is in place', () => {
    const result = runModeScript('kernel', { modprobe: 0, iptables: 0, control: true });
    expect(result.status).toBe(0);
    expect(result.mode.trim()).toBe('RTPENGINE_TABLE=0');
    expect(result.stdout).toContain(`edge: ${EDGE_MEDIA_MODE_LOG_EVENTS.kernel} (table 0)`);
    expect(result.stdout).not.toContain(EDGE_MEDIA_MODE_LOG_EVENTS.userspace);
    expect(result.calls).toContain('modprobe xt_RTPENGINE');
    expect(result.calls).toContain('iptables -I rtpengine -p udp -j RTPENGINE --id 0');
  });

  it('falls back to userspace, saying so, when the module or its rule cannot be set up', () => {
    const cases = {
      'no module': { modprobe: 1, iptables: 0, control: false },
      'module without its table': { modprobe: 0, iptables: 0, control: false },
      'no iptables rule': { modprobe: 0, iptables: 1, control: true },
    };
    for (const [name, fakes] of Object.entries(cases)) {
      const result = runModeScript(name.replaceAll(' ', '-'), fakes);
      expect(result.status, name).toBe(0);
      expect(result.mode.trim(), name).toBe('RTPENGINE_TABLE=-1');
      expect(result.stdout, name).toContain(`edge: ${EDGE_MEDIA_MODE_LOG_EVENTS.userspace}`);
    }
  });
});

describe('the tree as shipped in user data (without comment lines)', () => {
  it('drops whole-line comments only, keeping directives and shebangs, and Kamailio still accepts it', () => {
    const rendered = renderEdge(CDK_DEFAULT);
    const stripped = withoutCommentLines(rendered);
    expect(Object.keys(stripped)).toEqual(Object.keys(rendered));
    for (const [path, file] of Object.entries(rendered)) {
      const kept = stripped[path].content.split('\n');
      const expected = file.content.split('\n').filter((line) => !/^\s*#/.test(line) || /^\s*#!/.test(line));
      expect(kept, path).toEqual(expected);
      expect(stripped[path].mode, path).toBe(file.mode);
    }
    expect(stripped['kamailio/edge-host.cfg'].content).toMatch(/^#!define EDGE_PROBING_THRESHOLD 3$/m);
    expect(stripped['bin/edge-media-mode.sh'].content.startsWith('#!/bin/sh\n')).toBe(true);
    expect(stripped['kamailio/kamailio.cfg'].content).not.toMatch(/^\s*# /m);

    const dir = join(scratch, 'stripped');
    mkdirSync(join(dir, 'run'), { recursive: true });
    const renderedHere = renderEdge({ ...CDK_DEFAULT, paths: { configDir: dir, runDir: join(dir, 'run') } });
    const placed = fillHostPlaceholders(renderedHere, { privateIp: '127.0.0.1', publicIp: '192.0.2.10' });
    writeRendered(dir, withoutCommentLines(placed));
    const check = spawnSync('kamailio', ['-c', '-f', join(dir, 'kamailio', 'kamailio.cfg')], { encoding: 'utf8' });
    expect(check.status, `${check.stdout}${check.stderr}`).toBe(0);
  });
});
