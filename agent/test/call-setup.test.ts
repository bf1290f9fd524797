import { createServer } from 'node:net';
import { initializeLogger } from '@livekit/agents';
import {
  AGENT_METRICS,
  GENESIS_HASH,
  SCHEMA_VERSION,
  sessionStateSchema,
  transcriptKey,
  transcriptSchema,
} from '@voice-intake/contracts';
import { Redis } from 'ioredis';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setUpCall } from '../src/call-setup';
import { MetricsEmitter } from '../src/metrics';
import { redactPii } from '../src/records/redact';
import { RedisSessionStore } from '../src/state/session-store';
import { burstPipeReply } from './support/burst-pipe-call';
import { until, useCallBackends } from './support/call-backends';
import { type OpenCall, openCall } from './support/call-harness';
import { listeningTranscribe, speakingPolly, streamingBedrock } from './support/fake-aws';

/**
 * A call the worker cannot set up, through the production setup (`prepareIntakeCall`, then the session's start) against
 * a real redis-server, a real MCP server process and the SDK-mocked AWS of the pipeline tests; the transfer, the
 * hang-up and the job's end are the worker's LiveKit calls, recorded here instead.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CALLER = '+14155550123';
const CALLER_DIGITS = '4155550';
const TARGET = 'sip:front-desk@pbx.acme.com';
const stateKey = (callId: string) => `voice-intake:session:${callId}`;

interface Attempt {
  call: OpenCall | undefined;
  /** What the worker did to the call and the job, in order. */
  steps: string[];
  logLines: Record<string, unknown>[];
  rawLogLines: string[];
  metricLines: Record<string, unknown>[];
  redis: Redis;
}

interface AttemptOptions {
  transferTarget?: string;
  transferFails?: boolean;
  /** The transfer never completes (a REFER nobody answers); the setup's timeout is then this. */
  transferHangsMs?: number;
  redact?: boolean;
  /** The call's Redis connection (default: a new one to the test's server); closed by the release. */
  redis?: Redis;
  /** Prepares the call; default: `openCall` (prepared and its session started). */
  setup?: (redis: Redis) => Promise<OpenCall>;
  release?: () => Promise<void>;
}

/** A new call's session state, as a worker of this version stores it. */
function newCall(callId: string, workerId = 'worker-earlier') {
  return {
    callId,
    roomName: `room-${callId}`,
    callerNumber: CALLER,
    workerId,
    status: 'active' as const,
    startedAt: new Date().toISOString(),
    intake: { fields: {}, confirmed: false },
    lastTurns: [],
    nextTurnSeq: 0,
    nextTranscriptPart: 0,
    audit: { seq: 0, prevHash: GENESIS_HASH },
  };
}

async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

describe('a call the worker cannot set up', () => {
  const backends = useCallBackends();
  let store: ReturnType<typeof backends.freshAws>;
  let redis: Redis;

  beforeAll(() => {
    store = backends.freshAws();
    listeningTranscribe(backends.transcribe, { utterances: [] });
    streamingBedrock(backends.bedrock, burstPipeReply);
    speakingPolly(backends.polly);
    redis = backends.redis.client();
  });

  async function attempt(callId: string, options: AttemptOptions = {}): Promise<Attempt> {
    const steps: string[] = [];
    const rawLogLines: string[] = [];
    const metricLines: string[] = [];
    const callRedis = options.redis ?? backends.redis.client();
    const setup =
      options.setup ??
      ((connection: Redis) =>
        openCall({ env: backends.env(), callId, callerNumber: CALLER, vad: backends.vad, redis: connection }));
    const call = await setUpCall(() => setup(callRedis), {
      callId,
      logger: pino({ level: 'info' }, { write: (line: string) => void rawLogLines.push(line) }),
      metrics: new MetricsEmitter({ write: (line) => metricLines.push(line) }),
      redact: options.redact ? redactPii : undefined,
      transferTarget: options.transferTarget,
      transferTimeoutMs: options.transferHangsMs,
      transfer: async (target) => {
        steps.push(`transfer to ${target}`);
        if (options.transferHangsMs !== undefined) await new Promise(() => {});
        // LiveKit's error names the caller's participant.
        if (options.transferFails) throw new Error(`twirp error not_found: participant sip_${CALLER} not found`);
      },
      removeCaller: async () => void steps.push('remove the caller'),
      release: async () => {
        steps.push('release');
        await options.release?.();
        callRedis.disconnect();
      },
      shutdown: (reason) => void steps.push(`shut down: ${reason}`),
    });
    return {
      call,
      steps,
      rawLogLines,
      logLines: rawLogLines.map((line) => JSON.parse(line)),
      metricLines: metricLines.map((line) => JSON.parse(line)),
      redis: callRedis,
    };
  }

  const setupFailures = (lines: Record<string, unknown>[]) =>
    lines.filter((line) => AGENT_METRICS.callSetupFailures in line);

  /** The one EMF line counting the failure: a count, by Service only, the call as a property. */
  function expectCountedOnce(metricLines: Record<string, unknown>[], callId: string) {
    const [line, ...more] = setupFailures(metricLines);
    expect(more).toEqual([]);
    expect(line).toMatchObject({ [AGENT_METRICS.callSetupFailures]: 1, Service: 'agent', callId });
    expect((line._aws as { CloudWatchMetrics: unknown[] }).CloudWatchMetrics).toEqual([
      {
        Namespace: 'VoiceIntake/local',
        Dimensions: [['Service']],
        Metrics: [{ Name: AGENT_METRICS.callSetupFailures, Unit: 'Count' }],
      },
    ]);
  }

  /** The failure's one log line (error level, with the call and the error). */
  function failureLine(logLines: Record<string, unknown>[]) {
    const lines = logLines.filter((line) => line.msg === 'call not set up; handing it over');
    expect(lines).toHaveLength(1);
    expect(lines[0].level).toBe(50);
    return lines[0] as { callId: string; handOver: string; err: { type: string; message: string; stack: string } };
  }

  it('transfers the caller when the call state is not JSON, leaving the record as it was', async () => {
    const callId = 'setup-corrupt-json';
    // A record cut off where the caller's number was written bare: JSON.parse's error quotes the number.
    const corrupt = `{"schemaVersion":1,"callId":"${callId}","callerNumber":${CALLER},"workerId":"w`;
    await redis.set(stateKey(callId), corrupt, 'EX', 600);

    const {
      call,
      steps,
      logLines,
      rawLogLines,
      metricLines,
      redis: callRedis,
    } = await attempt(callId, {
      transferTarget: TARGET,
      redact: true,
    });

    expect(call).toBeUndefined();
    expect(steps).toEqual([`transfer to ${TARGET}`, 'release', 'shut down: call setup failed (transferred)']);
    await until(() => callRedis.status === 'end');
    expectCountedOnce(metricLines, callId);
    const line = failureLine(logLines);
    expect(line).toMatchObject({ callId, handOver: 'transfer', err: { type: 'SyntaxError' } });
    // PII_REDACTION: the error is logged masked, and nothing else on the line names the caller.
    expect(line.err.message).toMatch(/\[PHONE\].* is not valid JSON/);
    expect(rawLogLines.join('\n')).not.toContain(CALLER_DIGITS);
    expect(await redis.get(stateKey(callId))).toBe(corrupt);
  });

  it("transfers the caller when a newer worker wrote the call's state, which survives byte for byte", async () => {
    const callId = 'setup-newer-schema';
    const sessions = new RedisSessionStore(redis, { ttlSeconds: 600 });
    await sessions.start(newCall(callId, 'worker-newer'));
    // What a worker one schema version ahead stores: its version, and a field this one does not know.
    const current = JSON.parse((await redis.get(stateKey(callId)))!);
    const newer = JSON.stringify({ ...current, schemaVersion: SCHEMA_VERSION + 1, callerLocale: 'en-GB' });
    await redis.set(stateKey(callId), newer, 'EX', 600);

    const {
      call,
      steps,
      logLines,
      metricLines,
      redis: callRedis,
    } = await attempt(callId, {
      transferTarget: TARGET,
    });

    expect(call).toBeUndefined();
    expect(steps).toEqual([`transfer to ${TARGET}`, 'release', 'shut down: call setup failed (transferred)']);
    await until(() => callRedis.status === 'end');
    expectCountedOnce(metricLines, callId);
    const line = failureLine(logLines);
    expect(line).toMatchObject({ callId, handOver: 'transfer', err: { type: 'ZodError' } });
    expect(line.err.message).toContain('schemaVersion');
    expect(await redis.get(stateKey(callId))).toBe(newer);
    expect(await redis.ttl(stateKey(callId))).toBeGreaterThan(500);
  });

  it('hangs up on the caller when there is no one to transfer to', async () => {
    const callId = 'setup-no-target';
    await redis.set(stateKey(callId), '{"schemaVersion":', 'EX', 600);

    const { call, steps, logLines, metricLines } = await attempt(callId);

    expect(call).toBeUndefined();
    expect(steps).toEqual(['remove the caller', 'release', 'shut down: call setup failed (hung_up)']);
    expectCountedOnce(metricLines, callId);
    expect(failureLine(logLines)).toMatchObject({ callId, handOver: 'hang_up' });
    expect(await redis.get(stateKey(callId))).toBe('{"schemaVersion":');
  });

  it('hangs up on the caller when the transfer does not complete in time', async () => {
    const callId = 'setup-transfer-hangs';
    await redis.set(stateKey(callId), '{"callId":', 'EX', 600);

    const { steps, logLines } = await attempt(callId, { transferTarget: TARGET, transferHangsMs: 50 });

    expect(steps).toEqual([
      `transfer to ${TARGET}`,
      'remove the caller',
      'release',
      'shut down: call setup failed (hung_up)',
    ]);
    expect(
      logLines.find((line) => line.msg === 'caller not transferred after a failed call setup; hanging up'),
    ).toMatchObject({ err: { message: 'transfer not done after 50 ms' } });
  });

  it('hangs up on the caller when the transfer fails, logging that too (masked)', async () => {
    const callId = 'setup-transfer-fails';
    const corrupt = '{"callId":';
    await redis.set(stateKey(callId), corrupt, 'EX', 600);

    const { steps, logLines, rawLogLines, metricLines } = await attempt(callId, {
      transferTarget: TARGET,
      transferFails: true,
      redact: true,
    });

    expect(steps).toEqual([
      `transfer to ${TARGET}`,
      'remove the caller',
      'release',
      'shut down: call setup failed (hung_up)',
    ]);
    expectCountedOnce(metricLines, callId);
    failureLine(logLines);
    const notTransferred = logLines.filter(
      (line) => line.msg === 'caller not transferred after a failed call setup; hanging up',
    );
    expect(notTransferred).toHaveLength(1);
    expect(notTransferred[0]).toMatchObject({
      level: 50,
      callId,
      err: { message: expect.stringContaining('sip_[PHONE]') },
    });
    expect(rawLogLines.join('\n')).not.toContain(CALLER_DIGITS);
    expect(await redis.get(stateKey(callId))).toBe(corrupt);
  });

  it('hands the caller over when Redis cannot be reached, and closes the connection', async () => {
    const callId = 'setup-redis-down';
    const unreachable = new Redis({ host: '127.0.0.1', port: await closedPort(), maxRetriesPerRequest: 1 });
    unreachable.on('error', () => undefined); // refused on every reconnect: the command fails after its retry
    let reconnects = 0;
    unreachable.on('reconnecting', () => reconnects++);

    const { call, steps, logLines, metricLines } = await attempt(callId, {
      transferTarget: TARGET,
      redis: unreachable,
    });

    expect(call).toBeUndefined();
    expect(steps).toEqual([`transfer to ${TARGET}`, 'release', 'shut down: call setup failed (transferred)']);
    // Closed: it tries no more (left open, it would retry every 2 s at most, forever).
    const reconnectsWhenReleased = reconnects;
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    expect(reconnects).toBe(reconnectsWhenReleased);
    expectCountedOnce(metricLines, callId);
    expect(failureLine(logLines).err.message).toContain('max retries per request');
  });

  it('ends a call prepared but not started as an error in its records, after handing the caller over', async () => {
    const callId = 'setup-session-fails';
    const startedAt = new Date();
    let prepared: OpenCall | undefined;

    const { call, steps, metricLines } = await attempt(callId, {
      transferTarget: TARGET,
      setup: async (connection) => {
        prepared = await openCall({
          env: backends.env(),
          callId,
          callerNumber: CALLER,
          startedAt,
          vad: backends.vad,
          redis: connection,
        });
        // Stands for the session failing to start: the call was prepared, nothing was said.
        throw new Error('the session did not start');
      },
      release: async () => {
        await prepared?.intake.session.close();
        await prepared?.line.close();
        await prepared?.intake.finish('error');
      },
    });

    expect(call).toBeUndefined();
    expect(steps).toEqual([`transfer to ${TARGET}`, 'release', 'shut down: call setup failed (transferred)']);
    expectCountedOnce(metricLines, callId);
    const transcript = transcriptSchema.parse(
      JSON.parse(store.objects.get(`transcripts/${transcriptKey(callId, startedAt)}`) ?? 'null'),
    );
    expect(transcript.endReason).toBe('error');
    // The state was this worker's own (it started the call): it ends like any call's.
    const state = sessionStateSchema.parse(JSON.parse((await redis.get(stateKey(callId)))!));
    expect(state.status).toBe('ended');
  });

  describe('a call that can be set up', () => {
    const opened: OpenCall[] = [];
    afterAll(async () => {
      for (const call of opened) await call.close();
    });

    it('goes ahead for a new call and for one whose state a worker of this version stored', async () => {
      const resumedId = 'setup-good-record';
      await new RedisSessionStore(redis, { ttlSeconds: 600 }).start(newCall(resumedId));

      for (const [callId, resumed] of [
        ['setup-new-call', false],
        [resumedId, true],
      ] as const) {
        const {
          call,
          steps,
          logLines,
          metricLines,
          redis: callRedis,
        } = await attempt(callId, {
          transferTarget: TARGET,
        });
        expect(call, callId).toBeDefined();
        opened.push(call!);
        expect(call!.intake.resumed).toBe(resumed);
        expect(steps).toEqual([]);
        expect(callRedis.status).toBe('ready');
        expect(setupFailures(metricLines)).toEqual([]);
        expect(logLines).toEqual([]);
        const state = sessionStateSchema.parse(JSON.parse((await redis.get(stateKey(callId)))!));
        expect(state).toMatchObject({ status: 'active', workerId: 'worker-local', claimEpoch: resumed ? 1 : 0 });
      }
    });
  });
});
