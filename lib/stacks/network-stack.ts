import { CfnOutput, RemovalPolicy } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { acknowledgeRules } from '../compliance';
import { SUBNET_MASKS } from '../config';
import { grantKeyToLogGroups } from '../constructs/log-key-grant';
import { VoiceIntakeStack, type VoiceIntakeStackProps } from './voice-intake-stack';

/** AWS APIs the private tiers call; reached through interface endpoints, never the internet. */
const INTERFACE_ENDPOINTS: Record<string, ec2.InterfaceVpcEndpointAwsService> = {
  TranscribeStreaming: ec2.InterfaceVpcEndpointAwsService.TRANSCRIBE_STREAMING,
  BedrockRuntime: ec2.InterfaceVpcEndpointAwsService.BEDROCK_RUNTIME,
  Polly: ec2.InterfaceVpcEndpointAwsService.POLLY,
  EcrApi: ec2.InterfaceVpcEndpointAwsService.ECR,
  EcrDocker: ec2.InterfaceVpcEndpointAwsService.ECR_DOCKER,
  CloudWatchLogs: ec2.InterfaceVpcEndpointAwsService.CLOUDWATCH_LOGS,
  SecretsManager: ec2.InterfaceVpcEndpointAwsService.SECRETS_MANAGER,
  Ssm: ec2.InterfaceVpcEndpointAwsService.SSM,
  Kms: ec2.InterfaceVpcEndpointAwsService.KMS,
  EventBridge: ec2.InterfaceVpcEndpointAwsService.EVENTBRIDGE,
};

export type NetworkStackProps = VoiceIntakeStackProps;

/** The VPC every tier lives in: public (edge only), private with egress (app), isolated (data). */
export class NetworkStack extends VoiceIntakeStack {
  readonly vpc: ec2.Vpc;
  readonly endpointSecurityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: NetworkStackProps) {
    super(scope, id, props);
    const { network, azCount } = props.config;

    this.vpc = new ec2.Vpc(this, 'Vpc', {
      ipAddresses: ec2.IpAddresses.cidr(network.vpcCidr),
      maxAzs: azCount,
      natGateways: network.natGateways ?? azCount,
      restrictDefaultSecurityGroup: true,
      subnetConfiguration: [
        {
          name: 'public',
          subnetType: ec2.SubnetType.PUBLIC,
          cidrMask: SUBNET_MASKS.public,
          mapPublicIpOnLaunch: false,
        },
        { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: SUBNET_MASKS.private },
        { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: SUBNET_MASKS.isolated },
      ],
    });

    // Flow logs carry source addresses of every caller: encrypt them with a key of their own.
    const flowLogKey = new kms.Key(this, 'FlowLogKey', {
      description: 'Encrypts the VPC flow log group',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    grantKeyToLogGroups(flowLogKey);
    const flowLogGroup = new logs.LogGroup(this, 'FlowLogGroup', {
      encryptionKey: flowLogKey,
      retention: network.flowLogRetentionDays as logs.RetentionDays,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.vpc.addFlowLog('FlowLog', {
      destination: ec2.FlowLogDestination.toCloudWatchLogs(flowLogGroup),
      trafficType: ec2.FlowLogTrafficType.ALL,
      maxAggregationInterval: ec2.FlowLogMaxAggregationInterval.ONE_MINUTE,
    });

    for (const subnet of this.vpc.publicSubnets) {
      const defaultRoute = subnet.node.tryFindChild('DefaultRoute');
      if (defaultRoute) {
        acknowledgeRules(
          defaultRoute,
          ['HIPAA.Security-VPCNoUnrestrictedRouteToIGW', 'NIST.800.53.R5-VPCNoUnrestrictedRouteToIGW'],
          'Public subnets hold only the SIP edge (carriers reach it from the internet) and the NAT gateways; every other tier is private or isolated.',
        );
      }
    }
    const flowLogPolicy = this.vpc.node.findAll().find((c) => c.node.path.endsWith('FlowLog/IAMRole/DefaultPolicy'));
    if (flowLogPolicy) {
      acknowledgeRules(
        flowLogPolicy,
        ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
        'CDK-generated policy of the flow-log delivery role, scoped to this one log group.',
      );
    }

    this.vpc.addGatewayEndpoint('S3Endpoint', { service: ec2.GatewayVpcEndpointAwsService.S3 });
    this.vpc.addGatewayEndpoint('DynamoDbEndpoint', { service: ec2.GatewayVpcEndpointAwsService.DYNAMODB });

    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: this.vpc,
      description: 'Interface endpoints: HTTPS from inside the VPC only',
      allowAllOutbound: false,
    });
    // The configured CIDR (not the VPC's token) so rule packs can evaluate the rule.
    this.endpointSecurityGroup.addIngressRule(ec2.Peer.ipv4(network.vpcCidr), ec2.Port.tcp(443), 'HTTPS from the VPC');
    for (const [name, service] of Object.entries(INTERFACE_ENDPOINTS)) {
      this.vpc.addInterfaceEndpoint(`${name}Endpoint`, {
        service,
        securityGroups: [this.endpointSecurityGroup],
        subnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        privateDnsEnabled: true,
        open: false,
      });
    }

    // One-off tasks (the knowledge loader) run here: operators pass these to `aws ecs run-task`.
    new CfnOutput(this, 'PrivateSubnetIds', {
      value: this.vpc.privateSubnets.map((subnet) => subnet.subnetId).join(','),
      description: 'Private subnets (with egress) for one-off tasks',
    });
  }
}
