import { GenerateMacCommand, type KMSClient, VerifyMacCommand } from '@aws-sdk/client-kms';
import { AUDIT_SEAL_ALGORITHM, type AuditSealKey, type AuditSealVerifier } from './audit-seal';

/**
 * Audit seals MACed by an AWS KMS HMAC key (key spec HMAC_256): the key material never leaves KMS, writers are granted
 * kms:GenerateMac only and verifiers kms:VerifyMac only, so neither can make a seal after the fact without a
 * CloudTrail-logged KMS call. A separate entry point so only the code that seals or verifies loads the KMS client.
 */
export class KmsSealKey implements AuditSealKey, AuditSealVerifier {
  constructor(
    private readonly client: KMSClient,
    /** The key ARN: seals name it, and a verifier accepts only seals that name the key it was given. */
    readonly keyId: string,
  ) {}

  async mac(message: Uint8Array): Promise<Uint8Array> {
    const { Mac } = await this.client.send(
      new GenerateMacCommand({ KeyId: this.keyId, MacAlgorithm: AUDIT_SEAL_ALGORITHM, Message: message }),
    );
    if (!Mac) throw new Error(`KMS returned no MAC for ${this.keyId}`);
    return Mac;
  }

  async verify(message: Uint8Array, mac: Uint8Array): Promise<boolean> {
    try {
      const { MacValid } = await this.client.send(
        new VerifyMacCommand({ KeyId: this.keyId, MacAlgorithm: AUDIT_SEAL_ALGORITHM, Message: message, Mac: mac }),
      );
      return MacValid === true;
    } catch (error) {
      // KMS answers a MAC that does not verify with KMSInvalidMacException; anything else is not a verdict.
      if ((error as { name?: string }).name === 'KMSInvalidMacException') return false;
      throw error;
    }
  }
}
