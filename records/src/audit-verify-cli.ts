import { readSourceArgs } from './cli-args';
import { trustedSealKey } from './keys';
import { describeVerification, verifyCall } from './verify';

/**
 * npm run audit:verify -- --call <id> (--dir <folder> | --audit-bucket <bucket>) [--kms-key <arn>]
 * Prints one line per chain; exits 0 only when every chain of the call verifies and is sealed closed.
 */
async function main(): Promise<void> {
  const args = readSourceArgs(process.argv.slice(2));
  const result = await verifyCall(args.source, args.callId, trustedSealKey(args.kmsKeyId));
  for (const line of describeVerification(result)) console.log(line);
  console.log(result.ok ? `OK call ${args.callId}` : `FAIL call ${args.callId}`);
  process.exitCode = result.ok ? 0 : 1;
}

main().catch((error: Error) => {
  console.error(`audit:verify: ${error.message}`);
  process.exitCode = 2;
});
