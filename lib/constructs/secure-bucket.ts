import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as s3 from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';

export interface SecureBucketProps {
  readonly bucketName?: string;
  readonly encryptionKey: kms.IKey;
  readonly accessLogsBucket: s3.IBucket;
  /** Prefix of this bucket's server access logs in the access-log bucket. */
  readonly accessLogsPrefix: string;
  /** Current versions expire after this many days; noncurrent ones 30 days later. */
  readonly retentionDays: number;
  /** Object Lock default retention; the bucket is created with Object Lock enabled when set. */
  readonly objectLock?: { mode: 'GOVERNANCE' | 'COMPLIANCE'; days: number };
  /** Send object events to EventBridge (set natively on the bucket: no notification custom resource). */
  readonly eventBridgeNotifications?: boolean;
}

/**
 * A bucket for call records: KMS-encrypted with our key, versioned, TLS-only, no public access,
 * server access logging, lifecycle expiry, optional Object Lock. Retained when the stack goes.
 */
export class SecureBucket extends Construct {
  readonly bucket: s3.Bucket;

  constructor(scope: Construct, id: string, props: SecureBucketProps) {
    super(scope, id);
    const { objectLock } = props;
    this.bucket = new s3.Bucket(this, 'Bucket', {
      bucketName: props.bucketName,
      encryption: s3.BucketEncryption.KMS,
      encryptionKey: props.encryptionKey,
      bucketKeyEnabled: true,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      versioned: true,
      blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
      objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
      serverAccessLogsBucket: props.accessLogsBucket,
      serverAccessLogsPrefix: props.accessLogsPrefix,
      objectLockEnabled: objectLock !== undefined,
      objectLockDefaultRetention:
        objectLock === undefined
          ? undefined
          : objectLock.mode === 'COMPLIANCE'
            ? s3.ObjectLockRetention.compliance(Duration.days(objectLock.days))
            : s3.ObjectLockRetention.governance(Duration.days(objectLock.days)),
      lifecycleRules: [
        {
          id: 'retention',
          expiration: Duration.days(props.retentionDays),
          noncurrentVersionExpiration: Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(7),
        },
      ],
      removalPolicy: RemovalPolicy.RETAIN,
    });
    if (props.eventBridgeNotifications) {
      (this.bucket.node.defaultChild as s3.CfnBucket).notificationConfiguration = {
        eventBridgeConfiguration: { eventBridgeEnabled: true },
      };
    }
  }
}
