/**
 * S3, DynamoDB, EventBridge and SQS on loopback: moto in server mode (PyPI `moto[server]`, in the repository's
 * `.venv`), one process, one port, every service.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { REPO_ROOT } from '../stack/binaries';
import { ManagedProcess } from '../stack/process';

export const MOTO_INSTALL = "python3 -m venv .venv && .venv/bin/pip install 'moto[server]==5.2.5'";

/** moto_server from the repository's .venv, or MOTO_SERVER_BIN. */
export function motoServerBinary(): string {
  const path = process.env.MOTO_SERVER_BIN || join(REPO_ROOT, '.venv', 'bin', 'moto_server');
  if (!existsSync(path)) throw new Error(`moto_server not found at ${path}; install it with: ${MOTO_INSTALL}`);
  return path;
}

/** Credentials moto accepts (any); the fixed account id is moto's default. */
export const MOTO_ACCOUNT_ID = '123456789012';
export const LOCAL_REGION = 'us-east-1';
export const LOCAL_CREDENTIALS = { AWS_ACCESS_KEY_ID: 'local', AWS_SECRET_ACCESS_KEY: 'local-secret' } as const;

export interface MotoServerOptions {
  readonly host?: string;
  readonly port?: number;
  readonly logFile: string;
  readonly readyTimeoutMs?: number;
}

export class MotoServer {
  readonly host: string;
  readonly port: number;
  readonly process: ManagedProcess;
  private readonly timeoutMs: number;

  constructor(options: MotoServerOptions) {
    this.host = options.host ?? '127.0.0.1';
    this.port = options.port ?? 15000;
    this.timeoutMs = options.readyTimeoutMs ?? 60_000;
    this.process = new ManagedProcess({
      name: 'moto',
      command: motoServerBinary(),
      args: ['-H', this.host, '-p', String(this.port)],
      logFile: options.logFile,
      // Its own account and region, whatever the shell has (a developer's real AWS profile must never matter here).
      env: { ...process.env, ...LOCAL_CREDENTIALS, AWS_DEFAULT_REGION: LOCAL_REGION, MOTO_ACCOUNT_ID },
    });
  }

  get endpoint(): string {
    return `http://${this.host}:${this.port}`;
  }

  /** The environment an AWS SDK client needs to talk to this moto for S3, DynamoDB, EventBridge and SQS. */
  clientEnv(): Record<string, string> {
    return {
      ...LOCAL_CREDENTIALS,
      AWS_REGION: LOCAL_REGION,
      AWS_ENDPOINT_URL_S3: this.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: this.endpoint,
      AWS_ENDPOINT_URL_EVENTBRIDGE: this.endpoint,
      AWS_ENDPOINT_URL_SQS: this.endpoint,
    };
  }

  async start(): Promise<void> {
    this.process.start();
    await this.process.waitReady('HTTP', this.timeoutMs, async () => {
      const response = await fetch(`${this.endpoint}/moto-api/data.json`, { signal: AbortSignal.timeout(2000) });
      return response.ok ? true : undefined;
    });
  }

  stop(): Promise<void> {
    return this.process.stop();
  }
}
