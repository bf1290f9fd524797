import { CASE_TABLE_INDEXES, MCP_SERVER_LOG_EVENTS, MCP_SERVER_METRICS, S3_PREFIXES } from '@voice-intake/contracts';
import { Duration, RemovalPolicy, Stack, Tags } from 'aws-cdk-lib';
import type * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as elbv2 from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import { Construct } from 'constructs';
import { acknowledgeRules, acknowledgeTaskRolePolicies } from '../compliance';
import type { VoiceIntakeConfig } from '../config';
import { workspaceImage } from '../image-context';
import { AUDIT_WRITER_TAG, recordObjectsArn, recordObjectsNagResource } from '../naming';
import { allowClientIngress } from './client-ingress';
import { InternalLoadBalancer } from './internal-load-balancer';
import type { KnowledgeCollection } from './knowledge-collection';
import { LogLineMetrics } from './log-metrics';

export interface McpServerServiceProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly mcp: VoiceIntakeConfig['mcp'];
  readonly deploymentName: string;
  readonly casesTable: dynamodb.ITable;
  readonly auditBucket: s3.IBucket;
  /** HMAC key that seals the server's audit segments (GenerateMac only). */
  readonly auditSealKey: kms.IKey;
  /** Mask PII in audit payloads, as the agent does (`agentService.piiRedaction`). */
  readonly piiRedaction: boolean;
  /** The data stack's key: the table and the audit bucket are encrypted with it. */
  readonly dataKey: kms.IKey;
  /** The app tier's own key, for the token secret and the log group (its policy lives with its users). */
  readonly appKey: kms.IKey;
  readonly knowledge?: KnowledgeCollection;
  /** Where the load balancer writes its access logs (an SSE-S3 bucket). */
  readonly accessLogsBucket: s3.IBucket;
  /** The deployment's metric namespace: the forwarding metrics counted from the server's log lines go there. */
  readonly metricsNamespace: string;
}

/**
 * The MCP server as a Fargate service in private subnets, behind an internal Network Load Balancer whose security
 * group admits only the clients given to `allowFrom` (the agent). The bearer token is generated into Secrets Manager;
 * the task role can touch only its table, its audit prefix and (read-only) the knowledge collection.
 */
export class McpServerService extends Construct {
  readonly service: ecs.FargateService;
  readonly loadBalancer: elbv2.NetworkLoadBalancer;
  readonly loadBalancerSecurityGroup: ec2.SecurityGroup;
  readonly serviceSecurityGroup: ec2.SecurityGroup;
  readonly tokenSecret: secretsmanager.Secret;
  readonly taskRole: iam.Role;
  /** The MCP endpoint for clients inside the VPC. */
  readonly url: string;
  /** Cases the backend refused for good, and cases waiting for it past the overdue age (from the server's logs). */
  readonly forwardingMetrics: Record<keyof typeof MCP_SERVER_METRICS, cloudwatch.Metric>;
  private readonly port: number;

  constructor(scope: Construct, id: string, props: McpServerServiceProps) {
    super(scope, id);
    const { mcp } = props;
    const defaultTransferQueue = mcp.defaultTransferQueue ?? Object.keys(mcp.transferTargets)[0];
    this.port = mcp.port;

    this.tokenSecret = new secretsmanager.Secret(this, 'Token', {
      description: 'Bearer token of the MCP server (also signs the per-call session header)',
      encryptionKey: props.appKey,
      generateSecretString: { passwordLength: 48, excludePunctuation: true },
    });
    acknowledgeRules(
      this.tokenSecret,
      [
        'AwsSolutions-SMG4',
        'HIPAA.Security-SecretsManagerRotationEnabled',
        'NIST.800.53.R5-SecretsManagerRotationEnabled',
      ],
      'Rotating the token means redeploying the agent and MCP tasks together (both read it at start); done as a coordinated deploy, not a rotation Lambda.',
    );

    this.taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'MCP server task: its case table, its audit prefix, knowledge read',
    });
    // Items: read, write, and the outbox's conditional updates (claim, delivered, refused). Query: only the two indexes
    // it reads, by name (not index/*): a caller's cases (byPhone), the cases awaiting forward (every task redrives).
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:GetItem', 'dynamodb:PutItem', 'dynamodb:UpdateItem'],
        resources: [props.casesTable.tableArn],
      }),
    );
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['dynamodb:Query'],
        resources: [CASE_TABLE_INDEXES.byPhone, CASE_TABLE_INDEXES.awaitingForward].map(
          (index) => `${props.casesTable.tableArn}/index/${index.name}`,
        ),
      }),
    );
    const auditPrefix = `${S3_PREFIXES.audit}mcp-server/`;
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:PutObject'],
        resources: [recordObjectsArn(props.deploymentName, 'audit', auditPrefix)],
      }),
    );
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kms:Decrypt', 'kms:GenerateDataKey'], resources: [props.dataKey.keyArn] }),
    );
    // Seals only: no VerifyMac, no key management for the writer; the tag is what the key's policy admits.
    this.taskRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kms:GenerateMac'], resources: [props.auditSealKey.keyArn] }),
    );
    Tags.of(this.taskRole).add(AUDIT_WRITER_TAG, props.deploymentName);
    props.knowledge?.grantRead(this, this.taskRole);

    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: props.appKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    // The server logs JSON (pino): a case the backend will never take, or has not taken for too long, is a line each.
    this.forwardingMetrics = new LogLineMetrics(this, 'ForwardingEvents', logGroup, props.metricsNamespace, {
      caseForwardRefused: {
        metricName: MCP_SERVER_METRICS.caseForwardRefused,
        pattern: logs.FilterPattern.stringValue('$.event', '=', MCP_SERVER_LOG_EVENTS.caseForwardRefused),
      },
      caseForwardOverdue: {
        metricName: MCP_SERVER_METRICS.caseForwardOverdue,
        pattern: logs.FilterPattern.stringValue('$.event', '=', MCP_SERVER_LOG_EVENTS.caseForwardOverdue),
      },
    }).metrics as Record<keyof typeof MCP_SERVER_METRICS, cloudwatch.Metric>;

    const taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: mcp.cpu,
      memoryLimitMiB: mcp.memoryMiB,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole: this.taskRole,
    });
    // No volume: in AWS the server writes nothing to disk (cases, those awaiting the backend too, live in the table).
    taskDefinition.addContainer('mcp-server', {
      image: workspaceImage('mcp-server'),
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'mcp', logGroup }),
      readonlyRootFilesystem: true,
      user: 'node',
      portMappings: [{ containerPort: mcp.port, protocol: ecs.Protocol.TCP }],
      environment: {
        MCP_HOST: '0.0.0.0',
        MCP_PORT: String(mcp.port),
        CASE_STORE: 'dynamodb',
        CASE_TABLE_NAME: props.casesTable.tableName,
        AUDIT_BUCKET: props.auditBucket.bucketName,
        AUDIT_SEAL_KMS_KEY_ID: props.auditSealKey.keyArn,
        PII_REDACTION: String(props.piiRedaction),
        KNOWLEDGE_BACKEND: props.knowledge ? 'opensearch' : 'embedded',
        ...(props.knowledge
          ? {
              OPENSEARCH_ENDPOINT: props.knowledge.collection.attrCollectionEndpoint,
              OPENSEARCH_SERVICE: 'aoss',
              OPENSEARCH_INDEX: 'knowledge',
            }
          : {}),
        // {} = transfer to a person turned off: the server then offers no transfer tool.
        TRANSFER_TARGETS: JSON.stringify(mcp.transferTargets),
        ...(defaultTransferQueue ? { DEFAULT_TRANSFER_QUEUE: defaultTransferQueue } : {}),
        CALLER_TRUST: JSON.stringify(mcp.callerTrust),
        ...(mcp.backendUrl ? { BACKEND_URL: mcp.backendUrl } : {}),
        AWS_REGION: Stack.of(this).region,
      },
      secrets: { MCP_AUTH_TOKEN: ecs.Secret.fromSecretsManager(this.tokenSecret) },
      healthCheck: {
        command: [
          'CMD',
          'node',
          '-e',
          `fetch('http://127.0.0.1:${mcp.port}/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))`,
        ],
        interval: Duration.seconds(15),
        timeout: Duration.seconds(5),
        startPeriod: Duration.seconds(15),
        retries: 3,
      },
      // Matches the server's drain grace (20 s) with room for the load balancer to deregister first.
      stopTimeout: Duration.seconds(40),
    });

    this.serviceSecurityGroup = new ec2.SecurityGroup(this, 'ServiceSecurityGroup', {
      vpc: props.vpc,
      description: 'MCP server tasks: from their load balancer only; HTTPS out to AWS APIs and the backend',
      allowAllOutbound: false,
    });
    this.serviceSecurityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'AWS APIs, knowledge collection, enterprise backend (HTTPS)',
    );
    if (props.knowledge)
      allowClientIngress(
        props.knowledge.endpointSecurityGroup,
        this.serviceSecurityGroup,
        443,
        'MCP server reads knowledge',
      );

    this.service = new ecs.FargateService(this, 'Service', {
      cluster: props.cluster,
      taskDefinition,
      desiredCount: mcp.desiredCount,
      vpcSubnets: { subnetType: ec2.SubnetType.PRIVATE_WITH_EGRESS },
      securityGroups: [this.serviceSecurityGroup],
      assignPublicIp: false,
      circuitBreaker: { rollback: true },
      minHealthyPercent: 100,
      maxHealthyPercent: 200,
    });

    const internal = new InternalLoadBalancer(this, 'Internal', {
      vpc: props.vpc,
      description: 'MCP server load balancer: from allowed clients only',
      accessLogsBucket: props.accessLogsBucket,
      logPrefix: 'mcp',
    });
    this.loadBalancer = internal.loadBalancer;
    this.loadBalancerSecurityGroup = internal.securityGroup;
    internal.forwardTo(this.serviceSecurityGroup, mcp.port, 'MCP tasks');
    const listener = internal.addTcpListener('Listener', mcp.port);
    listener.addTargets('Tasks', {
      port: mcp.port,
      protocol: elbv2.Protocol.TCP,
      targets: [this.service.loadBalancerTarget({ containerName: 'mcp-server', containerPort: mcp.port })],
      healthCheck: {
        protocol: elbv2.Protocol.HTTP,
        path: '/healthz',
        interval: Duration.seconds(10),
        healthyThresholdCount: 2,
        unhealthyThresholdCount: 2,
      },
      deregistrationDelay: Duration.seconds(20),
    });

    this.url = `http://${this.loadBalancer.loadBalancerDnsName}:${mcp.port}/mcp`;
    this.acknowledgeFindings(taskDefinition, props.deploymentName, auditPrefix);
  }

  /** Admits one client security group (the agent) to the MCP endpoint. */
  allowFrom(client: ec2.ISecurityGroup, description: string): void {
    this.loadBalancerSecurityGroup.addIngressRule(client, ec2.Port.tcp(this.port), description);
  }

  private acknowledgeFindings(
    taskDefinition: ecs.FargateTaskDefinition,
    deploymentName: string,
    auditPrefix: string,
  ): void {
    const { rolePolicy: taskPolicy } = acknowledgeTaskRolePolicies(taskDefinition.obtainExecutionRole(), this.taskRole);
    acknowledgeRules(
      taskPolicy,
      [`AwsSolutions-IAM5[${recordObjectsNagResource(deploymentName, 'audit', auditPrefix)}]`],
      "Each audit record is a new object under the server's own audit prefix (Object Lock: never overwritten).",
    );

    acknowledgeRules(
      taskDefinition,
      ['AwsSolutions-ECS2'],
      'Environment holds non-secret settings (table, bucket, endpoints); the token comes from Secrets Manager.',
    );
  }
}
