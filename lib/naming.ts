import { Aws } from 'aws-cdk-lib';

export type RecordBucketPurpose = 'transcripts' | 'audit' | 'access-logs';

/**
 * Record buckets have predictable names (deployment, purpose, account, region), so other stacks and IAM policies
 * can name them without importing a token, and operators can find them.
 */
export function recordBucketName(deploymentName: string, purpose: RecordBucketPurpose): string {
  return `${deploymentName.toLowerCase()}-${purpose}-${Aws.ACCOUNT_ID}-${Aws.REGION}`;
}

/** ARN of a record bucket itself (what s3:ListBucket is granted on). */
export function recordBucketArn(deploymentName: string, purpose: RecordBucketPurpose): string {
  return `arn:${Aws.PARTITION}:s3:::${recordBucketName(deploymentName, purpose)}`;
}

/** ARN of objects under a prefix of a record bucket, e.g. `transcripts/*`. */
export function recordObjectsArn(deploymentName: string, purpose: RecordBucketPurpose, prefix: string): string {
  return `${recordBucketArn(deploymentName, purpose)}/${prefix}*`;
}

/** How cdk-nag names such an ARN in a finding id (pseudo parameters in angle brackets). */
export function recordObjectsNagResource(deploymentName: string, purpose: RecordBucketPurpose, prefix: string): string {
  return `Resource::arn:<AWS::Partition>:s3:::${deploymentName.toLowerCase()}-${purpose}-<AWS::AccountId>-<AWS::Region>/${prefix}*`;
}

/**
 * The tag that marks a role as a writer of audit chains (value: the deployment name). The audit seal key's policy
 * refuses kms:GenerateMac to every principal without it, whatever its IAM policies allow.
 */
export const AUDIT_WRITER_TAG = 'voice-intake:audit-writer';
