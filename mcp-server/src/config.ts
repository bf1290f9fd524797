import { resolve } from 'node:path';
import { callerTrustSchema, DEFAULT_CALLER_TRUST, envJson, parseEnvironment } from '@voice-intake/contracts';
import { z } from 'zod';

const HERE = resolve(__dirname, '..');

/** Queue → target; `{}` turns transfer to a person off (the transfer tool is then not offered). */
const transferTargetsSchema = z.record(
  z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'queue names are lowercase words'),
  z.string().regex(/^(sip|tel):\S+$/, 'must be a sip: or tel: URI'),
);

/** The server's environment, validated at start; an error names the variable. */
export const serverEnvSchema = z
  .object({
    MCP_HOST: z.string().default('127.0.0.1'),
    MCP_PORT: z.coerce.number().int().min(0).max(65535).default(8080),
    /** Bearer token every request must carry (Secrets Manager in AWS). */
    MCP_AUTH_TOKEN: z.string().min(16, 'must be at least 16 characters'),
    /** HMAC secret of the signed session header; defaults to the bearer token. */
    MCP_SESSION_SECRET: z.string().min(16, 'must be at least 16 characters').optional(),
    MCP_MAX_BODY_BYTES: z.coerce
      .number()
      .int()
      .min(1_024)
      .max(10 * 1_048_576)
      .default(65_536),
    /** Grace period for in-flight calls on SIGTERM. */
    MCP_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).max(120_000).default(20_000),
    CASE_STORE: z.enum(['embedded', 'dynamodb']).default('embedded'),
    CASE_TABLE_NAME: z.string().min(1).optional(),
    DATA_DIR: z.string().default(resolve(HERE, '.data')),
    FORMS_DIR: z.string().default(resolve(HERE, 'forms')),
    DEFAULT_INTAKE_TYPE: z.string().default('general_inquiry'),
    KNOWLEDGE_BACKEND: z.enum(['embedded', 'opensearch']).default('embedded'),
    KNOWLEDGE_DIR: z.string().default(resolve(HERE, 'knowledge')),
    OPENSEARCH_ENDPOINT: z.url().optional(),
    OPENSEARCH_INDEX: z.string().default('knowledge'),
    /** `es` for a managed domain, `aoss` for a serverless collection. */
    OPENSEARCH_SERVICE: z.enum(['es', 'aoss']).default('es'),
    AWS_REGION: z.string().optional(),
    /** The enterprise's REST endpoint that receives submitted cases; unset = keep cases in the case store only. */
    BACKEND_URL: z.url().optional(),
    BACKEND_TOKEN: z.string().optional(),
    BACKEND_MAX_ATTEMPTS: z.coerce.number().int().min(1).max(10).default(4),
    BACKEND_RETRY_BASE_MS: z.coerce.number().int().min(1).default(250),
    TRANSFER_TARGETS: envJson(transferTargetsSchema).default({ front_desk: 'sip:front-desk@pbx.example.com' }),
    DEFAULT_TRANSFER_QUEUE: z.string().default('front_desk'),
    /** The caller trust policy (JSON, contracts' callerTrustSchema): what each attestation level may see and do. */
    CALLER_TRUST: envJson(callerTrustSchema).default(DEFAULT_CALLER_TRUST),
    /** S3 bucket for audit records; unset = the bucket's key layout under DATA_DIR (DATA_DIR/audit/...). */
    AUDIT_BUCKET: z.string().min(1).optional(),
    /** KMS HMAC key (ARN) that seals audit segments (kms:GenerateMac); AWS deployments set this. */
    AUDIT_SEAL_KMS_KEY_ID: z.string().min(1).optional(),
    /** Embedded mode: the secret that seals audit segments when no KMS key is set (keep it from the writer's code). */
    AUDIT_SEAL_SECRET: z.string().min(32, 'must be at least 32 characters').optional(),
    /** Mask PII (e-mail, card, SSN, phone patterns) in audit payloads, as the agent's PII_REDACTION does. */
    PII_REDACTION: z
      .enum(['true', 'false'])
      .default('false')
      .transform((value) => value === 'true'),
    LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  })
  .superRefine((env, ctx) => {
    if (env.CASE_STORE === 'dynamodb' && !env.CASE_TABLE_NAME) {
      ctx.addIssue({ code: 'custom', path: ['CASE_TABLE_NAME'], message: 'is required when CASE_STORE=dynamodb' });
    }
    if (env.KNOWLEDGE_BACKEND === 'opensearch' && !env.OPENSEARCH_ENDPOINT) {
      ctx.addIssue({
        code: 'custom',
        path: ['OPENSEARCH_ENDPOINT'],
        message: 'is required when KNOWLEDGE_BACKEND=opensearch',
      });
    }
    if (!env.AUDIT_SEAL_KMS_KEY_ID && !env.AUDIT_SEAL_SECRET) {
      ctx.addIssue({
        code: 'custom',
        path: ['AUDIT_SEAL_KMS_KEY_ID'],
        message: 'or AUDIT_SEAL_SECRET is required: audit segments are sealed with a key',
      });
    }
    if (
      Object.keys(env.TRANSFER_TARGETS).length > 0 &&
      !Object.hasOwn(env.TRANSFER_TARGETS, env.DEFAULT_TRANSFER_QUEUE)
    ) {
      ctx.addIssue({
        code: 'custom',
        path: ['DEFAULT_TRANSFER_QUEUE'],
        message: `is not one of TRANSFER_TARGETS (${Object.keys(env.TRANSFER_TARGETS).join(', ')})`,
      });
    }
  });

export type ServerEnv = z.infer<typeof serverEnvSchema>;

export class ServerConfigError extends Error {
  override readonly name = 'ServerConfigError';
}

export function readServerEnv(env: NodeJS.ProcessEnv = process.env): ServerEnv {
  return parseEnvironment(serverEnvSchema, env, 'MCP server environment', ServerConfigError);
}
