import { CASE_TABLE_INDEXES, S3_PREFIXES } from '@voice-intake/contracts';
import { CfnOutput, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as elasticache from 'aws-cdk-lib/aws-elasticache';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { acknowledgeRules, skipCheckovChecks } from '../compliance';
import { allowClientIngress } from '../constructs/client-ingress';
import { KnowledgeCollection } from '../constructs/knowledge-collection';
import { SecureBucket } from '../constructs/secure-bucket';
import { AUDIT_WRITER_TAG, recordBucketName } from '../naming';
import { VoiceIntakeStack, type VoiceIntakeStackProps } from './voice-intake-stack';

/** Prefix under which load balancers deliver their access logs into the access-log bucket. */
export const LOAD_BALANCER_LOG_PREFIX = 'load-balancers';

/** Not Redis's default 6379: a scanner that finds the host still has to guess the port. */
export const REDIS_PORT = 6380;

export interface DataStackProps extends VoiceIntakeStackProps {
  readonly vpc: ec2.IVpc;
}

/**
 * Everything stateful: the data key, transcript and audit buckets, session Redis. Termination-protected and
 * retained on delete, so redeploying or removing the stateless tiers never touches a call record.
 */
export class DataStack extends VoiceIntakeStack {
  readonly dataKey: kms.Key;
  /** HMAC key that seals audit chain segments: writers may only GenerateMac, the verifier role only VerifyMac. */
  readonly auditSealKey: kms.Key;
  /** Assumed by people or jobs that check audit chains (`npm run audit:verify`): read the bucket, VerifyMac. */
  readonly auditVerifierRole: iam.Role;
  readonly transcriptsBucket: s3.Bucket;
  readonly auditBucket: s3.Bucket;
  readonly accessLogsBucket: s3.Bucket;
  readonly redisSecurityGroup: ec2.SecurityGroup;
  readonly redisAuthSecret: secretsmanager.Secret;
  readonly redisReplicationGroup: elasticache.CfnReplicationGroup;
  /** Primary plus replicas: node ids are `<group>-001` … `<group>-00N`. */
  readonly redisNodeCount: number;
  /** Intake cases, callbacks and transfers written by the MCP server (single table; `byPhone`, `awaitingForward`). */
  readonly casesTable: dynamodb.Table;
  /** The knowledge collection, when `mcp.knowledgeBackend` is `opensearch`. */
  readonly knowledge?: KnowledgeCollection;
  /** Primary endpoint host name and port of the Redis replication group (TLS). */
  readonly redisEndpoint: { host: string; port: number };

  constructor(scope: Construct, id: string, props: DataStackProps) {
    super(scope, id, { ...props, terminationProtection: true });
    const { data, deploymentName } = props.config;

    this.dataKey = new kms.Key(this, 'DataKey', {
      description: 'Encrypts voice-intake call records, session state and secrets',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });

    // Seals of the audit chains: the key material never leaves KMS, so code that writes records can make a seal only
    // while it runs and is granted GenerateMac, through a CloudTrail-logged call; it can never re-seal a rewritten chain
    // offline. Retained: deleting it would leave every seal unverifiable.
    this.auditSealKey = new kms.Key(this, 'AuditSealKey', {
      description: 'Seals voice-intake audit chain segments (HMAC): writers GenerateMac, verifiers VerifyMac',
      keySpec: kms.KeySpec.HMAC_256,
      keyUsage: kms.KeyUsage.GENERATE_VERIFY_MAC,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeRules(
      this.auditSealKey,
      [
        'AwsSolutions-KMS5',
        'HIPAA.Security-KMSBackingKeyRotationEnabled',
        'NIST.800.53.R5-KMSBackingKeyRotationEnabled',
      ],
      'KMS does not rotate HMAC keys automatically; a seal must stay verifiable for the audit retention, so the key is kept, not replaced.',
    );
    // Only the tagged writer roles may make seals, even if an IAM policy elsewhere in the account allows kms:*.
    this.auditSealKey.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'OnlyAuditWritersMakeSeals',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['kms:GenerateMac'],
        resources: ['*'],
        conditions: { StringNotEquals: { [`aws:PrincipalTag/${AUDIT_WRITER_TAG}`]: deploymentName } },
      }),
    );
    skipCheckovChecks(this.auditSealKey, [
      {
        id: 'CKV_AWS_7',
        comment: 'HMAC_256 key: KMS supports no automatic rotation for HMAC keys; seals must stay verifiable.',
      },
    ]);

    // S3 server access logs can be delivered only to an SSE-S3 bucket, so this one bucket is not KMS-encrypted.
    this.accessLogsBucket = new s3.Bucket(this, 'AccessLogsBucket', {
      bucketName: recordBucketName(deploymentName, 'access-logs'),
      encryption: s3.BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      lifecycleRules: [
        {
          id: 'retention',
          expiration: Duration.days(data.accessLogRetentionDays),
          noncurrentVersionExpiration: Duration.days(30),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeRules(
      this.accessLogsBucket,
      ['AwsSolutions-S1', 'HIPAA.Security-S3BucketLoggingEnabled', 'NIST.800.53.R5-S3BucketLoggingEnabled'],
      'This is the access-log target bucket; logging it into itself would loop.',
    );
    skipCheckovChecks(this.accessLogsBucket, [
      { id: 'CKV_AWS_18', comment: 'Access-log target bucket; logging it into itself would loop.' },
    ]);
    acknowledgeRules(
      this.accessLogsBucket,
      ['HIPAA.Security-S3DefaultEncryptionKMS', 'NIST.800.53.R5-S3DefaultEncryptionKMS'],
      'S3 server access log delivery supports only SSE-S3 target buckets.',
    );

    // Network Load Balancers deliver access logs through the log delivery service; let it write under one prefix.
    this.accessLogsBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('delivery.logs.amazonaws.com')],
        actions: ['s3:PutObject'],
        resources: [this.accessLogsBucket.arnForObjects(`${LOAD_BALANCER_LOG_PREFIX}/*`)],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );
    this.accessLogsBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        principals: [new iam.ServicePrincipal('delivery.logs.amazonaws.com')],
        actions: ['s3:GetBucketAcl'],
        resources: [this.accessLogsBucket.bucketArn],
        conditions: { StringEquals: { 'aws:SourceAccount': this.account } },
      }),
    );

    this.transcriptsBucket = new SecureBucket(this, 'Transcripts', {
      bucketName: recordBucketName(deploymentName, 'transcripts'),
      encryptionKey: this.dataKey,
      accessLogsBucket: this.accessLogsBucket,
      accessLogsPrefix: 'transcripts/',
      retentionDays: data.transcriptRetentionDays,
      // Enrichment reacts to transcript objects through EventBridge.
      eventBridgeNotifications: true,
    }).bucket;
    // Recordings keep their own, usually shorter, retention (S3 applies the earliest expiration of matching rules; the
    // config refuses one longer than the transcripts').
    this.transcriptsBucket.addLifecycleRule({
      id: 'recordings',
      prefix: S3_PREFIXES.recordings,
      expiration: Duration.days(data.recordingRetentionDays),
    });

    this.auditBucket = new SecureBucket(this, 'Audit', {
      bucketName: recordBucketName(deploymentName, 'audit'),
      encryptionKey: this.dataKey,
      accessLogsBucket: this.accessLogsBucket,
      accessLogsPrefix: 'audit/',
      retentionDays: data.auditRetentionDays,
      objectLock: { mode: data.auditObjectLockMode, days: data.auditObjectLockDays },
    }).bucket;
    // Transcript parts are written once, by conditional put (`If-None-Match: *`): a worker taken over may not replace
    // what its successor stored. (Audit segments are conditional too, but a worker that resumed a call replaces the
    // segment a dead predecessor stored after its last save: its chain goes on from the saved position.)
    this.transcriptsBucket.addToResourcePolicy(
      new iam.PolicyStatement({
        sid: 'TranscriptPartsWrittenOnce',
        effect: iam.Effect.DENY,
        principals: [new iam.AnyPrincipal()],
        actions: ['s3:PutObject'],
        resources: [this.transcriptsBucket.arnForObjects(`${S3_PREFIXES.transcriptParts}*`)],
        conditions: { Null: { 's3:if-none-match': 'true' } },
      }),
    );

    for (const bucket of [this.accessLogsBucket, this.transcriptsBucket, this.auditBucket]) {
      acknowledgeRules(
        bucket,
        ['HIPAA.Security-S3BucketReplicationEnabled', 'NIST.800.53.R5-S3BucketReplicationEnabled'],
        'Cross-region replication is a per-enterprise DR decision (second region, its own key); versioning, Object Lock and retain-on-delete protect records here.',
      );
    }

    this.auditVerifierRole = new iam.Role(this, 'AuditVerifierRole', {
      assumedBy: new iam.AccountRootPrincipal(),
      description: 'Checks audit chains: reads the audit bucket and verifies seals; cannot write records or make seals',
    });
    this.auditVerifierRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['s3:ListBucket'], resources: [this.auditBucket.bucketArn] }),
    );
    this.auditVerifierRole.addToPrincipalPolicy(
      new iam.PolicyStatement({
        actions: ['s3:GetObject'],
        resources: [this.auditBucket.arnForObjects(`${S3_PREFIXES.audit}*`)],
      }),
    );
    this.auditVerifierRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kms:Decrypt'], resources: [this.dataKey.keyArn] }),
    );
    this.auditVerifierRole.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['kms:VerifyMac'], resources: [this.auditSealKey.keyArn] }),
    );
    const auditBucketId = this.getLogicalId(this.auditBucket.node.defaultChild as s3.CfnBucket);
    const verifierPolicy = this.auditVerifierRole.node.findChild('DefaultPolicy');
    acknowledgeRules(
      verifierPolicy,
      ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
      'Least-privilege statements for this one role: read audit segments, verify seals.',
    );
    acknowledgeRules(
      verifierPolicy,
      [`AwsSolutions-IAM5[Resource::<${auditBucketId}.Arn>/${S3_PREFIXES.audit}*]`],
      'A verifier reads every chain segment under the audit/ prefix (one object per segment, names not known in advance).',
    );

    this.redisAuthSecret = new secretsmanager.Secret(this, 'RedisAuthToken', {
      description: 'AUTH token of the session Redis',
      encryptionKey: this.dataKey,
      generateSecretString: { passwordLength: 64, excludePunctuation: true },
      removalPolicy: RemovalPolicy.RETAIN,
    });
    acknowledgeRules(
      this.redisAuthSecret,
      [
        'AwsSolutions-SMG4',
        'HIPAA.Security-SecretsManagerRotationEnabled',
        'NIST.800.53.R5-SecretsManagerRotationEnabled',
      ],
      'Redis AUTH rotation must run ModifyReplicationGroup ROTATE then SET against the live group while clients reconnect; it is an operator runbook (README), not a generic rotation Lambda.',
    );

    this.redisSecurityGroup = new ec2.SecurityGroup(this, 'RedisSecurityGroup', {
      vpc: props.vpc,
      description: 'Session Redis: opened by later stacks to their own security groups only',
      allowAllOutbound: false,
    });

    const subnetGroup = new elasticache.CfnSubnetGroup(this, 'RedisSubnets', {
      description: 'Isolated subnets for the session Redis',
      subnetIds: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
    });

    this.redisNodeCount = Math.min(1 + data.redisReplicas, 6);
    this.redisReplicationGroup = new elasticache.CfnReplicationGroup(this, 'Redis', {
      replicationGroupDescription: 'voice-intake session state',
      engine: 'redis',
      engineVersion: data.redisEngineVersion,
      cacheNodeType: data.redisNodeType,
      numCacheClusters: this.redisNodeCount,
      automaticFailoverEnabled: true,
      multiAzEnabled: true,
      port: REDIS_PORT,
      cacheSubnetGroupName: subnetGroup.ref,
      securityGroupIds: [this.redisSecurityGroup.securityGroupId],
      transitEncryptionEnabled: true,
      transitEncryptionMode: 'required',
      atRestEncryptionEnabled: true,
      kmsKeyId: this.dataKey.keyId,
      authToken: this.redisAuthSecret.secretValue.unsafeUnwrap(),
      autoMinorVersionUpgrade: true,
      snapshotRetentionLimit: 7,
    });
    acknowledgeRules(
      this.redisReplicationGroup,
      [
        'HIPAA.Security-ElastiCacheRedisClusterAutomaticBackup',
        'NIST.800.53.R5-ElastiCacheRedisClusterAutomaticBackup',
      ],
      'Redis holds transient per-call session state (TTL of hours); durable records live in S3. Seven days of snapshots cover recovery without keeping caller data longer than needed.',
    );

    this.casesTable = new dynamodb.Table(this, 'CasesTable', {
      partitionKey: { name: 'pk', type: dynamodb.AttributeType.STRING },
      sortKey: { name: 'sk', type: dynamodb.AttributeType.STRING },
      billingMode: dynamodb.BillingMode.PAY_PER_REQUEST,
      encryption: dynamodb.TableEncryption.CUSTOMER_MANAGED,
      encryptionKey: this.dataKey,
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      deletionProtection: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    for (const index of [CASE_TABLE_INDEXES.byPhone, CASE_TABLE_INDEXES.awaitingForward]) {
      // awaitingForward (the MCP server's outbox: cases not yet taken by the backend) came after byPhone. Adding a GSI
      // is an in-place, online update of the table (no replacement, no data touched; DynamoDB backfills it), but one
      // CloudFormation update may add only one GSI: add any further index in a deploy of its own.
      this.casesTable.addGlobalSecondaryIndex({
        indexName: index.name,
        partitionKey: { name: index.partitionKey, type: dynamodb.AttributeType.STRING },
        sortKey: { name: index.sortKey, type: dynamodb.AttributeType.STRING },
        projectionType: dynamodb.ProjectionType.ALL,
      });
    }
    acknowledgeRules(
      this.casesTable,
      ['HIPAA.Security-DynamoDBInBackupPlan', 'NIST.800.53.R5-DynamoDBInBackupPlan'],
      'Point-in-time recovery (35 days) is on and cases are forwarded to the enterprise backend; an AWS Backup plan is an account-level choice.',
    );

    if (props.config.mcp.knowledgeBackend === 'opensearch') {
      this.knowledge = new KnowledgeCollection(this, 'Knowledge', {
        collectionName: `${deploymentName}-knowledge`,
        vpc: props.vpc,
        encryptionKey: this.dataKey,
      });
    }

    this.redisEndpoint = { host: this.redisReplicationGroup.attrPrimaryEndPointAddress, port: REDIS_PORT };

    new CfnOutput(this, 'TranscriptsBucketName', { value: this.transcriptsBucket.bucketName });
    new CfnOutput(this, 'AuditBucketName', { value: this.auditBucket.bucketName });
    new CfnOutput(this, 'AuditSealKeyArn', { value: this.auditSealKey.keyArn });
    new CfnOutput(this, 'AuditVerifierRoleArn', { value: this.auditVerifierRole.roleArn });
    new CfnOutput(this, 'RedisPrimaryEndpoint', { value: this.redisEndpoint.host });
    new CfnOutput(this, 'CasesTableName', { value: this.casesTable.tableName });
    if (this.knowledge)
      new CfnOutput(this, 'KnowledgeCollectionEndpoint', { value: this.knowledge.collection.attrCollectionEndpoint });
  }

  /** Lets one client security group reach Redis (the rule lives in the client's stack). */
  allowRedisFrom(client: ec2.ISecurityGroup, description: string): ec2.CfnSecurityGroupIngress {
    return allowClientIngress(this.redisSecurityGroup, client, REDIS_PORT, description);
  }
}
