import {
  type AudioStream,
  BadRequestException,
  InternalFailureException,
  StartStreamTranscriptionCommand,
  type StartStreamTranscriptionCommandInput,
  TranscribeStreamingClient,
  type TranscriptResultStream,
} from '@aws-sdk/client-transcribe-streaming';
import { APIError, initializeLogger, stt } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  TranscribeSTT,
  type TranscribeSTTOptions,
  transcribeRequest,
  UNHEARD_UTTERANCE,
} from '../../src/plugins/aws/stt.js';

initializeLogger({ pretty: false, level: 'silent' });
const transcribe = mockClient(TranscribeStreamingClient);
const noRetry = { maxRetry: 0, retryIntervalMs: 0, timeoutMs: 10_000 };
const SAMPLES_PER_FRAME = 800; // 50 ms at 16 kHz = one AudioEvent with the default chunking

/** A 50 ms frame whose samples all carry `index`, so the fake service can tell frames apart. */
function frame(index: number): AudioFrame {
  return new AudioFrame(new Int16Array(SAMPLES_PER_FRAME).fill(index), 16000, 1, SAMPLES_PER_FRAME);
}

function frameIndex(event: AudioStream): number {
  const chunk = event.AudioEvent!.AudioChunk!;
  return new Int16Array(chunk.buffer, chunk.byteOffset, chunk.byteLength / 2)[0];
}

function transcriptEvent(text: string, partial: boolean, start: number, end: number): TranscriptResultStream {
  return {
    TranscriptEvent: {
      Transcript: {
        Results: [
          {
            ResultId: `r-${text}`,
            IsPartial: partial,
            StartTime: start,
            EndTime: end,
            Alternatives: [
              {
                Transcript: text,
                Items: [
                  {
                    Content: text,
                    Type: 'pronunciation',
                    Confidence: 0.9,
                    Stable: !partial,
                    StartTime: start,
                    EndTime: end,
                  },
                ],
              },
            ],
          },
        ],
      },
    },
  };
}

type FakeSession = (audio: AsyncIterable<AudioStream>, sessionIndex: number) => AsyncGenerator<TranscriptResultStream>;

/** Each StartStreamTranscription call is served by the next fake session, which reads the real AudioStream. */
function serveSessions(...sessions: FakeSession[]) {
  let calls = 0;
  transcribe.on(StartStreamTranscriptionCommand).callsFake(async (input: StartStreamTranscriptionCommandInput) => {
    const index = calls++;
    const session = sessions[Math.min(index, sessions.length - 1)];
    return { SessionId: `session-${index}`, TranscriptResultStream: session(input.AudioStream!, index), $metadata: {} };
  });
}

/** Transcribes every frame it receives as one final "w<index>" until the audio ends. */
const transcribeEveryFrame: FakeSession = async function* (audio) {
  for await (const event of audio) {
    const index = frameIndex(event);
    yield transcriptEvent(`w${index}`, true, 0, 0.05);
    yield transcriptEvent(`w${index}`, false, 0, 0.05);
  }
};

function newSTT(opts: Partial<TranscribeSTTOptions> = {}) {
  return new TranscribeSTT({ client: new TranscribeStreamingClient({ region: 'us-east-1' }), ...opts });
}

async function collect(stream: stt.SpeechStream): Promise<stt.SpeechEvent[]> {
  const events: stt.SpeechEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

function finals(events: stt.SpeechEvent[]): string[] {
  return events.filter((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT).map((e) => e.alternatives![0].text);
}

beforeEach(() => transcribe.reset());

describe('TranscribeSTT', () => {
  it('streams interim and final transcripts with speech boundaries and usage', async () => {
    serveSessions(transcribeEveryFrame);
    const stream = newSTT().stream({ connOptions: noRetry });
    const done = collect(stream);
    for (let i = 0; i < 3; i++) stream.pushFrame(frame(i));
    stream.endInput();
    const events = await done;

    expect(finals(events)).toEqual(['w0', 'w1', 'w2']);
    const types = events
      .filter((e) => e.type !== stt.SpeechEventType.RECOGNITION_USAGE)
      .slice(0, 4)
      .map((e) => e.type);
    expect(types).toEqual([
      stt.SpeechEventType.START_OF_SPEECH,
      stt.SpeechEventType.INTERIM_TRANSCRIPT,
      stt.SpeechEventType.FINAL_TRANSCRIPT,
      stt.SpeechEventType.END_OF_SPEECH,
    ]);
    const final = events.find((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT)!;
    expect(final.alternatives![0]).toMatchObject({ language: 'en-US', confidence: 0.9 });
    expect(final.requestId).toBe('session-0');
    const usage = events.filter((e) => e.type === stt.SpeechEventType.RECOGNITION_USAGE);
    expect(usage.reduce((sum, e) => sum + e.recognitionUsage!.audioDuration, 0)).toBeCloseTo(0.15, 5);
  });

  it('leaves no abort listener behind per chunk while waiting for audio (a call-long stream)', async () => {
    serveSessions(transcribeEveryFrame);
    const warnings: Error[] = [];
    const onWarning = (warning: Error) => warnings.push(warning);
    process.on('warning', onWarning);
    try {
      const stream = newSTT().stream({ connOptions: noRetry });
      const done = collect(stream);
      // Frames arrive one at a time, as in a call: the stream waits on its backlog before each one.
      for (let i = 0; i < 30; i++) {
        stream.pushFrame(frame(i));
        await new Promise((resolve) => setTimeout(resolve, 2));
      }
      stream.endInput();
      expect(finals(await done)).toHaveLength(30);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((warning) => warning.name === 'MaxListenersExceededWarning')).toEqual([]);
  });

  it('emits stt_metrics from RECOGNITION_USAGE every interval of audio', async () => {
    serveSessions(transcribeEveryFrame);
    const plugin = newSTT({ usageIntervalSeconds: 0.1 });
    const metrics: number[] = [];
    plugin.on('metrics_collected', (m) => metrics.push(m.audioDurationMs));
    const stream = plugin.stream({ connOptions: noRetry });
    const done = collect(stream);
    for (let i = 0; i < 5; i++) stream.pushFrame(frame(i));
    stream.endInput();
    await done;
    expect(metrics).toEqual([100, 100, 50]);
  });

  it('reconnects after the idle timeout and transcribes the audio that arrived meanwhile, once', async () => {
    let firstSessionEnded!: () => void;
    const firstEnded = new Promise<void>((resolve) => (firstSessionEnded = resolve));
    serveSessions(async function* (audio) {
      let received = 0;
      for await (const event of audio) {
        yield transcriptEvent(`w${frameIndex(event)}`, false, received * 0.05, (received + 1) * 0.05);
        if (++received === 3) break;
      }
      firstSessionEnded();
      throw new BadRequestException({
        message: 'Your request timed out because no new audio was received for 15 seconds.',
        $metadata: {},
      });
    }, transcribeEveryFrame);

    const stream = newSTT().stream({ connOptions: noRetry });
    const done = collect(stream);
    for (let i = 0; i < 3; i++) stream.pushFrame(frame(i));
    await firstEnded;
    // The gap: the first stream is gone, the second not yet open.
    for (let i = 3; i < 6; i++) stream.pushFrame(frame(i));
    stream.endInput();
    const events = await done;

    expect(finals(events)).toEqual(['w0', 'w1', 'w2', 'w3', 'w4', 'w5']);
    expect(stream.sessionsStarted).toBe(2);
    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(2);
    // Times keep increasing across the reconnect (the second session's clock restarts at 0).
    const ends = events
      .filter((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT)
      .map((e) => e.alternatives![0].endTime);
    expect(ends[3]).toBeGreaterThan(ends[2]);
  });

  it('keeps the unfinished utterance of a dropped stream and carries on in a new one', async () => {
    serveSessions(async function* (audio) {
      for await (const event of audio) {
        yield transcriptEvent(`partial${frameIndex(event)}`, true, 0, 0.05);
        break;
      }
      throw new InternalFailureException({ message: 'internal failure', $metadata: {} });
    }, transcribeEveryFrame);

    const stream = newSTT({ reconnectBackoff: { baseDelayMs: 1, maxDelayMs: 1 } }).stream({ connOptions: noRetry });
    const done = collect(stream);
    stream.pushFrame(frame(0));
    stream.pushFrame(frame(1));
    stream.pushFrame(frame(2));
    stream.endInput();
    const events = await done;

    expect(finals(events)).toEqual(['partial0', 'w1', 'w2']);
    const ends = events.filter((e) => e.type === stt.SpeechEventType.END_OF_SPEECH);
    expect(ends).toHaveLength(3);
  });

  it('with pii redact, never finalises the unredacted partial of a dropped stream: says the words were lost', async () => {
    const spoken = 'my card is 4111 1111 1111 1111 and my name is Jane Doe';
    serveSessions(async function* (audio) {
      for await (const _ of audio) {
        // Transcribe redacts only complete segments: a partial holds the words as spoken.
        yield transcriptEvent(spoken, true, 0.5, 2.5);
        break;
      }
      throw new InternalFailureException({ message: 'internal failure', $metadata: {} });
    }, transcribeEveryFrame);

    const plugin = newSTT({ pii: 'redact', reconnectBackoff: { baseDelayMs: 1, maxDelayMs: 1 } });
    const stream = plugin.stream({ connOptions: noRetry });
    stream.startTimeOffset = 2;
    const done = collect(stream);
    stream.pushFrame(frame(0));
    stream.pushFrame(frame(1));
    stream.endInput();
    const events = await done;

    expect(finals(events)).toEqual([UNHEARD_UTTERANCE, 'w1']);
    const withheld = events.find((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT)!.alternatives![0];
    // Nothing of the partial's words travels on, and a recording silences the whole utterance.
    expect(withheld.words ?? []).toEqual([]);
    expect(withheld.metadata).toEqual({ unheard: true, piiAudioSpans: [{ start: 0.5, end: 2.5 }] });
    expect(JSON.stringify(events.filter((e) => e.type === stt.SpeechEventType.FINAL_TRANSCRIPT))).not.toContain('4111');
    expect(stream.partialsWithheld).toBe(1);
  });

  it('fails with a non-retryable APIError on a bad request', async () => {
    // biome-ignore lint/correctness/useYield: a session that fails before its first event
    serveSessions(async function* () {
      throw new BadRequestException({ message: 'Vocabulary "med" not found', $metadata: { httpStatusCode: 400 } });
    });
    const plugin = newSTT();
    const errors: APIError[] = [];
    plugin.on('error', (e) => errors.push(e.error as APIError));
    const stream = plugin.stream({ connOptions: { ...noRetry, maxRetry: 2 } });
    const done = collect(stream);
    stream.pushFrame(frame(0));
    await done;

    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(1);
    expect(errors[0]).toBeInstanceOf(APIError);
    expect(errors[0].retryable).toBe(false);
    expect(errors[0].message).toContain('Vocabulary "med" not found');
  });

  it('gives up after maxReconnectAttempts drops in a row', async () => {
    // biome-ignore lint/correctness/useYield: a session that fails before its first event
    serveSessions(async function* () {
      throw new InternalFailureException({ message: 'down', $metadata: {} });
    });
    const plugin = newSTT({ maxReconnectAttempts: 2, reconnectBackoff: { baseDelayMs: 1, maxDelayMs: 1 } });
    const errors: APIError[] = [];
    plugin.on('error', (e) => errors.push(e.error as APIError));
    const stream = plugin.stream({ connOptions: noRetry });
    const done = collect(stream);
    stream.pushFrame(frame(0));
    await done;
    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(3);
    // Final: the plugin already reconnected as often as it may; the framework must not open more.
    expect(errors[0].retryable).toBe(false);
  });

  it('reconnects when Transcribe closes the stream early without an error', async () => {
    serveSessions(async function* (audio) {
      for await (const event of audio) {
        yield transcriptEvent(`w${frameIndex(event)}`, false, 0, 0.05);
        return;
      }
    }, transcribeEveryFrame);
    const stream = newSTT({ reconnectBackoff: { baseDelayMs: 1, maxDelayMs: 1 } }).stream({ connOptions: noRetry });
    const done = collect(stream);
    for (let i = 0; i < 3; i++) stream.pushFrame(frame(i));
    stream.endInput();
    expect(finals(await done)).toEqual(['w0', 'w1', 'w2']);
    expect(stream.sessionsStarted).toBe(2);
  });

  it('opens no stream until audio arrives', async () => {
    serveSessions(transcribeEveryFrame);
    const stream = newSTT().stream({ connOptions: noRetry });
    const done = collect(stream);
    await new Promise((r) => setImmediate(r));
    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(0);
    stream.endInput();
    await done;
    expect(transcribe.commandCalls(StartStreamTranscriptionCommand)).toHaveLength(0);
  });

  it('sends language, stabilisation, vocabulary and PII settings', async () => {
    serveSessions(transcribeEveryFrame);
    const stream = newSTT({
      language: 'es-US',
      partialResultsStability: 'high',
      vocabularyName: 'claims-terms',
      vocabularyFilterName: 'profanity',
      pii: 'redact',
      piiEntityTypes: ['SSN', 'CREDIT_DEBIT_NUMBER'],
    }).stream({ connOptions: noRetry });
    const done = collect(stream);
    stream.pushFrame(frame(0));
    stream.endInput();
    await done;

    const input = transcribe.commandCalls(StartStreamTranscriptionCommand)[0].args[0].input;
    expect(input).toMatchObject({
      LanguageCode: 'es-US',
      MediaEncoding: 'pcm',
      MediaSampleRateHertz: 16000,
      EnablePartialResultsStabilization: true,
      PartialResultsStability: 'high',
      VocabularyName: 'claims-terms',
      VocabularyFilterName: 'profanity',
      VocabularyFilterMethod: 'mask',
      ContentRedactionType: 'PII',
      PiiEntityTypes: 'SSN,CREDIT_DEBIT_NUMBER',
    });
    expect(input.ContentIdentificationType).toBeUndefined();
  });

  it('maps identify mode and "off" stabilisation', () => {
    const request = transcribeRequest({ ...newSTT().options, pii: 'identify', partialResultsStability: 'off' });
    expect(request.ContentIdentificationType).toBe('PII');
    expect(request.ContentRedactionType).toBeUndefined();
    expect(request.PiiEntityTypes).toBeUndefined();
    expect(request.EnablePartialResultsStabilization).toBeUndefined();
    expect(request.PartialResultsStability).toBeUndefined();
  });

  it('rejects bad options naming the key', () => {
    expect(() => newSTT({ language: 'english' })).toThrow(/options\.language/);
    expect(() => newSTT({ piiEntityTypes: ['SSN'] })).toThrow(/options\.piiEntityTypes/);
    expect(() => newSTT({ sampleRate: 12345 })).toThrow(/options\.sampleRate/);
  });
});
