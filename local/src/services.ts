/**
 * Our own services as processes, started as in production: the MCP server with its DynamoDB case store and S3 audit
 * (against moto), and the agent worker (`main.ts start`: registers with LiveKit, a job process per call).
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from './stack/binaries';
import { ManagedProcess } from './stack/process';

const TSX = join(REPO_ROOT, 'node_modules', '.bin', 'tsx');

export interface McpServerOptions {
  readonly runDir: string;
  readonly host?: string;
  readonly port: number;
  readonly token: string;
  readonly caseTableName: string;
  readonly auditBucket: string;
  /** queue → sip:/tel: URI */
  readonly transferTargets: Record<string, string>;
  /** AWS client environment (moto endpoints, credentials, region). */
  readonly awsEnv: Record<string, string>;
  readonly readyTimeoutMs?: number;
}

export class McpServerProcess {
  readonly process: ManagedProcess;

  constructor(readonly options: McpServerOptions) {
    this.process = new ManagedProcess({
      name: 'mcp-server',
      command: TSX,
      args: [join(REPO_ROOT, 'mcp-server', 'src', 'main.ts')],
      logFile: join(options.runDir, 'mcp-server.log'),
      cwd: join(REPO_ROOT, 'mcp-server'),
      env: {
        ...process.env,
        ...options.awsEnv,
        MCP_HOST: this.host,
        MCP_PORT: String(options.port),
        MCP_AUTH_TOKEN: options.token,
        CASE_STORE: 'dynamodb',
        CASE_TABLE_NAME: options.caseTableName,
        AUDIT_BUCKET: options.auditBucket,
        DATA_DIR: join(options.runDir, 'mcp-data'),
        TRANSFER_TARGETS: JSON.stringify(options.transferTargets),
        DEFAULT_TRANSFER_QUEUE: Object.keys(options.transferTargets)[0],
        MCP_SHUTDOWN_GRACE_MS: '2000',
      },
    });
  }

  get host(): string {
    return this.options.host ?? '127.0.0.1';
  }

  get url(): string {
    return `http://${this.host}:${this.options.port}/mcp`;
  }

  async start(): Promise<void> {
    this.process.start();
    await this.process.waitReady('/healthz', this.options.readyTimeoutMs ?? 60_000, async () => {
      const response = await fetch(`http://${this.host}:${this.options.port}/healthz`, {
        signal: AbortSignal.timeout(2000),
      });
      return response.ok ? true : undefined;
    });
  }

  stop(): Promise<void> {
    return this.process.stop();
  }
}

export interface AgentWorkerOptions {
  readonly runDir: string;
  /** The worker's environment (agent/src/config.ts) besides the health server's. */
  readonly env: Record<string, string>;
  readonly healthHost?: string;
  readonly healthPort: number;
  readonly readyTimeoutMs?: number;
  /** `source` (default): src/main.ts under tsx; `bundle`: dist/main.mjs on plain node (`npm run build -w agent`). */
  readonly runtime?: 'source' | 'bundle';
}

/** The worker's main process; its job processes are its children (same process group, ended with it). */
export class AgentWorkerProcess {
  readonly process: ManagedProcess;

  constructor(readonly options: AgentWorkerOptions) {
    this.process = new ManagedProcess({
      name: 'agent-worker',
      ...(options.runtime === 'bundle'
        ? { command: process.execPath, args: [join(REPO_ROOT, 'agent', 'dist', 'main.mjs'), 'start'] }
        : { command: TSX, args: [join(REPO_ROOT, 'agent', 'src', 'main.ts'), 'start'] }),
      logFile: join(options.runDir, 'agent-worker.log'),
      cwd: join(REPO_ROOT, 'agent'),
      env: {
        ...process.env,
        ...options.env,
        WORKER_HEALTH_HOST: this.healthHost,
        WORKER_HEALTH_PORT: String(options.healthPort),
      },
    });
  }

  get healthHost(): string {
    return this.options.healthHost ?? '127.0.0.1';
  }

  get logFile(): string {
    return this.process.options.logFile;
  }

  /** The worker's log lines (main and job processes: pino JSON and the metrics' EMF JSON) parsed. */
  logLines(): Record<string, unknown>[] {
    if (!existsSync(this.logFile)) return [];
    return readFileSync(this.logFile, 'utf8')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return { unparsed: line };
        }
      });
  }

  /** What the worker reports about itself (/worker of its health server): active jobs. */
  async info(): Promise<{ active_jobs: number; agent_name: string }> {
    const response = await fetch(`http://${this.healthHost}:${this.options.healthPort}/worker`, {
      signal: AbortSignal.timeout(2000),
    });
    return (await response.json()) as { active_jobs: number; agent_name: string };
  }

  /** Starts the worker and waits until its health server says it is connected to LiveKit (registered). */
  async start(): Promise<void> {
    this.process.start();
    await this.process.waitReady('registered with LiveKit', this.options.readyTimeoutMs ?? 120_000, async () => {
      const response = await fetch(`http://${this.healthHost}:${this.options.healthPort}/`, {
        signal: AbortSignal.timeout(2000),
      });
      return response.ok ? true : undefined;
    });
  }

  stop(): Promise<void> {
    return this.process.stop(10_000);
  }
}
