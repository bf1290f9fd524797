/**
 * The record stores as the CDK app defines them — the data stack's buckets and cases table, the enrichment stack's
 * bus, idempotency table and function environment — read from the synthesized templates and created in moto. The
 * templates are the one definition: a key, index, lock or name changed in `lib/` changes what runs here too.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  CreateTableCommand,
  type CreateTableCommandInput,
  DynamoDBClient,
  UpdateTimeToLiveCommand,
} from '@aws-sdk/client-dynamodb';
import {
  CreateEventBusCommand,
  EventBridgeClient,
  PutRuleCommand,
  PutTargetsCommand,
} from '@aws-sdk/client-eventbridge';
import {
  CreateBucketCommand,
  PutBucketVersioningCommand,
  PutObjectLockConfigurationCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { CreateQueueCommand, GetQueueAttributesCommand, SQSClient } from '@aws-sdk/client-sqs';
import { ENRICHMENT_EVENT_SOURCE } from '@voice-intake/contracts';
import { App } from 'aws-cdk-lib';
import { CONFIG_CONTEXT_KEY, parseConfig } from '../../../lib/config';
import { DataStack } from '../../../lib/stacks/data-stack';
import { EnrichmentStack } from '../../../lib/stacks/enrichment-stack';
import { NetworkStack } from '../../../lib/stacks/network-stack';
import { REPO_ROOT } from '../stack/binaries';
import { LOCAL_REGION, MOTO_ACCOUNT_ID } from './moto';

type Template = { Resources: Record<string, { Type: string; Properties?: Record<string, any> }> };

export interface BucketDefinition {
  readonly name: string;
  readonly versioned: boolean;
  readonly objectLock?: { readonly mode: 'GOVERNANCE' | 'COMPLIANCE'; readonly days: number };
}

export interface TableDefinition {
  readonly name: string;
  readonly input: CreateTableCommandInput;
  readonly ttlAttribute?: string;
}

export interface CloudDefinition {
  readonly deploymentName: string;
  readonly transcriptsBucket: BucketDefinition;
  readonly auditBucket: BucketDefinition;
  readonly casesTable: TableDefinition;
  readonly idempotencyTable: TableDefinition;
  readonly eventBusName: string;
  /** The enrichment function's environment from its template, with the table and bus resolved to the names here. */
  readonly enrichmentEnv: Record<string, string>;
}

/** Resolves what the templates express with pseudo parameters and references, for one account and region. */
function resolver(account: string, region: string, names: Record<string, string>) {
  const resolve = (value: unknown): string => {
    if (typeof value === 'string') return value;
    if (value && typeof value === 'object') {
      const object = value as Record<string, unknown>;
      if ('Ref' in object) {
        const ref = object.Ref as string;
        if (ref === 'AWS::AccountId') return account;
        if (ref === 'AWS::Region') return region;
        if (ref === 'AWS::Partition') return 'aws';
        if (ref in names) return names[ref];
      }
      if ('Fn::Join' in object) {
        const [separator, parts] = object['Fn::Join'] as [string, unknown[]];
        return parts.map(resolve).join(separator);
      }
    }
    throw new Error(`cannot resolve ${JSON.stringify(value)} outside CloudFormation`);
  };
  return resolve;
}

function only(template: Template, type: string, idPrefix: string): [string, Record<string, any>] {
  const matches = Object.entries(template.Resources).filter(([id, r]) => r.Type === type && id.startsWith(idPrefix));
  if (matches.length !== 1) throw new Error(`expected one ${type} named ${idPrefix}*, found ${matches.length}`);
  return [matches[0][0], matches[0][1].Properties ?? {}];
}

function bucketOf(properties: Record<string, any>, resolve: (value: unknown) => string): BucketDefinition {
  const retention = properties.ObjectLockConfiguration?.Rule?.DefaultRetention;
  return {
    name: resolve(properties.BucketName),
    versioned: properties.VersioningConfiguration?.Status === 'Enabled',
    objectLock: properties.ObjectLockEnabled && retention ? { mode: retention.Mode, days: retention.Days } : undefined,
  };
}

function tableOf(name: string, properties: Record<string, any>): TableDefinition {
  return {
    name,
    input: {
      TableName: name,
      KeySchema: properties.KeySchema,
      AttributeDefinitions: properties.AttributeDefinitions,
      BillingMode: properties.BillingMode,
      GlobalSecondaryIndexes: properties.GlobalSecondaryIndexes,
    },
    ttlAttribute: properties.TimeToLiveSpecification?.Enabled
      ? properties.TimeToLiveSpecification.AttributeName
      : undefined,
  };
}

/**
 * Synthesizes the network, data and enrichment stacks of a deployment (the operator config from cdk.json, this
 * deployment name) and reads their stores. Takes a few seconds (the enrichment function is bundled).
 */
export function cloudDefinitionFromCdk(options: { deploymentName?: string; outdir: string }): CloudDefinition {
  const deploymentName = options.deploymentName ?? 'local';
  const context = JSON.parse(readFileSync(join(REPO_ROOT, 'cdk.json'), 'utf8')).context as Record<string, any>;
  const config = parseConfig({ ...context[CONFIG_CONTEXT_KEY], deploymentName });
  // The bundled CloudFormation rules only warn and cost most of a synth: not needed to read names and keys.
  const app = new App({
    context: { ...context, '@aws-cdk/core:validateAgainstDefaultRules': false },
    outdir: options.outdir,
  });
  const network = new NetworkStack(app, `${deploymentName}-network`, { config });
  const data = new DataStack(app, `${deploymentName}-data`, { config, vpc: network.vpc });
  const enrichment = new EnrichmentStack(app, `${deploymentName}-enrichment`, {
    config,
    vpc: network.vpc,
    dataKey: data.dataKey,
  });
  const assembly = app.synth();
  const dataTemplate = assembly.getStackByName(data.stackName).template as Template;
  const enrichmentTemplate = assembly.getStackByName(enrichment.stackName).template as Template;

  // CloudFormation names tables itself; here they get the deployment's name and their purpose.
  const [, casesProps] = only(dataTemplate, 'AWS::DynamoDB::Table', 'CasesTable');
  const [idempotencyId, idempotencyProps] = only(enrichmentTemplate, 'AWS::DynamoDB::Table', 'IdempotencyTable');
  const [busId, busProps] = only(enrichmentTemplate, 'AWS::Events::EventBus', 'IntakeBus');
  const names = { [idempotencyId]: `${deploymentName}-enrichment-idempotency`, [busId]: busProps.Name as string };
  const resolve = resolver(MOTO_ACCOUNT_ID, LOCAL_REGION, names);

  const [, functionProps] = only(enrichmentTemplate, 'AWS::Lambda::Function', 'EnrichFunction');
  const enrichmentEnv = Object.fromEntries(
    Object.entries<unknown>(functionProps.Environment?.Variables ?? {}).map(([key, value]) => [key, resolve(value)]),
  );
  return {
    deploymentName,
    transcriptsBucket: bucketOf(only(dataTemplate, 'AWS::S3::Bucket', 'TranscriptsBucket')[1], resolve),
    auditBucket: bucketOf(only(dataTemplate, 'AWS::S3::Bucket', 'AuditBucket')[1], resolve),
    casesTable: tableOf(`${deploymentName}-cases`, casesProps),
    idempotencyTable: tableOf(names[idempotencyId], idempotencyProps),
    eventBusName: names[busId],
    enrichmentEnv,
  };
}

export interface CreatedCloud {
  /** An SQS queue subscribed to the bus's IntakeEnriched events: a downstream consumer, to see what lands. */
  readonly enrichedEventsQueueUrl: string;
}

/** Creates the buckets (versioning, Object Lock), tables (keys, indexes, TTL) and bus in moto. */
export async function createCloudResources(
  definition: CloudDefinition,
  clientConfig: { endpoint: string; region: string; credentials: { accessKeyId: string; secretAccessKey: string } },
): Promise<CreatedCloud> {
  const s3 = new S3Client({ ...clientConfig, forcePathStyle: true });
  const dynamodb = new DynamoDBClient(clientConfig);
  const events = new EventBridgeClient(clientConfig);
  const sqs = new SQSClient(clientConfig);
  try {
    for (const bucket of [definition.transcriptsBucket, definition.auditBucket]) {
      await s3.send(new CreateBucketCommand({ Bucket: bucket.name, ObjectLockEnabledForBucket: !!bucket.objectLock }));
      if (bucket.versioned) {
        await s3.send(
          new PutBucketVersioningCommand({ Bucket: bucket.name, VersioningConfiguration: { Status: 'Enabled' } }),
        );
      }
      if (bucket.objectLock) {
        await s3.send(
          new PutObjectLockConfigurationCommand({
            Bucket: bucket.name,
            ObjectLockConfiguration: {
              ObjectLockEnabled: 'Enabled',
              Rule: { DefaultRetention: { Mode: bucket.objectLock.mode, Days: bucket.objectLock.days } },
            },
          }),
        );
      }
    }
    for (const table of [definition.casesTable, definition.idempotencyTable]) {
      await dynamodb.send(new CreateTableCommand(table.input));
      if (table.ttlAttribute) {
        await dynamodb.send(
          new UpdateTimeToLiveCommand({
            TableName: table.name,
            TimeToLiveSpecification: { AttributeName: table.ttlAttribute, Enabled: true },
          }),
        );
      }
    }
    await events.send(new CreateEventBusCommand({ Name: definition.eventBusName }));
    const queue = await sqs.send(new CreateQueueCommand({ QueueName: `${definition.deploymentName}-enriched-events` }));
    const queueUrl = queue.QueueUrl!;
    const attributes = new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['QueueArn'] });
    const { Attributes } = await sqs.send(attributes);
    const ruleName = `${definition.deploymentName}-enriched-to-queue`;
    await events.send(
      new PutRuleCommand({
        Name: ruleName,
        EventBusName: definition.eventBusName,
        EventPattern: JSON.stringify({ source: [ENRICHMENT_EVENT_SOURCE] }),
      }),
    );
    await events.send(
      new PutTargetsCommand({
        Rule: ruleName,
        EventBusName: definition.eventBusName,
        Targets: [{ Id: 'queue', Arn: Attributes!.QueueArn! }],
      }),
    );
    return { enrichedEventsQueueUrl: queueUrl };
  } finally {
    for (const client of [s3, dynamodb, events, sqs]) client.destroy();
  }
}
