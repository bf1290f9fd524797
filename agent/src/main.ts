import { fileURLToPath } from 'node:url';
import { ServerOptions, cli } from '@livekit/agents';
import { AgentConfigError, readAgentEnv } from './config';
import { workerLoad } from './load';
import { MetricsEmitter } from './metrics';

// Validate the environment before the worker starts: a bad variable stops it with one line naming it.
let env: ReturnType<typeof readAgentEnv>;
try {
  env = readAgentEnv();
} catch (error) {
  if (error instanceof AgentConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}

// The job processes load the worker module: the bundle's in the image, the TypeScript source under `npm run dev`.
const workerFile = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.mjs', import.meta.url));
cli.runApp(
  new ServerOptions({
    agent: workerFile,
    agentName: env.LIVEKIT_AGENT_NAME,
    host: env.WORKER_HEALTH_HOST,
    port: env.WORKER_HEALTH_PORT,
    // Full at AGENT_MAX_CALLS calls or at LiveKit's CPU threshold, whichever comes first; emits ActiveCalls.
    loadFunc: workerLoad({ maxCalls: env.AGENT_MAX_CALLS, metrics: new MetricsEmitter({ namespace: env.METRICS_NAMESPACE }) }),
  }),
);
