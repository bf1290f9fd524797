import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { acknowledgeRules } from '../compliance';
import { LOAD_BALANCER_LOG_PREFIX } from '../stacks/data-stack';

export interface InternalLoadBalancerProps {
  readonly vpc: ec2.IVpc;
  /** Says who may reach it; becomes the security group's description. */
  readonly description: string;
  /** The access-log bucket; logs land under `load-balancers/<logPrefix>`. */
  readonly accessLogsBucket: s3.IBucket;
  readonly logPrefix: string;
}

/**
 * An internal Network Load Balancer in private subnets behind its own security group, which admits nobody until
 * clients are allowed in; access logs go to the access-log bucket (delivered by the log delivery service, which the
 * data stack lets write under the load-balancer prefix).
 */
export class InternalLoadBalancer extends Construct {
  readonly securityGroup: ec2.SecurityGroup;
  readonly loadBalancer: elbv2.NetworkLoadBalancer;

  constructor(scope: Construct, id: string, props: InternalLoadBalancerProps) {
    super(scope, id);
    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: props.description,
      allowAllOutbound: false,
    });
    this.loadBalancer = new elbv2.NetworkLoadBalancer(this, 'LoadBalancer', {
      vpc: props.vpc,
      internetFacing: false,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.securityGroup],
      crossZoneEnabled: true,
    });
    this.loadBalancer.setAttribute('access_logs.s3.enabled', 'true');
    this.loadBalancer.setAttribute('access_logs.s3.bucket', props.accessLogsBucket.bucketName);
    this.loadBalancer.setAttribute('access_logs.s3.prefix', `${LOAD_BALANCER_LOG_PREFIX}/${props.logPrefix}`);
    acknowledgeRules(
      this.loadBalancer,
      ['NIST.800.53.R5-ELBDeletionProtectionEnabled', 'HIPAA.Security-ELBDeletionProtectionEnabled'],
      'Internal load balancer holding no state; CloudFormation replaces it with its service.',
    );
  }

  /** Lets the load balancer reach its targets on one port, and nothing else reach them through it. */
  forwardTo(targets: ec2.SecurityGroup, port: number, description: string): void {
    this.securityGroup.addEgressRule(targets, ec2.Port.tcp(port), `to ${description}`);
    targets.addIngressRule(this.securityGroup, ec2.Port.tcp(port), `${description} from its load balancer`);
  }

  /** A plain TCP listener; internal traffic only (see the TLS note on each caller's acknowledgment). */
  addTcpListener(id: string, port: number): elbv2.NetworkListener {
    const listener = this.loadBalancer.addListener(id, { port, protocol: elbv2.Protocol.TCP });
    acknowledgeRules(
      listener,
      ['HIPAA.Security-ELBv2ACMCertificateRequired', 'NIST.800.53.R5-ELBv2ACMCertificateRequired'],
      'Internal TCP listener reachable only from allowed security groups inside the VPC; requests carry a bearer or LiveKit token. TLS needs a private CA certificate, not yet provisioned.',
    );
    return listener;
  }
}
