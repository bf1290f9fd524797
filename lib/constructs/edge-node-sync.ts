import { Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as ssm from 'aws-cdk-lib/aws-ssm';
import { Construct } from 'constructs';
import { acknowledgeRules, skipCheckovChecks, wildcardResourceFinding } from '../compliance';
import { lambdaWorkspaceFunction } from '../lambda-bundling';

export interface EdgeNodeSyncProps {
  readonly vpc: ec2.IVpc;
  /** The LiveKit hosts' Auto Scaling group (app tier): its in-service members are the edge's LiveKit SIP nodes. */
  readonly livekitAutoScalingGroupName: string;
  readonly sipPort: number;
  /** The edge hosts' tag: the command goes to the running instances carrying it. */
  readonly edgeTag: { key: string; value: string };
  /** The node script on the edge hosts. */
  readonly nodeScript: string;
  readonly logKey: kms.IKey;
  readonly deploymentName: string;
  /** The LiveKit ECS service: a host whose LiveKit task is being stopped (an upgrade) leaves the edge's list. */
  readonly livekitEcsService?: LiveKitEcsService;
}

export interface LiveKitEcsService {
  readonly clusterArn: string;
  readonly clusterName: string;
  readonly serviceName: string;
}

/**
 * Keeps the edge hosts' LiveKit node list equal to the LiveKit hosts in service. A function runs every minute and on
 * the LiveKit group's launch/terminate events, and sends the edge hosts their node script through SSM Run Command
 * when the LiveKit addresses or the edge hosts changed (see lambda/src/edge-sync). Kamailio reloads the list in place.
 */
export class EdgeNodeSync extends Construct {
  readonly function: nodejs.NodejsFunction;
  /** Pages when the sync keeps failing: the edge would keep sending calls to a stale node list. */
  readonly failureAlarm: cloudwatch.Alarm;

  constructor(scope: Construct, id: string, props: EdgeNodeSyncProps) {
    super(scope, id);
    const stack = Stack.of(this);
    const stateParameter = `/${props.deploymentName}/edge/livekit-sip-nodes`;

    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Edge node sync: AWS APIs (HTTPS) only',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'Auto Scaling, EC2 and SSM APIs (HTTPS)');

    this.function = new nodejs.NodejsFunction(this, 'Function', {
      ...lambdaWorkspaceFunction('edge-sync/handler.ts', 'handler'),
      description: 'Sends the edge hosts the LiveKit SIP nodes in service',
      timeout: Duration.seconds(50),
      memorySize: 256,
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [securityGroup],
      // One run at a time: two overlapping runs could send the edge two different lists.
      reservedConcurrentExecutions: 1,
      retryAttempts: 0,
      environment: {
        LIVEKIT_ASG_NAME: props.livekitAutoScalingGroupName,
        EDGE_TAG_KEY: props.edgeTag.key,
        EDGE_TAG_VALUE: props.edgeTag.value,
        STATE_PARAMETER: stateParameter,
        NODE_SCRIPT: props.nodeScript,
        SIP_PORT: String(props.sipPort),
        REAPPLY_AFTER_MINUTES: '10',
        POWERTOOLS_LOG_LEVEL: 'INFO',
        ...(props.livekitEcsService
          ? {
              LIVEKIT_ECS_CLUSTER: props.livekitEcsService.clusterName,
              LIVEKIT_ECS_SERVICE: props.livekitEcsService.serviceName,
            }
          : {}),
      },
      logGroup: new logs.LogGroup(this, 'Logs', {
        retention: logs.RetentionDays.ONE_YEAR,
        encryptionKey: props.logKey,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
    });

    // Describe calls take no resource ARNs; SendCommand only with the shell document, only on the edge hosts.
    // DescribeInstanceInformation: the command goes only to edge hosts SSM can reach (one booting would refuse it).
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['autoscaling:DescribeAutoScalingGroups', 'ec2:DescribeInstances', 'ssm:DescribeInstanceInformation'],
        resources: ['*'],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [
          stack.formatArn({ service: 'ssm', account: '', resource: 'document', resourceName: 'AWS-RunShellScript' }),
        ],
      }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['ssm:SendCommand'],
        resources: [stack.formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' })],
        conditions: { StringEquals: { [`ssm:resourceTag/${props.edgeTag.key}`]: props.edgeTag.value } },
      }),
    );
    const state = new ssm.StringParameter(this, 'State', {
      parameterName: stateParameter,
      description: 'LiveKit SIP nodes last sent to the edge hosts (written by the edge node sync)',
      stringValue: '{}',
    });
    state.grantRead(this.function);
    state.grantWrite(this.function);

    if (props.livekitEcsService) {
      // List/Describe on this cluster only (the ecs:cluster condition).
      this.function.addToRolePolicy(
        new iam.PolicyStatement({
          actions: ['ecs:ListTasks', 'ecs:DescribeTasks', 'ecs:DescribeContainerInstances'],
          resources: ['*'],
          conditions: { ArnEquals: { 'ecs:cluster': props.livekitEcsService.clusterArn } },
        }),
      );
    }

    const target = new targets.LambdaFunction(this.function, { retryAttempts: 0 });
    if (props.livekitEcsService) {
      // A LiveKit task starting or being stopped (an upgrade, a drain): update the edge at once, not within a minute.
      new events.Rule(this, 'LiveKitTasksChanged', {
        description: 'Edge node sync: a LiveKit task changed state',
        eventPattern: {
          source: ['aws.ecs'],
          detailType: ['ECS Task State Change'],
          detail: {
            clusterArn: [props.livekitEcsService.clusterArn],
            group: [`service:${props.livekitEcsService.serviceName}`],
          },
        },
        targets: [target],
      });
    }
    new events.Rule(this, 'EveryMinute', {
      description: 'Edge node sync: reconcile every minute',
      schedule: events.Schedule.rate(Duration.minutes(1)),
      targets: [target],
    });
    new events.Rule(this, 'LiveKitHostsChanged', {
      description: 'Edge node sync: a LiveKit host was launched or terminated',
      eventPattern: {
        source: ['aws.autoscaling'],
        detailType: ['EC2 Instance Launch Successful', 'EC2 Instance Terminate Successful'],
        detail: { AutoScalingGroupName: [props.livekitAutoScalingGroupName] },
      },
      targets: [target],
    });

    this.failureAlarm = new cloudwatch.Alarm(this, 'Failing', {
      alarmDescription: 'The edge node sync has failed for 5 minutes: the edge keeps an outdated LiveKit SIP node list',
      metric: this.function.metricErrors({ period: Duration.minutes(1), statistic: 'Sum' }),
      threshold: 1,
      evaluationPeriods: 5,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    acknowledgeRules(
      this.failureAlarm,
      ['HIPAA.Security-CloudWatchAlarmAction', 'NIST.800.53.R5-CloudWatchAlarmAction'],
      'The observability tier routes this alarm to the operator SNS topic (composite alarm there).',
    );
    this.acknowledgeFindings();
  }

  private acknowledgeFindings(): void {
    const fn = this.function;
    acknowledgeRules(
      fn.role!,
      [
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      ],
      'AWS-maintained execution policies for logs and VPC network interfaces; their scope is what Lambda itself needs.',
    );
    const policy = fn.role!.node.findChild('DefaultPolicy');
    acknowledgeRules(
      policy,
      ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
      'Least-privilege statements generated for this one function role.',
    );
    acknowledgeRules(
      policy,
      [
        'AwsSolutions-IAM5[Resource::*]',
        wildcardResourceFinding(
          this,
          Stack.of(this).formatArn({ service: 'ec2', resource: 'instance', resourceName: '*' }),
        ),
      ],
      "DescribeAutoScalingGroups, DescribeInstances and DescribeInstanceInformation take no resource ARNs; the ECS reads are limited to the LiveKit cluster (ecs:cluster); SendCommand on instances is limited by condition to those tagged as this deployment's edge hosts.",
    );
    acknowledgeRules(
      fn,
      ['HIPAA.Security-LambdaDLQ', 'NIST.800.53.R5-LambdaDLQ'],
      'A scheduled reconcile: a failed run is redone by the next one a minute later, and repeated failures raise an alarm; a dead-letter queue would hold only stale triggers.',
    );
    acknowledgeRules(
      fn,
      ['AwsSolutions-L1'],
      'NODEJS_22_X is the newest runtime this codebase targets (Node 22 across images and functions).',
    );
    skipCheckovChecks(fn, [
      { id: 'CKV_AWS_116', comment: 'Scheduled reconcile: the next run redoes a failed one; failures alarm.' },
      { id: 'CKV_AWS_173', comment: 'Environment holds names and paths only, no secrets.' },
    ]);
  }
}
