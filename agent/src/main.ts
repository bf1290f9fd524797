import { fileURLToPath } from 'node:url';
import { ServerOptions, cli } from '@livekit/agents';
import { AgentConfigError, readAgentEnv } from './config';

// Validate the environment before the worker starts: a bad variable stops it with one line naming it.
try {
  readAgentEnv();
} catch (error) {
  if (error instanceof AgentConfigError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}

// The job processes load the worker module: the bundle's in the image, the TypeScript source under `npm run dev`.
const workerFile = fileURLToPath(new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.mjs', import.meta.url));
cli.runApp(new ServerOptions({ agent: workerFile, agentName: process.env.LIVEKIT_AGENT_NAME ?? 'intake-agent' }));
