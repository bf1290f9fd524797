import { ACTIVE_CALLS_INTERVAL_SECONDS, AGENT_METRICS, metricsNamespace, S3_PREFIXES } from '@voice-intake/contracts';
import { Duration, RemovalPolicy, Stack, Tags } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { bedrockInvokeGrant } from '../bedrock';
import { acknowledgeRules, acknowledgeTaskRolePolicies } from '../compliance';
import type { VoiceIntakeConfig } from '../config';
import { workspaceImage } from '../image-context';
import {
  AUDIT_WRITER_TAG,
  type RecordBucketPurpose,
  recordBucketArn,
  recordBucketName,
  recordObjectsArn,
  recordObjectsNagResource,
} from '../naming';

export interface AgentServiceProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly securityGroup: ec2.ISecurityGroup;
  readonly config: VoiceIntakeConfig;
  readonly livekitUrl: string;
  readonly livekitApiSecret: secretsmanager.ISecret;
  readonly mcpUrl: string;
  readonly mcpTokenSecret: secretsmanager.ISecret;
  readonly redis: { host: string; port: number; authSecretArn: string };
  /** HMAC key that seals the agent's audit segments (GenerateMac only). */
  readonly auditSealKey: kms.IKey;
  readonly dataKey: kms.IKey;
  readonly appKey: kms.IKey;
}

/**
 * The LiveKit Agents worker on Fargate in private subnets: env and secrets wired, IAM limited to streaming
 * Transcribe, the configured Bedrock model, Polly synthesis and its own S3 prefixes; scales on CPU and on calls per task, and drains on
 * scale-in (the worker stops taking jobs on SIGTERM; calls get the stop timeout to finish).
 */
export class AgentService extends Construct {
  readonly service: ecs.FargateService;
  readonly taskRole: iam.Role;

  constructor(scope: Construct, id: string, props: AgentServiceProps) {
    super(scope, id);
    const { config } = props;
    const { agentService, agent, deploymentName } = config;
    const stack = Stack.of(this);
    // The workers publish here and scale on it: this deployment's own namespace.
    const namespace = metricsNamespace(deploymentName);

    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Agent worker: speech, model, synthesis, its record prefixes',
    });
    const allow = (actions: string[], resources: string[]) =>
      this.taskRole.addToPrincipalPolicy(new iam.PolicyStatement({ actions, resources }));
    allow(['transcribe:StartStreamTranscriptionWebSocket', 'transcribe:StartStreamTranscription'], ['*']);
    const models = [agent.bedrockModelId, ...(agent.bedrockFallbackModelId ? [agent.bedrockFallbackModelId] : [])];
    const invoke = ['bedrock:InvokeModel', 'bedrock:InvokeModelWithResponseStream'];
    const modelGrants = models.map((model) => bedrockInvokeGrant(stack, model, invoke));
    for (const statement of modelGrants.flatMap((grant) => grant.statements)) {
      this.taskRole.addToPrincipalPolicy(statement);
    }
    allow(['polly:SynthesizeSpeech', 'polly:StartSpeechSynthesisStream'], ['*']);
    const writablePrefixes: [RecordBucketPurpose, string][] = [
      ['transcripts', S3_PREFIXES.transcripts],
      ['transcripts', S3_PREFIXES.transcriptParts],
      // Call audio parts (re-put when a late PII span silences one): written only when recording is on.
      ...(agent.recording.mode === 'off'
        ? []
        : [['transcripts', S3_PREFIXES.recordings] as [RecordBucketPurpose, string]]),
      ['audit', `${S3_PREFIXES.audit}agent/`],
    ];
    allow(
      ['s3:PutObject'],
      writablePrefixes.map(([purpose, prefix]) => recordObjectsArn(deploymentName, purpose, prefix)),
    );
    // A worker taking over a call reads back the transcript parts written before it.
    allow(['s3:GetObject'], [recordObjectsArn(deploymentName, 'transcripts', S3_PREFIXES.transcriptParts)]);
    // Listing (keys only) the transcript parts lets S3 answer a part numbered but never stored with 404, not 403: the
    // transcript names it missing rather than unreadable. With recording on, the call's recording parts likewise (never
    // their audio): the session state counts only those stored before its last save, the transcript names every one.
    const listablePrefixes = [
      S3_PREFIXES.transcriptParts,
      ...(agent.recording.mode === 'off' ? [] : [S3_PREFIXES.recordings]),
    ].map((prefix) => `${prefix}*`);
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:ListBucket'],
        resources: [recordBucketArn(deploymentName, 'transcripts')],
        conditions: {
          StringLike: { 's3:prefix': listablePrefixes.length === 1 ? listablePrefixes[0] : listablePrefixes },
        },
      }),
    );
    allow(['kms:Decrypt', 'kms:GenerateDataKey'], [props.dataKey.keyArn]);
    allow(['kms:GenerateMac'], [props.auditSealKey.keyArn]);
    // The audit seal key's policy admits GenerateMac only from roles with this tag.
    Tags.of(this.taskRole).add(AUDIT_WRITER_TAG, deploymentName);

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: props.appKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    const task = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: agentService.cpu,
      memoryLimitMiB: agentService.memoryMiB,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole: this.taskRole,
    });
    // Imported by ARN: the grant stays an identity policy here instead of editing the data stack's key policy.
    const redisAuth = secretsmanager.Secret.fromSecretCompleteArn(this, 'RedisAuth', props.redis.authSecretArn);
    task.obtainExecutionRole().addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['kms:Decrypt'],
        resources: [props.dataKey.keyArn],
        conditions: { StringEquals: { 'kms:ViaService': `secretsmanager.${stack.region}.amazonaws.com` } },
      }),
    );
    task.addContainer('agent', {
      image: workspaceImage('agent'),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'agent', logGroup }),
      user: 'node',
      environment: {
        LIVEKIT_URL: props.livekitUrl.replace(/^http/, 'ws'),
        LIVEKIT_AGENT_NAME: config.livekit.agentName,
        METRICS_NAMESPACE: namespace,
        REDIS_HOST: props.redis.host,
        REDIS_PORT: String(props.redis.port),
        TRANSCRIPTS_BUCKET: recordBucketName(deploymentName, 'transcripts'),
        AUDIT_BUCKET: recordBucketName(deploymentName, 'audit'),
        AUDIT_SEAL_KMS_KEY_ID: props.auditSealKey.keyArn,
        MCP_URL: props.mcpUrl,
        BEDROCK_MODEL_ID: agent.bedrockModelId,
        ...(agent.bedrockFallbackModelId ? { BEDROCK_FALLBACK_MODEL_ID: agent.bedrockFallbackModelId } : {}),
        POLLY_VOICE: agent.pollyVoice,
        POLLY_ENGINE: agent.pollyEngine,
        TRANSCRIBE_LANGUAGE: agent.transcribeLanguage,
        SPECULATIVE_TURNS: String(agent.speculativeTurns),
        PII_REDACTION: String(agentService.piiRedaction),
        RECORDING_MODE: agent.recording.mode,
        RECORDING_SAMPLE_RATE: String(agent.recording.sampleRate),
        ...(agent.recording.notice ? { RECORDING_NOTICE: agent.recording.notice } : {}),
        ...(agent.recording.consentQuestion ? { RECORDING_CONSENT_QUESTION: agent.recording.consentQuestion } : {}),
        AGENT_MAX_CALLS: String(agentService.maxCallsPerTask),
      },
      secrets: {
        LIVEKIT_API_KEY: ecs.Secret.fromSecretsManager(props.livekitApiSecret, 'apiKey'),
        LIVEKIT_API_SECRET: ecs.Secret.fromSecretsManager(props.livekitApiSecret, 'apiSecret'),
        MCP_TOKEN: ecs.Secret.fromSecretsManager(props.mcpTokenSecret),
        REDIS_AUTH_TOKEN: ecs.Secret.fromSecretsManager(redisAuth),
      },
      healthCheck: {
        command: [
          'CMD',
          'node',
          '-e',
          "fetch('http://127.0.0.1:8081/').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))",
        ],
        interval: Duration.seconds(15),
        startPeriod: Duration.seconds(30),
        timeout: Duration.seconds(5),
        retries: 3,
      },
      stopTimeout: Duration.seconds(agentService.stopTimeoutSeconds),
    });

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition: task,
      desiredCount: agentService.minTasks,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [props.securityGroup],
      assignPublicIp: false,
      circuitBreaker: { rollback: true },
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
    });
    const scaling = this.service.autoScaleTaskCount({
      minCapacity: agentService.minTasks,
      maxCapacity: agentService.maxTasks,
    });
    scaling.scaleOnCpuUtilization('Cpu', {
      targetUtilizationPercent: agentService.targetCpuPercent,
      // Scale in slowly: a task going away must first finish its calls.
      scaleInCooldown: Duration.minutes(10),
      scaleOutCooldown: Duration.minutes(1),
    });
    // Calls, not only CPU: a task's limit is its call count (sized from a call's measured CPU and memory, a process
    // per call), which CPU scaling sees only late.
    scaling.scaleToTrackCustomMetric('ActiveCalls', {
      metric: new cloudwatch.Metric({
        namespace,
        metricName: AGENT_METRICS.activeCalls,
        dimensionsMap: { Service: 'agent' },
        statistic: 'Average',
        period: Duration.seconds(ACTIVE_CALLS_INTERVAL_SECONDS),
      }),
      targetValue: agentService.targetCallsPerTask,
      scaleInCooldown: Duration.minutes(10),
      scaleOutCooldown: Duration.minutes(1),
    });

    const { rolePolicy: taskPolicy } = acknowledgeTaskRolePolicies(task.obtainExecutionRole(), this.taskRole);
    acknowledgeRules(
      taskPolicy,
      [
        'AwsSolutions-IAM5[Resource::*]',
        ...writablePrefixes.map(
          ([purpose, prefix]) => `AwsSolutions-IAM5[${recordObjectsNagResource(deploymentName, purpose, prefix)}]`,
        ),
      ],
      "Transcribe streaming and Polly synthesis take no resource ARNs; record writes are object wildcards under the worker's own prefixes.",
    );
    for (const grant of modelGrants) acknowledgeRules(taskPolicy, grant.wildcardFindings, grant.reason);
    acknowledgeRules(
      task,
      ['AwsSolutions-ECS2'],
      'Environment holds non-secret settings (endpoints, buckets, model); tokens come from Secrets Manager.',
    );
  }
}
