/**
 * Run as a child by the density benchmark: what one LiveKit job process holds before its call starts — the worker
 * module (AWS SDKs, MCP client, agents framework) imported and Silero loaded by `prewarm`, as agents 1.9 prepares an
 * idle process for each job. Prints its RSS in bytes.
 */
import worker from '../src/worker';

async function main() {
  const proc = { userData: {} as Record<string, unknown> };
  await worker.prewarm?.(proc as never);
  (globalThis as { gc?: () => void }).gc?.();
  process.stdout.write(`${process.memoryUsage().rss}\n`);
}

main().then(
  () => process.exit(0),
  (error: unknown) => {
    console.error(error);
    process.exit(1);
  },
);
