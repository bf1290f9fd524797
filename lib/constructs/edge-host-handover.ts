import { CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sfn from 'aws-cdk-lib/aws-stepfunctions';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import {
  acknowledgeDeployTimeHandler,
  acknowledgeProviderFrameworkFunction,
  acknowledgeRules,
  DEPLOY_TIME_ONLY,
  INLINE_POLICY_RULES,
  skipCheckovChecks,
  wildcardResourceFinding,
} from '../compliance';
import { lambdaWorkspaceFunction } from '../lambda-bundling';

/** How long a replacement host may take to boot and become ready (packages install at boot). */
export const EDGE_READY_SECONDS = 1_200;

export interface EdgeHostHandoverProps {
  readonly vpc: ec2.IVpc;
  /** The edge hosts' and their EIPs' tag: the functions may act on resources carrying it only. */
  readonly edgeTag: { key: string; value: string };
  readonly drainScript: string;
  readonly readyScript: string;
  readonly drainSeconds: number;
  readonly logKey: kms.IKey;
}

/**
 * Moves each edge host's EIP to its replacement only once the replacement is ready and the old host has drained
 * (lambda/src/edge-handover). One provider for all hosts; `handOver` adds the custom resource of one host. Chained
 * with `after`, the hosts of one AZ are handed over one at a time: the other keeps taking calls meanwhile.
 */
export class EdgeHostHandover extends Construct {
  private readonly provider: cr.Provider;
  private readonly props: EdgeHostHandoverProps;

  constructor(scope: Construct, id: string, props: EdgeHostHandoverProps) {
    super(scope, id);
    this.props = props;
    const stack = Stack.of(this);

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Edge host handover: AWS APIs (HTTPS) only',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'EC2 and SSM APIs (HTTPS)');

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const handler = (name: string, exportName: string, timeout: Duration) =>
      new nodejs.NodejsFunction(this, name, {
        ...lambdaWorkspaceFunction('edge-handover/handler.ts', exportName),
        description: 'Moves an edge EIP to its replacement host once that is ready and the old host has drained',
        timeout,
        memorySize: 256,
        vpc: props.vpc,
        vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
        securityGroups: [securityGroup],
        environment: { POWERTOOLS_LOG_LEVEL: 'INFO' },
        logGroup,
      });
    const onEvent = handler('OnEvent', 'onEvent', Duration.seconds(30));
    // One poll runs the ready check and waits up to a minute for it.
    const isComplete = handler('IsComplete', 'isComplete', Duration.minutes(3));

    const tagCondition = (prefix: string) => ({
      StringEquals: { [`${prefix}/${props.edgeTag.key}`]: props.edgeTag.value },
    });
    for (const fn of [onEvent, isComplete]) {
      fn.addToRolePolicy(
        new iam.PolicyStatement({
          actions: [
            'ec2:DescribeAddresses',
            'ec2:DescribeInstances',
            'ssm:DescribeInstanceInformation',
            'ssm:ListCommands',
            'ssm:GetCommandInvocation',
          ],
          resources: ['*'],
        }),
      );
    }
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ec2:AssociateAddress'],
        resources: [
          stack.formatArn({ service: 'ec2', resource: 'elastic-ip', resourceName: '*' }),
          stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' }),
        ],
        conditions: tagCondition('aws:ResourceTag'),
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [
          stack.formatArn({ service: 'ssm', account: '', resource: 'document', resourceName: 'AWS-RunShellScript' }),
        ],
      }),
    );
    isComplete.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
        conditions: tagCondition('ssm:resourceTag'),
      }),
    );

    this.provider = new cr.Provider(this, 'Provider', {
      onEventHandler: onEvent,
      isCompleteHandler: isComplete,
      queryInterval: Duration.seconds(30),
      // Boot and ready, then the drain: CloudFormation waits at most an hour for a custom resource.
      totalTimeout: Duration.seconds(Math.min(3_540, EDGE_READY_SECONDS + props.drainSeconds + 240)),
      logGroup,
    });
    this.acknowledgeFindings(onEvent, isComplete);
  }

  /** The custom resource that gives `instance` the EIP `allocationId`; `after` = the handover it waits for. */
  handOver(id: string, allocationId: string, instance: ec2.Instance, after?: CustomResource): CustomResource {
    const resource = new CustomResource(this, id, {
      serviceToken: this.provider.serviceToken,
      resourceType: 'Custom::EdgeHostHandover',
      serviceTimeout: Duration.hours(1),
      properties: {
        AllocationId: allocationId,
        InstanceId: instance.instanceId,
        DrainScript: this.props.drainScript,
        DrainSeconds: this.props.drainSeconds,
        ReadyScript: this.props.readyScript,
        ReadySeconds: EDGE_READY_SECONDS,
      },
    });
    if (after) resource.node.addDependency(after);
    return resource;
  }

  private acknowledgeFindings(onEvent: nodejs.NodejsFunction, isComplete: nodejs.NodejsFunction): void {
    const stack = Stack.of(this);
    const wildcards = [
      'AwsSolutions-IAM5[Resource::*]',
      ...['instance', 'elastic-ip'].map((resource) =>
        wildcardResourceFinding(this, stack.formatArn({ service: 'ec2', resource, resourceName: '*' })),
      ),
    ];
    for (const fn of [onEvent, isComplete]) {
      const policy = acknowledgeDeployTimeHandler(fn);
      acknowledgeRules(
        policy,
        wildcards,
        "Describe/List/GetCommandInvocation take no resource ARNs; AssociateAddress and SendCommand are limited by condition to the EIPs and instances tagged as this deployment's edge.",
      );
      acknowledgeRules(
        fn,
        ['HIPAA.Security-LambdaConcurrency', 'NIST.800.53.R5-LambdaConcurrency'],
        'Runs only during deployments, once per edge host at most.',
      );
      skipCheckovChecks(fn, [
        { id: 'CKV_AWS_115', comment: 'Deploy-time only, once per edge host at most.' },
        { id: 'CKV_AWS_116', comment: DEPLOY_TIME_ONLY },
        { id: 'CKV_AWS_173', comment: 'Environment holds only the log level.' },
      ]);
    }

    // The CDK provider framework: its functions (which call ours and each other), the state machine that polls
    // isComplete, and their roles.
    const functions = this.node.findAll().filter((child): child is lambda.Function => child instanceof lambda.Function);
    const invokeAnyVersion = functions.map(
      (fn) => `AwsSolutions-IAM5[Resource::<${stack.getLogicalId(fn.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
    );
    for (const child of this.provider.node.findAll()) {
      if (child instanceof iam.Policy) {
        acknowledgeRules(
          child,
          INLINE_POLICY_RULES,
          'Generated by the CDK provider framework: invoke our handlers and its own functions and state machine, nothing else.',
        );
        acknowledgeRules(
          child,
          invokeAnyVersion,
          'The framework invokes any version of the handler functions of this one provider.',
        );
      }
      if (child instanceof sfn.CfnStateMachine) {
        acknowledgeRules(
          child,
          ['AwsSolutions-SF1', 'AwsSolutions-SF2'],
          'CDK provider framework waiter: it only polls our isComplete handler during a deployment, whose logs and outcome CloudFormation and our handler log record.',
        );
      }
      if (child instanceof lambda.Function && child !== onEvent && child !== isComplete) {
        acknowledgeProviderFrameworkFunction(child, 'our handlers');
      }
    }
  }
}
