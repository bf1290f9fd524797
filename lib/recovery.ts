import { type CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { DeleteBucketCommand, HeadBucketCommand, ListObjectVersionsCommand, type S3Client } from '@aws-sdk/client-s3';

/**
 * Recovery after a failed first deploy. The data stack keeps (RETAIN) what holds records, and its three buckets have
 * fixed names (`<deploymentName>-<purpose>-<account>-<region>`: other stacks' policies name them without cross-stack
 * references), so a retry fails with "already exists". This finds those buckets and deletes them — only when the data
 * stack is gone or rolled back (never for a deployment that exists) and only when a bucket holds no object version at
 * all (never a record). Everything else the data stack creates has a generated name or is deleted by the rollback.
 */
export const RECORD_BUCKET_PURPOSES = ['access-logs', 'transcripts', 'audit'] as const;

/** Stack states in which the data stack holds nothing a retry would clash with. */
const RECOVERABLE_STACK_STATES = new Set(['ROLLBACK_COMPLETE', 'DELETE_COMPLETE', 'ROLLBACK_FAILED', 'DELETE_FAILED']);

export interface RecoveryClients {
  readonly cloudFormation: CloudFormationClient;
  readonly s3: S3Client;
}

export interface Leftover {
  readonly bucket: string;
  /** True when the bucket exists and holds no object version or delete marker. */
  readonly empty: boolean;
}

export interface RecoveryPlan {
  readonly dataStack: string;
  /** The data stack's state, or undefined when there is none. */
  readonly stackStatus?: string;
  /** Why nothing may be deleted (the deployment exists, a bucket holds records), if so. */
  readonly refusal?: string;
  readonly leftovers: Leftover[];
}

export const recordBucket = (deploymentName: string, purpose: string, account: string, region: string) =>
  `${deploymentName.toLowerCase()}-${purpose}-${account}-${region}`;

async function stackStatus(clients: RecoveryClients, stackName: string): Promise<string | undefined> {
  try {
    const { Stacks = [] } = await clients.cloudFormation.send(new DescribeStacksCommand({ StackName: stackName }));
    return Stacks[0]?.StackStatus;
  } catch (error) {
    if (/does not exist/.test((error as Error).message ?? '')) return undefined;
    throw error;
  }
}

async function bucketExists(s3: S3Client, bucket: string): Promise<boolean> {
  try {
    await s3.send(new HeadBucketCommand({ Bucket: bucket }));
    return true;
  } catch (error) {
    const status = (error as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
    if (status === 404 || (error as Error).name === 'NotFound' || (error as Error).name === 'NoSuchBucket')
      return false;
    throw error; // 403 and the like: someone else's bucket, or no permission: never guess
  }
}

export async function planRecovery(
  clients: RecoveryClients,
  deploymentName: string,
  account: string,
  region: string,
): Promise<RecoveryPlan> {
  const dataStack = `${deploymentName}-data`;
  const status = await stackStatus(clients, dataStack);
  const leftovers: Leftover[] = [];
  for (const purpose of RECORD_BUCKET_PURPOSES) {
    const bucket = recordBucket(deploymentName, purpose, account, region);
    if (!(await bucketExists(clients.s3, bucket))) continue;
    const listing = await clients.s3.send(new ListObjectVersionsCommand({ Bucket: bucket, MaxKeys: 1 }));
    const empty = (listing.Versions ?? []).length === 0 && (listing.DeleteMarkers ?? []).length === 0;
    leftovers.push({ bucket, empty });
  }
  let refusal: string | undefined;
  if (status && !RECOVERABLE_STACK_STATES.has(status)) {
    refusal = `${dataStack} is ${status}: this deployment exists, nothing is deleted (choose another deploymentName to start over)`;
  } else if (leftovers.some((leftover) => !leftover.empty)) {
    refusal = `${leftovers
      .filter((leftover) => !leftover.empty)
      .map((leftover) => leftover.bucket)
      .join(', ')} hold objects: records are never deleted here`;
  }
  return { dataStack, stackStatus: status, refusal, leftovers };
}

/** Deletes the empty leftover buckets of a plan without a refusal; returns what it did, one line each. */
export async function executeRecovery(clients: RecoveryClients, plan: RecoveryPlan): Promise<string[]> {
  if (plan.refusal) throw new Error(plan.refusal);
  const done: string[] = [];
  for (const { bucket } of plan.leftovers) {
    await clients.s3.send(new DeleteBucketCommand({ Bucket: bucket }));
    done.push(`deleted empty bucket ${bucket}`);
  }
  return done;
}
