import {
  AGENT_METRICS,
  agentScalingTarget,
  agentTaskCapacity,
  LIVEKIT_SIP_METRICS,
  MCP_SERVER_LOG_EVENTS,
  MCP_SERVER_METRICS,
} from '@voice-intake/contracts';
import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { openIngressRules } from './support/assertions';
import { buildVoiceIntakeApp, type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Statement = { Action: string | string[]; Resource: unknown; Condition?: unknown };

function statementsOfRole(template: Template, rolePrefix: string): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((policy) => JSON.stringify(policy.Properties.Roles).includes(rolePrefix))
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Statement[]);
}

function logicalIdOf(template: Template, type: string, description: RegExp): string {
  const [id] =
    Object.entries(template.findResources(type)).find(([, resource]) =>
      description.test(String(resource.Properties.GroupDescription)),
    ) ?? [];
  if (!id) throw new Error(`no ${type} matching ${description}`);
  return id;
}

describe('app stack: MCP server service', () => {
  let synthesized: SynthesizedApp;
  let app: Template;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
    app = synthesized.templates.app;
  });

  it('runs the MCP server on Fargate in private subnets without public IPs', () => {
    app.hasResourceProperties('AWS::ECS::Service', {
      LaunchType: 'FARGATE',
      DesiredCount: 2,
      NetworkConfiguration: { AwsvpcConfiguration: Match.objectLike({ AssignPublicIp: 'DISABLED' }) },
      DeploymentConfiguration: Match.objectLike({ DeploymentCircuitBreaker: { Enable: true, Rollback: true } }),
    });
    const service = Object.values(app.findResources('AWS::ECS::Service'))[0];
    expect(JSON.stringify(service.Properties.NetworkConfiguration.AwsvpcConfiguration.Subnets)).toMatch(
      /privateSubnet/,
    );
  });

  it('takes the token from Secrets Manager and its backends from the data tier', () => {
    const task = Object.values(app.findResources('AWS::ECS::TaskDefinition'))[0];
    const container = task.Properties.ContainerDefinitions[0];
    expect(container.ReadonlyRootFilesystem).toBe(true);
    // Nothing on the task's disk: cases, and those awaiting the backend, live in the table.
    expect(task.Properties.Volumes).toBeUndefined();
    expect(container.MountPoints).toBeUndefined();
    expect(container.User).toBe('node');
    expect(container.Secrets).toEqual([
      { Name: 'MCP_AUTH_TOKEN', ValueFrom: { Ref: expect.stringMatching(/^McpServerToken/) } },
    ]);
    const env = Object.fromEntries(
      (container.Environment as { Name: string; Value: unknown }[]).map((entry) => [entry.Name, entry.Value]),
    );
    expect(env).toMatchObject({
      CASE_STORE: 'dynamodb',
      KNOWLEDGE_BACKEND: 'opensearch',
      OPENSEARCH_SERVICE: 'aoss',
      MCP_PORT: '8080',
    });
    // The repository's cdk.json turns transfer to a person off explicitly ({}): no queue, no default queue.
    expect(JSON.parse(env.TRANSFER_TARGETS as string)).toEqual({});
    expect(env.DEFAULT_TRANSFER_QUEUE).toBeUndefined();
    // The safe default trust policy: a caller's cases only on full attestation (or identity proof).
    expect(JSON.parse(env.CALLER_TRUST as string)).toEqual({ revealCasesAt: 'A', tools: {}, maxProofAttempts: 3 });
    expect(JSON.stringify(container.Environment)).not.toMatch(/TOKEN"/);
    expect(task.Properties.RuntimePlatform).toEqual({ CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' });
  });

  it('is reachable only through an internal load balancer that admits the agent security group', () => {
    app.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Type: 'network',
      Scheme: 'internal',
      LoadBalancerAttributes: Match.arrayWith([{ Key: 'access_logs.s3.enabled', Value: 'true' }]),
    });
    const agentGroup = logicalIdOf(app, 'AWS::EC2::SecurityGroup', /^Agent workers/);
    const lbGroup = logicalIdOf(app, 'AWS::EC2::SecurityGroup', /^MCP server load balancer/);
    const serviceGroup = logicalIdOf(app, 'AWS::EC2::SecurityGroup', /^MCP server tasks/);
    const ingress = Object.values(app.findResources('AWS::EC2::SecurityGroupIngress')).map((rule) => rule.Properties);
    const into = (group: string) => ingress.filter((rule) => JSON.stringify(rule.GroupId).includes(group));
    expect(into(lbGroup)).toEqual([
      expect.objectContaining({
        FromPort: 8080,
        ToPort: 8080,
        SourceSecurityGroupId: { 'Fn::GetAtt': [agentGroup, 'GroupId'] },
      }),
    ]);
    expect(into(serviceGroup)).toEqual([
      expect.objectContaining({
        FromPort: 8080,
        ToPort: 8080,
        SourceSecurityGroupId: { 'Fn::GetAtt': [lbGroup, 'GroupId'] },
      }),
    ]);
    const lbResource = app.findResources('AWS::EC2::SecurityGroup')[lbGroup];
    expect(lbResource.Properties.SecurityGroupIngress).toBeUndefined();
    expect(openIngressRules(app)).toEqual([]);
  });

  it('scopes the task role to its table, its audit prefix and reading the knowledge collection', () => {
    const statements = statementsOfRole(app, 'McpServerTaskRole');
    const actions = statements.flatMap((statement) => [statement.Action].flat()).sort();
    expect(actions).toEqual(
      [
        'aoss:APIAccessAll',
        'dynamodb:GetItem',
        'dynamodb:PutItem',
        'dynamodb:Query',
        'dynamodb:UpdateItem',
        'kms:Decrypt',
        'kms:GenerateDataKey',
        'kms:GenerateMac',
        's3:PutObject',
      ].sort(),
    );
    const put = statements.find((statement) => statement.Action === 's3:PutObject')!;
    expect(JSON.stringify(put.Resource)).toContain('/audit/mcp-server/*');
    // Query only the two indexes the server reads (a caller's cases, the cases awaiting forward); items on the table.
    const query = statements.find((statement) => [statement.Action].flat().includes('dynamodb:Query'))!;
    expect(query.Action).toBe('dynamodb:Query');
    const queried = [query.Resource].flat().map((resource) => JSON.stringify(resource));
    expect(queried).toHaveLength(2);
    expect(queried).toEqual(
      expect.arrayContaining([
        expect.stringContaining('/index/byPhone'),
        expect.stringContaining('/index/awaitingForward'),
      ]),
    );
    const items = statements.find((statement) => [statement.Action].flat().includes('dynamodb:UpdateItem'))!;
    expect(JSON.stringify(items.Resource)).not.toContain('/index/');
    app.hasResourceProperties('AWS::OpenSearchServerless::AccessPolicy', {
      Type: 'data',
      Policy: Match.anyValue(),
    });
    const accessPolicy = JSON.stringify(
      Object.values(app.findResources('AWS::OpenSearchServerless::AccessPolicy'))[0].Properties.Policy,
    );
    expect(accessPolicy).toContain('aoss:ReadDocument');
    expect(accessPolicy).not.toContain('aoss:WriteDocument');
    expect(accessPolicy).toMatch(/McpServerTaskRole/);
  });

  it('matches the snapshot', () => {
    expect(app.toJSON()).toMatchSnapshot();
  });
});

describe('data stack: MCP backends', () => {
  it('keeps cases in an encrypted, recoverable table with a by-phone index, and knowledge in a private collection', () => {
    const { templates } = synthVoiceIntake();
    templates.data.hasResource('AWS::DynamoDB::Table', {
      Properties: Match.objectLike({
        SSESpecification: Match.objectLike({ SSEEnabled: true, SSEType: 'KMS' }),
        PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
        DeletionProtectionEnabled: true,
        GlobalSecondaryIndexes: [
          Match.objectLike({ IndexName: 'byPhone' }),
          // The outbox of the MCP server: sparse (only cases awaiting forward carry its key), by due time.
          Match.objectLike({
            IndexName: 'awaitingForward',
            KeySchema: [
              { AttributeName: 'awaitingForward', KeyType: 'HASH' },
              { AttributeName: 'forwardDueAt', KeyType: 'RANGE' },
            ],
          }),
        ],
      }),
      DeletionPolicy: 'Retain',
    });
    templates.data.hasResourceProperties('AWS::OpenSearchServerless::Collection', {
      Name: 'voice-intake-knowledge',
      Type: 'SEARCH',
    });
    const policies = Object.values(templates.data.findResources('AWS::OpenSearchServerless::SecurityPolicy')).map(
      (policy) => policy.Properties,
    );
    const network = policies.find((policy) => policy.Type === 'network')!;
    expect(JSON.stringify(network.Policy)).toContain('\\"AllowFromPublic\\":false');
    const encryption = policies.find((policy) => policy.Type === 'encryption')!;
    expect(JSON.stringify(encryption.Policy)).toContain('\\"AWSOwnedKey\\":false');
  });

  it('runs with the embedded knowledge index and no collection, and transfers to the configured queues', () => {
    const transferTargets = { billing: 'tel:+14155550100', front_desk: 'sip:front-desk@pbx.acme-clinic.com' };
    const { templates } = synthVoiceIntake({ mcp: { knowledgeBackend: 'embedded', transferTargets } });
    templates.data.resourceCountIs('AWS::OpenSearchServerless::Collection', 0);
    const container = Object.values(templates.app.findResources('AWS::ECS::TaskDefinition'))[0].Properties
      .ContainerDefinitions[0];
    expect(container.Environment).toContainEqual({ Name: 'KNOWLEDGE_BACKEND', Value: 'embedded' });
    expect(container.Environment).toContainEqual({ Name: 'TRANSFER_TARGETS', Value: JSON.stringify(transferTargets) });
    // No defaultTransferQueue given: the first queue.
    expect(container.Environment).toContainEqual({ Name: 'DEFAULT_TRANSFER_QUEUE', Value: 'billing' });
  });
});

describe('app stack: LiveKit cluster', () => {
  let app: Template;
  let synthesized: SynthesizedApp;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
    app = synthesized.templates.app;
  });

  const groupId = (description: RegExp) => logicalIdOf(app, 'AWS::EC2::SecurityGroup', description);
  const ingressInto = (group: string) =>
    Object.values(app.findResources('AWS::EC2::SecurityGroupIngress'))
      .map((rule) => rule.Properties)
      .filter((rule) => JSON.stringify(rule.GroupId).includes(group));
  const from = (group: string) => ({ 'Fn::GetAtt': [group, 'GroupId'] });

  it('runs hosts in private subnets with IMDSv2, encrypted disks, SSM and no SSH key', () => {
    const template = Object.values(app.findResources('AWS::EC2::LaunchTemplate'))[0].Properties.LaunchTemplateData;
    expect(template.MetadataOptions).toMatchObject({ HttpTokens: 'required' });
    expect(template.KeyName).toBeUndefined();
    expect(template.BlockDeviceMappings[0].Ebs).toMatchObject({ Encrypted: true, VolumeType: 'gp3' });
    expect(JSON.stringify(template.NetworkInterfaces ?? [])).not.toContain('AssociatePublicIpAddress":true');
    const group = Object.values(app.findResources('AWS::AutoScaling::AutoScalingGroup'))[0].Properties;
    expect(JSON.stringify(group.VPCZoneIdentifier)).toMatch(/privateSubnet/);
    expect(group).toMatchObject({ MinSize: '2', MaxSize: '6', HealthCheckType: 'ELB' });
    app.hasResourceProperties('AWS::IAM::Role', {
      ManagedPolicyArns: [
        { 'Fn::Join': ['', ['arn:', { Ref: 'AWS::Partition' }, ':iam::aws:policy/AmazonSSMManagedInstanceCore']] },
      ],
    });
  });

  it('runs one LiveKit Server and one LiveKit SIP per host, with host networking and pinned images', () => {
    app.hasResourceProperties('AWS::ECS::Service', { SchedulingStrategy: 'DAEMON' });
    const task = Object.values(app.findResources('AWS::ECS::TaskDefinition')).find(
      (definition) => definition.Properties.NetworkMode === 'host',
    )!;
    const containers = Object.fromEntries(
      (task.Properties.ContainerDefinitions as any[]).map((container) => [container.Name, container]),
    );
    expect(Object.keys(containers).sort()).toEqual(['config', 'livekit-server', 'livekit-sip']);
    // Copies of the pinned images in this account's ECR (what they copy: test/livekit-rollout.test.ts).
    for (const name of ['config', 'livekit-server', 'livekit-sip'])
      expect(JSON.stringify(containers[name].Image)).toMatch(/container-assets/);
    for (const name of ['livekit-server', 'livekit-sip']) {
      expect(containers[name].DependsOn).toEqual([{ ContainerName: 'config', Condition: 'SUCCESS' }]);
      expect(containers[name].User).toBe('1000');
    }
    const secretNames = (containers.config.Secrets as { Name: string }[]).map((secret) => secret.Name).sort();
    expect(secretNames).toEqual(['LIVEKIT_API_KEY', 'LIVEKIT_API_SECRET', 'REDIS_PASSWORD']);
    const env = Object.fromEntries(
      (containers.config.Environment as { Name: string; Value: unknown }[]).map((entry) => [entry.Name, entry.Value]),
    );
    expect(JSON.stringify(env.SERVER_TEMPLATE)).toContain('node_ip: __NODE_IP__');
    // Secrets are placeholders in the template, filled from Secrets Manager at task start.
    expect(JSON.stringify(env.SERVER_TEMPLATE)).toContain('password: __REDIS_PASSWORD__');
    expect(JSON.stringify(env.SIP_TEMPLATE)).toContain('api_secret: __LIVEKIT_API_SECRET__');
    expect(JSON.stringify(containers.config.Command)).toContain('latest/api/token');
  });

  it('lets agents and LiveKit SIP reach WebRTC, agents and the load balancer the API, and nothing else in', () => {
    const host = groupId(/^LiveKit hosts/);
    const lb = groupId(/^LiveKit API load balancer/);
    const agents = groupId(/^Agent workers/);
    const rules = ingressInto(host).map(
      (rule) => `${rule.IpProtocol} ${rule.FromPort}-${rule.ToPort} from ${JSON.stringify(rule.SourceSecurityGroupId)}`,
    );
    expect(rules.sort()).toEqual(
      [
        `tcp 7880-7880 from ${JSON.stringify(from(lb))}`,
        `tcp 7880-7880 from ${JSON.stringify(from(agents))}`,
        `tcp 7881-7881 from ${JSON.stringify(from(agents))}`,
        `udp 50000-60000 from ${JSON.stringify(from(agents))}`,
        // A call's room may live on another host than the LiveKit SIP that joins it (LiveKit places rooms at random).
        `tcp 7881-7881 from ${JSON.stringify(from(host))}`,
        `udp 50000-60000 from ${JSON.stringify(from(host))}`,
      ].sort(),
    );
    expect(ingressInto(lb).map((rule) => rule.SourceSecurityGroupId)).toEqual([from(agents)]);
    app.hasResourceProperties('AWS::ElasticLoadBalancingV2::LoadBalancer', {
      Type: 'network',
      Scheme: 'internal',
      Subnets: Match.anyValue(),
    });
    expect(openIngressRules(app)).toEqual([]);
  });

  it('opens Redis to LiveKit and agents only, not to the MCP server', () => {
    const redisRules = Object.values(app.findResources('AWS::EC2::SecurityGroupIngress'))
      .map((rule) => rule.Properties)
      .filter((rule) => rule.FromPort === 6380);
    expect(redisRules.map((rule) => rule.Description).sort()).toEqual([
      'LiveKit hosts to Redis',
      'agent workers to Redis',
    ]);
    for (const rule of redisRules) expect(JSON.stringify(rule.GroupId)).toContain('RedisSecurityGroup');
    // No rule of the MCP server's (its tasks or their load balancer) reaches the Redis port.
    const mcpEgress = Object.entries(app.findResources('AWS::EC2::SecurityGroupEgress'))
      .filter(([id]) => id.startsWith('McpServer'))
      .map(([, rule]) => rule.Properties);
    const inlineEgress = Object.entries(app.findResources('AWS::EC2::SecurityGroup'))
      .filter(([id]) => id.startsWith('McpServer'))
      .flatMap(([, group]) => group.Properties.SecurityGroupEgress ?? []);
    const ports = [...mcpEgress, ...inlineEgress].map((rule) => `${rule.IpProtocol} ${rule.FromPort}-${rule.ToPort}`);
    expect(ports).toContain('tcp 443-443');
    expect(ports).not.toContain('tcp 6380-6380');
  });

  it('admits SIP and RTP from the edge security group only, with the rules in the edge stack', () => {
    const { app: cdkApp, stacks } = buildVoiceIntakeApp();
    const edge = new Stack(cdkApp, 'edge-under-test');
    const edgeGroup = new ec2.SecurityGroup(edge, 'EdgeHosts', { vpc: stacks.network.vpc });
    stacks.app.livekit.sipIngressFor(edgeGroup);
    const rules = Object.values(Template.fromStack(edge).findResources('AWS::EC2::SecurityGroupIngress')).map(
      (rule) => rule.Properties,
    );
    expect(rules.map((rule) => `${rule.IpProtocol} ${rule.FromPort}-${rule.ToPort}`).sort()).toEqual([
      'tcp 5060-5060',
      'udp 10000-20000',
      'udp 5060-5060',
    ]);
    for (const rule of rules)
      expect(rule.SourceSecurityGroupId).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^EdgeHosts/), 'GroupId'] });
  });
});

describe('app stack: LiveKit hosts on Graviton', () => {
  it('boots Arm hosts from the Arm ECS-optimized image, x86 hosts from the x86 one', () => {
    const imageParameters = (instanceType: string) => {
      const { stacks } = buildVoiceIntakeApp({ livekit: { instanceType } });
      const parameters = Template.fromStack(stacks.app).toJSON().Parameters as Record<string, { Default?: string }>;
      return Object.values(parameters)
        .map((parameter) => parameter.Default ?? '')
        .filter((path) => path.startsWith('/aws/service/ecs/optimized-ami/'));
    };
    expect(imageParameters('c7g.xlarge')).toEqual([
      '/aws/service/ecs/optimized-ami/amazon-linux-2023/arm64/recommended/image_id',
    ]);
    expect(imageParameters('c7i.xlarge')).toEqual([
      '/aws/service/ecs/optimized-ami/amazon-linux-2023/recommended/image_id',
    ]);
  });
});

describe('app stack: agent service', () => {
  let app: Template;

  beforeAll(() => {
    app = synthVoiceIntake().templates.app;
  });

  const agentTask = () =>
    Object.values(app.findResources('AWS::ECS::TaskDefinition')).find(
      (task) => task.Properties.ContainerDefinitions[0].Name === 'agent',
    )!;

  it('runs the worker on Fargate in private subnets with its secrets from Secrets Manager and a drain window', () => {
    const container = agentTask().Properties.ContainerDefinitions[0];
    expect(container.StopTimeout).toBe(120);
    expect((container.Secrets as { Name: string }[]).map((secret) => secret.Name).sort()).toEqual([
      'LIVEKIT_API_KEY',
      'LIVEKIT_API_SECRET',
      'MCP_TOKEN',
      'REDIS_AUTH_TOKEN',
    ]);
    const env = Object.fromEntries(
      (container.Environment as { Name: string; Value: unknown }[]).map((entry) => [entry.Name, entry.Value]),
    );
    expect(env).toMatchObject({
      LIVEKIT_AGENT_NAME: 'intake-agent',
      POLLY_VOICE: 'Ruth',
      TRANSCRIBE_LANGUAGE: 'en-US',
      PII_REDACTION: 'false',
      SPECULATIVE_TURNS: 'true',
      REDIS_PORT: '6380',
    });
    // Calls per task from the measured per-call cost (contracts/src/agent-sizing.ts) for the default 2 vCPU / 4 GiB.
    expect(env.AGENT_MAX_CALLS).toBe(String(agentTaskCapacity(2, 4096).calls));
    expect(JSON.stringify(env.LIVEKIT_URL)).toContain('ws://');
    expect(JSON.stringify(env.MCP_URL)).toContain(':8080/mcp');
    app.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: 60,
        PredefinedMetricSpecification: { PredefinedMetricType: 'ECSServiceAverageCPUUtilization' },
        ScaleInCooldown: 600,
      }),
    });
  });

  it('also scales on calls per task, from the ActiveCalls gauge the workers emit', () => {
    app.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: Match.objectLike({
        TargetValue: agentScalingTarget(agentTaskCapacity(2, 4096).calls),
        CustomizedMetricSpecification: Match.objectLike({
          Namespace: 'VoiceIntake/voice-intake',
          MetricName: AGENT_METRICS.activeCalls,
          Statistic: 'Average',
          Dimensions: [{ Name: 'Service', Value: 'agent' }],
        }),
        ScaleInCooldown: 600,
        ScaleOutCooldown: 60,
      }),
    });
  });

  it('counts LiveKit SIP call errors and rejections from its logs', () => {
    const filters = Object.values(app.findResources('AWS::Logs::MetricFilter')).map((filter) => filter.Properties);
    const byName = (name: string) => filters.find((filter) => filter.MetricTransformations[0].MetricName === name);
    expect(byName(LIVEKIT_SIP_METRICS.callErrors)).toMatchObject({
      FilterPattern: '"Closing inbound call with error"',
    });
    expect(byName(LIVEKIT_SIP_METRICS.callsRejected)?.FilterPattern).toBe(
      '{ ($.msg = "Rejecting inbound call*") || ($.reason = "flood") }',
    );
    expect(byName(LIVEKIT_SIP_METRICS.callErrors)?.MetricTransformations[0]).toMatchObject({
      MetricNamespace: 'VoiceIntake/voice-intake',
      MetricValue: '1',
      DefaultValue: 0,
    });
  });

  it("counts cases the backend refused or has not taken from the MCP server's JSON log lines", () => {
    const filters = Object.values(app.findResources('AWS::Logs::MetricFilter')).map((filter) => filter.Properties);
    const byName = (name: string) => filters.find((filter) => filter.MetricTransformations[0].MetricName === name);
    const mcpLogGroup = Object.keys(app.findResources('AWS::Logs::LogGroup')).find((id) =>
      id.startsWith('McpServerLogs'),
    );
    expect(mcpLogGroup).toBeDefined();
    for (const key of ['caseForwardRefused', 'caseForwardOverdue'] as const) {
      expect(byName(MCP_SERVER_METRICS[key]), key).toMatchObject({
        // The event names the server logs: one constant for the server and the filter.
        FilterPattern: `{ $.event = "${MCP_SERVER_LOG_EVENTS[key]}" }`,
        LogGroupName: { Ref: mcpLogGroup },
        MetricTransformations: [{ MetricNamespace: 'VoiceIntake/voice-intake', MetricValue: '1', DefaultValue: 0 }],
      });
    }
  });

  it('limits the task role to speech, the configured model, synthesis and its own record prefixes', () => {
    const statements = statementsOfRole(app, 'AgentTaskRole');
    const byAction = (action: string) => statements.filter((statement) => [statement.Action].flat().includes(action));
    const invoke = byAction('bedrock:InvokeModelWithResponseStream');
    expect(invoke).toHaveLength(1);
    expect(JSON.stringify(invoke[0].Resource)).toContain(
      'inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0',
    );
    expect(
      statements
        .flatMap((statement) => [statement.Action].flat())
        .filter((action) => action.startsWith('bedrock:'))
        .sort(),
    ).toEqual(['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream']);
    const puts = JSON.stringify(byAction('s3:PutObject')[0].Resource);
    expect(puts).toContain('/transcripts/*');
    expect(puts).toContain('/transcript-parts/*');
    expect(puts).toContain('/audit/agent/*');
    expect(puts).not.toContain('/enriched/');
    // Recording is off in this config: no write to recordings/ either, and a listing of the transcript parts only
    // (so a part never stored reads as missing, not as denied).
    expect(puts).not.toContain('/recordings/');
    const lists = byAction('s3:ListBucket');
    expect(lists).toHaveLength(1);
    expect(lists[0].Condition).toEqual({ StringLike: { 's3:prefix': 'transcript-parts/*' } });
    expect(JSON.stringify(byAction('s3:GetObject')[0].Resource)).toContain('/transcript-parts/*');
    expect(byAction('polly:SynthesizeSpeech')).toHaveLength(1);
    expect(byAction('transcribe:StartStreamTranscription')).toHaveLength(1);
  });
});

describe('app stack: agent service recording calls', () => {
  let app: Template;
  const question = 'May we record this call for our records? Please say yes or no.';

  beforeAll(() => {
    app = synthVoiceIntake({ agent: { recording: { mode: 'consent', sampleRate: 8_000, consentQuestion: question } } })
      .templates.app;
  });

  it('lets the worker put recording parts under recordings/ only, list their keys, and read none of them back', () => {
    const statements = statementsOfRole(app, 'AgentTaskRole');
    const withAction = (action: string) => statements.filter((statement) => [statement.Action].flat().includes(action));
    const puts = withAction('s3:PutObject');
    expect(puts).toHaveLength(1);
    expect([puts[0].Action].flat()).toEqual(['s3:PutObject']);
    const resources = JSON.stringify(puts[0].Resource);
    expect(resources).toContain('/recordings/*');
    // The four prefixes and nothing wider: final transcripts, transcript parts, the agent's audit chain, recordings.
    expect(resources.match(/\/\*/g)).toHaveLength(4);
    const reads = JSON.stringify(
      statements.filter((statement) => [statement.Action].flat().some((a) => /Get/.test(a))),
    );
    expect(reads).not.toContain('recordings');
    // A takeover lists the call's parts: the transcripts bucket only, and only under transcript-parts/ and recordings/.
    const lists = statements.filter((statement) => [statement.Action].flat().some((a) => /List/.test(a)));
    expect(lists).toHaveLength(1);
    expect(lists[0].Action).toBe('s3:ListBucket');
    expect(lists[0].Condition).toEqual({ StringLike: { 's3:prefix': ['transcript-parts/*', 'recordings/*'] } });
    expect(JSON.stringify(lists[0].Resource)).toMatch(
      /^\{"Fn::Join":\["",\["arn:",\{"Ref":"AWS::Partition"\},":s3:::voice-intake-transcripts-",/,
    );
    expect(JSON.stringify(lists[0].Resource)).not.toContain('/');
  });

  it('passes the mode, rate and question to the worker', () => {
    const task = Object.values(app.findResources('AWS::ECS::TaskDefinition')).find(
      (resource) => resource.Properties.ContainerDefinitions[0].Name === 'agent',
    )!;
    const environment = Object.fromEntries(
      (task.Properties.ContainerDefinitions[0].Environment as { Name: string; Value: string }[]).map((entry) => [
        entry.Name,
        entry.Value,
      ]),
    );
    expect(environment).toMatchObject({
      RECORDING_MODE: 'consent',
      RECORDING_SAMPLE_RATE: '8000',
      RECORDING_CONSENT_QUESTION: question,
    });
    expect(environment.RECORDING_NOTICE).toBeUndefined();
  });
});
