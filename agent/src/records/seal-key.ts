import { KMSClient } from '@aws-sdk/client-kms';
import { type AuditSealKey, LocalHmacSealKey } from '@voice-intake/contracts';
import { KmsSealKey } from '@voice-intake/contracts/audit-kms';

export interface SealKeyEnv {
  /** KMS HMAC key that seals the agent's audit segments (AWS: the data stack's audit seal key). */
  AUDIT_SEAL_KMS_KEY_ID?: string;
  /** Local runs without KMS: an HMAC secret of at least 32 characters. */
  AUDIT_SEAL_SECRET?: string;
}

/** The key that seals this worker's audit segments: KMS when configured, else the local secret. */
export function auditSealKeyFor(env: SealKeyEnv, kms?: KMSClient): AuditSealKey {
  if (env.AUDIT_SEAL_KMS_KEY_ID) return new KmsSealKey(kms ?? new KMSClient({}), env.AUDIT_SEAL_KMS_KEY_ID);
  if (env.AUDIT_SEAL_SECRET) return new LocalHmacSealKey(env.AUDIT_SEAL_SECRET);
  throw new Error('set AUDIT_SEAL_KMS_KEY_ID or AUDIT_SEAL_SECRET: audit segments are sealed with a key');
}
