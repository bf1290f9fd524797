import { parseArgs } from 'node:util';
import { S3Client } from '@aws-sdk/client-s3';
import { callIdSchema } from '@voice-intake/contracts';
import { DirectorySource, type RecordSource, S3Source } from './source';

export interface SourceArgs {
  callId: string;
  source: RecordSource;
  kmsKeyId?: string;
  values: Record<string, string | undefined>;
}

/** `--call <id>` and either `--dir <folder>` or `--audit-bucket <name>` [`--transcripts-bucket <name>`]. */
export function readSourceArgs(argv: string[], extra: Record<string, { type: 'string' }> = {}): SourceArgs {
  const { values } = parseArgs({
    args: argv,
    options: {
      call: { type: 'string' },
      dir: { type: 'string' },
      'audit-bucket': { type: 'string' },
      'transcripts-bucket': { type: 'string' },
      'kms-key': { type: 'string' },
      ...extra,
    },
    strict: true,
  });
  const parsed = callIdSchema.safeParse(values.call);
  if (!parsed.success) {
    throw new Error(`--call: ${values.call === undefined ? 'is required' : parsed.error.issues[0]?.message}`);
  }
  let source: RecordSource;
  if (values.dir) source = new DirectorySource(values.dir);
  else if (values['audit-bucket']) {
    const buckets = { audit: values['audit-bucket'], transcripts: values['transcripts-bucket'] };
    source = new S3Source(new S3Client({}), buckets);
  } else throw new Error('give --dir <folder with the bucket key layout> or --audit-bucket <name>');
  const given = values as Record<string, string | undefined>;
  return { callId: parsed.data, source, kmsKeyId: values['kms-key'], values: given };
}
