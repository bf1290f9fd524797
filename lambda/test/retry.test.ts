import { Readable } from 'node:stream';
import {
  BedrockRuntimeClient,
  ConverseCommand,
  ThrottlingException,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime';
import { EventBridgeClient, PutEventsCommand } from '@aws-sdk/client-eventbridge';
import { GetObjectCommand, PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { sdkStreamMixin } from '@smithy/util-stream';
import { transcriptKey, transcriptSchema } from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { Enricher } from '../src/enrichment/enrich';
import { ServiceBusyError, withBackoff } from '../src/enrichment/retry';

const throttled = () => new ThrottlingException({ message: 'Too many requests', $metadata: {} });

/** Records every wait instead of waiting, so backoff is observable and the test takes no wall time. */
function recordingSleep() {
  const delays: number[] = [];
  return { delays, sleep: async (ms: number) => void delays.push(ms) };
}

describe('withBackoff', () => {
  it('waits exponentially longer between throttled attempts (full jitter scales the whole window)', async () => {
    const { delays, sleep } = recordingSleep();
    let calls = 0;
    const result = await withBackoff(
      async () => {
        calls += 1;
        if (calls < 4) throw throttled();
        return 'done';
      },
      { maxAttempts: 5, baseDelayMs: 100, sleep, random: () => 1 },
    );
    expect(result).toBe('done');
    expect(calls).toBe(4);
    expect(delays).toEqual([100, 200, 400]);

    const half = recordingSleep();
    await expect(
      withBackoff(() => Promise.reject(throttled()), {
        maxAttempts: 3,
        baseDelayMs: 100,
        sleep: half.sleep,
        random: () => 0.5,
      }),
    ).rejects.toBeInstanceOf(ServiceBusyError);
    expect(half.delays).toEqual([50, 100]);
  });

  it('gives up after the last attempt with an error that keeps the service error as its cause', async () => {
    const { delays, sleep } = recordingSleep();
    const last = throttled();
    const error = await withBackoff(() => Promise.reject(last), {
      maxAttempts: 3,
      baseDelayMs: 10,
      sleep,
      random: () => 1,
    }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(ServiceBusyError);
    expect((error as Error).message).toBe('still busy after 3 attempts: ThrottlingException: Too many requests');
    expect((error as Error).cause).toBe(last);
    expect(delays).toHaveLength(2);
  });

  it('does not retry a request the service rejected as invalid', async () => {
    const { delays, sleep } = recordingSleep();
    let calls = 0;
    const invalid = new ValidationException({ message: 'bad model id', $metadata: {} });
    await expect(
      withBackoff(
        async () => {
          calls += 1;
          throw invalid;
        },
        { maxAttempts: 5, baseDelayMs: 10, sleep },
      ),
    ).rejects.toBe(invalid);
    expect(calls).toBe(1);
    expect(delays).toEqual([]);
  });
});

describe('Enricher backoff around Bedrock', () => {
  const s3 = mockClient(S3Client);
  const bedrock = mockClient(BedrockRuntimeClient);
  const eventBridge = mockClient(EventBridgeClient);

  const transcript = transcriptSchema.parse({
    schemaVersion: 1,
    callId: 'call-backoff',
    roomName: 'intake-call-backoff',
    callerNumber: '+14155550123',
    startedAt: '2026-11-24T15:00:00.000Z',
    endedAt: '2026-11-24T15:00:30.000Z',
    endReason: 'caller_hangup',
    turns: [
      {
        seq: 0,
        speaker: 'agent',
        text: 'How can I help?',
        startedAt: '2026-11-24T15:00:01.000Z',
        endedAt: '2026-11-24T15:00:02.000Z',
      },
      {
        seq: 1,
        speaker: 'caller',
        text: 'My roof leaks.',
        startedAt: '2026-11-24T15:00:03.000Z',
        endedAt: '2026-11-24T15:00:05.000Z',
      },
    ],
  });
  const key = transcriptKey(transcript.callId, new Date(transcript.startedAt));

  beforeEach(() => {
    s3.reset();
    bedrock.reset();
    eventBridge.reset();
    const body = JSON.stringify(transcript);
    s3.on(GetObjectCommand).callsFake(() => ({
      Body: sdkStreamMixin(Readable.from([Buffer.from(body)])),
      ContentLength: Buffer.byteLength(body),
    }));
    s3.on(PutObjectCommand).resolves({});
    eventBridge.on(PutEventsCommand).resolves({ FailedEntryCount: 0, Entries: [{ EventId: 'e-1' }] });
  });

  function enricher(maxAttempts: number) {
    const { delays, sleep } = recordingSleep();
    const retries: number[] = [];
    const instance = new Enricher({
      s3: new S3Client({ region: 'us-east-1' }),
      bedrock: new BedrockRuntimeClient({ region: 'us-east-1' }),
      eventBridge: new EventBridgeClient({ region: 'us-east-1' }),
      modelId: 'anthropic.claude-haiku-4-5-20251001-v1:0',
      eventBusName: 'intake-bus',
      maxTranscriptBytes: 100_000,
      backoff: { maxAttempts, baseDelayMs: 250, sleep, random: () => 1, onRetry: (attempt) => retries.push(attempt) },
    });
    return { instance, delays, retries };
  }

  it('backs off between throttled model calls, then enriches', async () => {
    bedrock
      .on(ConverseCommand)
      .rejectsOnce(throttled())
      .rejectsOnce(throttled())
      .resolves({
        $metadata: {},
        stopReason: 'tool_use',
        output: {
          message: {
            role: 'assistant',
            content: [
              {
                toolUse: {
                  toolUseId: 't-1',
                  name: 'record_call_insights',
                  input: {
                    summary: 'Roof leak reported.',
                    intent: 'report roof leak',
                    intakeFields: [],
                    urgency: 'normal',
                    sentiment: 'neutral',
                    followUpActions: [],
                  },
                },
              },
            ],
          },
        },
      });
    const { instance, delays, retries } = enricher(5);

    const outcome = await instance.enrich({ bucket: 'transcripts-bucket', key, etag: 'etag-1' });

    expect(outcome).toMatchObject({ status: 'enriched', callId: 'call-backoff' });
    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(3);
    expect(delays).toEqual([250, 500]);
    expect(retries).toEqual([1, 2]);
  });

  it('throws a retryable error after the last throttled attempt and writes nothing', async () => {
    bedrock.on(ConverseCommand).rejects(throttled());
    const { instance, delays } = enricher(4);

    await expect(instance.enrich({ bucket: 'transcripts-bucket', key, etag: 'etag-1' })).rejects.toBeInstanceOf(
      ServiceBusyError,
    );

    expect(bedrock.commandCalls(ConverseCommand)).toHaveLength(4);
    expect(delays).toEqual([250, 500, 1_000]);
    expect(s3.commandCalls(PutObjectCommand)).toHaveLength(0);
    expect(eventBridge.commandCalls(PutEventsCommand)).toHaveLength(0);
  });
});
