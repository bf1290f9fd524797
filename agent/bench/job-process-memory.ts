/**
 * What a LiveKit job process holds, phase by phase, as agents 1.9 builds one before its call arrives: Node itself,
 * `@livekit/rtc-node`, the agents framework, onnxruntime + the Silero model, the AWS SDK clients, then our worker
 * module. Each phase is a dynamic import (and, where the job does it, construction), measured after a full GC.
 *
 *   npm run bench:job-memory -w agent            (the bundle, dist/worker.mjs, when built: as in the image)
 *
 * Run with extra V8 flags to see what they save, e.g.
 *   NODE_OPTIONS='--expose-gc --max-semi-space-size=1' npm run bench:job-memory -w agent
 * Prints one row per phase (RSS, V8 heap, external, array buffers) and the RSS each phase added. Not a test.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const MB = 1024 * 1024;
const gc = (globalThis as { gc?: () => void }).gc;
if (!gc) throw new Error('run with --expose-gc (the npm script sets it)');

interface Phase {
  name: string;
  memory: NodeJS.MemoryUsage;
}
const phases: Phase[] = [];

async function settle(): Promise<void> {
  // Two collections and a tick: finalizers run, freed pages go back before RSS is read.
  gc!();
  await new Promise((resolve) => setTimeout(resolve, 200));
  gc!();
}

async function phase(name: string, step: () => Promise<unknown>): Promise<unknown> {
  const kept = await step();
  await settle();
  phases.push({ name, memory: process.memoryUsage() });
  return kept;
}

async function main() {
  const held: unknown[] = [];
  await phase('Node + the TypeScript loader (this script)', async () => undefined);
  held.push(await phase('@livekit/rtc-node', () => import('@livekit/rtc-node')));
  held.push(await phase('@livekit/agents', () => import('@livekit/agents')));
  held.push(
    await phase('onnxruntime + Silero model (VAD.load)', async () => {
      const silero = await import('@livekit/agents-plugin-silero');
      return silero.VAD.load({ minSilenceDuration: 0.45 });
    }),
  );
  held.push(
    await phase('AWS SDK clients (Transcribe, Bedrock, Polly, S3, KMS)', async () => {
      const [transcribe, bedrock, polly, s3, kms] = await Promise.all([
        import('@aws-sdk/client-transcribe-streaming'),
        import('@aws-sdk/client-bedrock-runtime'),
        import('@aws-sdk/client-polly'),
        import('@aws-sdk/client-s3'),
        import('@aws-sdk/client-kms'),
      ]);
      const config = { region: 'us-east-1', credentials: { accessKeyId: 'x', secretAccessKey: 'y' } };
      return [
        new transcribe.TranscribeStreamingClient(config),
        new bedrock.BedrockRuntimeClient(config),
        new polly.PollyClient(config),
        new s3.S3Client(config),
        new kms.KMSClient(config),
      ];
    }),
  );
  const bundle = join(__dirname, '..', 'dist', 'worker.mjs');
  const workerModule = existsSync(bundle) ? bundle : join(__dirname, '..', 'src', 'worker.ts');
  held.push(
    await phase(`our worker module (${existsSync(bundle) ? 'dist/worker.mjs' : 'src/worker.ts'}: MCP, Redis, …)`, () =>
      import(pathToFileURL(workerModule).href),
    ),
  );

  const bareNode = Number(
    execFileSync(process.execPath, ['--expose-gc', '-e', 'gc(); process.stdout.write(String(process.memoryUsage().rss))'], {
      encoding: 'utf8',
    }),
  );
  console.log(`job process memory by phase (Node ${process.version}, flags: ${process.execArgv.join(' ') || 'none'}` +
    `${process.env.NODE_OPTIONS ? `, NODE_OPTIONS=${process.env.NODE_OPTIONS}` : ''})`);
  console.log(`bare node (no loader): ${(bareNode / MB).toFixed(1)} MB RSS`);
  console.log('| phase | RSS | +RSS | heap used | heap total | external | array buffers |');
  console.log('|---|---|---|---|---|---|---|');
  let previous = 0;
  for (const { name, memory } of phases) {
    const cells = [memory.rss, memory.rss - previous, memory.heapUsed, memory.heapTotal, memory.external, memory.arrayBuffers];
    console.log(`| ${name} | ${cells.map((bytes) => `${(bytes / MB).toFixed(1)} MB`).join(' | ')} |`);
    previous = memory.rss;
  }
  if (held.length === 0) process.exitCode = 1;
}

main().then(
  () => process.exit(process.exitCode ?? 0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
