import { fileURLToPath } from 'node:url';
import { cli, ServerOptions } from '@livekit/agents';
import { AgentDispatchClient, RoomServiceClient, TwirpError } from 'livekit-server-sdk';
import { AgentConfigError, readAgentEnv } from './config';
import { applyJobProcessFlags } from './job-process';
import { workerLoad } from './load';
import { agentLogger, withholdFrameworkPii } from './log-redaction';
import { MetricsEmitter } from './metrics';
import { OrphanedCallRecovery } from './recovery';

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

// The framework's own log fields marked PII (tool arguments, transcripts) are withheld in this process from the
// logger the CLI sets up on; each job process does the same when it loads the worker module.
if (env.PII_REDACTION) withholdFrameworkPii();

const metrics = new MetricsEmitter({ namespace: env.METRICS_NAMESPACE });
const load = workerLoad({ maxCalls: env.AGENT_MAX_CALLS, metrics });
const apiUrl = env.LIVEKIT_URL.replace(/^ws/, 'http');
const rooms = new RoomServiceClient(apiUrl, env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);
const dispatcher = new AgentDispatchClient(apiUrl, env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);
const recovery = new OrphanedCallRecovery({
  listParticipants: async (room) => {
    try {
      return await rooms.listParticipants(room);
    } catch (error) {
      // The room is gone: the call ended.
      if (error instanceof TwirpError && error.status === 404) return [];
      throw error;
    }
  },
  removeParticipant: async (room, identity) => {
    try {
      await rooms.removeParticipant(room, identity);
    } catch (error) {
      if (!(error instanceof TwirpError && error.status === 404)) throw error;
    }
  },
  dispatch: async (room) => void (await dispatcher.createDispatch(room, env.LIVEKIT_AGENT_NAME)),
  // It logs room names and the caller's identity, which carry the caller's number: masked under PII_REDACTION.
  logger: agentLogger({ service: 'voice-intake-agent', component: 'recovery' }, env.PII_REDACTION),
});

// The job processes load the worker module: the bundle's in the image, the TypeScript source under `npm run dev`.
const workerFile = fileURLToPath(
  new URL(import.meta.url.endsWith('.ts') ? './worker.ts' : './worker.mjs', import.meta.url),
);
// Job processes: small V8 young generation and a heap cap that fits one call (src/job-process.ts).
applyJobProcessFlags();
cli.runApp(
  new ServerOptions({
    agent: workerFile,
    agentName: env.LIVEKIT_AGENT_NAME,
    loadThreshold: env.AGENT_LOAD_THRESHOLD,
    host: env.WORKER_HEALTH_HOST,
    port: env.WORKER_HEALTH_PORT,
    numIdleProcesses: env.AGENT_IDLE_PROCESSES,
    jobMemoryWarnMB: env.AGENT_JOB_MEMORY_WARN_MB,
    jobMemoryLimitMB: env.AGENT_JOB_MEMORY_LIMIT_MB,
    // Full at AGENT_MAX_CALLS calls or at LiveKit's CPU threshold, whichever comes first; emits ActiveCalls. The same
    // poll sees every job come and go: a call whose job died is dispatched again.
    loadFunc: async (worker) => {
      void Promise.all(recovery.observe(worker.activeJobs));
      return load(worker);
    },
  }),
);
