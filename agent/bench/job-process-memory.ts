/**
 * What a LiveKit job process holds, phase by phase, as agents 1.9 builds one before its call arrives: Node itself,
 * `@livekit/rtc-node`, the agents framework, onnxruntime + the Silero model, the AWS SDK clients, then our worker
 * module (the bundle, dist/worker.mjs, built first: as in the image). Each phase is an import (and, where the job does
 * it, construction) measured after a full GC, in a plain `node` child — no TypeScript loader, which alone adds ~45 MB
 * — once with V8's defaults and once with the job processes' flags (src/job-process.ts).
 *
 *   npm run bench:job-memory -w agent
 *
 * Prints one row per phase: RSS and V8 heap (used / total) for both runs, and the RSS each phase added. Not a test.
 */
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { JOB_PROCESS } from '../src/job-process';

const AGENT_DIR = join(__dirname, '..');
const MB = 1024 * 1024;

/** The child: plain ESM run with `node -e`; prints one JSON line per phase. */
const PHASES = `
const settle = async () => { gc(); await new Promise((resolve) => setTimeout(resolve, 200)); gc(); };
const held = [];
const phase = async (name, step) => {
  held.push(await step());
  await settle();
  const { rss, heapUsed, heapTotal } = process.memoryUsage();
  console.log(JSON.stringify({ name, rss, heapUsed, heapTotal }));
};
await phase('Node', async () => undefined);
await phase('@livekit/rtc-node', () => import('@livekit/rtc-node'));
await phase('@livekit/agents', () => import('@livekit/agents'));
await phase('onnxruntime + Silero model (VAD.load)', async () =>
  (await import('@livekit/agents-plugin-silero')).VAD.load({ minSilenceDuration: 0.45 }));
await phase('AWS SDK clients (Transcribe, Bedrock, Polly, S3, KMS)', async () => {
  const config = { region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } };
  return [
    new (await import('@aws-sdk/client-transcribe-streaming')).TranscribeStreamingClient(config),
    new (await import('@aws-sdk/client-bedrock-runtime')).BedrockRuntimeClient(config),
    new (await import('@aws-sdk/client-polly')).PollyClient(config),
    new (await import('@aws-sdk/client-s3')).S3Client(config),
    new (await import('@aws-sdk/client-kms')).KMSClient(config),
  ];
});
await phase('our worker module (dist/worker.mjs: MCP client, Redis, recorder, …)', () =>
  import(${JSON.stringify(pathToFileURL(join(AGENT_DIR, 'dist', 'worker.mjs')).href)}));
process.exit(held.length > 0 ? 0 : 1);
`;

interface PhaseMemory {
  name: string;
  rss: number;
  heapUsed: number;
  heapTotal: number;
}

function measure(flags: readonly string[]): PhaseMemory[] {
  const output = execFileSync(process.execPath, ['--expose-gc', ...flags, '--input-type=module', '-e', PHASES], {
    cwd: AGENT_DIR,
    encoding: 'utf8',
    env: { ...process.env, NODE_OPTIONS: '', NODE_NO_WARNINGS: '1' },
  });
  return output
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as PhaseMemory);
}

function main() {
  execFileSync('npm', ['run', 'build'], { cwd: AGENT_DIR, stdio: 'ignore' });
  const defaults = measure([]);
  const tuned = measure(JOB_PROCESS.v8Flags);
  const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
  console.log(`job process memory by phase (node ${process.version}, after a full GC)`);
  console.log(
    `| phase | RSS, V8 defaults | +RSS | heap used / total | RSS, ${JOB_PROCESS.v8Flags.join(' ')} | +RSS | heap used / total |`,
  );
  console.log('|---|---|---|---|---|---|---|');
  defaults.forEach((phase, index) => {
    const other = tuned[index];
    const before = index > 0 ? [defaults[index - 1].rss, tuned[index - 1].rss] : [0, 0];
    console.log(
      `| ${phase.name} | ${mb(phase.rss)} | ${mb(phase.rss - before[0])} | ${mb(phase.heapUsed)} / ${mb(phase.heapTotal)} | ` +
        `${mb(other.rss)} | ${mb(other.rss - before[1])} | ${mb(other.heapUsed)} / ${mb(other.heapTotal)} |`,
    );
  });
  if (defaults.length === 0 || defaults.length !== tuned.length) process.exitCode = 1;
}

main();
