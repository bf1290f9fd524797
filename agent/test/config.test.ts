import { describe, expect, it } from 'vitest';
import { AgentConfigError, piiRedactionOf, readAgentEnv } from '../src/config';
import { applyJobProcessFlags, JOB_PROCESS } from '../src/job-process';

const valid = {
  LIVEKIT_URL: 'ws://livekit.internal:7880',
  LIVEKIT_API_KEY: 'APIvoiceintake',
  LIVEKIT_API_SECRET: 'a-secret-of-enough-length',
  REDIS_URL: 'rediss://:token@redis.internal:6380',
  TRANSCRIPTS_BUCKET: 'voice-intake-transcripts-123',
  AUDIT_BUCKET: 'voice-intake-audit-123',
  AUDIT_SEAL_KMS_KEY_ID: 'arn:aws:kms:us-east-1:123456789012:key/audit-seal',
  MCP_URL: 'http://mcp.internal:8080/mcp',
  MCP_TOKEN: 'mcp-token-0123456789',
  BEDROCK_MODEL_ID: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
};

describe('agent environment', () => {
  it('fills defaults', () => {
    expect(readAgentEnv(valid)).toMatchObject({
      LIVEKIT_AGENT_NAME: 'intake-agent',
      POLLY_VOICE: 'Ruth',
      PII_REDACTION: false,
      RECORD_FLUSH_MS: 2000,
      AGENT_MAX_CALLS: 12,
    });
    expect(readAgentEnv({ ...valid, PII_REDACTION: 'true' }).PII_REDACTION).toBe(true);
  });

  it('answers on stable words unless SPECULATIVE_TURNS says false; refuses a value it cannot read', () => {
    expect(readAgentEnv(valid).SPECULATIVE_TURNS).toBe(true);
    expect(readAgentEnv({ ...valid, SPECULATIVE_TURNS: 'false' }).SPECULATIVE_TURNS).toBe(false);
    expect(() => readAgentEnv({ ...valid, SPECULATIVE_TURNS: 'sometimes' })).toThrow(/SPECULATIVE_TURNS/);
  });

  it('accepts announce and consent recording, and refuses a rate or a sentence it cannot use, naming the variable', () => {
    expect(readAgentEnv(valid)).toMatchObject({ RECORDING_MODE: 'off', RECORDING_SAMPLE_RATE: 16_000 });
    expect(readAgentEnv({ ...valid, RECORDING_SAMPLE_RATE: '8000' }).RECORDING_SAMPLE_RATE).toBe(8_000);
    for (const mode of ['announce', 'consent'] as const) {
      expect(readAgentEnv({ ...valid, RECORDING_MODE: mode }).RECORDING_MODE).toBe(mode);
    }
    expect(() => readAgentEnv({ ...valid, RECORDING_MODE: 'always' })).toThrow(/RECORDING_MODE/);
    expect(() => readAgentEnv({ ...valid, RECORDING_SAMPLE_RATE: '44100' })).toThrow(
      /RECORDING_SAMPLE_RATE: must be 8000 or 16000/,
    );
    const notice = 'Calls to this line are recorded.';
    expect(readAgentEnv({ ...valid, RECORDING_NOTICE: `  ${notice} ` }).RECORDING_NOTICE).toBe(notice);
    expect(() => readAgentEnv({ ...valid, RECORDING_NOTICE: 'Rec.' })).toThrow(/RECORDING_NOTICE: must be a sentence/);
    expect(() =>
      readAgentEnv({ ...valid, RECORDING_CONSENT_QUESTION: '<speak>May I record this call?</speak>' }),
    ).toThrow(/RECORDING_CONSENT_QUESTION: must be plain text/);
  });

  it("publishes metrics under the deployment's namespace, a local one when none is set", () => {
    expect(readAgentEnv(valid).METRICS_NAMESPACE).toBe('VoiceIntake/local');
    expect(readAgentEnv({ ...valid, METRICS_NAMESPACE: 'VoiceIntake/prod' }).METRICS_NAMESPACE).toBe(
      'VoiceIntake/prod',
    );
    expect(() => readAgentEnv({ ...valid, METRICS_NAMESPACE: 'Voice Intake?' })).toThrow(
      /METRICS_NAMESPACE: must be a CloudWatch namespace/,
    );
  });

  it('takes ElastiCache host, port and token instead of a URL', async () => {
    const { redisConnection } = await import('../src/config');
    const env = readAgentEnv({
      ...valid,
      REDIS_URL: undefined,
      REDIS_HOST: 'master.cache.internal',
      REDIS_PORT: '6380',
      REDIS_AUTH_TOKEN: 'tok',
    });
    expect(redisConnection(env)).toEqual({ host: 'master.cache.internal', port: 6380, password: 'tok', tls: {} });
    expect(() => readAgentEnv({ ...valid, REDIS_URL: undefined })).toThrow(/REDIS_URL: set REDIS_URL, or REDIS_HOST/);
  });

  it('reads PII_REDACTION alone for the log set-up, a value it cannot read as on', () => {
    expect(piiRedactionOf({})).toBe(false);
    expect(piiRedactionOf({ PII_REDACTION: 'false' })).toBe(false);
    expect(piiRedactionOf({ PII_REDACTION: 'true' })).toBe(true);
    expect(piiRedactionOf({ PII_REDACTION: 'yes' })).toBe(true);
  });

  it('names every bad variable on one line', () => {
    const read = () =>
      readAgentEnv({ ...valid, REDIS_URL: 'redis.internal:6380', MCP_TOKEN: undefined, POLLY_ENGINE: 'turbo' });
    expect(read).toThrow(AgentConfigError);
    expect(read).toThrow(/REDIS_URL: must be a redis:\/\/ or rediss:\/\/ URL/);
    expect(read).toThrow(/MCP_TOKEN/);
    expect(read).toThrow(/POLLY_ENGINE/);
  });

  it('needs a key to seal its audit segments: a KMS key, or a local secret of 32+ characters', () => {
    const unsealed = { ...valid, AUDIT_SEAL_KMS_KEY_ID: undefined };
    expect(() => readAgentEnv(unsealed)).toThrow(/AUDIT_SEAL_KMS_KEY_ID: or AUDIT_SEAL_SECRET is required/);
    expect(() => readAgentEnv({ ...unsealed, AUDIT_SEAL_SECRET: 'short' })).toThrow(
      /AUDIT_SEAL_SECRET: must be at least 32/,
    );
    expect(readAgentEnv({ ...unsealed, AUDIT_SEAL_SECRET: 'x'.repeat(32) }).AUDIT_SEAL_SECRET).toHaveLength(32);
  });
});

describe('worker health server', () => {
  it('listens on every interface at 8081 by default, where the container health check looks', () => {
    expect(readAgentEnv(valid)).toMatchObject({ WORKER_HEALTH_HOST: '0.0.0.0', WORKER_HEALTH_PORT: 8081 });
  });

  it('takes another address and port, so two workers share a host', () => {
    const env = readAgentEnv({ ...valid, WORKER_HEALTH_HOST: '127.0.0.1', WORKER_HEALTH_PORT: '18081' });
    expect(env).toMatchObject({ WORKER_HEALTH_HOST: '127.0.0.1', WORKER_HEALTH_PORT: 18081 });
    expect(readAgentEnv({ ...valid, WORKER_HEALTH_HOST: '::1' }).WORKER_HEALTH_HOST).toBe('::1');
  });

  it('refuses a host name, a port out of range or port 0 (the framework would quietly take 8081)', () => {
    expect(() => readAgentEnv({ ...valid, WORKER_HEALTH_HOST: 'localhost' })).toThrow(
      /WORKER_HEALTH_HOST: must be an IP address/,
    );
    expect(() => readAgentEnv({ ...valid, WORKER_HEALTH_PORT: '0' })).toThrow(/WORKER_HEALTH_PORT/);
    expect(() => readAgentEnv({ ...valid, WORKER_HEALTH_PORT: '70000' })).toThrow(/WORKER_HEALTH_PORT/);
  });
});

describe('load threshold', () => {
  it("is LiveKit's production 0.7 by default, 1 (full only at AGENT_MAX_CALLS) when asked; refuses nonsense", () => {
    expect(readAgentEnv(valid).AGENT_LOAD_THRESHOLD).toBe(0.7);
    expect(readAgentEnv({ ...valid, AGENT_LOAD_THRESHOLD: '1' }).AGENT_LOAD_THRESHOLD).toBe(1);
    expect(() => readAgentEnv({ ...valid, AGENT_LOAD_THRESHOLD: '1.5' })).toThrow(/AGENT_LOAD_THRESHOLD/);
    expect(() => readAgentEnv({ ...valid, AGENT_LOAD_THRESHOLD: '0' })).toThrow(/AGENT_LOAD_THRESHOLD/);
  });
});

describe('job processes', () => {
  it('keeps the measured defaults: warm processes, memory warning and limit', () => {
    expect(readAgentEnv(valid)).toMatchObject({
      AGENT_IDLE_PROCESSES: JOB_PROCESS.idleProcesses,
      AGENT_JOB_MEMORY_WARN_MB: JOB_PROCESS.memoryWarnMB,
      AGENT_JOB_MEMORY_LIMIT_MB: JOB_PROCESS.memoryLimitMB,
    });
    expect(JOB_PROCESS.memoryLimitMB).toBeGreaterThan(JOB_PROCESS.memoryWarnMB);
  });

  it('refuses 0 idle processes (the framework would start its default 4) and a limit not above the warning', () => {
    expect(() => readAgentEnv({ ...valid, AGENT_IDLE_PROCESSES: '0' })).toThrow(
      /AGENT_IDLE_PROCESSES: must be at least 1/,
    );
    expect(() => readAgentEnv({ ...valid, AGENT_JOB_MEMORY_WARN_MB: '300', AGENT_JOB_MEMORY_LIMIT_MB: '300' })).toThrow(
      /AGENT_JOB_MEMORY_LIMIT_MB: must be above AGENT_JOB_MEMORY_WARN_MB \(300\), or 0/,
    );
    expect(readAgentEnv({ ...valid, AGENT_JOB_MEMORY_LIMIT_MB: '0' }).AGENT_JOB_MEMORY_LIMIT_MB).toBe(0);
  });

  it('hands each job process the V8 flags unless the operator set them', () => {
    const previous = process.env.NODE_OPTIONS;
    delete process.env.NODE_OPTIONS;
    try {
      expect(applyJobProcessFlags(['--enable-source-maps'])).toEqual(['--enable-source-maps', ...JOB_PROCESS.v8Flags]);
      const tuned = applyJobProcessFlags(['--max-old-space-size=512']);
      expect(tuned.filter((arg) => arg.startsWith('--max-old-space-size'))).toEqual(['--max-old-space-size=512']);
      process.env.NODE_OPTIONS = '--max-semi-space-size=4';
      expect(applyJobProcessFlags([]).some((arg) => arg.startsWith('--max-semi-space-size'))).toBe(false);
    } finally {
      if (previous === undefined) delete process.env.NODE_OPTIONS;
      else process.env.NODE_OPTIONS = previous;
    }
  });
});
