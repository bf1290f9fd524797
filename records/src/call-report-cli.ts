import { writeFileSync } from 'node:fs';
import { loadCallReport, renderCallReport } from './call-report';
import { readSourceArgs } from './cli-args';
import { trustedSealKey } from './keys';

/**
 * npm run call-report -- --call <id> (--dir <folder> | --audit-bucket <b> --transcripts-bucket <b>) [--out <file>]
 * Writes one self-contained HTML page (default: call-<id>.html) and says whether both chains verified.
 */
async function main(): Promise<void> {
  const args = readSourceArgs(process.argv.slice(2), { out: { type: 'string' } });
  const data = await loadCallReport(args.source, args.callId, trustedSealKey(args.kmsKeyId));
  const out = args.values.out ?? `call-${args.callId}.html`;
  writeFileSync(out, renderCallReport(data));
  console.log(`${out}: ${data.verification.ok ? 'chains verified' : 'VERIFICATION FAILED'}`);
  process.exitCode = data.verification.ok ? 0 : 1;
}

main().catch((error: Error) => {
  console.error(`call-report: ${error.message}`);
  process.exitCode = 2;
});
