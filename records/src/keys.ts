import { KMSClient } from '@aws-sdk/client-kms';
import { type AuditSealVerifier, LocalHmacSealKey } from '@voice-intake/contracts';
import { KmsSealKey } from '@voice-intake/contracts/audit-kms';

/**
 * The key a verifier trusts, never one a seal names: a KMS key ARN (--kms-key or AUDIT_SEAL_KMS_KEY_ID; the caller
 * needs kms:VerifyMac, e.g. the data stack's AuditVerifierRole) or, for embedded runs, AUDIT_SEAL_SECRET.
 */
export function trustedSealKey(kmsKeyId: string | undefined, env: NodeJS.ProcessEnv = process.env): AuditSealVerifier {
  const keyId = kmsKeyId ?? env.AUDIT_SEAL_KMS_KEY_ID;
  if (keyId) return new KmsSealKey(new KMSClient({}), keyId);
  if (env.AUDIT_SEAL_SECRET) return new LocalHmacSealKey(env.AUDIT_SEAL_SECRET);
  throw new Error(
    'give the trusted seal key: --kms-key <arn> (or AUDIT_SEAL_KMS_KEY_ID), or AUDIT_SEAL_SECRET for embedded runs',
  );
}
