import { App, Stack } from 'aws-cdk-lib';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, parseConfig, SUBNET_MASKS } from '../lib/config';
import { openIngressRules } from './support/assertions';
import { repoConfigInput, type SynthesizedApp, synthVoiceIntake } from './support/synth';

describe('network stack', () => {
  let synthesized: SynthesizedApp;
  let network: Template;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
    network = synthesized.templates.network;
  });

  it('spans azCount AZs with public, private-with-egress and isolated subnets', () => {
    network.hasResourceProperties('AWS::EC2::VPC', { CidrBlock: '10.40.0.0/16' });
    const subnets = Object.values(network.findResources('AWS::EC2::Subnet'));
    expect(subnets).toHaveLength(3 * synthesized.config.azCount);
    const byType = (type: string) =>
      subnets.filter((subnet) =>
        (subnet.Properties.Tags as { Key: string; Value: string }[]).some(
          (tag) => tag.Key === 'aws-cdk:subnet-type' && tag.Value === type,
        ),
      );
    expect(byType('Public')).toHaveLength(2);
    expect(byType('Private')).toHaveLength(2);
    expect(byType('Isolated')).toHaveLength(2);
    for (const subnet of byType('Public')) expect(subnet.Properties.MapPublicIpOnLaunch).toBe(false);
  });

  it('has one NAT gateway per AZ by default', () => {
    network.resourceCountIs('AWS::EC2::NatGateway', 2);
  });

  it('logs all VPC traffic to an encrypted, retained log group', () => {
    network.hasResourceProperties('AWS::EC2::FlowLog', {
      ResourceType: 'VPC',
      TrafficType: 'ALL',
      LogDestinationType: 'cloud-watch-logs',
    });
    network.hasResource('AWS::Logs::LogGroup', {
      Properties: { KmsKeyId: Match.anyValue(), RetentionInDays: 365 },
      DeletionPolicy: 'Retain',
    });
    network.hasResourceProperties('AWS::KMS::Key', { EnableKeyRotation: true });
  });

  it('reaches DynamoDB through a gateway endpoint', () => {
    network.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['.dynamodb'])]) }),
    });
  });

  it('reaches S3 through a gateway endpoint and the AWS APIs through private interface endpoints', () => {
    network.hasResourceProperties('AWS::EC2::VPCEndpoint', {
      VpcEndpointType: 'Gateway',
      ServiceName: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['.s3'])]) }),
    });
    const interfaceServices = Object.values(
      network.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } }),
    ).map((endpoint) => JSON.stringify(endpoint.Properties.ServiceName).match(/\.([a-z.-]+)"\]\]\}$/)?.[1]);
    expect(interfaceServices.sort()).toEqual(
      [
        'bedrock-runtime',
        'ecr.api',
        'ecr.dkr',
        'events',
        'kms',
        'logs',
        'polly',
        'secretsmanager',
        'ssm',
        'transcribestreaming',
      ].sort(),
    );
    for (const endpoint of Object.values(
      network.findResources('AWS::EC2::VPCEndpoint', { Properties: { VpcEndpointType: 'Interface' } }),
    )) {
      expect(endpoint.Properties.PrivateDnsEnabled).toBe(true);
    }
  });

  it('lets only the VPC reach the endpoints, on 443', () => {
    network.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('Interface endpoints'),
      SecurityGroupIngress: [{ CidrIp: '10.40.0.0/16', FromPort: 443, ToPort: 443, IpProtocol: 'tcp' }],
    });
    expect(openIngressRules(network)).toEqual([]);
  });

  it('closes the default security group', () => {
    network.resourceCountIs('Custom::VpcRestrictDefaultSG', 1);
  });

  it('matches the snapshot', () => {
    expect(network.toJSON()).toMatchSnapshot();
  });
});

describe('network stack, dev sizing', () => {
  it('takes a single NAT gateway and three AZs without an account', () => {
    const { templates } = synthVoiceIntake({ azCount: 3, network: { natGateways: 1 } });
    templates.network.resourceCountIs('AWS::EC2::NatGateway', 1);
    templates.network.resourceCountIs('AWS::EC2::Subnet', 9);
  });
});

describe('network stack address space', () => {
  /** Whether the CDK lays out the network stack's subnets for azCount AZs in this CIDR. */
  function cdkFits(vpcCidr: string, azCount: number): boolean {
    const zones = ['a', 'b', 'c', 'd', 'e', 'f'].map((zone) => `us-east-1${zone}`);
    const app = new App({ context: { 'availability-zones:account=123456789012:region=us-east-1': zones } });
    const stack = new Stack(app, 'Net', { env: { account: '123456789012', region: 'us-east-1' } });
    try {
      new ec2.Vpc(stack, 'Vpc', {
        ipAddresses: ec2.IpAddresses.cidr(vpcCidr),
        maxAzs: azCount,
        subnetConfiguration: [
          { name: 'public', subnetType: ec2.SubnetType.PUBLIC, cidrMask: SUBNET_MASKS.public },
          { name: 'private', subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS, cidrMask: SUBNET_MASKS.private },
          { name: 'isolated', subnetType: ec2.SubnetType.PRIVATE_ISOLATED, cidrMask: SUBNET_MASKS.isolated },
        ],
      });
      return true;
    } catch {
      return false;
    }
  }

  function configAccepts(vpcCidr: string, azCount: number): boolean {
    try {
      parseConfig(repoConfigInput({ azCount, network: { vpcCidr } }));
      return true;
    } catch (error) {
      expect(error).toBeInstanceOf(ConfigError);
      expect((error as Error).message).toMatch(/network\.vpcCidr: /);
      return false;
    }
  }

  it('accepts exactly the VPC ranges the CDK can lay every AZ out in, refusing the rest at network.vpcCidr', () => {
    for (const prefix of [16, 17, 18, 19, 20])
      for (const azCount of [2, 3, 4, 5, 6]) {
        const cidr = `10.40.0.0/${prefix}`;
        expect(configAccepts(cidr, azCount), `${cidr} × ${azCount}`).toBe(cdkFits(cidr, azCount));
      }
  });
});
