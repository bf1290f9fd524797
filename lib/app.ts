import { type App, Tags } from 'aws-cdk-lib';
import type { VoiceIntakeConfig } from './config';
import { LiveKitSipProvisioning } from './constructs/livekit-sip-provisioning';
import { AppStack } from './stacks/app-stack';
import { DataStack } from './stacks/data-stack';
import { EdgeStack } from './stacks/edge-stack';
import { EnrichmentStack } from './stacks/enrichment-stack';
import { NetworkStack } from './stacks/network-stack';
import { ObservabilityStack } from './stacks/observability-stack';

export interface VoiceIntakeStacks {
  readonly network: NetworkStack;
  readonly data: DataStack;
  readonly enrichment: EnrichmentStack;
  readonly app: AppStack;
  readonly edge: EdgeStack;
  readonly observability: ObservabilityStack;
}

/** Builds every stack of one deployment from validated config; stack names carry the deployment name. */
export function buildVoiceIntake(app: App, config: VoiceIntakeConfig): VoiceIntakeStacks {
  const env = config.account && config.region ? { account: config.account, region: config.region } : undefined;
  const name = (tier: string) => `${config.deploymentName}-${tier}`;
  const common = { config, env };

  const network = new NetworkStack(app, name('network'), {
    ...common,
    description: 'voice-intake: VPC, endpoints, flow logs',
  });
  const data = new DataStack(app, name('data'), {
    ...common,
    description: 'voice-intake: stateful resources (KMS, S3, Redis)',
    vpc: network.vpc,
  });
  data.addStackDependency(network);

  const enrichment = new EnrichmentStack(app, name('enrichment'), {
    ...common,
    description: 'voice-intake: post-call enrichment (Lambda, event bus, DLQ)',
    vpc: network.vpc,
    dataKey: data.dataKey,
  });
  enrichment.addStackDependency(data);

  const appTier = new AppStack(app, name('app'), {
    ...common,
    description: 'voice-intake: app tier (ECS cluster, LiveKit, MCP server)',
    vpc: network.vpc,
    data,
    casesTable: data.casesTable,
    auditBucket: data.auditBucket,
    auditSealKey: data.auditSealKey,
    accessLogsBucket: data.accessLogsBucket,
    dataKey: data.dataKey,
    knowledge: data.knowledge,
  });

  // The edge depends on the app tier (it sends only to LiveKit SIP), never the other way round: LiveKit's ingress
  // rules for the edge are created in the edge stack.
  const edge = new EdgeStack(app, name('edge'), {
    ...common,
    description: 'voice-intake: SIP edge (Kamailio + RTPEngine per AZ)',
    vpc: network.vpc,
    livekitSip: {
      securityGroup: appTier.livekit.hostSecurityGroup,
      rtpPortRange: config.livekit.sipRtpPortRange,
      autoScalingGroupName: appTier.livekit.autoScalingGroup.autoScalingGroupName,
      sipPort: config.livekit.sipPort,
      ecsService: {
        clusterArn: appTier.cluster.clusterArn,
        clusterName: appTier.cluster.clusterName,
        serviceName: appTier.livekit.service.serviceName,
      },
    },
  });
  edge.addStackDependency(appTier);
  appTier.livekit.sipIngressFor(edge.securityGroup);
  // LiveKit accepts calls only from the edge hosts: the trunk is provisioned once their addresses exist.
  new LiveKitSipProvisioning(edge, 'LiveKitSip', {
    vpc: network.vpc,
    config,
    livekitUrl: appTier.livekit.url,
    livekitApiSecret: appTier.livekit.apiSecret,
    secretKey: appTier.appKey,
    livekitApiSecurityGroup: appTier.livekit.apiLoadBalancerSecurityGroup,
    // The edge's public subnets (edge hosts only, plus NAT), not host addresses: a replacement host takes calls
    // before CloudFormation could update the trunk, while the host it replaces is still draining.
    allowedAddresses: network.vpc.publicSubnets.map((subnet) => subnet.ipv4CidrBlock),
  });

  const observability = new ObservabilityStack(app, name('observability'), {
    ...common,
    description: 'voice-intake: dashboard and alarms',
    redisReplicationGroupId: data.redisReplicationGroup.ref,
    redisNodeCount: data.redisNodeCount,
    // Edge alarms live in the edge stack: a replaced edge host changes no export another stack imports.
    existingAlarms: [
      enrichment.deadLetterAlarm,
      ...(edge.nodeSync ? [edge.nodeSync.failureAlarm] : []),
      ...edge.unhealthyAzAlarms,
      // Appended: the forwarding alarms are numbered, and the ones before keep their IDs.
      edge.mediaUserspaceAlarm,
    ],
    edgeMetrics: edge.metrics,
    livekitSipMetrics: appTier.livekit.sipMetrics,
    mcpServerMetrics: appTier.mcpServer.forwardingMetrics,
  });
  observability.addStackDependency(edge);
  observability.addStackDependency(appTier);
  observability.addStackDependency(enrichment);

  Tags.of(app).add('project', 'voice-intake');
  Tags.of(app).add('deployment', config.deploymentName);
  for (const [key, value] of Object.entries(config.tags)) Tags.of(app).add(key, value);

  return { network, data, enrichment, app: appTier, edge, observability };
}
