import { gzipSync } from 'node:zlib';
import { EDGE_MEDIA_MODE_METRICS, EDGE_METRICS, metricsNamespace } from '@voice-intake/contracts';
import {
  CARRIER_SIP_PORT,
  CARRIER_TLS_PORT,
  EDGE_LOG_EVENTS,
  EDGE_MEDIA_MODE_LOG_EVENTS,
  edgeSecurityGroupSizing,
  HOST_PLACEHOLDERS,
  type RenderedEdge,
  renderEdge,
  sipTcpPortRanges,
  withoutCommentLines,
} from '@voice-intake/edge-config';
import { Annotations, CfnOutput, type CustomResource, Duration, RemovalPolicy, Stack, Token } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import type { Construct } from 'constructs';
import { acknowledgeRules } from '../compliance';
import { EdgeHostHandover } from '../constructs/edge-host-handover';
import { EdgeNodeSync, type LiveKitEcsService } from '../constructs/edge-node-sync';
import { grantKeyToLogGroups } from '../constructs/log-key-grant';
import { LogLineMetrics } from '../constructs/log-metrics';
import { VoiceIntakeStack, type VoiceIntakeStackProps } from './voice-intake-stack';

const CONFIG_DIR = '/etc/voice-intake-edge';
const LOG_DIR = '/var/log/voice-intake-edge';
/** One TCP port as ec2.Port.tcp names it (a rule's logical id follows the name: an unchanged rule keeps its id). */
const tcpPorts = (from: number, to: number) => (from === to ? ec2.Port.tcp(from) : ec2.Port.tcpRange(from, to));
/** Where the config association unpacks the rendered tree before edge-apply.sh compares and installs it. */
const STAGED_DIR = '/var/lib/voice-intake-edge/staged';

export interface LivekitSipPeer {
  /** LiveKit SIP nodes' security group (app tier); without it the edge may reach the private subnets on these ports. */
  readonly securityGroup?: ec2.ISecurityGroup;
  /** LiveKit SIP's RTP range (its default: 10000-20000). */
  readonly rtpPortRange?: { min: number; max: number };
  /** The LiveKit hosts' Auto Scaling group: its in-service members become the edge's LiveKit SIP nodes at runtime. */
  readonly autoScalingGroupName?: string;
  /** LiveKit SIP's signalling port on those hosts. Default 5060. */
  readonly sipPort?: number;
  /** The LiveKit ECS service: hosts whose task is being stopped get no new call from the edge. */
  readonly ecsService?: LiveKitEcsService;
}

export interface EdgeStackProps extends VoiceIntakeStackProps {
  readonly vpc: ec2.IVpc;
  readonly livekitSip?: LivekitSipPeer;
}

/** Placeholder LiveKit SIP name until the app tier passes its own (see edge-config/README.md). */

/**
 * The SIP edge: per AZ `edge.hostsPerAz` Kamailio + RTPEngine hosts in public subnets, each with an EIP, reachable
 * only from the carrier allowlist (managed prefix lists, so the allowlist's size never multiplies SG rules), sending
 * only to LiveKit SIP. Config is rendered at synth by edge-config with host placeholders the boot script fills from
 * IMDSv2. The allowlist is applied at runtime by an SSM association and the LiveKit node list by the node sync (SSM
 * Run Command when LiveKit's hosts change); Kamailio reloads both in place: never a restart or a new instance.
 */
export class EdgeStack extends VoiceIntakeStack {
  readonly securityGroup: ec2.SecurityGroup;
  readonly signallingPrefixList: ec2.PrefixList;
  readonly mediaPrefixList: ec2.PrefixList;
  readonly instances: ec2.Instance[] = [];
  /** Per AZ: no edge host there passes its status checks (the carrier has lost that AZ's URIs). */
  readonly unhealthyAzAlarms: cloudwatch.Alarm[] = [];
  /** Keeps the hosts' LiveKit node list current (when the LiveKit group is known). */
  readonly nodeSync?: EdgeNodeSync;
  /** Counts of what the edge refused (allowlist, flood bans, scanners, malformed) and of calls with no LiveKit node. */
  readonly metrics: Record<keyof typeof EDGE_METRICS, cloudwatch.Metric>;
  /** RTPEngine starts in each forwarding mode (bin/edge-media-mode.sh, or RTPEngine failing its kernel table). */
  readonly mediaModeMetrics: Record<keyof typeof EDGE_MEDIA_MODE_METRICS, cloudwatch.Metric>;
  /** A host forwards media in userspace (the kernel module did not load): about five times the CPU per call. */
  readonly mediaUserspaceAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: EdgeStackProps) {
    super(scope, id, props);
    const { edge } = props.config;
    const livekitRtp = props.livekitSip?.rtpPortRange ?? { min: 10000, max: 20000 };
    // Where LiveKit SIP listens (livekit.sipPort): the egress rule, the rendered node port and the node sync agree.
    const livekitSipPort = props.livekitSip?.sipPort ?? 5060;

    // Sized so the security group's rules, each prefix-list rule counted per entry, stay in the default quota (the
    // config refuses lists that cannot).
    const { prefixListSizes } = edgeSecurityGroupSizing(edge);
    this.signallingPrefixList = new ec2.PrefixList(this, 'CarrierSignallingPrefixList', {
      addressFamily: ec2.AddressFamily.IP_V4,
      maxEntries: prefixListSizes.signalling,
      entries: edge.allowlist.map((cidr) => ({ cidr, description: 'carrier signalling' })),
    });
    this.mediaPrefixList = new ec2.PrefixList(this, 'CarrierMediaPrefixList', {
      addressFamily: ec2.AddressFamily.IP_V4,
      maxEntries: prefixListSizes.media,
      entries: edge.mediaAllowlist.map((cidr) => ({ cidr, description: 'carrier media' })),
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'EdgeSecurityGroup', {
      vpc: props.vpc,
      description: 'SIP edge: carrier allowlist in, LiveKit SIP out',
      allowAllOutbound: false,
    });
    const signalling = ec2.Peer.prefixList(this.signallingPrefixList.prefixListId);
    const media = ec2.Peer.prefixList(this.mediaPrefixList.prefixListId);
    this.securityGroup.addIngressRule(signalling, ec2.Port.udp(edge.sipPort), 'SIP/UDP from carrier');
    // SIP/TCP and SIP/TLS share one rule when their ports are adjacent: every rule here costs one per list entry.
    for (const [from, to] of sipTcpPortRanges(edge.sipPort, edge.tls ? edge.tlsPort : undefined)) {
      const what = from !== to ? 'SIP/TCP+TLS' : edge.tls && from === edge.tlsPort ? 'SIP/TLS' : 'SIP/TCP';
      this.securityGroup.addIngressRule(signalling, tcpPorts(from, to), `${what} from carrier`);
    }
    this.securityGroup.addIngressRule(
      media,
      ec2.Port.udpRange(edge.rtpPortRange.min, edge.rtpPortRange.max),
      'RTP from carrier media',
    );

    const livekitPeers: ec2.IPeer[] = props.livekitSip?.securityGroup
      ? [props.livekitSip.securityGroup]
      : props.vpc.privateSubnets.map((subnet) => ec2.Peer.ipv4(subnet.ipv4CidrBlock));
    for (const peer of livekitPeers) {
      this.securityGroup.addEgressRule(peer, ec2.Port.udp(livekitSipPort), 'SIP/UDP to LiveKit SIP');
      this.securityGroup.addEgressRule(peer, ec2.Port.tcp(livekitSipPort), 'SIP/TCP to LiveKit SIP');
      this.securityGroup.addEgressRule(peer, ec2.Port.udpRange(livekitRtp.min, livekitRtp.max), 'RTP to LiveKit SIP');
    }
    // Towards the carrier: a flow the carrier opened is answered through connection tracking, but tracking ends after
    // minutes of silence, and LiveKit's BYE at the end of a long call (or the first RTP the edge sends, when the agent
    // speaks first) starts a new flow: without these it would be dropped.
    this.securityGroup.addEgressRule(
      signalling,
      ec2.Port.udp(CARRIER_SIP_PORT),
      'SIP/UDP to carrier (in-dialog requests)',
    );
    for (const [from, to] of sipTcpPortRanges(CARRIER_SIP_PORT, edge.tls ? CARRIER_TLS_PORT : undefined)) {
      const what = from === to ? 'SIP/TCP' : 'SIP/TCP+TLS';
      this.securityGroup.addEgressRule(signalling, tcpPorts(from, to), `${what} to carrier (in-dialog requests)`);
    }
    this.securityGroup.addEgressRule(
      media,
      ec2.Port.udpRange(1024, 65535),
      'RTP to carrier media (the port its SDP names)',
    );
    // Distro packages at boot, SSM and CloudWatch Logs (interface endpoints in the VPC, package mirrors outside).
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'HTTPS: SSM, CloudWatch Logs, package mirrors',
    );
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(80),
      'HTTP: Debian package mirrors (signed packages)',
    );

    const logKey = new kms.Key(this, 'EdgeLogKey', {
      description: 'Encrypts SIP edge logs',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    grantKeyToLogGroups(logKey);
    const logGroup = new logs.LogGroup(this, 'EdgeLogs', {
      encryptionKey: logKey,
      retention: logs.RetentionDays.ONE_YEAR,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.metrics = new LogLineMetrics(
      this,
      'EdgeEvents',
      logGroup,
      metricsNamespace(props.config.deploymentName),
      Object.fromEntries(
        (Object.keys(EDGE_METRICS) as (keyof typeof EDGE_METRICS)[]).map((event) => [
          event,
          { metricName: EDGE_METRICS[event], pattern: logs.FilterPattern.allTerms(EDGE_LOG_EVENTS[event]) },
        ]),
      ),
    ).metrics as Record<keyof typeof EDGE_METRICS, cloudwatch.Metric>;
    const namespace = metricsNamespace(props.config.deploymentName);
    this.mediaModeMetrics = new LogLineMetrics(this, 'EdgeMediaMode', logGroup, namespace, {
      kernel: {
        metricName: EDGE_MEDIA_MODE_METRICS.kernel,
        pattern: logs.FilterPattern.allTerms(EDGE_MEDIA_MODE_LOG_EVENTS.kernel),
      },
      userspace: {
        metricName: EDGE_MEDIA_MODE_METRICS.userspace,
        pattern: logs.FilterPattern.anyTerm(EDGE_MEDIA_MODE_LOG_EVENTS.userspace, RTPENGINE_KERNEL_FAILURE),
      },
    }).metrics as Record<keyof typeof EDGE_MEDIA_MODE_METRICS, cloudwatch.Metric>;
    this.mediaUserspaceAlarm = new cloudwatch.Alarm(this, 'EdgeMediaUserspace', {
      alarmDescription: 'An edge host forwards media in userspace (xt_RTPENGINE did not load): a fifth of the capacity',
      metric: this.mediaModeMetrics.userspace,
      threshold: 1,
      evaluationPeriods: 1,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });
    acknowledgeRules(
      this.mediaUserspaceAlarm,
      ['HIPAA.Security-CloudWatchAlarmAction', 'NIST.800.53.R5-CloudWatchAlarmAction'],
      'Pages through the observability stack, which forwards it to the alarm topic (a composite alarm).',
    );

    const role = new iam.Role(this, 'EdgeRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'SIP edge hosts: SSM (no SSH), logs to CloudWatch',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('AmazonSSMManagedInstanceCore')],
    });
    logGroup.grantWrite(role);
    const defaultPolicy = role.node.tryFindChild('DefaultPolicy');
    if (defaultPolicy) {
      acknowledgeRules(
        defaultPolicy,
        ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
        "CDK-generated grant: write to this stack's one edge log group, nothing else.",
      );
    }
    acknowledgeRules(
      role,
      ['AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/AmazonSSMManagedInstanceCore]'],
      'The AWS-maintained SSM core policy is what Session Manager and State Manager need; it replaces SSH.',
    );

    const rendered = renderEdge({
      edge,
      host: {
        carrierSipIp: HOST_PLACEHOLDERS.privateIp,
        carrierAdvertisedIp: HOST_PLACEHOLDERS.publicIp,
        internalSipIp: HOST_PLACEHOLDERS.privateIp,
        carrierMediaIp: HOST_PLACEHOLDERS.privateIp,
        carrierMediaAdvertisedIp: HOST_PLACEHOLDERS.publicIp,
        internalMediaIp: HOST_PLACEHOLDERS.privateIp,
      },
      // No node is known at synth: the node sync fills the list on each host at runtime.
      livekitSip: { destinations: [], nodePort: livekitSipPort },
      paths: { configDir: CONFIG_DIR, runDir: '/run/voice-intake-edge' },
    });

    const machineImage = edgeMachineImage(this, edge);
    const instanceType = new ec2.InstanceType(edge.instanceType);
    const tagKey = 'voice-intake:edge';
    const tagValue = props.config.deploymentName;
    const handover = new EdgeHostHandover(this, 'HostHandover', {
      vpc: props.vpc,
      edgeTag: { key: tagKey, value: tagValue },
      drainScript: `${CONFIG_DIR}/bin/edge-drain.sh`,
      readyScript: `${CONFIG_DIR}/bin/edge-ready.sh`,
      drainSeconds: edge.drainSeconds,
      logKey,
    });

    const originationUris: { uri: string; priority: number; weight: number }[] = [];
    // One public subnet per AZ: the pair in each AZ shares it.
    props.vpc.publicSubnets.forEach((subnet, azIndex) => {
      const subnets = { subnets: [subnet] };
      // The hosts of one AZ are handed over one after the other: the others keep taking calls meanwhile.
      let previousHandover: CustomResource | undefined;
      const statusMetrics: Record<string, cloudwatch.IMetric> = {};
      for (let hostIndex = 0; hostIndex < edge.hostsPerAz; hostIndex++) {
        const name = `Edge${azIndex + 1}${String.fromCharCode(97 + hostIndex)}`;
        const eip = new ec2.CfnEIP(this, `${name}Eip`, { domain: 'vpc', tags: [{ key: tagKey, value: tagValue }] });
        const userData = ec2.UserData.forLinux();
        // The host is told its EIP: a replacement boots and gets ready while the old host still holds it.
        userData.addCommands(...bootScript(logGroup.logGroupName, this.region, eip.attrPublicIp));
        const instance = new ec2.Instance(this, name, {
          vpc: props.vpc,
          vpcSubnets: subnets,
          instanceType,
          machineImage,
          securityGroup: this.securityGroup,
          role,
          userData,
          // A change of boot config is a new host, handed over drained, never a stop/start of the running one.
          userDataCausesReplacement: true,
          requireImdsv2: true,
          detailedMonitoring: true,
          blockDevices: [
            {
              deviceName: '/dev/xvda',
              volume: ec2.BlockDeviceVolume.ebs(16, { encrypted: true, volumeType: ec2.EbsDeviceVolumeType.GP3 }),
            },
          ],
          sourceDestCheck: true,
        });
        instance.instance.addPropertyOverride('Tags', [
          { Key: tagKey, Value: tagValue },
          { Key: 'Name', Value: `${props.config.deploymentName}-${name}` },
        ]);
        previousHandover = handover.handOver(`${name}Handover`, eip.attrAllocationId, instance, previousHandover);
        this.instances.push(instance);
        statusMetrics[`h${hostIndex}`] = new cloudwatch.Metric({
          namespace: 'AWS/EC2',
          metricName: 'StatusCheckFailed',
          dimensionsMap: { InstanceId: instance.instanceId },
          statistic: 'Maximum',
          period: Duration.minutes(1),
        });

        // EC2 auto-recovery: a failed system status check moves the instance to healthy hardware, EIP and all.
        new cloudwatch.Alarm(this, `${name}Recovery`, {
          metric: new cloudwatch.Metric({
            namespace: 'AWS/EC2',
            metricName: 'StatusCheckFailed_System',
            dimensionsMap: { InstanceId: instance.instanceId },
            statistic: 'Maximum',
            period: Duration.minutes(1),
          }),
          threshold: 0,
          comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
          evaluationPeriods: 2,
          alarmDescription: `Recover ${name} on a failed system status check`,
        }).addAlarmAction({
          bind: () => ({ alarmActionArn: `arn:${Stack.of(this).partition}:automate:${this.region}:ec2:recover` }),
        });

        acknowledgeRules(
          instance,
          ['AwsSolutions-EC26', 'HIPAA.Security-EC2EBSOptimizedInstance', 'NIST.800.53.R5-EC2EBSOptimizedInstance'],
          'Root volume is encrypted (gp3, encrypted: true); the host keeps no call data on disk and modern types are EBS-optimized by default.',
        );
        acknowledgeRules(
          instance,
          ['AwsSolutions-EC29'],
          'Replaced by CloudFormation (new image, type or boot config) after a drained handover; API termination protection would make that replacement, and cdk destroy, fail.',
        );
        acknowledgeRules(
          instance,
          ['HIPAA.Security-EC2InstanceNoPublicIp', 'NIST.800.53.R5-EC2InstanceNoPublicIp'],
          'The SIP edge is the internet-facing tier: carriers reach it on its EIP, restricted to the allowlist prefix lists.',
        );

        const originationUri = `sip:${eip.attrPublicIp}:${edge.sipPort};transport=udp`;
        originationUris.push({ uri: originationUri, priority: 10, weight: 10 });
        new CfnOutput(this, `${name}OriginationUri`, {
          value: originationUri,
          description: `Twilio origination URI for edge host ${name} (AZ ${azIndex + 1}): priority 10, weight 10 — equal priority and weight across hosts spreads calls; Twilio fails over to the others`,
        });
      }

      // An AZ has no healthy edge host when every host in it fails its status checks.
      const unhealthy = new cloudwatch.Alarm(this, `EdgeAz${azIndex + 1}Unhealthy`, {
        alarmDescription: `No healthy SIP edge host in AZ ${azIndex + 1}`,
        metric: new cloudwatch.MathExpression({
          expression: `MIN([${Object.keys(statusMetrics).join(',')}])`,
          usingMetrics: statusMetrics,
          period: Duration.minutes(1),
          label: 'healthy hosts missing',
        }),
        threshold: 1,
        evaluationPeriods: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.BREACHING,
      });
      acknowledgeRules(
        unhealthy,
        ['HIPAA.Security-CloudWatchAlarmAction', 'NIST.800.53.R5-CloudWatchAlarmAction'],
        'The observability tier routes this alarm to the operator SNS topic (composite alarm there).',
      );
      this.unhealthyAzAlarms.push(unhealthy);
    });

    if (props.livekitSip?.autoScalingGroupName) {
      this.nodeSync = new EdgeNodeSync(this, 'LiveKitNodeSync', {
        vpc: props.vpc,
        livekitAutoScalingGroupName: props.livekitSip.autoScalingGroupName,
        sipPort: livekitSipPort,
        edgeTag: { key: tagKey, value: tagValue },
        nodeScript: `${CONFIG_DIR}/bin/edge-livekit-nodes.sh`,
        logKey,
        deploymentName: props.config.deploymentName,
        livekitEcsService: props.livekitSip.ecsService,
      });
    } else {
      Annotations.of(this).addWarning(
        'No LiveKit Auto Scaling group given: the edge has no LiveKit SIP node and answers every call with 503.',
      );
    }

    // Every rendered file reaches the hosts here, never through user data: edge-apply.sh installs what changed and
    // reloads in place (allowlist) or drains and restarts (anything else). One host at a time, and a failure stops
    // the rollout; the schedule re-applies what a host missed (a no-change run does nothing).
    new ssm.CfnAssociation(this, 'EdgeConfigAssociation', {
      name: 'AWS-RunShellScript',
      associationName: `${props.config.deploymentName}-edge-config`,
      targets: [{ key: `tag:${tagKey}`, values: [tagValue] }],
      parameters: { commands: applyScript(rendered), executionTimeout: [String(edge.drainSeconds + 600)] },
      maxConcurrency: '1',
      maxErrors: '0',
      scheduleExpression: 'rate(30 minutes)',
      applyOnlyAtCronInterval: false,
    });

    acknowledgeRules(
      this.securityGroup,
      [
        'HIPAA.Security-EC2RestrictedCommonPorts',
        'NIST.800.53.R5-EC2RestrictedCommonPorts',
        'HIPAA.Security-EC2RestrictedSSH',
        'NIST.800.53.R5-EC2RestrictedSSH',
      ],
      'Ingress only from the carrier prefix lists on SIP and RTP ports; no SSH rule exists.',
    );

    new CfnOutput(this, 'OriginationUris', {
      value: this.toJsonString(originationUris),
      description:
        'Every origination URI for the Twilio trunk, with priority and weight (equal: calls spread, Twilio fails over between them)',
    });
    new CfnOutput(this, 'EdgeSecurityGroupId', {
      value: this.securityGroup.securityGroupId,
      description: `App tier: allow SIP ${livekitSipPort} and LiveKit SIP RTP from this group`,
    });
  }
}

/** RTPEngine's own words when it cannot use the kernel table it was given (it then forwards in userspace). */
const RTPENGINE_KERNEL_FAILURE = 'KERNEL FORWARDING DISABLED';

/** EC2 refuses user data over 16 KB (before base64); the rendered tree alone is larger than that uncompressed. */
export const USER_DATA_LIMIT_BYTES = 16_384;
const FILE_END = '__VOICE_INTAKE_EDGE_FILE_END__';

/**
 * One shell command that writes the rendered tree under `targetDir`: a gzip-compressed script of here-documents,
 * base64 in the command (the files compress to about a quarter). Each file is cut to its exact length (`head -c`),
 * so contents round-trip byte for byte.
 */
export function packedFileCommand(files: RenderedEdge, targetDir: string): string {
  const script = ['set -eu'];
  for (const [path, file] of Object.entries(files)) {
    if (file.content.split('\n').includes(FILE_END))
      throw new Error(`rendered file ${path} contains the line ${FILE_END}`);
    const target = `${targetDir}/${path}`;
    script.push(
      `mkdir -p "$(dirname '${target}')"`,
      `head -c ${Buffer.byteLength(file.content)} > '${target}' <<'${FILE_END}'`,
      file.content,
      FILE_END,
      `chmod ${file.mode.toString(8)} '${target}'`,
    );
  }
  return `echo '${gzipSync(`${script.join('\n')}\n`, { level: 9 }).toString('base64')}' | base64 -d | gunzip | bash`;
}

/**
 * The edge image: pinned AMI ids per region; else, with account and region known, the SSM parameter looked up once
 * and cached in cdk.context.json; else (an environment-agnostic template) CloudFormation resolves the parameter at
 * each deploy, so a new image can arrive with any deploy: said at synth. A new image replaces the hosts one per AZ
 * at a time, drained (EdgeHostHandover), in every case.
 */
function edgeMachineImage(stack: Stack, edge: VoiceIntakeStackProps['config']['edge']): ec2.IMachineImage {
  if (edge.amiIds) return ec2.MachineImage.genericLinux(edge.amiIds);
  if (!Token.isUnresolved(stack.account) && !Token.isUnresolved(stack.region)) {
    return ec2.MachineImage.fromSsmParameter(edge.amiSsmParameter, { cachedInContext: true });
  }
  Annotations.of(stack).addWarningV2(
    'voice-intake:edge-image-unpinned',
    `The edge image follows ${edge.amiSsmParameter} at every deploy: set account and region (the lookup is then cached in cdk.context.json) or edge.amiIds to pin it.`,
  );
  return ec2.MachineImage.fromSsmParameter(edge.amiSsmParameter);
}

/**
 * First boot: packages and host facts (host.env) only. The config association then installs the rendered tree and
 * starts the services: the SSM agent goes last, so the association finds everything else in place.
 */
function bootScript(logGroupName: string, region: string, publicIp: string): string[] {
  return [
    'set -euo pipefail',
    'export DEBIAN_FRONTEND=noninteractive',
    // Packaged daemons must not take 5060/2223 before ours start.
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d",
    'apt-get update -q',
    // redis-server + kamailio-redis-modules: the host-local store of topology hiding (topos).
    'apt-get install -y -q --no-install-recommends kamailio kamailio-tls-modules kamailio-extra-modules kamailio-redis-modules rtpengine-daemon rtpengine-utils redis-server curl ca-certificates',
    // In-kernel media forwarding (xt_RTPENGINE, built for the running kernel); without it RTPEngine runs in userspace.
    'apt-get install -y -q --no-install-recommends "linux-headers-$(uname -r)" rtpengine-kernel-dkms' +
      ' rtpengine-iptables iptables || echo "edge: kernel module packages not installed"',
    'rm -f /usr/sbin/policy-rc.d',
    'systemctl disable --now kamailio rtpengine-daemon ngcp-rtpengine-daemon redis-server 2>/dev/null || true',
    'TOKEN=$(curl -fsS -X PUT http://169.254.169.254/latest/api/token -H "X-aws-ec2-metadata-token-ttl-seconds: 300")',
    'PRIVATE_IP=$(curl -fsS -H "X-aws-ec2-metadata-token: $TOKEN" http://169.254.169.254/latest/meta-data/local-ipv4)',
    // Its EIP moves here only once this host is ready (and its predecessor drained): not from IMDS, from the stack.
    `mkdir -p ${CONFIG_DIR} ${LOG_DIR}`,
    `printf 'PRIVATE_IP=%s\\nPUBLIC_IP=%s\\n' "$PRIVATE_IP" '${publicIp}' > ${CONFIG_DIR}/host.env`,
    `curl -fsSLo /tmp/cwa.deb https://s3.${region}.amazonaws.com/amazoncloudwatch-agent-${region}/debian/amd64/latest/amazon-cloudwatch-agent.deb && dpkg -i /tmp/cwa.deb`,
    `cat > /opt/aws/amazon-cloudwatch-agent/etc/edge.json <<'EOF'\n${JSON.stringify({
      logs: {
        logs_collected: {
          files: {
            collect_list: [
              { file_path: '/var/log/syslog', log_group_name: logGroupName, log_stream_name: '{instance_id}/syslog' },
              { file_path: `${LOG_DIR}/*.log`, log_group_name: logGroupName, log_stream_name: '{instance_id}/edge' },
            ],
          },
        },
      },
    })}\nEOF`,
    '/opt/aws/amazon-cloudwatch-agent/bin/amazon-cloudwatch-agent-ctl -a fetch-config -m ec2 -s -c file:/opt/aws/amazon-cloudwatch-agent/etc/edge.json',
    `curl -fsSLo /tmp/ssm.deb https://s3.${region}.amazonaws.com/amazon-ssm-${region}/latest/debian_amd64/amazon-ssm-agent.deb && dpkg -i /tmp/ssm.deb`,
  ];
}

/** The config association's command: unpack the rendered tree into a staging directory, let edge-apply.sh decide. */
function applyScript(files: RenderedEdge): string[] {
  return [
    'set -eu',
    `rm -rf ${STAGED_DIR}`,
    // Without whole-line comments (the repository keeps them): the association's parameters are bytes on the wire.
    packedFileCommand(withoutCommentLines(files), STAGED_DIR),
    `${STAGED_DIR}/bin/edge-apply.sh ${STAGED_DIR}`,
  ];
}
