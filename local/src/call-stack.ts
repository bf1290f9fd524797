/**
 * The whole call path on loopback: the LiveKit stack with the edge in front (src/stack/livekit.ts), moto with the
 * record stores as the CDK app defines them, the AWS voice services faked over the wire (or real ones), the MCP
 * server and the agent worker as processes. For the end-to-end suite, the benchmark and `npm run local`.
 */
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { DynamoDBClient, ScanCommand } from '@aws-sdk/client-dynamodb';
import { GetObjectCommand, HeadObjectCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { DeleteMessageCommand, ReceiveMessageCommand, SQSClient } from '@aws-sdk/client-sqs';
import type { SessionState } from '@voice-intake/contracts';
import { Redis } from 'ioredis';
import { RedisSessionStore } from '../../agent/src/state/session-store';
import { AwsFake, type Latency, type ScenarioInput } from './aws-fake';
import { LOOPBACK_MEDIA_SOURCE } from './caller/softphone';
import { LOCAL_CREDENTIALS, LOCAL_REGION, MotoServer } from './cloud/moto';
import {
  type CloudDefinition,
  type CreatedCloud,
  cloudDefinitionFromCdk,
  createCloudResources,
} from './cloud/resources';
import { AgentWorkerProcess, McpServerProcess } from './services';
import { REPO_ROOT } from './stack/binaries';
import { LiveKitStack, type LiveKitStackOptions } from './stack/livekit';
import { stopInOrder } from './stack/process';

const execFileAsync = promisify(execFile);

export interface CallStackOptions {
  readonly runDir: string;
  /** `fake` (default): Transcribe/Bedrock/Polly from the local fake; `real`: the AWS account of the environment. */
  readonly voiceServices?: 'fake' | 'real';
  readonly fakeLatency?: Partial<Latency>;
  /** The fake's scenario for calls it cannot tell apart (default: its built-in intake call). */
  readonly defaultScenario?: ScenarioInput;
  /** Where `transfer_to_human` sends the caller (the MCP server's front desk queue). */
  readonly transferTarget?: string;
  readonly bedrockModelId?: string;
  readonly pollyEngine?: 'standard' | 'neural' | 'long-form' | 'generative';
  readonly recordFlushMs?: number;
  readonly ports?: { moto?: number; mcp?: number; workerHealth?: number; fake?: number };
  readonly readyTimeoutMs?: number;
  /** LiveKit stack options on top of the defaults (`edge: false` and other ports: LiveKit only; edge keys are merged). */
  readonly livekit?: Omit<LiveKitStackOptions, 'runDir' | 'readyTimeoutMs'>;
  /** Variables added to the worker's environment (e.g. AGENT_MAX_CALLS for a benchmark). */
  readonly workerEnv?: Record<string, string>;
  /** `source` (default): the TypeScript under tsx; `bundle`: agent/dist on plain node, as the image runs it. */
  readonly workerRuntime?: 'source' | 'bundle';
}

export const DEFAULT_TRANSFER_TARGET = 'sip:front-desk@127.0.3.200:5062';
/** The agent's session store's default key prefix (agent/src/state/session-store.ts). */
const SESSION_KEY_PREFIX = 'voice-intake:session:';
const BEDROCK_MODEL = 'us.anthropic.claude-haiku-4-5-20251001-v1:0';

export class CallStack {
  readonly runDir: string;
  readonly livekit: LiveKitStack;
  readonly moto: MotoServer;
  readonly mcpToken = randomBytes(24).toString('hex');
  /** Seals the audit segments of the agent and the MCP server where no KMS HMAC key exists (AUDIT_SEAL_SECRET). */
  readonly auditSealSecret = randomBytes(32).toString('hex');
  fake?: AwsFake;
  mcp?: McpServerProcess;
  worker?: AgentWorkerProcess;
  cloud?: CloudDefinition;
  created?: CreatedCloud;
  private readonly options: CallStackOptions;

  constructor(options: CallStackOptions) {
    this.options = options;
    this.runDir = resolve(options.runDir);
    const edge = options.livekit?.edge;
    this.livekit = new LiveKitStack({
      ...options.livekit,
      // Softphones on loopback send RTP from 127.0.0.1 and say so in their SDP: a carrier media address here. Edge
      // keys the caller gives are added on top; `edge: false` runs without the edge.
      edge:
        edge === false
          ? false
          : {
              overrides: {
                mediaAllowlist: ['127.0.3.0/24', `${LOOPBACK_MEDIA_SOURCE}/32`],
                ...edge?.overrides,
              },
            },
      runDir: join(this.runDir, 'livekit'),
      readyTimeoutMs: options.readyTimeoutMs,
    });
    this.moto = new MotoServer({
      port: options.ports?.moto ?? 15000,
      logFile: join(this.runDir, 'moto.log'),
      readyTimeoutMs: options.readyTimeoutMs,
    });
  }

  /** The number the trunk answers and where the edge listens for the carrier: what a softphone dials. */
  get dialUri(): string {
    const edge = this.livekit.edge;
    if (!edge) throw new Error('the call stack runs with the edge');
    return `sip:${this.livekit.numbers[0]}@${edge.layout.carrierSip.ip}:${edge.layout.carrierSip.port}`;
  }

  get transferTarget(): string {
    return this.options.transferTarget ?? DEFAULT_TRANSFER_TARGET;
  }

  /** Session state the agent keeps: the LiveKit Redis, database 1 (production: its own ElastiCache). */
  get agentRedisUrl(): string {
    return `redis://:${this.livekit.redisPassword}@127.0.0.1:${this.livekit.redisPort}/1`;
  }

  /** AWS environment of our processes: moto for S3, DynamoDB, EventBridge; the voice services faked or real. */
  awsEnv(): Record<string, string> {
    const real = this.options.voiceServices === 'real';
    return {
      // With real voice services the user's credentials sign everything; moto accepts any credentials.
      ...(real ? {} : { ...LOCAL_CREDENTIALS, AWS_REGION: LOCAL_REGION }),
      AWS_ENDPOINT_URL_S3: this.moto.endpoint,
      AWS_ENDPOINT_URL_DYNAMODB: this.moto.endpoint,
      AWS_ENDPOINT_URL_EVENTBRIDGE: this.moto.endpoint,
      AWS_ENDPOINT_URL_SQS: this.moto.endpoint,
      ...(this.fake ? this.fake.env : {}),
    };
  }

  /** The worker's environment as the app stack gives it in production, pointed at the local parts. */
  agentEnv(): Record<string, string> {
    const cloud = this.requireCloud();
    return {
      ...this.awsEnv(),
      LIVEKIT_URL: this.livekit.wsUrl,
      LIVEKIT_API_KEY: this.livekit.apiKey,
      LIVEKIT_API_SECRET: this.livekit.apiSecret,
      LIVEKIT_AGENT_NAME: this.livekit.livekit.agentName,
      REDIS_URL: this.agentRedisUrl,
      TRANSCRIPTS_BUCKET: cloud.transcriptsBucket.name,
      AUDIT_BUCKET: cloud.auditBucket.name,
      MCP_URL: this.mcp!.url,
      MCP_TOKEN: this.mcpToken,
      BEDROCK_MODEL_ID: this.options.bedrockModelId ?? BEDROCK_MODEL,
      POLLY_ENGINE: this.options.pollyEngine ?? 'generative',
      DEFAULT_TRANSFER_TARGET: this.transferTarget,
      RECORD_FLUSH_MS: String(this.options.recordFlushMs ?? 1000),
      METRICS_NAMESPACE: `VoiceIntake/${cloud.deploymentName}`,
      // The machine is shared (tests, other work): the worker is full by its call count, not by the host's CPU.
      AGENT_LOAD_THRESHOLD: '1',
      AUDIT_SEAL_SECRET: this.auditSealSecret,
    };
  }

  private requireCloud(): CloudDefinition {
    if (!this.cloud) throw new Error('call stack not started');
    return this.cloud;
  }

  /** Starts everything, each part waited on; on any failure ends what it started and rethrows. */
  async start(): Promise<void> {
    try {
      // Each run starts clean: logs, records and recordings of an earlier run would mix with this one's.
      rmSync(this.runDir, { recursive: true, force: true });
      mkdirSync(this.runDir, { recursive: true });
      this.cloud = cloudDefinitionFromCdk({ outdir: join(this.runDir, 'cdk.out') });
      await this.moto.start();
      this.created = await createCloudResources(this.cloud, this.clientConfig());
      if (this.options.voiceServices !== 'real') {
        this.fake = new AwsFake({
          port: this.options.ports?.fake ?? 0,
          latency: this.options.fakeLatency,
          scenarios: this.options.defaultScenario ? { default: this.options.defaultScenario } : undefined,
        });
        await this.fake.start();
      }
      await this.livekit.start();
      this.mcp = new McpServerProcess({
        runDir: this.runDir,
        port: this.options.ports?.mcp ?? 18100,
        token: this.mcpToken,
        caseTableName: this.cloud.casesTable.name,
        auditBucket: this.cloud.auditBucket.name,
        transferTargets: { front_desk: this.transferTarget },
        awsEnv: { ...this.awsEnv(), AUDIT_SEAL_SECRET: this.auditSealSecret },
        readyTimeoutMs: this.options.readyTimeoutMs,
      });
      await this.mcp.start();
      this.worker = new AgentWorkerProcess({
        runDir: this.runDir,
        env: { ...this.agentEnv(), ...this.options.workerEnv },
        runtime: this.options.workerRuntime,
        healthPort: this.options.ports?.workerHealth ?? 18110,
        readyTimeoutMs: this.options.readyTimeoutMs,
      });
      await this.worker.start();
    } catch (error) {
      await this.stop().catch(() => undefined);
      throw error;
    }
  }

  /** Ends everything it started (worker first: calls end before their services go), keeps logs and records. */
  async stop(): Promise<void> {
    await stopInOrder('the call stack', [
      () => this.worker?.stop(),
      () => this.mcp?.stop(),
      () => this.livekit.stop(),
      () => this.fake?.stop(),
      () => this.moto.stop(),
    ]);
  }

  /** An S3 client on moto. */
  s3(): S3Client {
    return new S3Client({ ...this.clientConfig(), forcePathStyle: true });
  }

  /** moto's region: ours, or with real voice services the user's (moto keeps tables per region). */
  get region(): string {
    if (this.options.voiceServices !== 'real') return LOCAL_REGION;
    return process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION ?? LOCAL_REGION;
  }

  private clientConfig() {
    return {
      endpoint: this.moto.endpoint,
      region: this.region,
      credentials: {
        accessKeyId: LOCAL_CREDENTIALS.AWS_ACCESS_KEY_ID,
        secretAccessKey: LOCAL_CREDENTIALS.AWS_SECRET_ACCESS_KEY,
      },
    };
  }

  /** Every object under `prefix` in a bucket, with its body as text. */
  async objects(bucket: string, prefix = ''): Promise<{ key: string; body: string; etag: string; size: number }[]> {
    const s3 = this.s3();
    try {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const list = new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token });
        const page = await s3.send(list);
        keys.push(...(page.Contents ?? []).map((object) => object.Key!));
        token = page.NextContinuationToken;
      } while (token);
      const result = [];
      for (const key of keys) {
        const object = await s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
        const body = await object.Body!.transformToString();
        result.push({ key, body, etag: object.ETag ?? '', size: object.ContentLength ?? body.length });
      }
      return result;
    } finally {
      s3.destroy();
    }
  }

  /** Every item of the cases table (raw DynamoDB attribute values). */
  async cases(): Promise<Record<string, any>[]> {
    const dynamodb = new DynamoDBClient(this.clientConfig());
    try {
      const page = await dynamodb.send(new ScanCommand({ TableName: this.requireCloud().casesTable.name }));
      return page.Items ?? [];
    } finally {
      dynamodb.destroy();
    }
  }

  /**
   * Runs the enrichment function on a transcript object, as its EventBridge rule would (Bedrock from the fake),
   * with the environment its template gives it. Returns the handler's outcome.
   */
  async enrich(key: string): Promise<Record<string, unknown>> {
    const bucket = this.requireCloud().transcriptsBucket.name;
    const s3 = this.s3();
    const head = await s3.send(new HeadObjectCommand({ Bucket: bucket, Key: key })).finally(() => s3.destroy());
    const { stdout } = await execFileAsync(
      join(REPO_ROOT, 'node_modules', '.bin', 'tsx'),
      [join(__dirname, 'cloud', 'run-enrichment.ts'), bucket, key, String(head.ContentLength ?? 0), head.ETag ?? ''],
      {
        cwd: REPO_ROOT,
        env: { ...process.env, ...this.requireCloud().enrichmentEnv, ...this.awsEnv(), BEDROCK_RETRY_BASE_MS: '50' },
        timeout: 120_000,
      },
    );
    const line = stdout.trim().split('\n').pop() ?? '{}';
    const parsed = JSON.parse(line) as { outcome?: Record<string, unknown>; error?: string };
    if (parsed.error) throw new Error(`enrichment failed: ${parsed.error}`);
    return parsed.outcome ?? {};
  }

  /** IntakeEnriched events the bus delivered to the downstream queue (received and removed). */
  async enrichedEvents(waitSeconds = 5): Promise<Record<string, any>[]> {
    const sqs = new SQSClient(this.clientConfig());
    try {
      const received = await sqs.send(
        new ReceiveMessageCommand({
          QueueUrl: this.created!.enrichedEventsQueueUrl,
          MaxNumberOfMessages: 10,
          WaitTimeSeconds: waitSeconds,
        }),
      );
      const events = [];
      for (const message of received.Messages ?? []) {
        events.push(JSON.parse(message.Body ?? '{}'));
        const queueUrl = this.created!.enrichedEventsQueueUrl;
        await sqs.send(new DeleteMessageCommand({ QueueUrl: queueUrl, ReceiptHandle: message.ReceiptHandle }));
      }
      return events;
    } finally {
      sqs.destroy();
    }
  }

  /** The agent's session state for a call, read from its Redis by the agent's own store. */
  async sessionState(callId: string): Promise<SessionState | undefined> {
    const redis = new Redis(this.agentRedisUrl, { maxRetriesPerRequest: 2 });
    try {
      return await new RedisSessionStore(redis, { ttlSeconds: 60 }).load(callId);
    } finally {
      redis.disconnect();
    }
  }

  /** Every call id with session state in the agent's Redis. */
  async sessionCallIds(): Promise<string[]> {
    const redis = new Redis(this.agentRedisUrl, { maxRetriesPerRequest: 2 });
    try {
      return (await redis.keys(`${SESSION_KEY_PREFIX}*`)).map((key) => key.slice(SESSION_KEY_PREFIX.length));
    } finally {
      redis.disconnect();
    }
  }
}
