import type { ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { type AttestationLevel, issueSessionHeader, MCP_SESSION_HEADER } from '@voice-intake/contracts';
import { spawnTracked, stopTracked } from '../../../test/support/processes';

const WORKSPACE = join(__dirname, '..', '..');

/** A tools/call result as the tests read it. */
export type ToolResult = {
  isError?: boolean;
  content: { type: string; text: string }[];
  structuredContent?: Record<string, any>;
};

export const TEST_TOKEN = 'test-token-0123456789abcdef';
/** The embedded-mode audit seal secret the test servers run with. */
export const TEST_SEAL_SECRET = 'test-audit-seal-secret-0123456789abcdef';

export interface RunningServer {
  process: ChildProcess;
  url: string;
  logs: string[];
  stop(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Starts the real server (`src/main.ts`) on a free loopback port and waits for its "listening" log line. */
export async function startServer(env: Record<string, string>): Promise<RunningServer> {
  // One process (tsx as a loader, not its CLI, which would run the server as a child and relay signals): a signal to
  // the group reaches the server once.
  const child = spawnTracked(process.execPath, ['--import', 'tsx', join(WORKSPACE, 'src', 'main.ts')], {
    cwd: WORKSPACE,
    env: {
      ...process.env,
      MCP_HOST: '127.0.0.1',
      MCP_PORT: '0',
      MCP_AUTH_TOKEN: TEST_TOKEN,
      AUDIT_SEAL_SECRET: TEST_SEAL_SECRET,
      LOG_LEVEL: 'info',
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: string[] = [];
  child.stderr!.on('data', (chunk) => logs.push(String(chunk)));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const port = await new Promise<number>((resolve, reject) => {
    const lines = createInterface({ input: child.stdout! });
    const timer = setTimeout(() => {
      void stopTracked(child, 'SIGKILL');
      reject(new Error(`server did not start: ${logs.join('')}`));
    }, 60_000);
    lines.on('line', (line) => {
      logs.push(line);
      try {
        const entry = JSON.parse(line) as { event?: string; port?: number };
        if (entry.event === 'listening' && entry.port) {
          clearTimeout(timer);
          resolve(entry.port);
        }
      } catch {
        // not a log line
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`server exited with ${code}: ${logs.join('\n')}`));
    });
  });
  return {
    process: child,
    url: `http://127.0.0.1:${port}`,
    logs,
    async stop(signal = 'SIGTERM') {
      // The group: tsx runs the server in a node child of its own.
      await stopTracked(child, signal, 30_000);
      return exited;
    },
  };
}

/** The official SDK client over Streamable HTTP, as the agent connects: bearer token + signed session header. */
export async function connectClient(
  baseUrl: string,
  options: {
    token?: string;
    session?: { callId: string; callerNumber: string; attestation?: AttestationLevel };
    secret?: string;
  } = {},
): Promise<Client> {
  const headers: Record<string, string> = { authorization: `Bearer ${options.token ?? TEST_TOKEN}` };
  if (options.session) headers[MCP_SESSION_HEADER] = issueSessionHeader(options.session, options.secret ?? TEST_TOKEN);
  const client = new Client({ name: 'voice-intake-test', version: '0.0.0' });
  await client.connect(new StreamableHTTPClientTransport(new URL('/mcp', baseUrl), { requestInit: { headers } }));
  return client;
}
