import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { Asset } from 'aws-cdk-lib/aws-s3-assets';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../lib/config';
import { openIngressRules } from './support/assertions';
import { repoConfigInput, type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Statement = { Action: string | string[]; Resource: unknown; Effect: string };

function statementsOf(template: Template): Statement[] {
  const policies = Object.values(template.findResources('AWS::IAM::Policy'));
  return policies.flatMap((policy) => policy.Properties.PolicyDocument.Statement as Statement[]);
}

const actionsOf = (statement: Statement) => [statement.Action].flat();
const resourceText = (statement: Statement) => JSON.stringify(statement.Resource);

describe('enrichment stack', () => {
  let synthesized: SynthesizedApp;
  let enrichment: Template;
  let statements: Statement[];

  beforeAll(() => {
    synthesized = synthVoiceIntake(undefined, { keepAssembly: true }); // one test loads the bundled function
    enrichment = synthesized.templates.enrichment;
    statements = statementsOf(enrichment);
  });
  afterAll(() => rmSync(synthesized.app.outdir, { recursive: true, force: true }));

  const withAction = (action: string) => statements.filter((statement) => actionsOf(statement).includes(action));

  it('reads only transcripts/, writes only enriched/ and enrichment-errors/, deletes only the latter', () => {
    const reads = withAction('s3:GetObject');
    expect(reads).toHaveLength(1);
    expect(resourceText(reads[0])).toMatch(
      /voice-intake-transcripts-",\{"Ref":"AWS::AccountId"\},"-",\{"Ref":"AWS::Region"\},"\/transcripts\/\*"/,
    );
    const writes = withAction('s3:PutObject');
    expect(writes).toHaveLength(1);
    expect(resourceText(writes[0])).toContain('/enriched/*');
    expect(resourceText(writes[0])).toContain('/enrichment-errors/*');
    expect(resourceText(writes[0])).not.toContain('/transcripts/*');
    // Delete only error records: a transcript's stale one goes once the transcript is enriched.
    const deletes = withAction('s3:DeleteObject');
    expect(deletes).toHaveLength(1);
    expect(actionsOf(deletes[0])).toEqual(['s3:DeleteObject']);
    expect(resourceText(deletes[0])).toMatch(/voice-intake-transcripts-.*"\/enrichment-errors\/\*"\]\]\}$/);
    expect(resourceText(deletes[0])).not.toMatch(/\/(transcripts|enriched|recordings|transcript-parts)\//);
    const anyS3 = statements.flatMap(actionsOf).filter((action) => action.startsWith('s3:'));
    expect(anyS3.sort()).toEqual(['s3:DeleteObject', 's3:GetObject', 's3:PutObject']);
  });

  it('invokes only the configured model (profile and its foundation model), and puts events only on its bus', () => {
    const invoke = withAction('bedrock:InvokeModel');
    expect(invoke).toHaveLength(1);
    const resources = invoke[0].Resource as unknown[];
    expect(resources).toHaveLength(2);
    expect(JSON.stringify(resources)).toContain('inference-profile/us.anthropic.claude-haiku-4-5-20251001-v1:0');
    expect(JSON.stringify(resources)).toContain(
      ':bedrock:*::foundation-model/anthropic.claude-haiku-4-5-20251001-v1:0',
    );
    expect(statements.flatMap(actionsOf).filter((action) => action.startsWith('bedrock:'))).toEqual([
      'bedrock:InvokeModel',
    ]);
    const putEvents = withAction('events:PutEvents');
    expect(putEvents).toHaveLength(1);
    expect(putEvents[0].Resource).toEqual({ 'Fn::GetAtt': [expect.stringMatching(/^IntakeBus/), 'Arn'] });
  });

  it('decrypts and encrypts with the data key only, and sends HTTPS out only', () => {
    const dataKeyUse = withAction('kms:Decrypt').filter((statement) => resourceText(statement).includes('DataKey'));
    expect(dataKeyUse).toHaveLength(1);
    expect(actionsOf(dataKeyUse[0]).sort()).toEqual(['kms:Decrypt', 'kms:GenerateDataKey']);
    expect(dataKeyUse[0].Resource).toEqual({ 'Fn::ImportValue': expect.stringMatching(/DataKey.*Arn/) });
    enrichment.hasResourceProperties('AWS::EC2::SecurityGroup', {
      GroupDescription: Match.stringLikeRegexp('^Enrichment function'),
      SecurityGroupEgress: [Match.objectLike({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 })],
    });
    const groups = Object.values(enrichment.findResources('AWS::EC2::SecurityGroup'));
    expect(groups).toHaveLength(1);
    expect(groups[0].Properties.SecurityGroupIngress).toBeUndefined();
  });

  it('triggers on transcript objects of the transcripts bucket only, with retries and a DLQ', () => {
    enrichment.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.s3'],
        'detail-type': ['Object Created'],
        detail: { bucket: { name: [Match.anyValue()] }, object: { key: [{ prefix: 'transcripts/' }] } },
      },
      Targets: [
        Match.objectLike({
          Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EnrichFunction'), 'Arn'] },
          DeadLetterConfig: { Arn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DeadLetterQueue'), 'Arn'] } },
          RetryPolicy: Match.objectLike({ MaximumRetryAttempts: 8 }),
        }),
      ],
    });
  });

  it('tells the function the transcripts bucket, the one its trigger rule names (it ignores any other)', () => {
    const [rule] = Object.values(enrichment.findResources('AWS::Events::Rule'));
    const [fn] = Object.values(
      enrichment.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'nodejs22.x' } }),
    );
    const bucket = fn.Properties.Environment.Variables.TRANSCRIPTS_BUCKET_NAME;
    expect(JSON.stringify(bucket)).toContain('voice-intake-transcripts-');
    expect(rule.Properties.EventPattern.detail.bucket.name).toEqual([bucket]);
  });

  it('runs the function on Node 22 in private subnets, traced, bounded, dead-lettered', () => {
    enrichment.hasResourceProperties('AWS::Lambda::Function', {
      Runtime: 'nodejs22.x',
      TracingConfig: { Mode: 'Active' },
      ReservedConcurrentExecutions: 10,
      DeadLetterConfig: { TargetArn: { 'Fn::GetAtt': [Match.stringLikeRegexp('^DeadLetterQueue'), 'Arn'] } },
      VpcConfig: Match.objectLike({ SubnetIds: Match.anyValue() }),
      Environment: {
        Variables: Match.objectLike({
          MODEL_ID: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
          MAX_TRANSCRIPT_BYTES: '1048576',
        }),
      },
    });
    const fn = Object.values(
      enrichment.findResources('AWS::Lambda::Function', { Properties: { Runtime: 'nodejs22.x' } }),
    )[0];
    expect(JSON.stringify(fn.Properties.VpcConfig.SubnetIds)).toMatch(/privateSubnet/);
    enrichment.hasResourceProperties('AWS::Lambda::EventInvokeConfig', { MaximumRetryAttempts: 2 });
    expect(openIngressRules(enrichment)).toEqual([]);
  });

  it('encrypts the DLQ and alarms on any message in it', () => {
    enrichment.hasResourceProperties('AWS::SQS::Queue', {
      KmsMasterKeyId: Match.anyValue(),
      MessageRetentionPeriod: 1_209_600,
    });
    enrichment.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: 'ApproximateNumberOfMessagesVisible',
      Namespace: 'AWS/SQS',
      Threshold: 0,
      ComparisonOperator: 'GreaterThanThreshold',
    });
  });

  it('keeps an encrypted idempotency store and an archive of enriched events', () => {
    enrichment.hasResourceProperties('AWS::DynamoDB::Table', {
      TimeToLiveSpecification: { AttributeName: 'expiration', Enabled: true },
      SSESpecification: Match.objectLike({ SSEEnabled: true, SSEType: 'KMS' }),
      PointInTimeRecoverySpecification: { PointInTimeRecoveryEnabled: true },
    });
    enrichment.hasResourceProperties('AWS::Events::EventBus', {
      Name: 'voice-intake-intake',
      KmsKeyIdentifier: Match.anyValue(),
    });
    enrichment.hasResourceProperties('AWS::Events::Archive', {
      RetentionDays: 90,
      EventPattern: { source: ['voice-intake.enrichment'] },
      KmsKeyIdentifier: { 'Fn::GetAtt': [Match.stringLikeRegexp('^EnrichmentKey'), 'Arn'] },
    });
    const [archive] = Object.values(enrichment.findResources('AWS::Events::Archive'));
    expect(JSON.stringify(archive.Properties.SourceArn)).toContain(':event-bus/voice-intake-intake');
    expect(archive.DependsOn).toEqual([expect.stringMatching(/^IntakeBus/)]);
  });

  it('ships a bundle that loads on its own (no node_modules) and exports the handler', () => {
    const asset = synthesized.stacks.enrichment.function.node
      .findAll()
      .find((child): child is Asset => child instanceof Asset);
    expect(asset).toBeDefined();
    // Outside the repository, so nothing resolves from the workspace's node_modules: only what esbuild bundled.
    const dir = mkdtempSync(join(tmpdir(), 'enrichment-bundle-'));
    try {
      copyFileSync(join(synthesized.app.outdir, asset!.assetPath, 'index.js'), join(dir, 'index.js'));
      const loaded = spawnSync(process.execPath, ['-e', 'process.stdout.write(typeof require("./index.js").handler)'], {
        cwd: dir,
        encoding: 'utf8',
        env: {
          PATH: process.env.PATH,
          AWS_REGION: 'us-east-1',
          MODEL_ID: 'm',
          EVENT_BUS_NAME: 'b',
          IDEMPOTENCY_TABLE_NAME: 't',
          TRANSCRIPTS_BUCKET_NAME: 'tb',
        },
      });
      expect(loaded.stderr).not.toMatch(/Cannot find module|invalid enrichment environment/);
      expect(loaded.stdout).toBe('function');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('matches the snapshot', () => {
    expect(enrichment.toJSON()).toMatchSnapshot();
  });
});

describe('enrichment stack with its own foundation model', () => {
  it('scopes InvokeModel to that model in the deployment region', () => {
    const { templates } = synthVoiceIntake({ enrichment: { modelId: 'anthropic.claude-sonnet-4-5-20250929-v1:0' } });
    const invoke = statementsOf(templates.enrichment).filter((statement) =>
      actionsOf(statement).includes('bedrock:InvokeModel'),
    );
    expect(JSON.stringify(invoke[0].Resource)).toBe(
      JSON.stringify({
        'Fn::Join': [
          '',
          [
            'arn:',
            { Ref: 'AWS::Partition' },
            ':bedrock:',
            { Ref: 'AWS::Region' },
            '::foundation-model/anthropic.claude-sonnet-4-5-20250929-v1:0',
          ],
        ],
      }),
    );
  });
});

describe('enrichment config', () => {
  it('has defaults (the model falls back to agent.bedrockModelId in the stack) and names a bad key', () => {
    const config = parseConfig(
      repoConfigInput({ agent: { bedrockModelId: 'anthropic.claude-sonnet-4-5-20250929-v1:0' } }),
    );
    expect(config.enrichment).toEqual({
      maxTranscriptBytes: 1_048_576,
      reservedConcurrency: 10,
      archiveRetentionDays: 90,
    });
    expect(() => parseConfig({ enrichment: { maxTranscriptBytes: 100 } })).toThrow(/enrichment\.maxTranscriptBytes/);
    expect(() => parseConfig({ enrichment: { modelID: 'x' } })).toThrow(/enrichment\.modelID: unknown key/);
  });
});
