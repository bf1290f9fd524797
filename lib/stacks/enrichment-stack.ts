import {
  ENRICHMENT_EVENT_SOURCE,
  INTAKE_ENRICHED_DETAIL_TYPE,
  metricsNamespace,
  S3_PREFIXES,
} from '@voice-intake/contracts';
import { CfnOutput, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as events from 'aws-cdk-lib/aws-events';
import * as targets from 'aws-cdk-lib/aws-events-targets';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as sqs from 'aws-cdk-lib/aws-sqs';
import type { Construct } from 'constructs';
import { bedrockInvokeGrant } from '../bedrock';
import { acknowledgeRules, skipCheckovChecks } from '../compliance';
import { grantKeyToLogGroups } from '../constructs/log-key-grant';
import { lambdaWorkspaceFunction } from '../lambda-bundling';
import { recordBucketName, recordObjectsArn, recordObjectsNagResource } from '../naming';
import { VoiceIntakeStack, type VoiceIntakeStackProps } from './voice-intake-stack';

export interface EnrichmentStackProps extends VoiceIntakeStackProps {
  readonly vpc: ec2.IVpc;
  /** The key the transcripts bucket is encrypted with. */
  readonly dataKey: kms.IKey;
}

/**
 * Post-call enrichment: transcript created in S3 → EventBridge rule → Lambda (Bedrock insights) → enriched record in
 * S3 + IntakeEnriched event on our bus. Failed invocations retry, then land in an encrypted DLQ that alarms.
 */
export class EnrichmentStack extends VoiceIntakeStack {
  readonly bus: events.EventBus;
  readonly function: nodejs.NodejsFunction;
  readonly deadLetterQueue: sqs.Queue;
  readonly deadLetterAlarm: cloudwatch.Alarm;
  readonly idempotencyTable: dynamodb.Table;

  constructor(scope: Construct, id: string, props: EnrichmentStackProps) {
    super(scope, id, props);
    const { enrichment, agent, deploymentName } = props.config;
    const modelId = enrichment.modelId ?? agent.bedrockModelId;

    // Operational key for the DLQ, the bus, the idempotency table and logs: its policy lives here, with its users.
    const key = new kms.Key(this, 'EnrichmentKey', {
      description: 'Encrypts enrichment DLQ, event bus, idempotency table and logs',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    grantKeyToLogGroups(key);
    key.grantEncryptDecrypt(new iam.ServicePrincipal('events.amazonaws.com'));

    this.deadLetterQueue = new sqs.Queue(this, 'DeadLetterQueue', {
      encryption: sqs.QueueEncryption.KMS,
      encryptionMasterKey: key,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
    });
    acknowledgeRules(
      this.deadLetterQueue,
      ['AwsSolutions-SQS3'],
      'This queue is the dead-letter queue; it needs none of its own.',
    );

    const busName = `${deploymentName}-intake`;
    this.bus = new events.EventBus(this, 'IntakeBus', { eventBusName: busName, kmsKey: key });
    // The archive keeps the bus's events under the same key (bus.archive() would drop kmsKey). Its key-policy
    // statement names the bus ARN; built from the name, that ARN does not make the key depend on the bus, which
    // already depends on the key.
    const archive = new events.Archive(this.bus, 'IntakeArchive', {
      sourceEventBus: events.EventBus.fromEventBusName(this, 'IntakeBusArn', busName),
      description: 'IntakeEnriched events, for replay to new or recovering consumers',
      eventPattern: { source: [ENRICHMENT_EVENT_SOURCE] },
      retention: Duration.days(enrichment.archiveRetentionDays),
      kmsKey: key,
    });
    archive.node.addDependency(this.bus);

    // Operational, not a record: it only remembers which object versions were enriched, so it lives here.
    this.idempotencyTable = new dynamodb.Table(this, 'IdempotencyTable', {
      partitionKey: { name: 'id', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      timeToLiveAttribute: 'expiration',
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: key,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      removalPolicy: RemovalPolicy.DESTROY,
    });

    const securityGroup = new ec2.SecurityGroup(this, 'FunctionSecurityGroup', {
      vpc: props.vpc,
      description: 'Enrichment function: HTTPS out to AWS APIs (endpoints), nothing in',
      allowAllOutbound: false,
    });
    securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'AWS APIs over HTTPS (VPC endpoints, NAT for X-Ray)',
    );

    const logGroup = new logs.LogGroup(this, 'FunctionLogs', {
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: key,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // The one bucket the trigger rule listens to; the function ignores events for any other.
    const transcriptsBucketName = recordBucketName(deploymentName, 'transcripts');
    this.function = new nodejs.NodejsFunction(this, 'EnrichFunction', {
      ...lambdaWorkspaceFunction('enrichment/handler.ts', 'handler'),
      memorySize: 512,
      timeout: Duration.minutes(3),
      bundling: {
        ...lambdaWorkspaceFunction('enrichment/handler.ts', 'handler').bundling,
        sourceMap: true,
        format: nodejs.OutputFormat.CJS,
      },
      vpc: props.vpc,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [securityGroup],
      logGroup,
      tracing: lambda.Tracing.ACTIVE,
      reservedConcurrentExecutions: enrichment.reservedConcurrency,
      deadLetterQueue: this.deadLetterQueue,
      retryAttempts: 2,
      maxEventAge: Duration.hours(6),
      environment: {
        MODEL_ID: modelId,
        EVENT_BUS_NAME: this.bus.eventBusName,
        IDEMPOTENCY_TABLE_NAME: this.idempotencyTable.tableName,
        TRANSCRIPTS_BUCKET_NAME: transcriptsBucketName,
        MAX_TRANSCRIPT_BYTES: String(enrichment.maxTranscriptBytes),
        NODE_OPTIONS: '--enable-source-maps',
        POWERTOOLS_SERVICE_NAME: 'voice-intake-enrichment',
        POWERTOOLS_METRICS_NAMESPACE: metricsNamespace(deploymentName),
      },
      environmentEncryption: key,
    });

    // Least privilege: read transcripts, write enriched records and error records, delete error records only.
    const objects = (prefix: string) => recordObjectsArn(deploymentName, 'transcripts', prefix);
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:GetObject'], resources: [objects(S3_PREFIXES.transcripts)] }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [objects(S3_PREFIXES.enriched), objects(S3_PREFIXES.enrichmentErrors)],
      }),
    );
    // A transcript enriched after an earlier version failed: its stale error record goes.
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['s3:DeleteObject'], resources: [objects(S3_PREFIXES.enrichmentErrors)] }),
    );
    this.function.addToRolePolicy(
      new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [props.dataKey.keyArn] }),
    );
    for (const statement of bedrockInvokeGrant(this, modelId, ['bedrock:InvokeModel']).statements) {
      this.function.addToRolePolicy(statement);
    }
    this.bus.grantPutEventsTo(this.function);
    this.idempotencyTable.grantReadWriteData(this.function);

    const trigger = new events.Rule(this, 'TranscriptCreatedRule', {
      description: 'A final transcript landed: enrich it',
      eventPattern: {
        source: ['aws.s3'],
        detailType: ['Object Created'],
        detail: {
          bucket: { name: [transcriptsBucketName] },
          object: { key: [{ prefix: S3_PREFIXES.transcripts }] },
        },
      },
    });
    trigger.addTarget(
      new targets.LambdaFunction(this.function, {
        deadLetterQueue: this.deadLetterQueue,
        retryAttempts: 8,
        maxEventAge: Duration.hours(6),
      }),
    );

    this.deadLetterAlarm = new cloudwatch.Alarm(this, 'DeadLetterAlarm', {
      alarmDescription: 'Transcripts that could not be enriched after every retry are waiting in the DLQ',
      metric: this.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
        period: Duration.minutes(1),
        statistic: 'Maximum',
      }),
      threshold: 0,
      comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
    });

    this.acknowledgeFindings(deploymentName, modelId);

    new CfnOutput(this, 'IntakeBusName', { value: this.bus.eventBusName });
    new CfnOutput(this, 'IntakeEnrichedDetailType', { value: INTAKE_ENRICHED_DETAIL_TYPE });
    new CfnOutput(this, 'DeadLetterQueueUrl', { value: this.deadLetterQueue.queueUrl });
  }

  private acknowledgeFindings(deploymentName: string, modelId: string): void {
    const role = this.function.role!;
    const policy = role.node.tryFindChild('DefaultPolicy')!;
    const prefixes = [S3_PREFIXES.transcripts, S3_PREFIXES.enriched, S3_PREFIXES.enrichmentErrors];
    acknowledgeRules(
      policy,
      prefixes.map((prefix) => `AwsSolutions-IAM5[${recordObjectsNagResource(deploymentName, 'transcripts', prefix)}]`),
      'Object-level wildcard under one prefix each: read transcripts/, write enriched/ and enrichment-errors/, delete enrichment-errors/ only.',
    );
    acknowledgeRules(
      policy,
      ['AwsSolutions-IAM5[Action::kms:GenerateDataKey*]', 'AwsSolutions-IAM5[Action::kms:ReEncrypt*]'],
      "CDK's grants on the enrichment key (DLQ, table), which this stack owns; the actions are scoped to that one key.",
    );
    acknowledgeRules(
      policy,
      ['AwsSolutions-IAM5[Resource::*]'],
      'X-Ray PutTraceSegments/PutTelemetryRecords support no resource-level scoping.',
    );
    const modelGrant = bedrockInvokeGrant(this, modelId, ['bedrock:InvokeModel']);
    acknowledgeRules(policy, modelGrant.wildcardFindings, modelGrant.reason);
    acknowledgeRules(
      policy,
      ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
      'Least-privilege statements generated for this one function role; a managed policy would be shared by nothing else.',
    );
    acknowledgeRules(
      this.function,
      ['AwsSolutions-L1'],
      'NODEJS_22_X is the newest runtime this codebase targets (Node 22 across images and functions).',
    );
    acknowledgeRules(
      this.idempotencyTable,
      ['HIPAA.Security-DynamoDBInBackupPlan', 'NIST.800.53.R5-DynamoDBInBackupPlan'],
      'Idempotency keys expire within days and can be rebuilt by nothing; PITR is on; a backup plan would only keep stale keys.',
    );
    acknowledgeRules(
      this.deadLetterAlarm,
      ['HIPAA.Security-CloudWatchAlarmAction', 'NIST.800.53.R5-CloudWatchAlarmAction'],
      'The observability tier routes this alarm to the operator SNS topic; this stack exposes it as deadLetterAlarm.',
    );
    acknowledgeRules(
      role,
      [
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]',
        'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      ],
      'AWS-maintained execution policies for logs and VPC network interfaces; their scope is what Lambda itself needs.',
    );
    skipCheckovChecks(this.function, [
      {
        id: 'CKV_AWS_173',
        comment: 'Environment variables are encrypted with the enrichment KMS key (environmentEncryption).',
      },
    ]);
  }
}
