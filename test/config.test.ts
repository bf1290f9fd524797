import {
  AGENT_CALL_COST,
  AGENT_SIZING,
  agentScalingTarget,
  agentTaskCapacity,
  agentTaskMemoryMiB,
} from '@voice-intake/contracts';
import { TWILIO_MEDIA_CIDRS, TWILIO_SIGNALLING_CIDRS } from '@voice-intake/edge-config';
import * as logs from 'aws-cdk-lib/aws-logs';
import { describe, expect, it } from 'vitest';
import {
  CLOUDWATCH_LOG_RETENTION_DAYS,
  ConfigError,
  contextFromCommandLine,
  parseConfig,
  readConfig,
  readConfigFromContext,
} from '../lib/config';
import { repoConfigInput } from './support/synth';

function contextOf(values: Record<string, unknown>) {
  return { reader: { tryGetContext: (key: string) => values[key] }, all: values };
}

function errorOf(raw: unknown): string {
  try {
    parseConfig(raw);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return (error as Error).message;
  }
  throw new Error('expected the config to be rejected');
}

describe('operator config', () => {
  it('defaults to a two-AZ deployment open only to Twilio', () => {
    const config = parseConfig(repoConfigInput());
    expect(config.azCount).toBe(2);
    expect(config.deploymentName).toBe('voice-intake');
    expect(config.edge.allowlist).toEqual([...TWILIO_SIGNALLING_CIDRS]);
    expect(config.edge.allowlist).toHaveLength(8);
    expect(config.edge.mediaAllowlist).toEqual([...TWILIO_MEDIA_CIDRS]);
    expect(config.edge.rtpPortRange).toEqual({ min: 10000, max: 20000 });
    expect(config.edge.hostsPerAz).toBe(2);
    expect(config.agent.bedrockModelId).toMatch(/anthropic\.claude/);
    expect(config.agent.pollyVoice).toBeTruthy();
    expect(config.agent.transcribeLanguage).toBe('en-US');
    expect(config.data.auditObjectLockMode).toBe('GOVERNANCE');
  });

  it('names the offending list entry of a malformed CIDR', () => {
    const message = errorOf({ edge: { allowlist: ['54.172.60.0/30', '10.0.0.300/24'] } });
    expect(message).toContain('edge.allowlist[1]');
    expect(message).toContain('10.0.0.300/24');
    expect(message).not.toContain('\n');
  });

  it('turns speculative turns off when asked, and names the key of a value that is not a boolean', () => {
    expect(parseConfig(repoConfigInput({})).agent.speculativeTurns).toBe(true);
    expect(parseConfig(repoConfigInput({ agent: { speculativeTurns: false } })).agent.speculativeTurns).toBe(false);
    expect(errorOf({ agent: { speculativeTurns: 'no' } })).toContain('agent.speculativeTurns');
  });

  it('names the bad key of the caller policy and the caller trust policy', () => {
    expect(errorOf({ edge: { callerPolicy: { deny: ['+1555', '555'] } } })).toContain('edge.callerPolicy.deny[1]');
    const levels = errorOf({ edge: { callerPolicy: { rejectAttestation: ['D'] } } });
    expect(levels).toContain('edge.callerPolicy.rejectAttestation[0]');
    expect(errorOf({ mcp: { callerTrust: { revealCasesAt: 'always' } } })).toContain('mcp.callerTrust.revealCasesAt');
    const tools = errorOf({ mcp: { callerTrust: { tools: { lookup_caller: 'X' } } } });
    expect(tools).toContain('mcp.callerTrust.tools.lookup_caller');
  });

  it('gates only tools the MCP server has, and never makes identity proof impossible', () => {
    const trustOf = (tools: object) =>
      parseConfig(repoConfigInput({ mcp: { callerTrust: { tools } } })).mcp.callerTrust;
    expect(trustOf({ submit_intake: 'B', lookup_caller: 'never' }).tools).toEqual({
      submit_intake: 'B',
      lookup_caller: 'never',
    });
    expect(errorOf(repoConfigInput({ mcp: { callerTrust: { tools: { submit_intak: 'B' } } } }))).toMatch(
      /mcp\.callerTrust\.tools\.submit_intak: is not a tool of the MCP server \(lookup_caller, verify_caller, /,
    );
    expect(errorOf(repoConfigInput({ mcp: { callerTrust: { tools: { verify_caller: 'never' } } } }))).toContain(
      'mcp.callerTrust.tools.verify_caller: cannot be "never"',
    );
    expect(trustOf({ verify_caller: 'C' }).tools).toEqual({ verify_caller: 'C' });
  });

  it('accepts agent.recording announce and consent, and names the key of a bad rate or sentence', () => {
    const recordingOf = (recording: object) => parseConfig(repoConfigInput({ agent: { recording } })).agent.recording;
    expect(recordingOf({ mode: 'consent' }).mode).toBe('consent');
    const notice = 'Calls to this line are recorded for training.';
    expect(recordingOf({ mode: 'announce', notice }).notice).toBe(notice);
    expect(errorOf({ agent: { recording: { sampleRate: 44_100 } } })).toContain('agent.recording.sampleRate');
    expect(errorOf({ agent: { recording: { mode: 'sometimes' } } })).toContain('agent.recording.mode');
    expect(errorOf({ agent: { recording: { mode: 'announce', notice: 'Hi' } } })).toContain('agent.recording.notice');
    // A sentence for the other mode would never be spoken.
    expect(
      errorOf({ agent: { recording: { mode: 'announce', consentQuestion: 'May I record this call?' } } }),
    ).toContain('agent.recording.consentQuestion');
    expect(errorOf({ agent: { recording: { mode: 'off', notice } } })).toContain('agent.recording.notice');
  });

  it('rejects a CIDR with host bits set', () => {
    expect(errorOf({ edge: { allowlist: ['10.0.0.1/24'] } })).toContain('edge.allowlist[0]');
  });

  it('refuses 0.0.0.0/0 on the edge unless allowAnyCarrierSource is set', () => {
    expect(errorOf({ edge: { allowlist: ['0.0.0.0/0'] } })).toMatch(/edge\.allowlist\[0\].*allowAnyCarrierSource/);
    expect(errorOf({ edge: { mediaAllowlist: ['0.0.0.0/0'] } })).toContain('edge.mediaAllowlist[0]');
    expect(
      parseConfig(repoConfigInput({ edge: { allowlist: ['0.0.0.0/0'], allowAnyCarrierSource: true } })).edge.allowlist,
    ).toEqual(['0.0.0.0/0']);
  });

  it('refuses a carrier list as wide as the internet however it is split', () => {
    const halves = ['0.0.0.0/1', '128.0.0.0/1'];
    const message = errorOf({ edge: { allowlist: halves, mediaAllowlist: halves } });
    for (const key of ['allowlist', 'mediaAllowlist'])
      for (const index of [0, 1])
        expect(message).toMatch(
          new RegExp(`edge\\.${key}\\[${index}\\]: "[\\d.]+/1" is wider than /8.*allowAnyCarrierSource`),
        );
    // Many narrower entries add up: sixteen /12s are a /8 in total, a seventeenth is more.
    const slash12s = Array.from({ length: 17 }, (_, i) => `${i + 1}.${i % 2 === 0 ? 0 : 16}.0.0/12`);
    expect(errorOf({ edge: { mediaAllowlist: slash12s } })).toMatch(
      /edge\.mediaAllowlist\[16\]: brings the list to 17,825,792 addresses, more than a \/8/,
    );
    expect(
      parseConfig(repoConfigInput({ edge: { mediaAllowlist: slash12s.slice(0, 16) } })).edge.mediaAllowlist,
    ).toHaveLength(16);
    // Overlapping entries are counted once.
    expect(
      parseConfig(repoConfigInput({ edge: { allowlist: ['10.0.0.0/8', '10.1.0.0/16', '10.0.0.0/8'] } })).edge.allowlist,
    ).toHaveLength(3);
    expect(
      parseConfig(repoConfigInput({ edge: { allowlist: halves, allowAnyCarrierSource: true } })).edge.allowlist,
    ).toEqual(halves);
    // Every published Twilio range passes, signalling and media.
    expect(
      parseConfig(repoConfigInput({ edge: { allowlist: [...TWILIO_SIGNALLING_CIDRS, ...TWILIO_MEDIA_CIDRS] } })).edge
        .allowlist,
    ).toHaveLength(9);
  });

  it('rejects a reversed RTP range and one overlapping the SIP port', () => {
    expect(errorOf({ edge: { rtpPortRange: { min: 20000, max: 10000 } } })).toMatch(/edge\.rtpPortRange: .*reversed/);
    expect(errorOf({ edge: { rtpPortRange: { min: 5000, max: 6000 } } })).toMatch(
      /edge\.rtpPortRange: .*overlaps sipPort 5060/,
    );
  });

  it("refuses carrier lists and TLS ports whose rules exceed the edge security group's quota", () => {
    const cidrs = (count: number) => Array.from({ length: count }, (_, i) => `198.51.${i}.0/30`);
    const tls = { certificateSecretName: 'edge-cert', privateKeySecretName: 'edge-key' };
    expect(parseConfig(repoConfigInput({ edge: { allowlist: cidrs(22), tls } })).edge.allowlist).toHaveLength(22);
    expect(errorOf(repoConfigInput({ edge: { allowlist: cidrs(23) } }))).toMatch(
      /edge\.allowlist: 23 entries need 61 outbound rules in the edge security group .*more than the 60/,
    );
    expect(errorOf(repoConfigInput({ edge: { mediaAllowlist: cidrs(46) } }))).toMatch(
      /^[^;]*edge\.mediaAllowlist: 46 entries/,
    );
    // TLS on a port not next to sipPort costs a rule per entry: fine for Twilio's eight, not for seventeen.
    expect(parseConfig(repoConfigInput({ edge: { tls, tlsPort: 5070 } })).edge.tlsPort).toBe(5070);
    expect(errorOf(repoConfigInput({ edge: { allowlist: cidrs(17), tls, tlsPort: 5070 } }))).toMatch(
      /^[^;]*edge\.tls: with tlsPort 5070 not next to sipPort 5060, 17 allowlist entries need 61 inbound rules/,
    );
  });

  it('refuses an Arm instance type for the edge, whose image and packages are x86', () => {
    for (const instanceType of ['c7g.large', 'm6gd.xlarge', 't4g.small', 'a1.large', 'c8gn.large'])
      expect(errorOf(repoConfigInput({ edge: { instanceType } })), instanceType).toMatch(
        new RegExp(`^[^;]*edge\\.instanceType: ${instanceType.replace('.', '\\.')} is an Arm \\(Graviton\\) type`),
      );
    for (const instanceType of ['c7i.large', 'c6a.large', 'g5.xlarge', 'm7i-flex.large'])
      expect(parseConfig(repoConfigInput({ edge: { instanceType } })).edge.instanceType).toBe(instanceType);
    expect(parseConfig(repoConfigInput({ livekit: { instanceType: 'c7g.xlarge' } })).livekit.instanceType).toBe(
      'c7g.xlarge',
    );
  });

  it("keeps the edge's own ports out of the carrier ports and the RTP range", () => {
    expect(errorOf(repoConfigInput({ edge: { sipPort: 5080 } }))).toContain(
      "edge.sipPort: 5080 is the edge's own LiveKit-facing SIP port",
    );
    expect(errorOf(repoConfigInput({ edge: { tlsPort: 5080 } }))).toContain("edge.tlsPort: 5080 is the edge's own");
    expect(errorOf(repoConfigInput({ edge: { rtpPortRange: { min: 2000, max: 3000 } } }))).toContain(
      "edge.rtpPortRange: 2000-3000 overlaps RTPEngine's control port 2223",
    );
    expect(errorOf(repoConfigInput({ edge: { rtpPortRange: { min: 5062, max: 9000 } } }))).toContain(
      'edge.rtpPortRange: 5062-9000 overlaps the LiveKit-facing SIP port 5080',
    );
  });

  it('takes a CIDR prefix length only as written canonically', () => {
    for (const cidr of ['192.0.2.0/024', '0.0.0.0/00', '10.0.0.0/08'])
      expect(errorOf(repoConfigInput({ edge: { allowlist: [cidr] } })), cidr).toContain(
        `edge.allowlist[0]: "${cidr}" is not a valid IPv4 CIDR`,
      );
    expect(parseConfig(repoConfigInput({ network: { vpcCidr: '10.1.0.0/16' } })).network.vpcCidr).toBe('10.1.0.0/16');
  });

  it('bounds ringing without an answer well under a minute by default, within 5–120 s', () => {
    expect(parseConfig(repoConfigInput()).edge.ringTimeoutSeconds).toBe(30);
    expect(parseConfig(repoConfigInput({ edge: { ringTimeoutSeconds: 45 } })).edge.ringTimeoutSeconds).toBe(45);
    expect(errorOf(repoConfigInput({ edge: { ringTimeoutSeconds: 600 } }))).toMatch(/edge\.ringTimeoutSeconds: /);
    expect(errorOf(repoConfigInput({ edge: { ringTimeoutSeconds: 2 } }))).toMatch(/edge\.ringTimeoutSeconds: /);
  });

  it('refuses a deployment name S3 would refuse as a bucket-name prefix', () => {
    for (const name of ['xn--prod', 'sthree-prod', 'amzn-s3-demo-x'])
      expect(errorOf(repoConfigInput({ deploymentName: name })), name).toMatch(
        /^[^;]*deploymentName: must not start with "xn--"/,
      );
    expect(errorOf(repoConfigInput({ deploymentName: 'abcdefghijklmnopqrstu' }))).toContain('deploymentName');
    expect(parseConfig(repoConfigInput({ deploymentName: 'abcdefghijklmnopqrst' })).deploymentName).toHaveLength(20);
  });

  it('keeps flow logs only as long as CloudWatch Logs offers, naming the values', () => {
    expect(parseConfig(repoConfigInput({ network: { flowLogRetentionDays: 731 } })).network.flowLogRetentionDays).toBe(
      731,
    );
    for (const days of [100, 0, 36_500, 365.5])
      expect(errorOf(repoConfigInput({ network: { flowLogRetentionDays: days } })), String(days)).toContain(
        'network.flowLogRetentionDays: must be a retention CloudWatch Logs offers: 1, 3, 5, 7, 14, 30,',
      );
    // The list is CloudWatch's (as the CDK knows it), less "never expire".
    const cdkValues = Object.values(logs.RetentionDays).filter(
      (days): days is number => typeof days === 'number' && days !== logs.RetentionDays.INFINITE,
    );
    expect([...CLOUDWATCH_LOG_RETENTION_DAYS].sort((a, b) => a - b)).toEqual(cdkValues.sort((a, b) => a - b));
  });

  it("takes a VPC range AWS allows that holds every AZ's subnets", () => {
    expect(errorOf(repoConfigInput({ network: { vpcCidr: '10.0.0.0/8' } }))).toContain(
      'network.vpcCidr: must be /16 or narrower',
    );
    expect(errorOf(repoConfigInput({ azCount: 6, network: { vpcCidr: '10.40.0.0/18' } }))).toContain(
      'network.vpcCidr: is too small for 6 AZs of a public /24, a private /20 and an isolated /24 each (30208 addresses): use /17 or wider',
    );
    expect(errorOf(repoConfigInput({ network: { vpcCidr: '10.40.0.0/24' } }))).toMatch(
      /network\.vpcCidr: .*use \/18 or wider/,
    );
    expect(parseConfig(repoConfigInput({ azCount: 6, network: { vpcCidr: '10.40.0.0/17' } })).network.vpcCidr).toBe(
      '10.40.0.0/17',
    );
  });

  it('refuses keeping recordings longer than the transcripts that hold them', () => {
    expect(errorOf(repoConfigInput({ data: { recordingRetentionDays: 400, transcriptRetentionDays: 30 } }))).toContain(
      'data.recordingRetentionDays: must not exceed transcriptRetentionDays (30)',
    );
    // The default transcript retention (365) is the bound when only recordings are set.
    expect(errorOf(repoConfigInput({ data: { recordingRetentionDays: 400 } }))).toContain('(365)');
    const data = parseConfig(
      repoConfigInput({ data: { recordingRetentionDays: 30, transcriptRetentionDays: 30 } }),
    ).data;
    expect(data.recordingRetentionDays).toBe(30);
  });

  it('takes only tags AWS accepts, naming the tag', () => {
    const tags = { CostCenter: '1234', 'team:owner': 'voice@acme-clinic.com', Environment: 'prod eu' };
    expect(parseConfig(repoConfigInput({ tags })).tags).toEqual(tags);
    const errorOfTags = (tags: Record<string, string>) => errorOf(repoConfigInput({ tags }));
    expect(errorOfTags({ 'aws:cost': 'x' })).toContain('tags.aws:cost: keys starting with "aws:" are reserved');
    expect(errorOfTags({ 'AWS:Cost': 'x' })).toContain('tags.AWS:Cost: keys starting with "aws:"');
    expect(errorOfTags({ '': 'x' })).toContain('tags: has a tag with an empty key');
    expect(errorOfTags({ ['k'.repeat(129)]: 'x' })).toContain('the key is 129 characters, more than 128');
    expect(errorOfTags({ Owner: 'v'.repeat(257) })).toContain('tags.Owner: the value is 257 characters, more than 256');
    expect(errorOfTags({ 'cost#center': 'x' })).toContain('tags.cost#center: the key may hold only letters');
    expect(errorOfTags({ Owner: 'a;b' })).toContain('tags.Owner: the value may hold only letters');
    const many = Object.fromEntries(Array.from({ length: 49 }, (_, i) => [`tag${i}`, 'x']));
    expect(errorOfTags(many)).toContain('tags: 49 tags: at most 48');
    expect(
      parseConfig(repoConfigInput({ tags: Object.fromEntries(Object.entries(many).slice(0, 48)) })).tags,
    ).toBeDefined();
  });

  it('takes LiveKit images pinned by release tag or digest, never latest or untagged', () => {
    const digest = `sha256:${'0123456789abcdef'.repeat(4)}`;
    for (const image of [
      'livekit/sip:v1.11.0',
      `livekit/sip@${digest}`,
      `livekit/sip:v1.11.0@${digest}`,
      `ecr.acme/livekit/sip:latest@${digest}`,
      'registry.example.org:5000/livekit/sip:v1.11.0',
      `localhost:5000/sip@${digest}`,
    ])
      expect(parseConfig(repoConfigInput({ livekit: { sipImage: image } })).livekit.sipImage, image).toBe(image);
    expect(errorOf(repoConfigInput({ livekit: { serverImage: 'livekit/livekit-server:latest' } }))).toMatch(
      /^[^;]*livekit\.serverImage: must be pinned: "latest" moves/,
    );
    expect(errorOf(repoConfigInput({ livekit: { sipImage: 'livekit/sip' } }))).toMatch(
      /^[^;]*livekit\.sipImage: must be pinned: give a release tag or an @sha256: digest$/,
    );
    // A registry's port is not a tag: the image behind it must still be pinned.
    expect(errorOf(repoConfigInput({ livekit: { sipImage: 'registry.example.org:5000/livekit/sip' } }))).toMatch(
      /^[^;]*livekit\.sipImage: must be pinned: give a release tag or an @sha256: digest$/,
    );
    expect(errorOf(repoConfigInput({ livekit: { sipImage: 'registry.example.org:5000/sip:latest' } }))).toMatch(
      /^[^;]*livekit\.sipImage: must be pinned: "latest" moves/,
    );
    expect(errorOf(repoConfigInput({ livekit: { sipImage: 'livekit/sip@sha256:abc' } }))).toMatch(
      /^[^;]*livekit\.sipImage: must be an image reference/,
    );
  });

  it('pages on the first call the agent could not set up by default, and names a bad threshold', () => {
    expect(parseConfig(repoConfigInput()).observability.callSetupFailuresPerFiveMinutes).toBe(1);
    expect(
      parseConfig(repoConfigInput({ observability: { callSetupFailuresPerFiveMinutes: 4 } })).observability
        .callSetupFailuresPerFiveMinutes,
    ).toBe(4);
    const bad = (value: unknown) =>
      errorOf(repoConfigInput({ observability: { callSetupFailuresPerFiveMinutes: value as number } }));
    const key = 'observability.callSetupFailuresPerFiveMinutes';
    // 0 would page with no failure at all (a sum of 0 is at least 0).
    expect(bad(0)).toContain(`${key}: Too small: expected number to be >=1`);
    expect(bad(-1)).toContain(`${key}: Too small`);
    expect(bad(2.5)).toContain(`${key}: Invalid input: expected int`);
    expect(bad(10_001)).toContain(`${key}: Too big`);
    expect(bad('3')).toContain(`${key}: Invalid input: expected number, received string`);
  });

  it('requires at least two AZs', () => {
    expect(errorOf({ azCount: 1 })).toMatch(/^invalid voiceIntake config: azCount: must be at least 2/);
  });

  it('rejects unknown keys, at any depth, by name', () => {
    expect(errorOf({ edgee: {} })).toContain('edgee: unknown key');
    expect(errorOf({ edge: { hostPerAz: 2 } })).toContain('edge.hostPerAz: unknown key');
  });

  it('reports every problem at once, on one line', () => {
    const message = errorOf({ azCount: 1, edge: { hostsPerAz: 0 } });
    expect(message).toContain('azCount');
    expect(message).toContain('edge.hostsPerAz');
    expect(message.split('\n')).toHaveLength(1);
  });

  it('checks cross-field rules', () => {
    // Cross-field rules run once every section is valid on its own.
    expect(errorOf(repoConfigInput({ account: '123456789012' }))).toContain('region: account and region go together');
    expect(errorOf(repoConfigInput({ network: { natGateways: 3 } }))).toContain(
      'network.natGateways: must not exceed azCount (2)',
    );
  });

  it('requires a real transfer target or transfer turned off explicitly', () => {
    expect(errorOf({})).toMatch(
      /mcp\.transferTargets: is required: map each queue to your PBX.*or set \{\} to turn transfer off/,
    );
    expect(errorOf({ mcp: {} })).toContain('mcp.transferTargets: is required');
    for (const placeholder of [
      'sip:front-desk@pbx.example.com',
      'sip:desk@example.org:5060',
      'sip:desk@pbx.acme.test;transport=tls',
      'sip:x@pbx.invalid',
      'sip:desk@example.com.',
      'sip:desk@pbx.test.',
      'sip:desk@pbx.acme.test.;transport=tls',
      'sip:desk@example.org.:5060',
      'sip:desk@localhost',
      'sip:desk@LOCALHOST:5060',
      'sip:desk@localhost.',
    ]) {
      expect(errorOf({ mcp: { transferTargets: { front_desk: placeholder } } }), placeholder).toContain(
        'mcp.transferTargets.front_desk: names a documentation host',
      );
    }
    expect(parseConfig({ mcp: { transferTargets: {} } }).mcp.transferTargets).toEqual({});
    for (const real of ['sip:desk@localhost-pbx.acme.com', 'sip:desk@pbx.acme.com.', 'sip:desk@test.acme.com'])
      expect(parseConfig({ mcp: { transferTargets: { front_desk: real } } }).mcp.transferTargets.front_desk).toBe(real);
    const real = parseConfig({
      mcp: { transferTargets: { front_desk: 'sip:desk@pbx.notexample.com', billing: 'tel:+14155550100' } },
    }).mcp;
    expect(real.transferTargets).toEqual({ front_desk: 'sip:desk@pbx.notexample.com', billing: 'tel:+14155550100' });
    expect(real.defaultTransferQueue).toBeUndefined();
  });

  it('pins the edge image per region and names a region without one', () => {
    const amiIds = { 'us-east-1': 'ami-0123456789abcdef0' };
    expect(errorOf(repoConfigInput({ account: '123456789012', region: 'eu-west-1', edge: { amiIds } }))).toContain(
      'edge.amiIds: has no image for region eu-west-1',
    );
    expect(errorOf({ edge: { amiIds: { 'us-east-1': 'debian-12' } } })).toContain(
      'edge.amiIds.us-east-1: must be an AMI id',
    );
    expect(
      parseConfig(repoConfigInput({ account: '123456789012', region: 'us-east-1', edge: { amiIds } })).edge.amiIds,
    ).toEqual(amiIds);
    expect(errorOf({ edge: { drainSeconds: 3600 } })).toContain('edge.drainSeconds');
  });

  it('checks the MCP transfer queues and backend URL', () => {
    expect(
      errorOf({
        mcp: { transferTargets: { support: 'sip:support@pbx.acme.com' }, defaultTransferQueue: 'front_desk' },
      }),
    ).toContain('mcp.defaultTransferQueue: is not a queue of transferTargets (support)');
    for (const inherited of ['constructor', 'toString', '__proto__'])
      expect(
        errorOf({ mcp: { transferTargets: { support: 'sip:support@pbx.acme.com' }, defaultTransferQueue: inherited } }),
        inherited,
      ).toContain('mcp.defaultTransferQueue: is not a queue of transferTargets (support)');
    expect(errorOf({ mcp: { transferTargets: { support: 'support@pbx' } } })).toContain(
      'mcp.transferTargets.support: must be a sip: or tel: URI',
    );
    expect(errorOf({ mcp: { backendUrl: 'http://backend.example.com/cases' } })).toContain(
      'mcp.backendUrl: must be an https:// URL',
    );
  });

  it('keeps the call limits of agent tasks consistent with their memory', () => {
    const { maxCallsPerTask } = parseConfig(repoConfigInput({})).agentService;
    expect(errorOf({ agentService: { targetCallsPerTask: maxCallsPerTask + 1 } })).toContain(
      `agentService.targetCallsPerTask: must not exceed maxCallsPerTask (${maxCallsPerTask})`,
    );
    // 876 MiB fixed: main process 125 + 3 idle processes × 165 + 256 headroom; 215 MiB per call (AGENT_CALL_COST).
    expect(errorOf({ agentService: { maxCallsPerTask: 20, targetCallsPerTask: 10 } })).toContain(
      'agentService.maxCallsPerTask: needs about 5176 MiB (215 MiB per call process + 876), more than memoryMiB (4096)',
    );
    const roomy = {
      agentService: { cpu: 4096, memoryMiB: 8192, maxCallsPerTask: 30, targetCallsPerTask: 20 },
    } as const;
    expect(parseConfig(repoConfigInput(roomy)).agentService.maxCallsPerTask).toBe(30);
  });

  it('sizes the default agent task from the measured per-call cost, bound by CPU or memory', () => {
    const service = parseConfig(repoConfigInput({})).agentService;
    const capacity = agentTaskCapacity(service.cpu / 1024, service.memoryMiB);
    expect(service.maxCallsPerTask).toBe(capacity.calls);
    expect(service.maxCallsPerTask).toBe(Math.min(capacity.byCpu, capacity.byMemory));
    // Within both budgets: memory for every call process, CPU at the planned utilisation.
    expect(agentTaskMemoryMiB(service.maxCallsPerTask)).toBeLessThanOrEqual(service.memoryMiB);
    const plannedVcpu = service.maxCallsPerTask * AGENT_CALL_COST.vcpuPerCall;
    expect(plannedVcpu).toBeLessThanOrEqual((service.cpu / 1024) * AGENT_SIZING.cpuTarget);
    expect(service.targetCallsPerTask).toBe(agentScalingTarget(service.maxCallsPerTask));
    expect(service.targetCallsPerTask).toBeLessThan(service.maxCallsPerTask);
    // One more call would break a budget: the default is the most the task holds, not a guess below it.
    const oneMore = service.maxCallsPerTask + 1;
    const overMemory = agentTaskMemoryMiB(oneMore) > service.memoryMiB;
    const overCpu = oneMore * AGENT_CALL_COST.vcpuPerCall > (service.cpu / 1024) * AGENT_SIZING.cpuTarget;
    expect(overMemory || overCpu).toBe(true);
  });

  it('reads a JSON string given with -c voiceIntake=…', () => {
    const { reader, all } = contextOf({
      voiceIntake: '{"deploymentName":"staging","edge":{"hostsPerAz":1},"mcp":{"transferTargets":{}}}',
    });
    const config = readConfig(reader, all);
    expect(config.deploymentName).toBe('staging');
    expect(config.edge.hostsPerAz).toBe(1);
  });

  it('patches dotted keys over the cdk.json object, parsing JSON values', () => {
    const { reader, all } = contextOf({
      voiceIntake: { deploymentName: 'prod', azCount: 3 },
      'voiceIntake.mcp.transferTargets': '{"front_desk":"sip:desk@pbx.acme-clinic.com"}',
      'voiceIntake.edge.hostsPerAz': '1',
      'voiceIntake.edge.allowlist': '["192.0.2.0/24"]',
      'voiceIntake.deploymentName': 'prod-eu',
    });
    const config = readConfig(reader, all);
    expect(config.deploymentName).toBe('prod-eu');
    expect(config.azCount).toBe(3);
    expect(config.edge.hostsPerAz).toBe(1);
    expect(config.edge.allowlist).toEqual(['192.0.2.0/24']);
    expect(config.mcp.transferTargets).toEqual({ front_desk: 'sip:desk@pbx.acme-clinic.com' });
  });

  it('takes a dotted value as the text given where the key is text, and as JSON where it is not', () => {
    const { reader, all } = contextOf({
      voiceIntake: { mcp: { transferTargets: {} } },
      'voiceIntake.account': '123456789012',
      'voiceIntake.region': 'us-east-1',
      'voiceIntake.data.redisEngineVersion': '7.10',
      'voiceIntake.tags.CostCenter': '1234',
      'voiceIntake.tags.Enabled': 'true',
      'voiceIntake.edge.sipPort': '5062',
      'voiceIntake.agent.speculativeTurns': 'false',
    });
    const config = readConfig(reader, all);
    expect(config.account).toBe('123456789012');
    expect(config.data.redisEngineVersion).toBe('7.10');
    expect(config.tags).toEqual({ CostCenter: '1234', Enabled: 'true' });
    expect(config.edge.sipPort).toBe(5062);
    expect(config.agent.speculativeTurns).toBe(false);
    // A value wrong either way keeps the message of the value as JSON read it.
    const wrong = contextOf({
      voiceIntake: { mcp: { transferTargets: {} } },
      'voiceIntake.edge.sipPort': '70000',
      'voiceIntake.edge.hostsPerAz': 'true',
      'voiceIntake.account': '12345',
    });
    expect(() => readConfig(wrong.reader, wrong.all)).toThrow(
      /account: must be a 12-digit AWS account id; .*edge\.hostsPerAz: .*received boolean; edge\.sipPort: .*65535/,
    );
  });

  it('reads the config for tools outside synth as synth does, command-line keys included', () => {
    const cdkJson = { voiceIntake: { deploymentName: 'prod', mcp: { transferTargets: {} } }, otherFlag: true };
    const argv = [
      '--offline',
      '-c',
      'voiceIntake.account=123456789012',
      '--context',
      'voiceIntake.region=eu-west-1',
      '--context=voiceIntake.edge.hostsPerAz=1',
    ];
    const config = readConfigFromContext(contextFromCommandLine(cdkJson, argv));
    expect(config).toMatchObject({ deploymentName: 'prod', account: '123456789012', region: 'eu-west-1' });
    expect(config.edge.hostsPerAz).toBe(1);
    // -c voiceIntake='<JSON>' replaces cdk.json's object, as it does for synth.
    const replaced = contextFromCommandLine(cdkJson, [
      '-c',
      'voiceIntake={"deploymentName":"dev","mcp":{"transferTargets":{}}}',
    ]);
    expect(readConfigFromContext(replaced).deploymentName).toBe('dev');
    expect(() => contextFromCommandLine(cdkJson, ['-c', 'voiceIntake.region'])).toThrow(/expected key=value/);
  });

  it('says so when -c voiceIntake is not JSON', () => {
    const { reader, all } = contextOf({ voiceIntake: '{edge:' });
    expect(() => readConfig(reader, all)).toThrow(/-c voiceIntake=… is not valid JSON/);
  });
});
