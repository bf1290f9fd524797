import { Stack } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import { beforeAll, describe, expect, it } from 'vitest';
import { REDIS_PORT } from '../lib/stacks/data-stack';
import { openIngressRules } from './support/assertions';
import { buildVoiceIntakeApp, type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Resource = { Properties: Record<string, any>; DeletionPolicy?: string };

describe('data stack', () => {
  let synthesized: SynthesizedApp;
  let data: Template;
  let buckets: Record<string, Resource>;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
    data = synthesized.templates.data;
    buckets = data.findResources('AWS::S3::Bucket') as Record<string, Resource>;
  });

  const recordBuckets = () => Object.entries(buckets).filter(([id]) => /^(Transcripts|Audit)/.test(id));

  it('is termination-protected', () => {
    expect(synthesized.stacks.data.terminationProtection).toBe(true);
  });

  it('has a rotating KMS key that is retained', () => {
    data.hasResource('AWS::KMS::Key', { Properties: { EnableKeyRotation: true }, DeletionPolicy: 'Retain' });
  });

  it('keeps transcripts and audit records KMS-encrypted, versioned, private, logged, expiring and retained', () => {
    expect(recordBuckets()).toHaveLength(2);
    for (const [, bucket] of recordBuckets()) {
      const props = bucket.Properties;
      expect(
        props.BucketEncryption.ServerSideEncryptionConfiguration[0].ServerSideEncryptionByDefault.SSEAlgorithm,
      ).toBe('aws:kms');
      expect(props.VersioningConfiguration).toEqual({ Status: 'Enabled' });
      expect(props.PublicAccessBlockConfiguration).toEqual({
        BlockPublicAcls: true,
        BlockPublicPolicy: true,
        IgnorePublicAcls: true,
        RestrictPublicBuckets: true,
      });
      expect(props.LoggingConfiguration.DestinationBucketName).toBeDefined();
      expect(props.LifecycleConfiguration.Rules[0].ExpirationInDays).toBeGreaterThan(0);
      expect(bucket.DeletionPolicy).toBe('Retain');
    }
  });

  it('refuses plain-HTTP access to every bucket', () => {
    const policies = Object.values(data.findResources('AWS::S3::BucketPolicy')) as Resource[];
    expect(policies).toHaveLength(Object.keys(buckets).length);
    for (const policy of policies) {
      expect(policy.Properties.PolicyDocument.Statement).toContainEqual(
        expect.objectContaining({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } }),
      );
    }
  });

  it('refuses any transcript part put that could replace a part (no If-None-Match), whoever sends it', () => {
    const [bucketId] = recordBuckets().find(([id]) => id.startsWith('Transcripts'))!;
    const policies = Object.values(data.findResources('AWS::S3::BucketPolicy')) as Resource[];
    const policy = policies.find((candidate) => candidate.Properties.Bucket.Ref === bucketId)!;
    const statement = policy.Properties.PolicyDocument.Statement.find(
      (candidate: { Sid?: string }) => candidate.Sid === 'TranscriptPartsWrittenOnce',
    );
    expect(statement).toMatchObject({
      Effect: 'Deny',
      Principal: { AWS: '*' },
      Action: 's3:PutObject',
      Condition: { Null: { 's3:if-none-match': 'true' } },
    });
    expect(JSON.stringify(statement.Resource)).toContain('/transcript-parts/*');
  });

  it('locks audit records in governance mode by default and sends transcript events to EventBridge', () => {
    const [, audit] = recordBuckets().find(([id]) => id.startsWith('Audit'))!;
    expect(audit.Properties.ObjectLockEnabled).toBe(true);
    expect(audit.Properties.ObjectLockConfiguration.Rule.DefaultRetention).toEqual({ Mode: 'GOVERNANCE', Days: 365 });
    const [, transcripts] = recordBuckets().find(([id]) => id.startsWith('Transcripts'))!;
    expect(transcripts.Properties.NotificationConfiguration).toEqual({
      EventBridgeConfiguration: { EventBridgeEnabled: true },
    });
    expect(transcripts.Properties.ObjectLockEnabled).not.toBe(true);
  });

  it('runs Redis encrypted in transit and at rest, with AUTH, failover and multi-AZ', () => {
    data.hasResourceProperties('AWS::ElastiCache::ReplicationGroup', {
      Engine: 'redis',
      TransitEncryptionEnabled: true,
      AtRestEncryptionEnabled: true,
      KmsKeyId: Match.anyValue(),
      AutomaticFailoverEnabled: true,
      MultiAZEnabled: true,
      NumCacheClusters: 2,
      Port: REDIS_PORT,
      AuthToken: Match.objectLike({ 'Fn::Join': Match.arrayWith([Match.arrayWith(['{{resolve:secretsmanager:'])]) }),
    });
    data.hasResourceProperties('AWS::SecretsManager::Secret', {
      KmsKeyId: Match.anyValue(),
      GenerateSecretString: Match.objectLike({ ExcludePunctuation: true }),
    });
  });

  it('places Redis in isolated subnets only, behind a security group with no ingress yet', () => {
    const subnetGroup = Object.values(data.findResources('AWS::ElastiCache::SubnetGroup'))[0] as Resource;
    const subnetRefs = JSON.stringify(subnetGroup.Properties.SubnetIds);
    expect(subnetRefs).toMatch(/isolatedSubnet1/);
    expect(subnetRefs).toMatch(/isolatedSubnet2/);
    expect(subnetRefs).not.toMatch(/publicSubnet|privateSubnet/);
    const redisGroup = Object.values(data.findResources('AWS::EC2::SecurityGroup')).find((group) =>
      String(group.Properties.GroupDescription).startsWith('Session Redis'),
    ) as Resource;
    expect(redisGroup.Properties.SecurityGroupIngress).toBeUndefined();
    expect(openIngressRules(data)).toEqual([]);
  });

  it('matches the snapshot', () => {
    expect(data.toJSON()).toMatchSnapshot();
  });
});

describe('data stack, compliance-mode audit lock', () => {
  it('uses COMPLIANCE mode and the configured retention when asked', () => {
    const { templates } = synthVoiceIntake({ data: { auditObjectLockMode: 'COMPLIANCE', auditObjectLockDays: 2555 } });
    templates.data.hasResourceProperties('AWS::S3::Bucket', {
      ObjectLockConfiguration: {
        ObjectLockEnabled: 'Enabled',
        Rule: { DefaultRetention: { Mode: 'COMPLIANCE', Days: 2555 } },
      },
    });
  });
});

describe('data stack, call recordings', () => {
  it('expires recordings under their own prefix', () => {
    const rulesOf = (data: object) => {
      const { templates } = synthVoiceIntake({ data });
      const buckets = Object.values(templates.data.findResources('AWS::S3::Bucket'));
      const named = (bucket: (typeof buckets)[number]) => JSON.stringify(bucket.Properties.BucketName ?? '');
      const transcripts = buckets.find((bucket) => named(bucket).includes('transcripts'));
      type Rule = { Id: string; Prefix?: string; ExpirationInDays: number };
      return transcripts!.Properties.LifecycleConfiguration.Rules as Rule[];
    };
    const recordings = { Id: 'recordings', Prefix: 'recordings/', ExpirationInDays: 90 };
    expect(rulesOf({})).toContainEqual(expect.objectContaining(recordings));
    // Never later than the transcripts: the config refuses that (test/config.test.ts).
  });
});

describe('data stack, the longest deployment name', () => {
  it('names every OpenSearch Serverless policy and endpoint within 32 characters, each distinct', () => {
    const { stacks } = buildVoiceIntakeApp({ deploymentName: 'abcdefghijklmnopqrst' });
    const template = Template.fromStack(stacks.data);
    const names = [
      'AWS::OpenSearchServerless::Collection',
      'AWS::OpenSearchServerless::SecurityPolicy',
      'AWS::OpenSearchServerless::VpcEndpoint',
    ].flatMap((type) => Object.values(template.findResources(type)).map((resource) => resource.Properties.Name));
    expect(names).toHaveLength(4);
    for (const name of names) expect(name).toMatch(/^[a-z][a-z0-9-]{2,31}$/);
    expect(new Set(names).size).toBe(names.length);
    expect(names).toContain('abcdefghijklmnopqrst-knowledge');
  });
});

describe('data stack, Redis access for a later tier', () => {
  it('opens Redis to one client security group only, with the rule in the client stack', () => {
    const { app, stacks } = buildVoiceIntakeApp();
    const { network, data: dataStack } = stacks;
    const client = new Stack(app, 'client');
    const clientGroup = new ec2.SecurityGroup(client, 'Worker', { vpc: network.vpc });
    dataStack.allowRedisFrom(clientGroup, 'worker to Redis');
    const clientTemplate = Template.fromStack(client);
    clientTemplate.hasResourceProperties('AWS::EC2::SecurityGroupIngress', {
      IpProtocol: 'tcp',
      FromPort: REDIS_PORT,
      ToPort: REDIS_PORT,
      SourceSecurityGroupId: { 'Fn::GetAtt': [Match.stringLikeRegexp('^Worker'), 'GroupId'] },
      Description: 'worker to Redis',
    });
    expect(Template.fromStack(dataStack).findResources('AWS::EC2::SecurityGroupIngress')).toEqual({});
    expect(client.dependencies).toContain(dataStack);
  });
});
