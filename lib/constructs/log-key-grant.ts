import { Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';

/**
 * Lets CloudWatch Logs use a key for this account's log groups in this region only: the encryption-context
 * condition AWS documents for log-group keys, so no other account's log group can be pointed at it (confused deputy).
 */
export function grantKeyToLogGroups(key: kms.IKey): void {
  const stack = Stack.of(key);
  const logs = new iam.ServicePrincipal(`logs.${stack.region}.amazonaws.com`);
  key.grantEncryptDecrypt(
    new iam.PrincipalWithConditions(logs, {
      ArnLike: {
        'kms:EncryptionContext:aws:logs:arn': `arn:${stack.partition}:logs:${stack.region}:${stack.account}:log-group:*`,
      },
    }),
  );
}
