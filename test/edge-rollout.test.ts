import { rmSync } from 'node:fs';
import { Annotations, Match, type Template } from 'aws-cdk-lib/assertions';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Resource = { Type: string; Properties: Record<string, any>; DependsOn?: string[] };

const resourcesOf = (template: Template, type: string) =>
  Object.entries(template.toJSON().Resources as Record<string, Resource>).filter(
    ([, resource]) => resource.Type === type,
  );

const UNPINNED = /edge image follows \/aws\/service\/debian\/release\/12\/latest\/amd64 at every deploy/;

describe('edge host replacement: one host per AZ at a time, drained', () => {
  let synthesized: SynthesizedApp;
  let edge: Template;

  beforeAll(() => {
    synthesized = synthVoiceIntake({ edge: { drainSeconds: 600 } }, { keepAssembly: true }); // annotations read it
    edge = synthesized.templates.edge;
  });
  afterAll(() => rmSync(synthesized.app.outdir, { recursive: true, force: true }));

  it('gives each host its EIP through a handover that waits for the host before it in the same AZ', () => {
    const handovers = resourcesOf(edge, 'Custom::EdgeHostHandover');
    expect(handovers.map(([id]) => id.replace(/[0-9A-F]{8}$/, '')).sort()).toEqual([
      'HostHandoverEdge1aHandover',
      'HostHandoverEdge1bHandover',
      'HostHandoverEdge2aHandover',
      'HostHandoverEdge2bHandover',
    ]);
    const byHost = Object.fromEntries(handovers.map(([id, resource]) => [/Edge\d[ab]/.exec(id)![0], { id, resource }]));
    for (const [host, { resource }] of Object.entries(byHost)) {
      expect(resource.Properties).toMatchObject({
        AllocationId: { 'Fn::GetAtt': [`${host}Eip`, 'AllocationId'] },
        InstanceId: { Ref: expect.stringMatching(new RegExp(`^${host}[0-9A-F]{8}[0-9a-f]{16}$`)) },
        DrainScript: '/etc/voice-intake-edge/bin/edge-drain.sh',
        DrainSeconds: 600,
        ReadyScript: '/etc/voice-intake-edge/bin/edge-ready.sh',
        ServiceTimeout: '3600',
      });
    }
    const handoverDependencies = (host: string) =>
      (byHost[host].resource.DependsOn ?? []).filter((id) => id.includes('Handover'));
    expect(handoverDependencies('Edge1a')).toEqual([]);
    expect(handoverDependencies('Edge2a')).toEqual([]);
    expect(handoverDependencies('Edge1b')).toEqual([byHost.Edge1a.id]);
    expect(handoverDependencies('Edge2b')).toEqual([byHost.Edge2a.id]);
  });

  it('replaces a host on a new boot config rather than stopping it, and never blocks its own replacement', () => {
    const instances = resourcesOf(edge, 'AWS::EC2::Instance');
    expect(instances).toHaveLength(4);
    for (const [id, instance] of instances) {
      // userDataCausesReplacement: the logical id carries a hash of the user data.
      expect(id).toMatch(/^Edge\d[ab][0-9A-F]{8}[0-9a-f]{16}$/);
      expect(instance.Properties.DisableApiTermination).toBeUndefined();
      const userData = JSON.stringify(instance.Properties.UserData);
      // The replacement learns its EIP from the stack (the old host still holds it while it drains), not from IMDS.
      expect(userData).toContain(`{"Fn::GetAtt":["${id.slice(0, 6)}Eip","PublicIp"]}`);
      expect(userData).toContain('/etc/voice-intake-edge/host.env');
      expect(userData).not.toContain('public-ipv4');
    }
  });

  it("lets the handover act only on this deployment's edge EIPs and hosts", () => {
    for (const [, eip] of resourcesOf(edge, 'AWS::EC2::EIP'))
      expect(eip.Properties.Tags).toContainEqual({ Key: 'voice-intake:edge', Value: 'voice-intake' });
    const statements = resourcesOf(edge, 'AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Properties.Roles).includes('HostHandoverIsComplete'))
      .flatMap(
        ([, policy]) =>
          policy.Properties.PolicyDocument.Statement as {
            Action: string | string[];
            Resource: unknown;
            Condition?: unknown;
          }[],
      );
    const withAction = (action: string) => statements.filter((statement) => [statement.Action].flat().includes(action));
    expect(withAction('ec2:AssociateAddress')).toHaveLength(1);
    expect(withAction('ec2:AssociateAddress')[0].Condition).toEqual({
      StringEquals: { 'aws:ResourceTag/voice-intake:edge': 'voice-intake' },
    });
    const onInstances = withAction('ssm:SendCommand').find((statement) =>
      JSON.stringify(statement.Resource).includes('instance/*'),
    );
    expect(onInstances?.Condition).toEqual({ StringEquals: { 'ssm:resourceTag/voice-intake:edge': 'voice-intake' } });
    expect(JSON.stringify(withAction('ssm:SendCommand').map((statement) => statement.Resource))).toContain(
      'document/AWS-RunShellScript',
    );
  });

  it('keeps the per-AZ health alarms in the edge stack, so a replaced host changes no export', () => {
    const alarms = resourcesOf(edge, 'AWS::CloudWatch::Alarm').filter(([, alarm]) =>
      /No healthy SIP edge host/.test(alarm.Properties.AlarmDescription),
    );
    expect(alarms).toHaveLength(2);
    for (const [, alarm] of alarms) {
      const metrics = alarm.Properties.Metrics as {
        Expression?: string;
        MetricStat?: { Metric: { MetricName: string } };
      }[];
      expect(metrics.find((metric) => metric.Expression)?.Expression).toBe('MIN([h0,h1])');
      expect(metrics.filter((metric) => metric.MetricStat?.Metric.MetricName === 'StatusCheckFailed')).toHaveLength(2);
      expect(alarm.Properties.TreatMissingData).toBe('breaching');
    }
    const exports = JSON.stringify(synthesized.templates.edge.toJSON().Outputs ?? {});
    for (const [id] of resourcesOf(edge, 'AWS::EC2::Instance')) expect(exports).not.toContain(id);
    expect(JSON.stringify(synthesized.templates.observability.toJSON())).not.toMatch(
      /Edge\d[ab][0-9A-F]{8}[0-9a-f]{16}/,
    );
  });

  it('says at synth that an environment-agnostic edge image is not pinned', () => {
    Annotations.fromStack(synthesized.stacks.edge).hasWarning('*', Match.stringLikeRegexp(UNPINNED.source));
    const [[, instance]] = resourcesOf(edge, 'AWS::EC2::Instance');
    expect(JSON.stringify(instance.Properties.ImageId)).toMatch(/SsmParameterValue.*debian/);
  });
});

describe('edge image pinned', () => {
  it('uses the AMI recorded in cdk.context.json for a deployment with account and region', () => {
    const lookedUp = 'ami-0123456789abcdef0';
    const { templates, stacks, app } = synthVoiceIntake(
      { account: '123456789012', region: 'us-east-1' },
      {
        keepAssembly: true,
        context: {
          'availability-zones:account=123456789012:region=us-east-1': ['us-east-1a', 'us-east-1b', 'us-east-1c'],
          'ssm:account=123456789012:parameterName=/aws/service/debian/release/12/latest/amd64:region=us-east-1':
            lookedUp,
        },
      },
    );
    const instances = resourcesOf(templates.edge, 'AWS::EC2::Instance');
    expect(instances).toHaveLength(4);
    for (const [, instance] of instances) expect(instance.Properties.ImageId).toBe(lookedUp);
    expect(JSON.stringify(templates.edge.toJSON().Parameters ?? {})).not.toContain('debian');
    expect(Annotations.fromStack(stacks.edge).findWarning('*', Match.stringLikeRegexp(UNPINNED.source))).toEqual([]);
    rmSync(app.outdir, { recursive: true, force: true });
  });

  it('uses edge.amiIds when given, per region', () => {
    const amiIds = { 'us-east-1': 'ami-0aaaaaaaaaaaaaaaa', 'eu-west-1': 'ami-0bbbbbbbbbbbbbbbb' };
    const { templates, stacks, app } = synthVoiceIntake({ edge: { amiIds } }, { keepAssembly: true });
    const [[, instance]] = resourcesOf(templates.edge, 'AWS::EC2::Instance');
    expect(instance.Properties.ImageId).toMatchObject({
      'Fn::FindInMap': [expect.any(String), { Ref: 'AWS::Region' }, 'ami'],
    });
    expect(JSON.stringify(templates.edge.toJSON().Mappings)).toContain('ami-0bbbbbbbbbbbbbbbb');
    expect(Annotations.fromStack(stacks.edge).findWarning('*', Match.stringLikeRegexp(UNPINNED.source))).toEqual([]);
    rmSync(app.outdir, { recursive: true, force: true });
  });
});

describe('outputs a deployer needs', () => {
  it('names the dashboard, the alarm topic with how to subscribe, and every origination URI with priority and weight', () => {
    const { templates, stacks } = synthVoiceIntake({ edge: { sipPort: 5070 } });
    const observability = templates.observability.toJSON().Outputs;
    expect(JSON.stringify(observability.DashboardUrl.Value)).toMatch(
      /\.console\.aws\.amazon\.com\/cloudwatch\/home\?region=.*#dashboards:name=.*Dashboard/,
    );
    expect(observability.AlarmTopicArn.Value).toEqual({ Ref: expect.stringMatching(/^AlarmTopic/) });
    expect(observability.AlarmTopicArn.Description).toMatch(/aws sns subscribe --topic-arn .* --protocol email/);
    const resolved = JSON.stringify(stacks.edge.resolve(templates.edge.toJSON().Outputs.OriginationUris.Value));
    for (const host of ['Edge1a', 'Edge1b', 'Edge2a', 'Edge2b']) expect(resolved).toContain(`${host}Eip`);
    expect(resolved.match(/:5070;transport=udp/g)).toHaveLength(4);
    expect(resolved.match(/\\"priority\\":10,\\"weight\\":10/g)).toHaveLength(4);
  });
});
