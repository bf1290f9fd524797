import { execFileSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { EDGE_MEDIA_MODE_METRICS, EDGE_METRICS } from '@voice-intake/contracts';
import {
  EDGE_LOG_EVENTS,
  EDGE_MEDIA_MODE_LOG_EVENTS,
  edgeSecurityGroupSizing,
  NO_NODE_ENTRY,
  renderEdge,
  SECURITY_GROUP_RULE_QUOTA,
} from '@voice-intake/edge-config';
import { Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../lib/config';
import { packedFileCommand, USER_DATA_LIMIT_BYTES } from '../lib/stacks/edge-stack';
import { openIngressRules } from './support/assertions';
import { buildVoiceIntakeApp, repoConfigInput, type SynthesizedApp, synthVoiceIntake } from './support/synth';

const scratch = mkdtempSync(join(tmpdir(), 'edge-boot-'));
afterAll(() => rmSync(scratch, { recursive: true, force: true }));

/** Every file under dir, by relative path. */
function readTree(dir: string, prefix = ''): Map<string, string> {
  const files = new Map<string, string>();
  for (const entry of readdirSync(join(dir, prefix), { withFileTypes: true })) {
    const path = prefix ? `${prefix}/${entry.name}` : entry.name;
    if (entry.isDirectory()) for (const [inner, content] of readTree(dir, path)) files.set(inner, content);
    else files.set(path, readFileSync(join(dir, path), 'utf8'));
  }
  return files;
}

/** Runs a packed file command (as the boot script does) into a fresh directory instead of `fromDir`; returns it. */
function unpackInto(command: string, fromDir: string): string {
  const packed = /echo '([A-Za-z0-9+/=]+)' \| base64 -d \| gunzip \| bash/.exec(command)?.[1];
  if (!packed) throw new Error('no packed file command');
  const script = gunzipSync(Buffer.from(packed, 'base64')).toString('utf8');
  const dir = mkdtempSync(join(scratch, 'tree-'));
  execFileSync('bash', ['-c', script.replaceAll(`'${fromDir}/`, `'${dir}/`)]);
  return dir;
}

const unpack = (command: string, fromDir: string) => readTree(unpackInto(command, fromDir));

/** Where the config association unpacks the rendered tree on a host. */
const STAGED = '/var/lib/voice-intake-edge/staged';
/** The rendered tree the config association carries, by relative path. */
function associationFiles(template: Template): Map<string, string> {
  const [association] = Object.values(template.findResources('AWS::SSM::Association'));
  return unpack(JSON.stringify(association.Properties.Parameters.commands), STAGED);
}

/** User data as EC2 receives it, with every CloudFormation token taken as a generous 64 characters. */
function userDataText(userData: unknown): string {
  const flat = (value: unknown): string => {
    if (typeof value === 'string') return value;
    if (Array.isArray(value)) return value.map(flat).join('');
    const object = value as Record<string, unknown>;
    if (object['Fn::Base64']) return flat(object['Fn::Base64']);
    if (object['Fn::Join']) {
      const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
      return parts.map(flat).join(separator);
    }
    return 'x'.repeat(64);
  };
  return flat(userData);
}

type Rule = {
  IpProtocol: string;
  FromPort?: number;
  ToPort?: number;
  CidrIp?: string;
  GroupId?: unknown;
  SourcePrefixListId?: unknown;
  SourceSecurityGroupId?: unknown;
  DestinationSecurityGroupId?: unknown;
  DestinationPrefixListId?: unknown;
};

describe('edge stack', () => {
  let synthesized: SynthesizedApp;
  let edge: Template;
  let ingress: Rule[];
  let egress: Rule[];
  /** Rules this stack adds to LiveKit SIP's security group (app tier), admitting the edge. */
  let intoLiveKit: Rule[];

  beforeAll(() => {
    synthesized = synthVoiceIntake({
      deploymentName: 'voice-intake',
      azCount: 2,
      edge: { allowlist: ['192.0.2.0/30', '198.51.100.0/30'] },
    });
    edge = synthesized.templates.edge;
    const [[groupId, group]] = Object.entries(edge.findResources('AWS::EC2::SecurityGroup'));
    const standalone = Object.values(edge.findResources('AWS::EC2::SecurityGroupIngress')).map(
      (rule) => rule.Properties as Rule,
    );
    const intoEdge = (rule: Rule) => JSON.stringify(rule.GroupId).includes(groupId);
    ingress = [...(group.Properties.SecurityGroupIngress ?? []), ...standalone.filter(intoEdge)];
    intoLiveKit = standalone.filter((rule) => !intoEdge(rule));
    egress = [
      ...(group.Properties.SecurityGroupEgress ?? []),
      ...Object.values(edge.findResources('AWS::EC2::SecurityGroupEgress')).map((rule) => rule.Properties as Rule),
    ];
  });

  it('runs hostsPerAz hosts in every AZ, each with an EIP, IMDSv2 and no SSH key', () => {
    edge.resourceCountIs('AWS::EC2::Instance', 4);
    edge.resourceCountIs('AWS::EC2::EIP', 4);
    // The EIP goes to a host through its handover (below), never a plain association that moves it at once.
    edge.resourceCountIs('AWS::EC2::EIPAssociation', 0);
    for (const instance of Object.values(edge.findResources('AWS::EC2::Instance')))
      expect(instance.Properties.KeyName).toBeUndefined();
    const templates = Object.values(edge.findResources('AWS::EC2::LaunchTemplate'));
    expect(templates.length).toBe(4);
    for (const template of templates)
      expect(template.Properties.LaunchTemplateData.MetadataOptions.HttpTokens).toBe('required');
  });

  it('opens SIP and RTP to the allowlist prefix lists only, never to the internet', () => {
    expect(openIngressRules(edge)).toEqual([]);
    expect(ingress.length).toBe(3);
    expect(ingress.every((rule) => rule.SourcePrefixListId !== undefined && rule.CidrIp === undefined)).toBe(true);
    expect(ingress.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp:5060-5060',
      'udp:10000-20000',
      'udp:5060-5060',
    ]);
    const lists = Object.values(edge.findResources('AWS::EC2::PrefixList')).map((list) =>
      list.Properties.Entries.map((entry: { Cidr: string }) => entry.Cidr),
    );
    expect(lists).toContainEqual(['192.0.2.0/30', '198.51.100.0/30']);
    expect(lists).toContainEqual(['168.86.128.0/18']);
  });

  it("sends SIP and RTP only to LiveKit SIP's security group and the carrier prefix lists, plus HTTP(S) for packages and AWS APIs", () => {
    const toInternet = egress.filter((rule) => rule.CidrIp === '0.0.0.0/0');
    expect(toInternet.map((rule) => `${rule.IpProtocol}:${rule.FromPort}`).sort()).toEqual(['tcp:443', 'tcp:80']);
    const toCarrier = egress.filter((rule) => rule.DestinationPrefixListId !== undefined);
    expect(toCarrier.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp:5060-5060',
      'udp:1024-65535',
      'udp:5060-5060',
    ]);
    for (const rule of toCarrier)
      expect(JSON.stringify(rule.DestinationPrefixListId)).toMatch(
        rule.FromPort === 1024 ? /CarrierMediaPrefixList/ : /CarrierSignallingPrefixList/,
      );
    const sip = egress.filter(
      (rule) => rule.DestinationPrefixListId === undefined && (rule.FromPort === 5060 || rule.FromPort === 10000),
    );
    expect(sip.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp:5060-5060',
      'udp:10000-20000',
      'udp:5060-5060',
    ]);
    for (const rule of sip) {
      expect(rule.CidrIp).toBeUndefined();
      expect(JSON.stringify(rule.DestinationSecurityGroupId)).toMatch(/LiveKitHostSecurityGroup/);
    }
  });

  it("opens LiveKit SIP's signalling and RTP to the edge security group, from this stack", () => {
    const sipRules = intoLiveKit.filter((rule) => rule.FromPort !== 7880);
    expect(sipRules.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp:5060-5060',
      'udp:10000-20000',
      'udp:5060-5060',
    ]);
    for (const rule of sipRules) {
      expect(JSON.stringify(rule.GroupId)).toMatch(/LiveKitHostSecurityGroup/);
      expect(JSON.stringify(rule.SourceSecurityGroupId)).toMatch(/EdgeSecurityGroup|EdgeHost/);
    }
  });

  it('delivers every rendered file through one SSM association, one host at a time, never through user data', () => {
    const [association] = Object.values(edge.findResources('AWS::SSM::Association'));
    const { Parameters: parameters, MaxConcurrency, MaxErrors, ScheduleExpression, Targets } = association.Properties;
    expect({ MaxConcurrency, MaxErrors, ScheduleExpression }).toEqual({
      MaxConcurrency: '1',
      MaxErrors: '0',
      ScheduleExpression: 'rate(30 minutes)',
    });
    expect(Targets).toEqual([{ Key: 'tag:voice-intake:edge', Values: ['voice-intake'] }]);
    expect(parameters.executionTimeout).toEqual(['1500']); // drainSeconds (900) + 10 minutes
    const files = associationFiles(edge);
    expect(files.has('kamailio/kamailio.cfg')).toBe(true);
    expect(files.get('kamailio/db/address')).toContain('192.0.2.0');
    // The caller lists (edge.callerPolicy deny/allow/anonymous) travel the same way; edge-apply reloads them in place.
    expect(files.get('kamailio/db/callers')).toMatch(/^id\(int,auto\) key_name\(string\)/);
    expect(files.has('bin/edge-apply.sh')).toBe(true);
    expect(parameters.commands.at(-1)).toBe(`${STAGED}/bin/edge-apply.sh ${STAGED}`);
    for (const instance of Object.values(edge.findResources('AWS::EC2::Instance'))) {
      const userData = JSON.stringify(instance.Properties.UserData);
      expect(userData).not.toContain('gunzip');
      expect(userData).not.toContain('kamailio.cfg');
    }
  });

  it("keeps every host's user data within EC2's 16 KB", () => {
    for (const [id, instance] of Object.entries(edge.findResources('AWS::EC2::Instance'))) {
      expect(Buffer.byteLength(userDataText(instance.Properties.UserData)), id).toBeLessThanOrEqual(
        USER_DATA_LIMIT_BYTES,
      );
    }
  });

  it('writes the rendered tree at boot byte for byte, modes included', () => {
    const rendered = renderEdge(
      JSON.parse(readFileSync(resolve(__dirname, '..', 'edge-config', 'examples', 'loopback.json'), 'utf8')),
    );
    rendered['odd/no-final-newline.txt'] = { content: "it's\n\n  $HOME `x` \\n end", mode: 0o600 };
    const dir = unpackInto(packedFileCommand(rendered, '/etc/voice-intake-edge'), '/etc/voice-intake-edge');
    expect(readTree(dir)).toEqual(new Map(Object.entries(rendered).map(([path, file]) => [path, file.content])));
    expect(
      execFileSync('stat', ['-c', '%a', join(dir, 'bin', 'edge-reload.sh'), join(dir, 'odd', 'no-final-newline.txt')], {
        encoding: 'utf8',
      }).split('\n'),
    ).toEqual(['755', '600', '']);
    expect(() =>
      packedFileCommand({ 'bad.txt': { content: 'a\n__VOICE_INTAKE_EDGE_FILE_END__\nb', mode: 0o644 } }, '/x'),
    ).toThrow(/bad\.txt contains the line/);
  });

  it('outputs one origination URI per host and recovers failed hosts', () => {
    const outputs = Object.keys(edge.toJSON().Outputs).filter((key) => key.endsWith('OriginationUri'));
    expect(outputs).toHaveLength(4);
    const recovery = Object.values(edge.findResources('AWS::CloudWatch::Alarm')).filter(
      (alarm) => alarm.Properties.MetricName === 'StatusCheckFailed_System',
    );
    expect(recovery).toHaveLength(4);
    for (const alarm of recovery) expect(JSON.stringify(alarm.Properties.AlarmActions)).toContain(':ec2:recover');
  });

  it("provisions the LiveKit trunk for the edge's subnets only, from inside the VPC", () => {
    const [provisioning] = Object.values(edge.findResources('Custom::LiveKitSip'));
    const properties = provisioning.Properties;
    const instances = Object.keys(edge.findResources('AWS::EC2::Instance')).sort();
    // The edge's public subnets: a replacement host is allowed before CloudFormation could name its address.
    expect(instances).toHaveLength(4);
    const publicSubnets = synthesized.stacks.network.vpc.publicSubnets.map((subnet) => subnet.ipv4CidrBlock);
    expect(publicSubnets).toHaveLength(2);
    expect(properties.AllowedAddresses).toEqual(publicSubnets);
    for (const privateSubnet of synthesized.stacks.network.vpc.privateSubnets)
      expect(properties.AllowedAddresses).not.toContain(privateSubnet.ipv4CidrBlock);
    expect(properties).toMatchObject({
      AgentName: 'intake-agent',
      RoomPrefix: 'call-',
      TrunkName: 'voice-intake-edge',
      DispatchRuleName: 'voice-intake-per-call',
    });
    const handler = Object.values(edge.findResources('AWS::Lambda::Function')).find(
      (fn) => fn.Properties.Handler === 'index.onEvent',
    )!;
    expect(handler.Properties.VpcConfig).toBeDefined();
    expect(handler.Properties.Runtime).toBe('nodejs22.x');
    const toLiveKitApi = intoLiveKit.filter((rule) => rule.FromPort === 7880);
    expect(toLiveKitApi).toHaveLength(1);
    expect(JSON.stringify(toLiveKitApi[0].SourceSecurityGroupId)).toMatch(/LiveKitSipSecurityGroup/);
  });

  it("counts what the edge refuses from the hosts' Kamailio log lines", () => {
    const filters = Object.values(edge.findResources('AWS::Logs::MetricFilter')).map((filter) => filter.Properties);
    const counted = [...Object.values(EDGE_METRICS), ...Object.values(EDGE_MEDIA_MODE_METRICS)];
    expect(filters.map((filter) => filter.MetricTransformations[0].MetricName).sort()).toEqual(counted.sort());
    for (const [event, phrase] of Object.entries(EDGE_LOG_EVENTS)) {
      const filter = filters.find(
        (candidate) =>
          candidate.MetricTransformations[0].MetricName === EDGE_METRICS[event as keyof typeof EDGE_METRICS],
      );
      expect(filter?.FilterPattern, event).toBe(`"${phrase}"`);
      expect(JSON.stringify(filter?.LogGroupName)).toMatch(/EdgeLogs/);
    }
  });

  it('counts SDP the edge could not rewrite apart from media RTPEngine could not anchor', () => {
    const filters = Object.values(edge.findResources('AWS::Logs::MetricFilter')).map((filter) => filter.Properties);
    const named = (metric: string) => filters.filter((f) => f.MetricTransformations[0].MetricName === metric);
    expect(named(EDGE_METRICS.sdpRefusals)).toEqual([
      expect.objectContaining({
        FilterPattern: '"SDP not rewritable"',
        MetricTransformations: [expect.objectContaining({ MetricValue: '1', DefaultValue: 0, Unit: 'Count' })],
      }),
    ]);
    expect(named(EDGE_METRICS.mediaAnchorFailures).map((f) => f.FilterPattern)).toEqual(['"media anchoring failed"']);
    // The lines Kamailio writes for each: a refused SDP matches only its own filter, and so does a failed anchor.
    const refusal = 'edge: SDP not rewritable (no m= line) in INVITE abc from carrier 192.0.2.1:5060, refused';
    const anchor = 'edge: media anchoring failed for INVITE abc from 192.0.2.1:5060, refused';
    // Each edge event's pattern is one quoted phrase (asserted above): a line matches it when it holds the phrase.
    const edgeEvents = filters.filter((f) =>
      (Object.values(EDGE_METRICS) as string[]).includes(f.MetricTransformations[0].MetricName),
    );
    const matching = (line: string) =>
      edgeEvents
        .filter((f) => line.includes(JSON.parse(f.FilterPattern)))
        .map((f) => f.MetricTransformations[0].MetricName);
    expect(matching(refusal)).toEqual([EDGE_METRICS.sdpRefusals]);
    expect(matching(anchor)).toEqual([EDGE_METRICS.mediaAnchorFailures]);
  });

  it('installs the in-kernel forwarding module at boot; counts and alarms on hosts falling back to userspace', () => {
    const userData = userDataText(Object.values(edge.findResources('AWS::EC2::Instance'))[0].Properties.UserData);
    // Packages that cannot install (no headers for this kernel) must not stop the boot: RTPEngine runs in userspace.
    const headers = /apt-get install [^\n]*"linux-headers-\$\(uname -r\)" rtpengine-kernel-dkms rtpengine-iptables/;
    expect(userData).toMatch(new RegExp(`${headers.source}[^\\n]* \\|\\| echo`));
    // The rendered tree reaches the host through the config association (edge-apply.sh).
    const files = associationFiles(edge);
    expect(files.get('rtpengine/rtpengine.conf')).toMatch(/^table = 0$/m);
    const unit = files.get('systemd/voice-intake-rtpengine.service');
    expect(unit).toContain('ExecStartPre=/etc/voice-intake-edge/bin/edge-media-mode.sh');
    expect(files.get('bin/edge-media-mode.sh')).toContain(EDGE_MEDIA_MODE_LOG_EVENTS.userspace);

    const filters = Object.values(edge.findResources('AWS::Logs::MetricFilter')).map((filter) => filter.Properties);
    const pattern = (metric: string) =>
      filters.find((f) => f.MetricTransformations[0].MetricName === metric)?.FilterPattern;
    expect(pattern(EDGE_MEDIA_MODE_METRICS.kernel)).toBe(`"${EDGE_MEDIA_MODE_LOG_EVENTS.kernel}"`);
    // Ours, or RTPEngine's own when it cannot open the kernel table it was given.
    const userspace = EDGE_MEDIA_MODE_LOG_EVENTS.userspace;
    expect(pattern(EDGE_MEDIA_MODE_METRICS.userspace)).toBe(`?"${userspace}" ?"KERNEL FORWARDING DISABLED"`);
    const alarms = Object.values(edge.findResources('AWS::CloudWatch::Alarm')).map((alarm) => alarm.Properties);
    expect(alarms.find((alarm) => alarm.MetricName === EDGE_MEDIA_MODE_METRICS.userspace)).toMatchObject({
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
    });
  });

  it('keeps the LiveKit node list current: a function on a schedule and on LiveKit group changes, Run Command to the edge hosts only', () => {
    const functions = Object.values(edge.findResources('AWS::Lambda::Function')).map((fn) => fn.Properties);
    const sync = functions.find((fn) => fn.Environment?.Variables?.NODE_SCRIPT)!;
    expect(sync.Environment.Variables).toMatchObject({
      NODE_SCRIPT: '/etc/voice-intake-edge/bin/edge-livekit-nodes.sh',
      EDGE_TAG_KEY: 'voice-intake:edge',
      EDGE_TAG_VALUE: 'voice-intake',
      SIP_PORT: '5060',
    });
    expect(JSON.stringify(sync.Environment.Variables.LIVEKIT_ASG_NAME)).toMatch(/voice-intake-app/); // the app tier's group
    expect(sync.ReservedConcurrentExecutions).toBe(1);
    expect(sync.VpcConfig).toBeDefined();

    const rules = Object.values(edge.findResources('AWS::Events::Rule')).map((rule) => rule.Properties);
    expect(rules.map((rule) => rule.ScheduleExpression).filter(Boolean)).toEqual(['rate(1 minute)']);
    expect(rules.find((rule) => rule.EventPattern?.source?.[0] === 'aws.autoscaling')?.EventPattern).toMatchObject({
      source: ['aws.autoscaling'],
      'detail-type': ['EC2 Instance Launch Successful', 'EC2 Instance Terminate Successful'],
    });

    const policies = Object.values(edge.findResources('AWS::IAM::Policy')).flatMap(
      (policy) =>
        policy.Properties.PolicyDocument.Statement as {
          Action: string | string[];
          Resource: unknown;
          Condition?: unknown;
        }[],
    );
    const syncPolicies = Object.values(edge.findResources('AWS::IAM::Policy')).filter((policy) =>
      JSON.stringify(policy.Properties.Roles).includes('LiveKitNodeSync'),
    );
    const sendCommand = syncPolicies
      .flatMap(
        (policy) =>
          policy.Properties.PolicyDocument.Statement as {
            Action: string | string[];
            Resource: unknown;
            Condition?: unknown;
          }[],
      )
      .filter((statement) => [statement.Action].flat().includes('ssm:SendCommand'));
    expect(policies.length).toBeGreaterThan(sendCommand.length);
    expect(sendCommand).toHaveLength(2);
    expect(JSON.stringify(sendCommand.map((statement) => statement.Resource))).toContain('document/AWS-RunShellScript');
    expect(
      sendCommand.find((statement) => JSON.stringify(statement.Resource).includes('instance/*'))?.Condition,
    ).toEqual({ StringEquals: { 'ssm:resourceTag/voice-intake:edge': 'voice-intake' } });
  });

  it('boots with an empty LiveKit node list and the node script, never a placeholder name', () => {
    const files = associationFiles(edge);
    const dispatcherList = files.get('kamailio/dispatcher.list');
    expect(dispatcherList).not.toMatch(/^1 /m); // no LiveKit node until the sync sends them
    expect(dispatcherList).toContain(NO_NODE_ENTRY);
    expect(files.get('bin/edge-livekit-nodes.sh')).toContain('dispatcher.reload');
    expect([...files.values()].join('\n')).not.toContain('livekit-sip.voice-intake.internal');
    // The node sync owns the live list: edge-apply.sh installs the rendered one only where none exists yet.
    expect(files.get('bin/edge-apply.sh')).toContain('NODE_LIST="kamailio/dispatcher.list"');
  });

  it('matches the snapshot', () => {
    expect(edge.toJSON()).toMatchSnapshot();
  });
});

describe('edge stack with non-default SIP ports', () => {
  let edge: Template;
  let egress: Rule[];

  beforeAll(() => {
    const synthesized = synthVoiceIntake({
      deploymentName: 'voice-intake',
      azCount: 2,
      edge: { sipPort: 5070 },
      livekit: { sipPort: 5062 },
    });
    edge = synthesized.templates.edge;
    const [, group] = Object.entries(edge.findResources('AWS::EC2::SecurityGroup')).find(([id]) =>
      id.startsWith('EdgeSecurityGroup'),
    )!;
    egress = [
      ...(group.Properties.SecurityGroupEgress ?? []),
      ...Object.values(edge.findResources('AWS::EC2::SecurityGroupEgress')).map((rule) => rule.Properties as Rule),
    ];
  });

  it('sends SIP to LiveKit on livekit.sipPort, never on 5060', () => {
    const toLiveKit = egress.filter((rule) =>
      JSON.stringify(rule.DestinationSecurityGroupId ?? '').includes('LiveKitHostSecurityGroup'),
    );
    expect(toLiveKit.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp:5062-5062',
      'udp:10000-20000',
      'udp:5062-5062',
    ]);
    const intoLiveKit = Object.values(edge.findResources('AWS::EC2::SecurityGroupIngress'))
      .map((rule) => rule.Properties as Rule)
      .filter((rule) => JSON.stringify(rule.GroupId).includes('LiveKitHostSecurityGroup') && rule.FromPort !== 7880);
    expect(intoLiveKit.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp:5062-5062',
      'udp:10000-20000',
      'udp:5062-5062',
    ]);
    const sync = Object.values(edge.findResources('AWS::Lambda::Function')).find(
      (fn) => fn.Properties.Environment?.Variables?.NODE_SCRIPT,
    )!;
    expect(sync.Properties.Environment.Variables.SIP_PORT).toBe('5062');
    expect(associationFiles(edge).get('bin/edge-livekit-nodes.sh')).toContain('node="$node:5062"');
  });

  it('listens for the carrier on edge.sipPort and names it in every origination URI', () => {
    const outputs = Object.entries(edge.toJSON().Outputs as Record<string, { Value: unknown }>).filter(([key]) =>
      key.endsWith('OriginationUri'),
    );
    expect(outputs).toHaveLength(4);
    for (const [, output] of outputs) expect(JSON.stringify(output.Value)).toMatch(/:5070;transport=udp/);
    const [groupId, group] = Object.entries(edge.findResources('AWS::EC2::SecurityGroup')).find(([id]) =>
      id.startsWith('EdgeSecurityGroup'),
    )!;
    const standalone = Object.values(edge.findResources('AWS::EC2::SecurityGroupIngress')).map(
      (rule) => rule.Properties as Rule,
    );
    const ingress = [
      ...(group.Properties.SecurityGroupIngress ?? []),
      ...standalone.filter((rule) => JSON.stringify(rule.GroupId).includes(groupId)),
    ] as Rule[];
    expect(ingress.map((rule) => `${rule.IpProtocol}:${rule.FromPort}`).sort()).toEqual([
      'tcp:5070',
      'udp:10000',
      'udp:5070',
    ]);
    expect(associationFiles(edge).get('kamailio/edge-host.cfg')).toMatch(/listen=udp:@EDGE_PRIVATE_IP@:5070/);
  });
});

describe('edge stack security group quota', () => {
  /** The edge security group's rules per direction as AWS counts them: a prefix-list rule once per entry it may hold. */
  function ruleUnits(edge: Template) {
    const sizes = new Map(
      Object.entries(edge.findResources('AWS::EC2::PrefixList')).map(([id, list]) => [id, list.Properties.MaxEntries]),
    );
    const [groupId, group] = Object.entries(edge.findResources('AWS::EC2::SecurityGroup')).find(([id]) =>
      id.startsWith('EdgeSecurityGroup'),
    )!;
    const ofEdge = (rule: Rule) => JSON.stringify(rule.GroupId).includes(groupId);
    const standalone = (type: string) =>
      Object.values(edge.findResources(type))
        .map((rule) => rule.Properties as Rule)
        .filter(ofEdge);
    const cost = (list: unknown) => {
      const id = (list as { 'Fn::GetAtt'?: [string] } | undefined)?.['Fn::GetAtt']?.[0];
      return id && sizes.has(id) ? (sizes.get(id) as number) : 1;
    };
    const inbound = [...(group.Properties.SecurityGroupIngress ?? []), ...standalone('AWS::EC2::SecurityGroupIngress')];
    const outbound = [...(group.Properties.SecurityGroupEgress ?? []), ...standalone('AWS::EC2::SecurityGroupEgress')];
    return {
      inbound: inbound.reduce((sum: number, rule: Rule) => sum + cost(rule.SourcePrefixListId), 0),
      outbound: outbound.reduce((sum: number, rule: Rule) => sum + cost(rule.DestinationPrefixListId), 0),
      tcpFromCarrier: inbound
        .filter((rule: Rule) => rule.IpProtocol === 'tcp')
        .map((rule: Rule) => `${rule.FromPort}-${rule.ToPort}`),
    };
  }

  it('stays within 60 rules per direction with TLS and the largest allowlist the config takes', () => {
    const allowlist = Array.from({ length: 22 }, (_, i) => `198.51.${i}.0/30`);
    const edgeConfig = { allowlist, tls: { certificateSecretName: 'edge-cert', privateKeySecretName: 'edge-key' } };
    const { stacks } = buildVoiceIntakeApp({ edge: edgeConfig });
    const units = ruleUnits(Template.fromStack(stacks.edge));
    // SIP/TCP and SIP/TLS on adjacent ports share one rule.
    expect(units.tcpFromCarrier).toEqual(['5060-5061']);
    expect(units.inbound).toBeLessThanOrEqual(SECURITY_GROUP_RULE_QUOTA);
    expect(units.outbound).toBeLessThanOrEqual(SECURITY_GROUP_RULE_QUOTA);
    const sizing = edgeSecurityGroupSizing(parseConfig(repoConfigInput({ edge: edgeConfig })).edge);
    expect(units).toMatchObject({ inbound: sizing.inboundRules, outbound: sizing.outboundRules });
  });
});
