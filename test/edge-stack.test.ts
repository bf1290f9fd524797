import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { EDGE_METRICS } from '@voice-intake/contracts';
import { EDGE_LOG_EVENTS, NO_NODE_ENTRY } from '@voice-intake/edge-config';
import { openIngressRules } from './support/assertions';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Rule = {
  IpProtocol: string;
  FromPort?: number;
  ToPort?: number;
  CidrIp?: string;
  GroupId?: unknown;
  SourcePrefixListId?: unknown;
  SourceSecurityGroupId?: unknown;
  DestinationSecurityGroupId?: unknown;
};

describe('edge stack', () => {
  let synthesized: SynthesizedApp;
  let edge: Template;
  let ingress: Rule[];
  let egress: Rule[];
  /** Rules this stack adds to LiveKit SIP's security group (app tier), admitting the edge. */
  let intoLiveKit: Rule[];

  beforeAll(() => {
    synthesized = synthVoiceIntake({ deploymentName: 'voice-intake', azCount: 2, edge: { allowlist: ['192.0.2.0/30', '198.51.100.0/30'] } });
    edge = synthesized.templates.edge;
    const [[groupId, group]] = Object.entries(edge.findResources('AWS::EC2::SecurityGroup'));
    const standalone = Object.values(edge.findResources('AWS::EC2::SecurityGroupIngress')).map((rule) => rule.Properties as Rule);
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
    edge.resourceCountIs('AWS::EC2::EIPAssociation', 4);
    for (const instance of Object.values(edge.findResources('AWS::EC2::Instance'))) expect(instance.Properties.KeyName).toBeUndefined();
    const templates = Object.values(edge.findResources('AWS::EC2::LaunchTemplate'));
    expect(templates.length).toBe(4);
    for (const template of templates) expect(template.Properties.LaunchTemplateData.MetadataOptions.HttpTokens).toBe('required');
  });

  it('opens SIP and RTP to the allowlist prefix lists only, never to the internet', () => {
    expect(openIngressRules(edge)).toEqual([]);
    expect(ingress.length).toBe(3);
    expect(ingress.every((rule) => rule.SourcePrefixListId !== undefined && rule.CidrIp === undefined)).toBe(true);
    expect(ingress.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual(['tcp:5060-5060', 'udp:10000-20000', 'udp:5060-5060']);
    const lists = Object.values(edge.findResources('AWS::EC2::PrefixList')).map((list) => list.Properties.Entries.map((entry: { Cidr: string }) => entry.Cidr));
    expect(lists).toContainEqual(['192.0.2.0/30', '198.51.100.0/30']);
    expect(lists).toContainEqual(['168.86.128.0/18']);
  });

  it("sends SIP and RTP only to LiveKit SIP's security group, plus HTTP(S) for packages and AWS APIs", () => {
    const toInternet = egress.filter((rule) => rule.CidrIp === '0.0.0.0/0');
    expect(toInternet.map((rule) => `${rule.IpProtocol}:${rule.FromPort}`).sort()).toEqual(['tcp:443', 'tcp:80']);
    const sip = egress.filter((rule) => rule.FromPort === 5060 || rule.FromPort === 10000);
    expect(sip.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual(['tcp:5060-5060', 'udp:10000-20000', 'udp:5060-5060']);
    for (const rule of sip) {
      expect(rule.CidrIp).toBeUndefined();
      expect(JSON.stringify(rule.DestinationSecurityGroupId)).toMatch(/LiveKitHostSecurityGroup/);
    }
  });

  it("opens LiveKit SIP's signalling and RTP to the edge security group, from this stack", () => {
    const sipRules = intoLiveKit.filter((rule) => rule.FromPort !== 7880);
    expect(sipRules.map((rule) => `${rule.IpProtocol}:${rule.FromPort}-${rule.ToPort}`).sort()).toEqual(['tcp:5060-5060', 'udp:10000-20000', 'udp:5060-5060']);
    for (const rule of sipRules) {
      expect(JSON.stringify(rule.GroupId)).toMatch(/LiveKitHostSecurityGroup/);
      expect(JSON.stringify(rule.SourceSecurityGroupId)).toMatch(/EdgeSecurityGroup|EdgeHost/);
    }
  });

  it('reloads the allowlist through an SSM association, not through user data', () => {
    const [association] = Object.values(edge.findResources('AWS::SSM::Association'));
    const commands = association.Properties.Parameters.commands.join('\n');
    expect(commands).toContain('kamailio/db/address');
    expect(commands).toContain('edge-reload.sh');
    const userData = JSON.stringify(Object.values(edge.findResources('AWS::EC2::Instance'))[0].Properties.UserData);
    expect(userData).not.toContain(Buffer.from('1:1:192.0.2.0:30:0:allowlist').toString('base64').slice(0, 20));
  });

  it('outputs one origination URI per host and recovers failed hosts', () => {
    const outputs = Object.keys(edge.toJSON().Outputs).filter((key) => key.endsWith('OriginationUri'));
    expect(outputs).toHaveLength(4);
    const recovery = Object.values(edge.findResources('AWS::CloudWatch::Alarm')).filter((alarm) => alarm.Properties.MetricName === 'StatusCheckFailed_System');
    expect(recovery).toHaveLength(4);
    for (const alarm of recovery) expect(JSON.stringify(alarm.Properties.AlarmActions)).toContain(':ec2:recover');
  });

  it('provisions the LiveKit trunk for exactly the edge hosts, from inside the VPC', () => {
    const [provisioning] = Object.values(edge.findResources('Custom::LiveKitSip'));
    const properties = provisioning.Properties;
    const instances = Object.keys(edge.findResources('AWS::EC2::Instance')).sort();
    expect(properties.AllowedAddresses.map((address: { 'Fn::GetAtt': [string, string] }) => address['Fn::GetAtt']).sort()).toEqual(
      instances.map((instance) => [instance, 'PrivateIp']),
    );
    expect(properties).toMatchObject({ AgentName: 'intake-agent', RoomPrefix: 'call-', TrunkName: 'voice-intake-edge', DispatchRuleName: 'voice-intake-per-call' });
    const handler = Object.values(edge.findResources('AWS::Lambda::Function')).find((fn) => fn.Properties.Handler === 'index.onEvent')!;
    expect(handler.Properties.VpcConfig).toBeDefined();
    expect(handler.Properties.Runtime).toBe('nodejs22.x');
    const toLiveKitApi = intoLiveKit.filter((rule) => rule.FromPort === 7880);
    expect(toLiveKitApi).toHaveLength(1);
    expect(JSON.stringify(toLiveKitApi[0].SourceSecurityGroupId)).toMatch(/LiveKitSipSecurityGroup/);
  });

  it('counts what the edge refuses from the hosts\' Kamailio log lines', () => {
    const filters = Object.values(edge.findResources('AWS::Logs::MetricFilter')).map((filter) => filter.Properties);
    expect(filters.map((filter) => filter.MetricTransformations[0].MetricName).sort()).toEqual(Object.values(EDGE_METRICS).sort());
    for (const [event, phrase] of Object.entries(EDGE_LOG_EVENTS)) {
      const filter = filters.find((candidate) => candidate.MetricTransformations[0].MetricName === EDGE_METRICS[event as keyof typeof EDGE_METRICS]);
      expect(filter?.FilterPattern, event).toBe(`"${phrase}"`);
      expect(JSON.stringify(filter?.LogGroupName)).toMatch(/EdgeLogs/);
    }
  });

  it('keeps the LiveKit node list current: a function on a schedule and on LiveKit group changes, Run Command to the edge hosts only', () => {
    const functions = Object.values(edge.findResources('AWS::Lambda::Function')).map((fn) => fn.Properties);
    const sync = functions.find((fn) => fn.Environment?.Variables?.NODE_SCRIPT)!;
    expect(sync.Environment.Variables).toMatchObject({ NODE_SCRIPT: '/etc/voice-intake-edge/bin/edge-livekit-nodes.sh', EDGE_TAG_KEY: 'voice-intake:edge', EDGE_TAG_VALUE: 'voice-intake', SIP_PORT: '5060' });
    expect(JSON.stringify(sync.Environment.Variables.LIVEKIT_ASG_NAME)).toMatch(/voice-intake-app/); // the app tier's group
    expect(sync.ReservedConcurrentExecutions).toBe(1);
    expect(sync.VpcConfig).toBeDefined();

    const rules = Object.values(edge.findResources('AWS::Events::Rule')).map((rule) => rule.Properties);
    expect(rules.map((rule) => rule.ScheduleExpression).filter(Boolean)).toEqual(['rate(1 minute)']);
    expect(rules.find((rule) => rule.EventPattern)?.EventPattern).toMatchObject({ source: ['aws.autoscaling'], 'detail-type': ['EC2 Instance Launch Successful', 'EC2 Instance Terminate Successful'] });

    const policies = Object.values(edge.findResources('AWS::IAM::Policy')).flatMap((policy) => policy.Properties.PolicyDocument.Statement as { Action: string | string[]; Resource: unknown; Condition?: unknown }[]);
    const sendCommand = policies.filter((statement) => [statement.Action].flat().includes('ssm:SendCommand'));
    expect(sendCommand).toHaveLength(2);
    expect(JSON.stringify(sendCommand.map((statement) => statement.Resource))).toContain('document/AWS-RunShellScript');
    expect(sendCommand.find((statement) => JSON.stringify(statement.Resource).includes('instance/*'))?.Condition).toEqual({ StringEquals: { 'ssm:resourceTag/voice-intake:edge': 'voice-intake' } });
  });

  it('boots with an empty LiveKit node list and the node script, never a placeholder name', () => {
    const userData = JSON.stringify(Object.values(edge.findResources('AWS::EC2::Instance'))[0].Properties.UserData);
    const files = [...userData.matchAll(/echo '([A-Za-z0-9+/=]+)' \| base64 -d > ([^\s"\\]+)/g)].map(([, body, path]) => [path, Buffer.from(body, 'base64').toString('utf8')] as const);
    const dispatcherList = files.find(([path]) => path.endsWith('kamailio/dispatcher.list'));
    expect(dispatcherList?.[1]).not.toMatch(/^1 /m); // no LiveKit node until the sync sends them
    expect(dispatcherList?.[1]).toContain(NO_NODE_ENTRY);
    expect(files.find(([path]) => path.endsWith('bin/edge-livekit-nodes.sh'))?.[1]).toContain('dispatcher.reload');
    expect(userData).not.toContain('livekit-sip.voice-intake.internal');
    const association = JSON.stringify(Object.values(edge.findResources('AWS::SSM::Association'))[0].Properties);
    expect(association).not.toContain('dispatcher.list');
  });

  it('matches the snapshot', () => {
    expect(edge.toJSON()).toMatchSnapshot();
  });
});
