import { CustomResource, Duration, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import type * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import * as cr from 'aws-cdk-lib/custom-resources';
import { Construct } from 'constructs';
import { acknowledgeRules, skipCheckovChecks } from '../compliance';
import type { VoiceIntakeConfig } from '../config';
import { lambdaWorkspaceFunction } from '../lambda-bundling';
import { allowClientIngress } from './client-ingress';

export interface LiveKitSipProvisioningProps {
  readonly vpc: ec2.IVpc;
  readonly config: VoiceIntakeConfig;
  /** LiveKit API for clients inside the VPC (internal load balancer). */
  readonly livekitUrl: string;
  readonly livekitApiSecret: secretsmanager.ISecret;
  /** The key the API secret is encrypted with. */
  readonly secretKey: kms.IKey;
  /** The LiveKit API load balancer's security group: this construct admits itself there (rule in its own stack). */
  readonly livekitApiSecurityGroup: ec2.ISecurityGroup;
  /** Only these addresses (the edge hosts' private IPs) may send calls into LiveKit. */
  readonly allowedAddresses: string[];
}

/**
 * Keeps LiveKit's inbound SIP trunk (edge addresses, configured numbers) and its one-room-per-call dispatch rule (our
 * agent by name) in step with the stack, through a custom resource whose Lambda runs in the VPC and talks to LiveKit's
 * API idempotently (create, update on change, delete).
 */
export class LiveKitSipProvisioning extends Construct {
  readonly resource: CustomResource;

  constructor(scope: Construct, id: string, props: LiveKitSipProvisioningProps) {
    super(scope, id);
    const { config } = props;
    const securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'LiveKit SIP provisioner: to the LiveKit API and AWS APIs only',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(props.livekitApiSecurityGroup, ec2.Port.tcp(config.livekit.apiPort), 'LiveKit API');
    securityGroup.addEgressRule(ec2.Peer.anyIpv4(), ec2.Port.tcp(443), 'Secrets Manager (HTTPS)');
    allowClientIngress(
      props.livekitApiSecurityGroup,
      securityGroup,
      config.livekit.apiPort,
      'SIP provisioner to the LiveKit API',
    );

    const onEvent = new nodejs.NodejsFunction(this, 'OnEvent', {
      ...lambdaWorkspaceFunction('provisioner/handler.ts', 'onEvent'),
      timeout: Duration.minutes(5),
      memorySize: 256,
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [securityGroup],
      reservedConcurrentExecutions: 1,
      logGroup: new logs.LogGroup(this, 'Logs', {
        retention: logs.RetentionDays.ONE_YEAR,
        encryptionKey: props.secretKey,
        removalPolicy: RemovalPolicy.RETAIN,
      }),
    });
    // Imported by ARN: the grants stay in this stack's role policy instead of editing the app tier's key policy.
    secretsmanager.Secret.fromSecretCompleteArn(this, 'ApiSecret', props.livekitApiSecret.secretArn).grantRead(onEvent);
    onEvent.addToRolePolicy(new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [props.secretKey.keyArn] }));

    const provider = new cr.Provider(this, 'Provider', { onEventHandler: onEvent });
    this.resource = new CustomResource(this, 'Resource', {
      serviceToken: provider.serviceToken,
      resourceType: 'Custom::LiveKitSip',
      properties: {
        LiveKitUrl: props.livekitUrl,
        ApiKeySecretArn: props.livekitApiSecret.secretArn,
        TrunkName: `${config.deploymentName}-edge`,
        DispatchRuleName: `${config.deploymentName}-per-call`,
        Numbers: config.livekit.sipNumbers,
        AllowedAddresses: props.allowedAddresses,
        AgentName: config.livekit.agentName,
        RoomPrefix: config.livekit.roomPrefix,
      },
    });

    this.acknowledgeFindings(onEvent, provider);
  }

  private acknowledgeFindings(onEvent: nodejs.NodejsFunction, provider: cr.Provider): void {
    const basicExecution =
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';
    const vpcAccess =
      'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]';
    const inline = ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'];
    const noDlq = ['HIPAA.Security-LambdaDLQ', 'NIST.800.53.R5-LambdaDLQ'];
    const crReason =
      'Runs only while CloudFormation deploys this stack; CloudFormation reports its failures, so a DLQ would hold nothing useful.';

    acknowledgeRules(
      onEvent.role!,
      [basicExecution, vpcAccess],
      'AWS-maintained execution policies for logs and VPC network interfaces; their scope is what Lambda itself needs.',
    );
    acknowledgeRules(
      onEvent.role!.node.findChild('DefaultPolicy'),
      inline,
      'Least-privilege statements generated for this one function role.',
    );
    acknowledgeRules(onEvent, noDlq, crReason);
    acknowledgeRules(
      onEvent,
      ['AwsSolutions-L1'],
      'NODEJS_22_X is the newest runtime this codebase targets (Node 22 across images and functions).',
    );

    // The CDK provider framework's own function, which calls ours.
    const framework = provider.node.findChild('framework-onEvent') as lambda.Function;
    acknowledgeRules(
      framework.role!,
      [basicExecution],
      "AWS-maintained policy for the provider framework function's logs.",
    );
    const frameworkPolicy = framework.role!.node.findChild('DefaultPolicy');
    acknowledgeRules(
      frameworkPolicy,
      inline,
      'Generated by the CDK provider framework: invoke our handler, nothing else.',
    );
    acknowledgeRules(
      frameworkPolicy,
      [
        `AwsSolutions-IAM5[Resource::<${Stack.of(this).getLogicalId(onEvent.node.defaultChild as lambda.CfnFunction)}.Arn>:*]`,
      ],
      'The framework invokes any version of our one handler function.',
    );
    acknowledgeRules(
      framework,
      [
        'AwsSolutions-L1',
        ...noDlq,
        'HIPAA.Security-LambdaConcurrency',
        'NIST.800.53.R5-LambdaConcurrency',
        'HIPAA.Security-LambdaInsideVPC',
        'NIST.800.53.R5-LambdaInsideVPC',
      ],
      `CDK provider framework function (runtime chosen by CDK): ${crReason} It only invokes our handler, which runs in the VPC.`,
    );
    skipCheckovChecks(framework, [
      { id: 'CKV_AWS_115', comment: 'CDK provider framework function, deploy-time only.' },
      { id: 'CKV_AWS_116', comment: crReason },
      { id: 'CKV_AWS_117', comment: 'CDK provider framework function; it only invokes our in-VPC handler.' },
      { id: 'CKV_AWS_173', comment: 'Its environment holds only our handler function name.' },
    ]);
    skipCheckovChecks(onEvent, [
      { id: 'CKV_AWS_116', comment: crReason },
      { id: 'CKV_AWS_173', comment: 'No environment secrets: the API key is read from Secrets Manager at run time.' },
    ]);
  }
}
