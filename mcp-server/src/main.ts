import { KMSClient } from '@aws-sdk/client-kms';
import { S3Client } from '@aws-sdk/client-s3';
import { type AuditSealKey, LocalHmacSealKey } from '@voice-intake/contracts';
import { KmsSealKey } from '@voice-intake/contracts/audit-kms';
import pino from 'pino';
import { AuditLog, type AuditSegmentStore, FileAuditStore, S3AuditStore } from './audit';
import { HttpCaseForwarder } from './backend/http-forwarder';
import { CaseOutbox } from './backend/outbox';
import { CallerProofs } from './caller-proofs';
import { readServerEnv, ServerConfigError } from './config';
import { FormCatalog } from './forms';
import { McpHttpServer } from './http';
import { EmbeddedKnowledge } from './knowledge/embedded';
import type { KnowledgeSearch } from './knowledge/knowledge';
import { OpenSearchKnowledge } from './knowledge/opensearch';
import type { CaseStore } from './stores/case-store';
import { DynamoDbCaseStore } from './stores/dynamodb-case-store';
import { EmbeddedCaseStore } from './stores/embedded-case-store';
import { auditRefusedToolCall, createIntakeServer } from './tools';

/** How often each task looks for pending cases that are due. */
const REDRIVE_INTERVAL_MS = 60_000;

async function main(): Promise<void> {
  let env: ReturnType<typeof readServerEnv>;
  try {
    env = readServerEnv();
  } catch (error) {
    if (error instanceof ServerConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = pino({ level: env.LOG_LEVEL, base: { service: 'voice-intake-mcp' } });

  const cases: CaseStore =
    env.CASE_STORE === 'dynamodb' ? new DynamoDbCaseStore(env.CASE_TABLE_NAME!) : new EmbeddedCaseStore(env.DATA_DIR);
  const knowledge: KnowledgeSearch =
    env.KNOWLEDGE_BACKEND === 'opensearch'
      ? new OpenSearchKnowledge({
          endpoint: env.OPENSEARCH_ENDPOINT!,
          index: env.OPENSEARCH_INDEX,
          region: env.AWS_REGION ?? 'us-east-1',
          service: env.OPENSEARCH_SERVICE,
        })
      : new EmbeddedKnowledge(env.KNOWLEDGE_DIR);
  const auditStore: AuditSegmentStore = env.AUDIT_BUCKET
    ? new S3AuditStore(new S3Client({}), env.AUDIT_BUCKET)
    : new FileAuditStore(env.DATA_DIR);
  const sealKey: AuditSealKey = env.AUDIT_SEAL_KMS_KEY_ID
    ? new KmsSealKey(new KMSClient({}), env.AUDIT_SEAL_KMS_KEY_ID)
    : new LocalHmacSealKey(env.AUDIT_SEAL_SECRET!);
  // Submitted cases wait for the backend in the case store (the outbox), never on this task's disk.
  const outbox = env.BACKEND_URL
    ? new CaseOutbox({
        store: cases,
        forwarder: new HttpCaseForwarder({
          url: env.BACKEND_URL,
          token: env.BACKEND_TOKEN,
          maxAttempts: env.BACKEND_MAX_ATTEMPTS,
          retryBaseMs: env.BACKEND_RETRY_BASE_MS,
          logger,
        }),
        logger,
      })
    : undefined;
  const forms = new FormCatalog(env.FORMS_DIR, env.DEFAULT_INTAKE_TYPE);
  const audit = new AuditLog(auditStore, sealKey, { redactPii: env.PII_REDACTION });

  const sessionSecret = env.MCP_SESSION_SECRET ?? env.MCP_AUTH_TOKEN;
  // One for the process: every MCP session of a call sees the same proof and the same attempts left.
  const proofs = new CallerProofs();
  const http = new McpHttpServer({
    host: env.MCP_HOST,
    port: env.MCP_PORT,
    authToken: env.MCP_AUTH_TOKEN,
    maxBodyBytes: env.MCP_MAX_BODY_BYTES,
    shutdownGraceMs: env.MCP_SHUTDOWN_GRACE_MS,
    logger,
    onRefusedRequest: (refused) => auditRefusedToolCall({ audit, sessionSecret }, refused),
    createMcpServer: () =>
      createIntakeServer({
        cases,
        forms,
        knowledge,
        outbox,
        audit,
        sessionSecret,
        transferTargets: env.TRANSFER_TARGETS,
        defaultTransferQueue: env.DEFAULT_TRANSFER_QUEUE,
        callerTrust: env.CALLER_TRUST,
        proofs,
        logger,
      }),
  });
  const address = await http.listen();
  // One parseable line that says where the server listens (tests and scripts wait for it).
  logger.info(
    {
      event: 'listening',
      host: address.address,
      port: address.port,
      caseStore: env.CASE_STORE,
      knowledge: env.KNOWLEDGE_BACKEND,
    },
    'MCP server listening',
  );

  let redrive: NodeJS.Timeout | undefined;
  if (outbox) {
    // Every task redrives: the store's claims keep two tasks from posting a case twice (and the idempotency key makes
    // it harmless if they do).
    redrive = setInterval(() => {
      outbox.redrive().catch((error) => logger.warn({ err: error }, 'redrive of pending cases failed'));
    }, REDRIVE_INTERVAL_MS);
    redrive.unref();
  }

  const shutdown = async (signal: string) => {
    logger.info({ signal }, 'draining');
    if (redrive) clearInterval(redrive);
    const { abandoned } = await http.stop();
    // Sessions closed above seal their chains; any still open get their closing seal here.
    await audit.closeAll();
    logger.info({ abandoned, openAuditScopes: audit.openScopes }, 'stopped');
    process.exit(0);
  };
  process.once('SIGTERM', () => void shutdown('SIGTERM'));
  process.once('SIGINT', () => void shutdown('SIGINT'));
}

void main();
