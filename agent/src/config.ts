import { envBoolean, metricsNamespace, parseEnvironment, recordingSentenceSchema } from '@voice-intake/contracts';
import { z } from 'zod';
import { JOB_PROCESS } from './job-process';

/** The worker's environment, validated at start; an error names the variable. */
export const agentEnvSchema = z
  .object({
    LIVEKIT_URL: z.url(),
    LIVEKIT_API_KEY: z.string().min(1),
    LIVEKIT_API_SECRET: z.string().min(16, 'must be at least 16 characters'),
    /** Explicit dispatch: the SIP dispatch rule names this agent. */
    LIVEKIT_AGENT_NAME: z.string().min(1).default('intake-agent'),
    /** rediss://:password@host:port; or give REDIS_HOST, REDIS_PORT and REDIS_AUTH_TOKEN (TLS) instead. */
    REDIS_URL: z
      .string()
      .regex(/^rediss?:\/\//, 'must be a redis:// or rediss:// URL')
      .optional(),
    REDIS_HOST: z.string().min(1).optional(),
    REDIS_PORT: z.coerce.number().int().min(1).max(65535).default(6379),
    REDIS_AUTH_TOKEN: z.string().min(1).optional(),
    TRANSCRIPTS_BUCKET: z.string().min(3),
    AUDIT_BUCKET: z.string().min(3),
    MCP_URL: z.url(),
    MCP_TOKEN: z.string().min(16, 'must be at least 16 characters'),
    MCP_SESSION_SECRET: z.string().min(16).optional(),
    BEDROCK_MODEL_ID: z.string().min(1),
    BEDROCK_FALLBACK_MODEL_ID: z.string().min(1).optional(),
    POLLY_VOICE: z.string().min(1).default('Ruth'),
    POLLY_ENGINE: z.enum(['standard', 'neural', 'long-form', 'generative']).default('generative'),
    TRANSCRIBE_LANGUAGE: z
      .string()
      .regex(/^[a-z]{2}-[A-Z]{2}$/, 'must be a language code such as en-US')
      .default('en-US'),
    /** KMS HMAC key (ARN) that seals the audit segments this worker writes (kms:GenerateMac). */
    AUDIT_SEAL_KMS_KEY_ID: z.string().min(1).optional(),
    /** Local runs without KMS: the secret that seals audit segments. */
    AUDIT_SEAL_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Answer on Transcribe's stable words, kept only when the final confirms them (README, speculative turns). */
    SPECULATIVE_TURNS: envBoolean.default(true),
    /** Redact PII from what is logged (transcripts, audit payloads) and ask Transcribe to redact too. */
    PII_REDACTION: envBoolean.default(false),
    /** Where a transfer goes when the MCP server offers no target (sip: or tel: URI). */
    DEFAULT_TRANSFER_TARGET: z
      .string()
      .regex(/^(sip|tel):\S+$/, 'must be a sip: or tel: URI')
      .optional(),
    SESSION_TTL_SECONDS: z.coerce.number().int().min(60).default(21_600),
    RECORD_FLUSH_MS: z.coerce.number().int().min(200).max(30_000).default(2_000),
    /** Call audio: off, announce or consent (agent/README.md, "Recording"); parts flush every RECORD_FLUSH_MS. */
    RECORDING_MODE: z.enum(['off', 'announce', 'consent']).default('off'),
    RECORDING_SAMPLE_RATE: z.coerce
      .number()
      .pipe(z.union([z.literal(8_000), z.literal(16_000)], { error: 'must be 8000 or 16000 (Hz)' }))
      .default(16_000),
    /** Announce mode: what the caller hears before anything else (default: records/call-audio.ts). */
    RECORDING_NOTICE: recordingSentenceSchema.optional(),
    /** Consent mode: the question that opens the call; the caller's answer decides (record_consent). */
    RECORDING_CONSENT_QUESTION: recordingSentenceSchema.optional(),
    /** CloudWatch namespace of the agent's metrics: the deployment's own (set by the app stack). */
    METRICS_NAMESPACE: z
      .string()
      .regex(/^[A-Za-z0-9._/#:-]{1,255}$/, 'must be a CloudWatch namespace (letters, digits, . _ / # : -)')
      .default(metricsNamespace('local')),
    /** Calls this worker takes at most (each a job process, AGENT_CALL_COST): LiveKit sees it as full beyond. */
    AGENT_MAX_CALLS: z.coerce.number().int().min(1).max(200).default(12),
    /**
     * CPU load (0–1, of what the worker may use) at which the worker tells LiveKit it is full. 1: full only at
     * AGENT_MAX_CALLS (a machine shared with other work, where CPU says nothing about this worker's room).
     */
    AGENT_LOAD_THRESHOLD: z.coerce.number().min(0.1).max(1).default(0.7),
    /**
     * Job processes kept started and warm (Silero loaded) for the next calls: each holds ~165 MB, and a call that finds
     * none waits the ~2 s a process takes to start. Size it to the calls arriving within that time (src/job-process.ts).
     */
    AGENT_IDLE_PROCESSES: z.coerce
      .number()
      .int()
      .min(1, 'must be at least 1 (the framework reads 0 as its default, 4)')
      .max(16)
      .default(JOB_PROCESS.idleProcesses),
    /** A job process above this RSS is logged (a call holding far more than one should). */
    AGENT_JOB_MEMORY_WARN_MB: z.coerce.number().int().min(64).max(4096).default(JOB_PROCESS.memoryWarnMB),
    /** A job process above this RSS is killed; the call is dispatched again (src/recovery.ts). 0: never. */
    AGENT_JOB_MEMORY_LIMIT_MB: z.coerce.number().int().min(0).max(8192).default(JOB_PROCESS.memoryLimitMB),
    /** The worker's health server (the container health check): every interface by default; give an address and port
     *  to run a second worker on one host. */
    WORKER_HEALTH_HOST: z.union([z.ipv4(), z.ipv6()], { error: 'must be an IP address' }).default('0.0.0.0'),
    WORKER_HEALTH_PORT: z.coerce.number().int().min(1).max(65535).default(8081),
  })
  .superRefine((env, ctx) => {
    if (!env.AUDIT_SEAL_KMS_KEY_ID && !env.AUDIT_SEAL_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['AUDIT_SEAL_KMS_KEY_ID'],
        message: 'or AUDIT_SEAL_SECRET is required: audit segments are sealed',
      });
    }
    if (env.AGENT_JOB_MEMORY_LIMIT_MB > 0 && env.AGENT_JOB_MEMORY_LIMIT_MB <= env.AGENT_JOB_MEMORY_WARN_MB) {
      const message = `must be above AGENT_JOB_MEMORY_WARN_MB (${env.AGENT_JOB_MEMORY_WARN_MB}), or 0`;
      ctx.addIssue({ code: 'custom', path: ['AGENT_JOB_MEMORY_LIMIT_MB'], message });
    }
    if (!env.REDIS_URL && !env.REDIS_HOST)
      ctx.addIssue({
        code: 'custom',
        path: ['REDIS_URL'],
        message: 'set REDIS_URL, or REDIS_HOST (with REDIS_PORT, REDIS_AUTH_TOKEN)',
      });
  });

/** The Redis connection: a URL, or ElastiCache's host, port and AUTH token over TLS. */
export function redisConnection(
  env: AgentEnv,
): string | { host: string; port: number; password?: string; tls: object } {
  if (env.REDIS_URL) return env.REDIS_URL;
  return { host: env.REDIS_HOST!, port: env.REDIS_PORT, password: env.REDIS_AUTH_TOKEN, tls: {} };
}

export type AgentEnv = z.infer<typeof agentEnvSchema>;

export class AgentConfigError extends Error {
  override readonly name = 'AgentConfigError';
}

/**
 * PII_REDACTION alone, for a process that sets up its logging before it reads the rest (a job process loading the
 * worker module). A value that cannot be read counts as on: logs are withheld rather than left unmasked.
 */
export function piiRedactionOf(env: NodeJS.ProcessEnv = process.env): boolean {
  const parsed = agentEnvSchema.shape.PII_REDACTION.safeParse(env.PII_REDACTION);
  return parsed.success ? parsed.data : true;
}

export function readAgentEnv(env: NodeJS.ProcessEnv = process.env): AgentEnv {
  return parseEnvironment(agentEnvSchema, env, 'agent environment', AgentConfigError);
}
