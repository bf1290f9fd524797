import { CloudFormationClient, CreateStackCommand, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { CreateBucketCommand, HeadBucketCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { executeRecovery, planRecovery, RECORD_BUCKET_PURPOSES, recordBucket } from '../lib/recovery';
import { type MotoServer, startMoto } from './support/moto';

const ACCOUNT = '123456789012'; // moto's account
const REGION = 'us-east-1';

describe('recovery after a failed first deploy (S3 and CloudFormation in moto)', () => {
  let moto: MotoServer;
  let clients: { cloudFormation: CloudFormationClient; s3: S3Client };

  beforeAll(async () => {
    moto = await startMoto(REGION);
    clients = {
      cloudFormation: new CloudFormationClient(moto.clientConfig),
      s3: new S3Client({ ...moto.clientConfig, forcePathStyle: true }),
    };
  });
  afterAll(async () => {
    await moto?.stop();
  });

  async function leaveBuckets(deploymentName: string): Promise<string[]> {
    const names = RECORD_BUCKET_PURPOSES.map((purpose) => recordBucket(deploymentName, purpose, ACCOUNT, REGION));
    for (const name of names) {
      await clients.s3.send(
        new CreateBucketCommand({ Bucket: name, ObjectLockEnabledForBucket: name.includes('-audit-') }),
      );
    }
    return names;
  }
  const exists = (bucket: string) =>
    clients.s3.send(new HeadBucketCommand({ Bucket: bucket })).then(
      () => true,
      () => false,
    );

  it('deletes the empty named buckets a rolled-back first deploy left (no data stack), so a retry can create them', async () => {
    const names = await leaveBuckets('trial');
    const plan = await planRecovery(clients, 'trial', ACCOUNT, REGION);
    expect(plan).toEqual({
      dataStack: 'trial-data',
      stackStatus: undefined,
      refusal: undefined,
      leftovers: names.map((bucket) => ({ bucket, empty: true })),
    });
    expect(await executeRecovery(clients, plan)).toEqual(names.map((bucket) => `deleted empty bucket ${bucket}`));
    for (const name of names) expect(await exists(name)).toBe(false);
    expect((await planRecovery(clients, 'trial', ACCOUNT, REGION)).leftovers).toEqual([]);
  });

  it('never deletes a bucket that holds an object, nor any other bucket of that deployment', async () => {
    const names = await leaveBuckets('used');
    await clients.s3.send(new PutObjectCommand({ Bucket: names[1], Key: 'transcripts/call-1.json', Body: '{}' }));
    const plan = await planRecovery(clients, 'used', ACCOUNT, REGION);
    expect(plan.refusal).toBe(`${names[1]} hold objects: records are never deleted here`);
    await expect(executeRecovery(clients, plan)).rejects.toThrow(/hold objects/);
    for (const name of names) expect(await exists(name)).toBe(true);
  });

  it('refuses to touch a deployment whose data stack exists', async () => {
    await leaveBuckets('live');
    await clients.cloudFormation.send(
      new CreateStackCommand({
        StackName: 'live-data',
        TemplateBody: JSON.stringify({ Resources: { Handle: { Type: 'AWS::CloudFormation::WaitConditionHandle' } } }),
      }),
    );
    const { Stacks = [] } = await clients.cloudFormation.send(new DescribeStacksCommand({ StackName: 'live-data' }));
    expect(Stacks[0].StackStatus).toBe('CREATE_COMPLETE');
    const plan = await planRecovery(clients, 'live', ACCOUNT, REGION);
    expect(plan.refusal).toBe(
      'live-data is CREATE_COMPLETE: this deployment exists, nothing is deleted (choose another deploymentName to start over)',
    );
    await expect(executeRecovery(clients, plan)).rejects.toThrow(/this deployment exists/);
    expect(await exists(recordBucket('live', 'audit', ACCOUNT, REGION))).toBe(true);
  });
});
