/**
 * `npm run local`: the whole call path on loopback for a person with a softphone. Starts everything the end-to-end
 * suite starts (edge, LiveKit, agent worker, MCP server, moto; Transcribe/Bedrock/Polly faked unless `--aws`),
 * prints the SIP URI to dial and where records land, and runs until Ctrl-C.
 *
 *   npm run local                 # AWS voice services faked (espeak-ng voice, scripted intake conversation)
 *   npm run local -- --aws        # real Transcribe, Bedrock and Polly with your AWS credentials
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { CallStack } from './call-stack';

const { values } = parseArgs({
  options: {
    aws: { type: 'boolean', default: false },
    'model-id': { type: 'string' },
    'polly-engine': { type: 'string' },
    'run-dir': { type: 'string' },
    help: { type: 'boolean', short: 'h', default: false },
  },
});

const USAGE = `npm run local [-- --aws] [--model-id <bedrock model or inference profile>] [--polly-engine <engine>]

  --aws            real Amazon Transcribe, Bedrock and Polly (your credentials: AWS_PROFILE / AWS_REGION / …)
  --model-id       Bedrock model with --aws (default us.anthropic.claude-haiku-4-5-20251001-v1:0)
  --polly-engine   standard | neural | long-form | generative (default generative)
  --run-dir        where configs, logs and recordings go (default local/.local/run)`;

const ENGINES = ['standard', 'neural', 'long-form', 'generative'] as const;

async function main(): Promise<void> {
  if (values.help) {
    console.log(USAGE);
    return;
  }
  const engine = values['polly-engine'];
  if (engine !== undefined && !(ENGINES as readonly string[]).includes(engine)) {
    throw new Error(`--polly-engine must be one of ${ENGINES.join(', ')}, not ${engine}`);
  }
  if (values.aws && !process.env.AWS_REGION && !process.env.AWS_DEFAULT_REGION && !process.env.AWS_PROFILE) {
    throw new Error('--aws needs AWS_REGION (or AWS_PROFILE with a region) for Transcribe, Bedrock and Polly');
  }
  const runDir = resolve(values['run-dir'] ?? resolve(__dirname, '..', '.local', 'run'));
  const stack = new CallStack({
    runDir,
    voiceServices: values.aws ? 'real' : 'fake',
    bedrockModelId: values['model-id'],
    pollyEngine: engine as (typeof ENGINES)[number] | undefined,
    ports: { fake: 18120 },
    readyTimeoutMs: 180_000,
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    console.log(`\n${signal}: stopping everything…`);
    await stack.stop().catch((error) => console.error(error));
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));

  console.log(`starting the call path on loopback (logs in ${runDir}) …`);
  await stack.start();
  const cloud = stack.cloud!;
  const edge = stack.livekit.edge!;
  console.log(`
ready. Dial with a softphone from an address in 127.0.3.0/24 (the edge's carrier allowlist), e.g. baresip:

  dial   ${stack.dialUri}
  from   sip:<your number>@127.0.3.1   (UDP; media G.711; RTP to the edge's ${edge.layout.carrierSip.ip})

voice services: ${values.aws ? 'real AWS (your credentials)' : `the AWS fake at ${stack.fake!.url} (scripted call)`}
records (moto at ${stack.moto.endpoint}, any credentials, region us-east-1):
  transcripts   s3://${cloud.transcriptsBucket.name}/transcripts/ (final), transcript-parts/ (during the call)
  audit         s3://${cloud.auditBucket.name}/audit/
  cases         DynamoDB table ${cloud.casesTable.name}
  enrichment    bus ${cloud.eventBusName}
  e.g.  AWS_ACCESS_KEY_ID=x AWS_SECRET_ACCESS_KEY=x aws --endpoint-url ${stack.moto.endpoint} --region us-east-1 \\
          s3 ls s3://${cloud.transcriptsBucket.name} --recursive
logs: ${runDir}/agent-worker.log, mcp-server.log, livekit/…, livekit/edge/…

Ctrl-C stops everything.`);
}

main().catch((error) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
