import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { S3Client } from '@aws-sdk/client-s3';
import { initializeLogger } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EarpieceOutput } from '../../agent/test/support/audio-io';
import { localAgentEnv, openCall } from '../../agent/test/support/call-harness';
import { inMemoryS3 } from '../../agent/test/support/fake-aws';
import { startRedis } from '../../agent/test/support/redis-server';
import { synthesizeSpeech } from '../../agent/test/support/speech';
import { type RunningServer, startServer } from '../../mcp-server/test/support/server-process';
import { AwsFake, DEFAULT_SCENARIO, finalWords, type SessionRecord } from '../src/aws-fake';

/**
 * A whole intake call in one process, wired as the worker wires it (`prepareIntakeCall`), with the AWS voice services
 * reached over the wire through AWS_ENDPOINT_URL_* — the production default Polly path (generative engine,
 * StartSpeechSynthesisStream) included — and the fake's built-in intake conversation driving a real MCP server.
 */

initializeLogger({ pretty: false, level: 'silent' });

const AWS_ENV = [
  'AWS_ENDPOINT_URL_TRANSCRIBE_STREAMING',
  'AWS_ENDPOINT_URL_BEDROCK_RUNTIME',
  'AWS_ENDPOINT_URL_POLLY',
  'AWS_REGION',
  'AWS_ACCESS_KEY_ID',
  'AWS_SECRET_ACCESS_KEY',
];

describe('an intake call through the AWS fake, in process', () => {
  const saved = Object.fromEntries(AWS_ENV.map((name) => [name, process.env[name]]));
  const dataDir = mkdtempSync(join(tmpdir(), 'aws-fake-call-'));
  const s3 = mockClient(S3Client);
  const fake = new AwsFake();
  let mcp: RunningServer | undefined;
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let earpiece: EarpieceOutput;
  let hangUpReason: string;
  let records: SessionRecord[];

  const replies = () => fake.sessions.flatMap((record) => record.bedrock.requests.map((request) => request.reply));

  beforeAll(async () => {
    await fake.start();
    Object.assign(process.env, fake.env, {
      AWS_REGION: 'us-east-1',
      AWS_ACCESS_KEY_ID: 'AKIDCALL',
      AWS_SECRET_ACCESS_KEY: 'call-secret',
    });
    inMemoryS3(s3);
    // One after the other: if the second fails to start, the first is already assigned and afterAll stops it.
    mcp = await startServer({ DATA_DIR: dataDir });
    redis = await startRedis();
    const call = await openCall({
      // The production default: the generative engine, so Polly's bidirectional stream carries every reply.
      env: localAgentEnv(redis.port, mcp.url, { POLLY_ENGINE: 'generative' }),
      callId: 'wire-call-1',
      callerNumber: '+14155550199',
      vad: await silero.VAD.load({ minSilenceDuration: 0.45 }),
      redis: redis.client(),
    });
    earpiece = call.earpiece;
    try {
      await call.intake.greet();
      // The caller's words are the fake's script; the audio only has to be speech for the VAD and the fake to hear.
      await call.line.say(synthesizeSpeech(finalWords(DEFAULT_SCENARIO.callerSays[0])));
      await fake.until('the case number to be spoken', () =>
        replies().some((reply) => /recorded as case/.test(reply.text ?? '')),
      );
      call.intake.keyPressed('5');
      await fake.until('the key press to be answered', () =>
        replies().some((reply) => /You pressed 5/.test(reply.text ?? '')),
      );
      await call.line.say(synthesizeSpeech(finalWords(DEFAULT_SCENARIO.callerSays[1])));
      hangUpReason = await call.hungUp;
    } finally {
      await call.close();
    }
    records = fake.sessions;
  }, 150_000);

  afterAll(async () => {
    await fake.stop();
    await mcp?.stop();
    await redis?.stop();
    rmSync(dataDir, { recursive: true, force: true });
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
  });

  it('hears both caller utterances in the audio and transcribes them as the script says', () => {
    const heard = records.flatMap((record) => record.transcribe.utterances.map((utterance) => utterance.text));
    expect(heard).toEqual(DEFAULT_SCENARIO.callerSays);
    expect(records.reduce((sum, record) => sum + record.transcribe.audioSeconds, 0)).toBeGreaterThan(3);
  });

  it('runs the intake conversation through the real MCP tools and hangs up with end_call', () => {
    const tools = replies()
      .map((reply) => reply.tool)
      .filter(Boolean);
    expect(tools).toEqual(['lookup_caller', 'save_intake_progress', 'submit_intake', 'end_call']);
    const toolResults = records.flatMap((record) => record.bedrock.requests.flatMap((request) => request.toolResults));
    expect(toolResults).toEqual(expect.arrayContaining(['lookup_caller', 'save_intake_progress', 'submit_intake']));
    expect(replies().find((reply) => /recorded as case/.test(reply.text ?? ''))!.text).toMatch(/case [A-Z0-9-]{6,}/);
    expect(hangUpReason).toBe('the caller said goodbye');
  });

  it('speaks every reply over StartSpeechSynthesisStream with real audio reaching the earpiece', () => {
    const spoken = records.flatMap((record) => record.polly.texts).join(' ');
    for (const text of ['you have reached the intake line', 'recorded as case', 'You pressed 5', 'Goodbye'])
      expect(spoken).toContain(text);
    expect(records.reduce((sum, record) => sum + record.polly.audioSeconds, 0)).toBeGreaterThan(5);
    expect(earpiece.segments.length).toBeGreaterThanOrEqual(4);
    expect(Math.max(...earpiece.segments.map((segment) => segment.peak))).toBeGreaterThan(3_000);
  });

  it('refused nothing and threw nothing', () => {
    expect(records.flatMap((record) => record.rejected)).toEqual([]);
    expect(records.flatMap((record) => record.exceptions)).toEqual([]);
  });
});
