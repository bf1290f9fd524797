import { join } from 'node:path';
import { LIVEKIT_SIP_METRICS } from '@voice-intake/contracts';
import { isArmInstanceType } from '@voice-intake/edge-config';
import { Annotations, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as autoscaling from 'aws-cdk-lib/aws-autoscaling';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { acknowledgeRules, acknowledgeTaskRolePolicies, skipCheckovChecks } from '../compliance';
import type { VoiceIntakeConfig } from '../config';
import { LIVEKIT_PLACEHOLDERS, liveKitServerYaml, liveKitSipYaml } from '../livekit/config-yaml';
import { InternalLoadBalancer } from './internal-load-balancer';
import { LogLineMetrics } from './log-metrics';

/** Renders the two configs onto the shared volume: private IP from IMDSv2, secrets from the task's environment. */
const CONFIG_INIT_IMAGE = 'public.ecr.aws/amazonlinux/amazonlinux:2023-minimal';
/** The Dockerfile that copies a pinned public image into the account's ECR at deploy time. */
const MIRROR_DIR = join(__dirname, '..', 'livekit', 'mirror');

export interface LiveKitClusterProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.Cluster;
  readonly livekit: VoiceIntakeConfig['livekit'];
  /** `host:port` of the session Redis (TLS). */
  readonly redisAddress: string;
  readonly redisAuthSecret: secretsmanager.ISecret;
  /** The key the Redis secret is encrypted with (the data stack's). */
  readonly dataKey: kms.IKey;
  /** App-tier key for the API secret and logs. */
  readonly appKey: kms.IKey;
  /** Where the API load balancer writes access logs (under the load-balancer prefix the data stack allows). */
  readonly accessLogsBucket: s3.IBucket;
  /** The deployment's metric namespace (LiveKit SIP's call-failure counts go there). */
  readonly metricsNamespace: string;
}

/**
 * LiveKit Server + LiveKit SIP, one of each on every host of an EC2 Auto Scaling group in private subnets (host
 * networking: LiveKit needs its UDP ranges on the host), with an internal load balancer for the API. Configs are
 * generated at synth from our config; the host's private IP and the secrets are filled in at task start.
 */
export class LiveKitCluster extends Construct {
  readonly hostSecurityGroup: ec2.SecurityGroup;
  readonly apiLoadBalancer: elbv2.NetworkLoadBalancer;
  readonly apiLoadBalancerSecurityGroup: ec2.SecurityGroup;
  readonly apiSecret: secretsmanager.Secret;
  readonly autoScalingGroup: autoscaling.AutoScalingGroup;
  readonly service: ecs.Ec2Service;
  /** LiveKit's API/WebSocket URL for clients inside the VPC. */
  readonly url: string;
  /** Inbound calls LiveKit SIP closed with an error, and calls it rejected (no trunk/dispatch match, flood). */
  readonly sipMetrics: Record<keyof typeof LIVEKIT_SIP_METRICS, cloudwatch.Metric>;
  private readonly livekit: VoiceIntakeConfig['livekit'];

  constructor(scope: Construct, id: string, props: LiveKitClusterProps) {
    super(scope, id);
    const { livekit } = props;
    this.livekit = livekit;

    this.apiSecret = new secretsmanager.Secret(this, 'ApiKey', {
      description: 'LiveKit API key and secret (JSON: apiKey, apiSecret)',
      encryptionKey: props.appKey,
      generateSecretString: {
        secretStringTemplate: JSON.stringify({ apiKey: 'APIvoiceintake' }),
        generateStringKey: 'apiSecret',
        passwordLength: 48,
        excludePunctuation: true,
      },
    });
    acknowledgeRules(
      this.apiSecret,
      [
        'AwsSolutions-SMG4',
        'HIPAA.Security-SecretsManagerRotationEnabled',
        'NIST.800.53.R5-SecretsManagerRotationEnabled',
      ],
      'LiveKit reads its keys at start; rotation is a coordinated redeploy of LiveKit, agents and the provisioner, not a rotation Lambda.',
    );

    this.hostSecurityGroup = new ec2.SecurityGroup(this, 'HostSecurityGroup', {
      vpc: props.vpc,
      description: 'LiveKit hosts: SIP/RTP from the edge, API from the load balancer and agents, WebRTC from agents',
      allowAllOutbound: true,
    });
    // LiveKit SIP joins a call's room as a WebRTC participant through its own host's server, but LiveKit places each
    // room on a node at random: the media then goes to another host's node IP, on the WebRTC ports.
    this.hostSecurityGroup.addIngressRule(
      this.hostSecurityGroup,
      ec2.Port.tcp(livekit.rtcTcpPort),
      'LiveKit SIP WebRTC over TCP to a room on another host',
    );
    this.hostSecurityGroup.addIngressRule(
      this.hostSecurityGroup,
      ec2.Port.udpRange(livekit.rtcUdpPortRange.min, livekit.rtcUdpPortRange.max),
      'LiveKit SIP WebRTC media to a room on another host',
    );

    const role = new iam.Role(this, 'HostRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
      description: 'LiveKit hosts: ECS agent and SSM (no SSH)',
    });
    // The ECS agent waits this long for a stopping task (SIGTERM: LiveKit finishes its rooms and calls) before SIGKILL.
    // The hosts' architecture picks the ECS-optimized image (and, below, the images mirrored for them).
    const arm = isArmInstanceType(livekit.instanceType);
    const hostUserData = ec2.UserData.forLinux();
    hostUserData.addCommands(`echo 'ECS_CONTAINER_STOP_TIMEOUT=${livekit.drainSeconds}s' >> /etc/ecs/ecs.config`);
    this.autoScalingGroup = new autoscaling.AutoScalingGroup(this, 'Hosts', {
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      launchTemplate: new ec2.LaunchTemplate(this, 'HostTemplate', {
        instanceType: new ec2.InstanceType(livekit.instanceType),
        machineImage: ecs.EcsOptimizedImage.amazonLinux2023(
          arm ? ecs.AmiHardwareType.ARM : ecs.AmiHardwareType.STANDARD,
        ),
        securityGroup: this.hostSecurityGroup,
        role,
        requireImdsv2: true,
        httpPutResponseHopLimit: 1,
        userData: hostUserData,
        blockDevices: [
          {
            deviceName: '/dev/xvda',
            volume: ec2.BlockDeviceVolume.ebs(30, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
          },
        ],
        detailedMonitoring: true,
      }),
      minCapacity: livekit.minHosts,
      maxCapacity: livekit.maxHosts,
      // A host whose LiveKit stops answering the load balancer is replaced, not just one whose instance fails.
      healthChecks: autoscaling.HealthChecks.withAdditionalChecks({
        additionalTypes: [autoscaling.AdditionalHealthCheckType.ELB],
        gracePeriod: Duration.minutes(5),
      }),
      newInstancesProtectedFromScaleIn: false,
    });
    const capacity = new ecs.AsgCapacityProvider(this, 'Capacity', {
      autoScalingGroup: this.autoScalingGroup,
      enableManagedTerminationProtection: false,
      enableManagedDraining: true,
    });
    props.cluster.addAsgCapacityProvider(capacity);

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: props.appKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // LiveKit SIP's own words for a failed or refused inbound call (pkg/sip/inbound.go); the server logs neither.
    this.sipMetrics = new LogLineMetrics(this, 'SipCallEvents', logGroup, props.metricsNamespace, {
      callErrors: {
        metricName: LIVEKIT_SIP_METRICS.callErrors,
        pattern: logs.FilterPattern.allTerms('Closing inbound call with error'),
      },
      callsRejected: {
        metricName: LIVEKIT_SIP_METRICS.callsRejected,
        // LiveKit logs JSON (logging.json in its config): a refusal's message, or a call closed for flooding.
        pattern: logs.FilterPattern.any(
          logs.FilterPattern.stringValue('$.msg', '=', 'Rejecting inbound call*'),
          logs.FilterPattern.stringValue('$.reason', '=', 'flood'),
        ),
      },
    }).metrics as Record<keyof typeof LIVEKIT_SIP_METRICS, cloudwatch.Metric>;
    const task = new ecs.Ec2TaskDefinition(this, 'Task', { networkMode: ecs.NetworkMode.HOST });
    task.addVolume({ name: 'config' });
    // Imported by ARN so the grant stays an identity policy here, not an edit of the data stack's key policy.
    const redisAuth = secretsmanager.Secret.fromSecretCompleteArn(
      this,
      'RedisAuthToken',
      props.redisAuthSecret.secretArn,
    );
    const secrets = {
      LIVEKIT_API_KEY: ecs.Secret.fromSecretsManager(this.apiSecret, 'apiKey'),
      LIVEKIT_API_SECRET: ecs.Secret.fromSecretsManager(this.apiSecret, 'apiSecret'),
      REDIS_PASSWORD: ecs.Secret.fromSecretsManager(redisAuth),
    };
    task.obtainExecutionRole().addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: [props.dataKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${Stack.of(this).region}.amazonaws.com` } },
      }),
    );
    const input = { livekit, redisAddress: props.redisAddress };
    const render = (template: string, file: string) =>
      `printf '%s' "$${template}" | sed -e "s|${LIVEKIT_PLACEHOLDERS.nodeIp}|$NODE_IP|g" -e "s|${LIVEKIT_PLACEHOLDERS.apiKey}|$LIVEKIT_API_KEY|g" -e "s|${LIVEKIT_PLACEHOLDERS.apiSecret}|$LIVEKIT_API_SECRET|g" -e "s|${LIVEKIT_PLACEHOLDERS.redisPassword}|$REDIS_PASSWORD|g" > /config/${file}`;
    // Every image the hosts run is a copy in this account's ECR, for the hosts' architecture.
    const platform = arm ? ecrAssets.Platform.LINUX_ARM64 : ecrAssets.Platform.LINUX_AMD64;
    const mirrored = (source: string) =>
      ecs.ContainerImage.fromAsset(MIRROR_DIR, { buildArgs: { SOURCE_IMAGE: source }, platform });
    const init = task.addContainer('config', {
      image: mirrored(CONFIG_INIT_IMAGE),
      essential: false,
      memoryReservationMiB: 32,
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'livekit-config', logGroup }),
      environment: { SERVER_TEMPLATE: liveKitServerYaml(input), SIP_TEMPLATE: liveKitSipYaml(input) },
      secrets,
      entryPoint: ['sh', '-c'],
      command: [
        [
          'set -eu',
          'TOKEN=$(curl -sf -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 60")',
          'NODE_IP=$(curl -sf -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4)',
          render('SERVER_TEMPLATE', 'server.yaml'),
          render('SIP_TEMPLATE', 'sip.yaml'),
          'chmod 0444 /config/*.yaml',
        ].join('\n'),
      ],
    });
    init.addMountPoints({ containerPath: '/config', sourceVolume: 'config', readOnly: false });

    // Both LiveKit processes read their rendered config, read-only, once the config step has written it.
    const addLiveKitContainer = (name: string, image: string, configFile: string, healthCheck?: ecs.HealthCheck) => {
      const container = task.addContainer(name, {
        image: mirrored(image),
        user: '1000',
        memoryReservationMiB: 1024,
        command: ['--config', `/config/${configFile}`],
        logging: ecs.LogDrivers.awsLogs({ streamPrefix: name, logGroup }),
        healthCheck,
      });
      container.addMountPoints({ containerPath: '/config', sourceVolume: 'config', readOnly: true });
      container.addContainerDependencies({ container: init, condition: ecs.ContainerDependencyCondition.SUCCESS });
    };
    addLiveKitContainer('livekit-server', livekit.serverImage, 'server.yaml');
    addLiveKitContainer('livekit-sip', livekit.sipImage, 'sip.yaml', {
      command: sipHealthProbe(livekit.sipHealthPort),
      interval: Duration.seconds(15),
      startPeriod: Duration.seconds(30),
    });

    // One LiveKit Server + SIP pair per host: the daemon strategy follows the Auto Scaling group. A new image or config
    // stops the task of one host at a time at the minimum size (of at most 1/minHosts of the hosts when scaled out):
    // the edge stops sending that host calls (the node sync sees the task stopping), LiveKit drains on SIGTERM, then
    // the new task starts there. With a single host there is nothing to roll onto: it restarts in place.
    this.service = new ecs.Ec2Service(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: task,
      daemon: true,
      minHealthyPercent: daemonMinHealthyPercent(livekit.minHosts),
      maxHealthyPercent: 100,
    });

    const internal = new InternalLoadBalancer(this, 'Api', {
      vpc: props.vpc,
      description: 'LiveKit API load balancer: from agents and the SIP provisioner only',
      accessLogsBucket: props.accessLogsBucket,
      logPrefix: 'livekit',
    });
    this.apiLoadBalancer = internal.loadBalancer;
    this.apiLoadBalancerSecurityGroup = internal.securityGroup;
    internal.forwardTo(this.hostSecurityGroup, livekit.apiPort, 'LiveKit API');
    internal.addTcpListener('Listener', livekit.apiPort).addTargets('Hosts', {
      port: livekit.apiPort,
      protocol: elbv2.Protocol.TCP,
      targets: [this.autoScalingGroup],
      healthCheck: { protocol: elbv2.Protocol.HTTP, path: '/', interval: Duration.seconds(10) },
      deregistrationDelay: Duration.seconds(30),
    });
    this.url = `http://${this.apiLoadBalancer.loadBalancerDnsName}:${livekit.apiPort}`;
    this.acknowledgeFindings(task, role);
    Annotations.of(this.service).acknowledgeWarning(
      '@aws-cdk/aws-ecs:shouldUseCircuitBreaker',
      'Daemon service: one task per host, replaced with its host; rollout safety comes from the Auto Scaling group.',
    );
  }

  /** Agents reach the API and carry WebRTC media to the hosts. */
  allowAgents(agents: ec2.ISecurityGroup): void {
    const { livekit } = this;
    this.apiLoadBalancerSecurityGroup.addIngressRule(
      agents,
      ec2.Port.tcp(livekit.apiPort),
      'agents to the LiveKit API',
    );
    this.hostSecurityGroup.addIngressRule(
      agents,
      ec2.Port.tcp(livekit.apiPort),
      'agents to the LiveKit API (node-direct)',
    );
    this.hostSecurityGroup.addIngressRule(agents, ec2.Port.tcp(livekit.rtcTcpPort), 'agents WebRTC over TCP');
    this.hostSecurityGroup.addIngressRule(
      agents,
      ec2.Port.udpRange(livekit.rtcUdpPortRange.min, livekit.rtcUdpPortRange.max),
      'agents WebRTC media',
    );
  }

  /** The SIP provisioner calls the API through the load balancer. */
  allowApiClient(client: ec2.ISecurityGroup, description: string): void {
    this.apiLoadBalancerSecurityGroup.addIngressRule(client, ec2.Port.tcp(this.livekit.apiPort), description);
  }

  /** The SIP edge sends signalling and media to LiveKit SIP (rules created in the edge's stack). */
  sipIngressFor(edge: ec2.ISecurityGroup): ec2.CfnSecurityGroupIngress[] {
    const { livekit } = this;
    const scope = Stack.of(edge);
    const rule = (id: string, protocol: string, from: number, to: number, description: string) =>
      new ec2.CfnSecurityGroupIngress(scope, `LiveKitSip${id}From${edge.node.id}`, {
        groupId: this.hostSecurityGroup.securityGroupId,
        sourceSecurityGroupId: edge.securityGroupId,
        ipProtocol: protocol,
        fromPort: from,
        toPort: to,
        description,
      });
    return [
      rule('Udp', 'udp', livekit.sipPort, livekit.sipPort, 'SIP over UDP from the edge'),
      rule('Tcp', 'tcp', livekit.sipPort, livekit.sipPort, 'SIP over TCP from the edge'),
      rule('Rtp', 'udp', livekit.sipRtpPortRange.min, livekit.sipRtpPortRange.max, 'RTP from the edge media relay'),
    ];
  }

  private acknowledgeFindings(task: ecs.Ec2TaskDefinition, role: iam.Role): void {
    const { rolePolicy: hostPolicy } = acknowledgeTaskRolePolicies(task.obtainExecutionRole(), role);
    acknowledgeRules(
      hostPolicy,
      ['AwsSolutions-IAM5[Action::ecs:Submit*]', 'AwsSolutions-IAM5[Resource::*]'],
      'The ECS container agent permissions CDK grants an ECS host (registration, telemetry); they are scoped to the cluster where the API allows.',
    );
    acknowledgeRules(
      task,
      ['HIPAA.Security-ECSTaskDefinitionUserForHostMode', 'NIST.800.53.R5-ECSTaskDefinitionUserForHostMode'],
      'LiveKit Server and SIP run as uid 1000; only the config step runs as root, to write the shared config volume, and exits.',
    );

    acknowledgeRules(
      task,
      ['AwsSolutions-ECS2'],
      'Environment holds generated config templates with placeholders; secrets come from Secrets Manager.',
    );
    acknowledgeRules(
      role,
      ['AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]'],
      'AWS-maintained policy for Session Manager access (the hosts have no SSH).',
    );
    acknowledgeRules(
      this.autoScalingGroup,
      ['AwsSolutions-AS3'],
      'Scaling activity shows in ECS capacity provider events and CloudWatch; no separate SNS notification topic.',
    );
    skipCheckovChecks(hostPolicy, [
      {
        id: 'CKV_AWS_111',
        comment:
          'ECS container agent permissions on an ECS host; the agent APIs (Submit*, Poll) take no resource scoping.',
      },
    ]);
  }
}

/**
 * LiveKit SIP's container health check. Its image (debian-slim) has no wget or curl, so the probe is bash alone. A node
 * under load answers 429 and refuses new calls by itself: that counts as healthy, or ECS would replace the task and
 * drop every call on it exactly when the cluster is busiest. Not started or stopping (503), or no answer, is unhealthy.
 */
export function sipHealthProbe(port: number): string[] {
  return [
    'CMD',
    'bash',
    '-c',
    `exec 3<>/dev/tcp/127.0.0.1/${port} && printf 'GET / HTTP/1.0\\r\\n\\r\\n' >&3 && read -r status <&3 && [[ $status == 'HTTP/1.'?' 200 '* || $status == 'HTTP/1.'?' 429 '* ]]`,
  ];
}

/** The daemon's minimum healthy percent that lets exactly one of `minHosts` hosts restart at a time. */
export function daemonMinHealthyPercent(minHosts: number): number {
  return minHosts < 2 ? 0 : Math.floor((100 * (minHosts - 1)) / minHosts);
}
