import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import http2 from 'node:http2';
import { fileURLToPath } from 'node:url';
import {
  BedrockRuntimeClient,
  ThrottlingException as BedrockThrottling,
  ValidationException as BedrockValidation,
  ConverseCommand,
  ConverseStreamCommand,
  type ConverseStreamOutput,
  type Message,
} from '@aws-sdk/client-bedrock-runtime';
import {
  PollyClient,
  ThrottlingException as PollyThrottling,
  ValidationException as PollyValidation,
  type StartSpeechSynthesisStreamActionStream,
  StartSpeechSynthesisStreamCommand,
  SynthesizeSpeechCommand,
} from '@aws-sdk/client-polly';
import {
  type AudioStream,
  BadRequestException,
  LimitExceededException,
  type Result,
  StartStreamTranscriptionCommand,
  TranscribeStreamingClient,
} from '@aws-sdk/client-transcribe-streaming';
import { APIError, initializeLogger, llm, stt, tts } from '@livekit/agents';
import { AudioFrame } from '@livekit/rtc-node';
import { callInsightsSchema, type Transcript, transcriptSchema } from '@voice-intake/contracts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockLLM, PollyTTS, TranscribeSTT } from '../../agent/src/plugins/aws';
import { concatSamples, rms, SPEECH_RMS_LEVEL, speechEndMs, synthesizeSpeech } from '../../agent/test/support/speech';
import { requestInsights } from '../../lambda/src/enrichment/insights';
import { AwsFake, DEFAULT_SCENARIO, SESSION_HEADER } from '../src/aws-fake';
import { codec } from '../src/aws-fake/event-stream';

initializeLogger({ pretty: false, level: 'silent' });

const REGION = 'us-east-1';
const credentials = { accessKeyId: 'AKIDFAKE', secretAccessKey: 'fake-secret' };

let fake: AwsFake;
let url: string;
const clients: { destroy(): void }[] = [];

function client<T extends { destroy(): void }>(
  make: (config: { endpoint: string; region: string; credentials: typeof credentials; maxAttempts: number }) => T,
): T {
  const built = make({ endpoint: url, region: REGION, credentials, maxAttempts: 1 });
  clients.push(built);
  return built;
}

/** Tags every request of a client with a session key (for tests whose requests carry none of their own). */
function tagged<T extends { middlewareStack: { add: (...args: never[]) => void } }>(built: T, key: string): T {
  (built.middlewareStack as unknown as { add: (mw: unknown, opts: unknown) => void }).add(
    (next: (args: { request: { headers: Record<string, string> } }) => unknown) =>
      (args: { request: { headers: Record<string, string> } }) => {
        args.request.headers[SESSION_HEADER] = key;
        return next(args);
      },
    { step: 'build', name: 'fakeSessionKey' },
  );
  return built;
}

/** An Authorization header whose credential scope names `service` (the fake checks the scope, not the key). */
const signedFor = (service: string) =>
  `AWS4-HMAC-SHA256 Credential=AKID/20261130/us-east-1/${service}/aws4_request, SignedHeaders=host, Signature=00`;

const silence = (ms: number, rate = 16_000) => new Int16Array(Math.round((rate * ms) / 1000));

/** PCM as Transcribe's AudioStream, in 50 ms events (`paceMs` between them: 0 = as fast as the client sends). */
async function* audioEvents(samples: Int16Array, paceMs = 0, chunkMs = 50): AsyncGenerator<AudioStream> {
  const chunk = (16_000 * chunkMs) / 1000;
  for (let offset = 0; offset < samples.length; offset += chunk) {
    const piece = samples.slice(offset, offset + chunk);
    yield { AudioEvent: { AudioChunk: new Uint8Array(piece.buffer) } };
    if (paceMs > 0) await new Promise((resolve) => setTimeout(resolve, paceMs));
  }
}

/** espeak-ng + sox in the test itself: the reference the fake's Polly audio is measured against. */
function espeakPcmBytes(text: string, rate: number): number {
  const result = spawnSync(
    'sh',
    [
      '-c',
      `espeak-ng -v en-us -s 165 --stdout "$1" | sox -t wav - -r ${rate} -c 1 -b 16 -e signed-integer -t raw -`,
      'x',
      text,
    ],
    {
      maxBuffer: 64 * 1024 * 1024,
    },
  );
  expect(result.status).toBe(0);
  return result.stdout.length;
}

function speechRms(bytes: Uint8Array): number {
  return rms(
    new Int16Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength - (bytes.byteLength % 2))),
  );
}

async function transcribe(
  transcribeClient: TranscribeStreamingClient,
  samples: Int16Array,
  sessionId?: string,
  paceMs = 0,
) {
  const response = await transcribeClient.send(
    new StartStreamTranscriptionCommand({
      LanguageCode: 'en-US',
      MediaEncoding: 'pcm',
      MediaSampleRateHertz: 16_000,
      EnablePartialResultsStabilization: true,
      PartialResultsStability: 'medium',
      SessionId: sessionId,
      AudioStream: audioEvents(samples, paceMs),
    }),
  );
  const results: Result[] = [];
  let events = 0;
  for await (const event of response.TranscriptResultStream ?? []) {
    events += event.TranscriptEvent ? 1 : 0;
    results.push(...(event.TranscriptEvent?.Transcript?.Results ?? []));
  }
  return {
    response,
    events,
    results,
    finals: results.filter((result) => !result.IsPartial),
    partials: results.filter((result) => result.IsPartial),
  };
}

beforeAll(async () => {
  fake = new AwsFake({ transcribeIdleTimeoutMs: 3_000 });
  url = await fake.start();
});

afterAll(async () => {
  for (const built of clients) built.destroy();
  await fake?.stop();
});

describe('Transcribe streaming over the wire', () => {
  it('hears speech in the audio: partials with stable items, a final per utterance with word timings', async () => {
    const sessionId = randomUUID();
    fake.register(sessionId, { callerSays: ['Hello, I am Jane Doe.', 'Goodbye for now.'] });
    const first = synthesizeSpeech('Hello, I am Jane Doe.');
    const second = synthesizeSpeech('Goodbye for now.');
    const audio = concatSamples(silence(500), first, silence(1_000), second, silence(600));
    const { response, finals, partials } = await transcribe(
      client((c) => new TranscribeStreamingClient(c)),
      audio,
      sessionId,
    );

    expect(response.SessionId).toBe(sessionId);
    expect(response.MediaSampleRateHertz).toBe(16_000);
    expect(finals.map((result) => result.Alternatives?.[0].Transcript)).toEqual([
      'Hello, I am Jane Doe.',
      'Goodbye for now.',
    ]);
    // Where the speech is in the audio, to the 10 ms listening window.
    const firstEnd = 0.5 + speechEndMs(first) / 1000;
    expect(finals[0].StartTime!).toBeGreaterThanOrEqual(0.5);
    expect(finals[0].StartTime!).toBeLessThan(0.7);
    expect(finals[0].EndTime!).toBeCloseTo(firstEnd, 1);
    expect(Math.abs(finals[0].EndTime! - firstEnd)).toBeLessThanOrEqual(0.011);
    const secondStart = 0.5 + first.length / 16_000 + 1;
    expect(finals[1].StartTime!).toBeGreaterThanOrEqual(secondStart);
    expect(Math.abs(finals[1].EndTime! - (secondStart + speechEndMs(second) / 1000))).toBeLessThanOrEqual(0.011);
    const words = finals[0].Alternatives![0].Items!;
    expect(words.filter((item) => item.Type === 'pronunciation').map((item) => item.Content)).toEqual([
      'Hello',
      'I',
      'am',
      'Jane',
      'Doe',
    ]);
    for (const [index, item] of words.entries()) {
      expect(item.StartTime!).toBeGreaterThanOrEqual(finals[0].StartTime!);
      expect(item.EndTime!).toBeLessThanOrEqual(finals[0].EndTime! + 0.001);
      if (index > 0) expect(item.StartTime!).toBeGreaterThanOrEqual(words[index - 1].EndTime! - 0.001);
      expect(item.Stable).toBe(true);
    }
    // Partials grow a word at a time and mark the older words stable.
    expect(partials.length).toBeGreaterThanOrEqual(2);
    const longest = partials.filter((result) => result.ResultId === finals[0].ResultId).at(-1)!;
    const items = longest.Alternatives![0].Items!;
    expect(items.some((item) => item.Stable === true)).toBe(true);
    expect(items.at(-1)!.Stable).toBe(false);

    const record = fake.session(sessionId)!;
    expect(record.transcribe.audioSeconds).toBeCloseTo(audio.length / 16_000, 2);
    expect(record.transcribe.utterances.map((utterance) => utterance.text)).toEqual([
      'Hello, I am Jane Doe.',
      'Goodbye for now.',
    ]);
  });

  it('hears nothing in silence or line noise below the speech level', async () => {
    const sessionId = randomUUID();
    const hiss = new Int16Array(16_000 * 2).map(() => Math.round((Math.random() - 0.5) * SPEECH_RMS_LEVEL));
    const { results, events } = await transcribe(
      client((c) => new TranscribeStreamingClient(c)),
      concatSamples(silence(1_000), hiss),
      sessionId,
    );
    expect(results).toEqual([]);
    // Yet it answers, as the service does: a TranscriptEvent with no results every half second of audio.
    expect(events).toBe(6);
    expect(fake.session(sessionId)!.transcribe.emptyEvents).toBe(6);
    expect(fake.session(sessionId)!.transcribe.audioSeconds).toBeCloseTo(3, 2);
  });

  it('continues the script across the streams of one session and falls back to the default phrase', async () => {
    const sessionId = randomUUID();
    fake.register(sessionId, { callerSays: ['Only line.'], fallbackPhrase: 'Pardon?' });
    const transcribeClient = client((c) => new TranscribeStreamingClient(c));
    const speech = concatSamples(synthesizeSpeech('one two three'), silence(500));
    const first = await transcribe(transcribeClient, speech, sessionId);
    const second = await transcribe(transcribeClient, speech, sessionId);
    expect(first.finals.map((result) => result.Alternatives![0].Transcript)).toEqual(['Only line.']);
    expect(second.finals.map((result) => result.Alternatives![0].Transcript)).toEqual(['Pardon?']);
  });

  it('stabilises every word some time after the end of speech, before the final, revised where scripted', async () => {
    const sessionId = randomUUID();
    const revised = { final: 'I do not want to end the call yet.', stable: 'I want to end the call.' };
    fake.register(sessionId, { callerSays: ['Hello, I am Jane Doe.', revised] });
    const first = synthesizeSpeech('Hello, I am Jane Doe.');
    const second = synthesizeSpeech('I do not want to end the call yet.');
    const audio = concatSamples(silence(300), first, silence(1_000), second, silence(700));
    const transcribeClient = client((c) => new TranscribeStreamingClient(c));
    fake.setLatency({ transcribeStableAfterMs: 200 });
    let heard: Awaited<ReturnType<typeof transcribe>>;
    try {
      heard = await transcribe(transcribeClient, audio, sessionId);
    } finally {
      fake.setLatency({ transcribeStableAfterMs: null });
    }
    const { results, finals } = heard;
    expect(finals.map((result) => result.Alternatives![0].Transcript)).toEqual([
      'Hello, I am Jane Doe.',
      'I do not want to end the call yet.',
    ]);
    const allStable = (result: Result) => result.Alternatives![0].Items!.every((item) => item.Stable === true);
    for (const [index, final] of finals.entries()) {
      const ofUtterance = results.filter((result) => result.ResultId === final.ResultId);
      // Growing partials with their newest words unstable, then one partial stable throughout, then the final.
      expect(ofUtterance.at(-1)).toBe(final);
      const stable = ofUtterance.at(-2)!;
      expect(stable.IsPartial).toBe(true);
      expect(allStable(stable)).toBe(true);
      expect(ofUtterance.slice(0, -2).every((result) => result.IsPartial && !allStable(result))).toBe(true);
      expect(ofUtterance.length).toBeGreaterThan(2);
      // It covers the speech up to its end, as the final does.
      expect(stable.StartTime).toBe(final.StartTime);
      expect(stable.EndTime).toBe(final.EndTime);
      expect(stable.Alternatives![0].Transcript).toBe(index === 0 ? 'Hello, I am Jane Doe.' : revised.stable);
    }
    expect(fake.session(sessionId)!.transcribe.utterances.map(({ text, stable }) => ({ text, stable }))).toEqual([
      { text: 'Hello, I am Jane Doe.', stable: 'Hello, I am Jane Doe.' },
      { text: revised.final, stable: revised.stable },
    ]);
  });

  it('sends no all-stable partial unless one is set, nor without stabilisation asked for', async () => {
    const sessionId = randomUUID();
    fake.register(sessionId, { callerSays: ['Hello, I am Jane Doe.'] });
    const audio = concatSamples(silence(300), synthesizeSpeech('Hello, I am Jane Doe.'), silence(700));
    const unset = await transcribe(
      client((c) => new TranscribeStreamingClient(c)),
      audio,
      sessionId,
    );
    expect(unset.finals).toHaveLength(1);
    expect(unset.partials.length).toBeGreaterThan(1);
    for (const partial of unset.partials) expect(partial.Alternatives![0].Items!.at(-1)!.Stable).toBe(false);
    expect(fake.session(sessionId)!.transcribe.utterances[0].stable).toBeUndefined();

    fake.setLatency({ transcribeStableAfterMs: 100 });
    try {
      const response = await client((c) => new TranscribeStreamingClient(c)).send(
        new StartStreamTranscriptionCommand({
          LanguageCode: 'en-US',
          MediaEncoding: 'pcm',
          MediaSampleRateHertz: 16_000,
          AudioStream: audioEvents(audio),
        }),
      );
      const results: Result[] = [];
      for await (const event of response.TranscriptResultStream ?? [])
        results.push(...(event.TranscriptEvent?.Transcript?.Results ?? []));
      expect(results.filter((result) => !result.IsPartial)).toHaveLength(1);
      const items = results.flatMap((result) => result.Alternatives![0].Items!);
      expect(items.length).toBeGreaterThan(0);
      expect(items.every((item) => item.Stable === undefined)).toBe(true);
    } finally {
      fake.setLatency({ transcribeStableAfterMs: null });
    }
  });

  it('identifies PII in finals, and redacts it (partials too) when asked to, as Transcribe does', async () => {
    const line = 'Hi, this is Jane Doe, call me on 415 555 0142 or at jane.doe@example.com please.';
    const speech = concatSamples(synthesizeSpeech('one two three four five six seven'), silence(700));
    const transcribeClient = client((c) => new TranscribeStreamingClient(c));
    const heard = async (extra: Record<string, string>) => {
      const sessionId = randomUUID();
      fake.register(sessionId, { callerSays: [line] });
      const response = await transcribeClient.send(
        new StartStreamTranscriptionCommand({
          LanguageCode: 'en-US',
          MediaEncoding: 'pcm',
          MediaSampleRateHertz: 16_000,
          SessionId: sessionId,
          AudioStream: audioEvents(speech),
          ...extra,
        }),
      );
      const results: Result[] = [];
      for await (const event of response.TranscriptResultStream ?? [])
        results.push(...(event.TranscriptEvent?.Transcript?.Results ?? []));
      return results;
    };

    const identified = (await heard({ ContentIdentificationType: 'PII' })).filter((result) => !result.IsPartial)[0]
      .Alternatives![0];
    expect(identified.Transcript).toBe(line);
    expect(identified.Entities!.map((entity) => [entity.Type, entity.Content])).toEqual([
      ['NAME', 'Jane Doe'],
      ['PHONE', '415 555 0142'],
      ['EMAIL', 'jane.doe@example.com'],
    ]);
    const name = identified.Entities![0];
    const jane = identified.Items!.find((item) => item.Content === 'Jane')!;
    const doe = identified.Items!.find((item) => item.Content === 'Doe')!;
    expect([name.StartTime, name.EndTime]).toEqual([jane.StartTime, doe.EndTime]);

    const redacted = await heard({ ContentRedactionType: 'PII', PiiEntityTypes: 'PHONE,EMAIL' });
    const final = redacted.filter((result) => !result.IsPartial)[0].Alternatives![0];
    expect(final.Transcript).toBe('Hi, this is Jane Doe, call me on [PII] or at [PII] please.');
    expect(final.Entities!.map((entity) => [entity.Type, entity.Content])).toEqual([
      ['PHONE', '[PII]'],
      ['EMAIL', '[PII]'],
    ]);
    const everything = JSON.stringify(redacted);
    expect(everything).not.toContain('0142');
    expect(everything).not.toContain('example.com');

    await expect(heard({ ContentRedactionType: 'PII', ContentIdentificationType: 'PII' })).rejects.toBeInstanceOf(
      BadRequestException,
    );
    await expect(heard({ ContentRedactionType: 'PII', PiiEntityTypes: 'PHONE,GENOME' })).rejects.toThrow(
      /unknown GENOME/,
    );
  });

  it('refuses what it cannot hear with the modeled BadRequestException', async () => {
    const transcribeClient = client((c) => new TranscribeStreamingClient(c));
    const send = transcribeClient.send(
      new StartStreamTranscriptionCommand({
        LanguageCode: 'en-US',
        MediaEncoding: 'ogg-opus',
        MediaSampleRateHertz: 16_000,
        AudioStream: audioEvents(silence(100)),
      }),
    );
    await expect(send).rejects.toBeInstanceOf(BadRequestException);
    await expect(send).rejects.toThrow(/pcm only/);
  });

  it('closes a stream that gets no audio, as the service does, with the message the agent reconnects on', async () => {
    const transcribeClient = client((c) => new TranscribeStreamingClient(c));
    async function* stalled(): AsyncGenerator<AudioStream> {
      yield { AudioEvent: { AudioChunk: new Uint8Array(silence(50).buffer) } };
      await new Promise((resolve) => setTimeout(resolve, 5_000));
    }
    // The exception may arrive as the first event (send rejects) or later (iteration throws): both as in production.
    const drained = (async () => {
      const response = await transcribeClient.send(
        new StartStreamTranscriptionCommand({
          LanguageCode: 'en-US',
          MediaEncoding: 'pcm',
          MediaSampleRateHertz: 16_000,
          AudioStream: stalled(),
        }),
      );
      for await (const _ of response.TranscriptResultStream ?? []) {
        // nothing is said
      }
    })();
    const error = await drained.catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(BadRequestException);
    expect((error as Error).message).toMatch(/timed out/);
  });
});

describe('Bedrock runtime over the wire', () => {
  const tools = ['lookup_caller', 'save_intake_progress', 'submit_intake', 'end_call', 'transfer_to_human'].map(
    (name) => ({
      toolSpec: { name, description: name, inputSchema: { json: { type: 'object' } as never } },
    }),
  );

  async function converse(bedrock: BedrockRuntimeClient, messages: Message[]) {
    const response = await bedrock.send(
      new ConverseStreamCommand({
        modelId: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
        messages,
        toolConfig: { tools },
      }),
    );
    const events: ConverseStreamOutput[] = [];
    for await (const event of response.stream ?? []) events.push(event);
    const text = events.map((event) => event.contentBlockDelta?.delta?.text ?? '').join('');
    const start = events.find((event) => event.contentBlockStart?.start?.toolUse)?.contentBlockStart;
    const input = events.map((event) => event.contentBlockDelta?.delta?.toolUse?.input ?? '').join('');
    const toolUse = start
      ? { toolUseId: start.start!.toolUse!.toolUseId!, name: start.start!.toolUse!.name!, input: JSON.parse(input) }
      : undefined;
    const stop = events.find((event) => event.messageStop)?.messageStop?.stopReason;
    const usage = events.find((event) => event.metadata)?.metadata?.usage;
    return { events, text, toolUse, stop, usage };
  }

  /** The assistant turn as the agent sends it back, and the user turn with the tool's result. */
  function exchange(
    reply: { text: string; toolUse?: { toolUseId: string; name: string; input: unknown } },
    result: string,
  ): Message[] {
    return [
      {
        role: 'assistant',
        content: [...(reply.text ? [{ text: reply.text }] : []), { toolUse: reply.toolUse as never }],
      },
      { role: 'user', content: [{ toolResult: { toolUseId: reply.toolUse!.toolUseId, content: [{ text: result }] } }] },
    ];
  }

  it('streams the intake call (text, tool use in pieces, tool_use stop, usage), decided by the request', async () => {
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const history: Message[] = [{ role: 'user', content: [{ text: '(call connected)' }] }];
    const greeting = await converse(bedrock, history);
    expect(greeting.text).toMatch(/intake line/);
    expect(greeting.stop).toBe('end_turn');
    expect(greeting.usage!.inputTokens).toBeGreaterThan(0);
    expect(greeting.usage!.outputTokens).toBeGreaterThan(0);
    expect(greeting.events[0].messageStart?.role).toBe('assistant');

    history.push(
      { role: 'assistant', content: [{ text: greeting.text }] },
      { role: 'user', content: [{ text: 'Hi, this is Ada Lovelace, I have a billing question.' }] },
    );
    const lookup = await converse(bedrock, history);
    expect(lookup.stop).toBe('tool_use');
    expect(lookup.toolUse).toMatchObject({ name: 'lookup_caller', input: {} });
    // The same request again gets the same answer: no counter moved.
    expect((await converse(bedrock, history)).toolUse?.name).toBe('lookup_caller');

    history.push(...exchange(lookup, 'No record for this number: a new caller.'));
    const save = await converse(bedrock, history);
    expect(save.toolUse).toMatchObject({
      name: 'save_intake_progress',
      input: {
        intakeType: 'general_inquiry',
        fields: {
          full_name: 'Ada Lovelace',
          topic: 'billing',
          details: 'Hi, this is Ada Lovelace, I have a billing question.',
        },
      },
    });
    // Tool input spans several delta events, as Bedrock sends it.
    expect(save.events.filter((event) => event.contentBlockDelta?.delta?.toolUse).length).toBeGreaterThan(1);

    history.push(...exchange(save, 'Saved full_name, topic, details. All required fields are collected.'));
    const submit = await converse(bedrock, history);
    expect(submit.toolUse).toMatchObject({ name: 'submit_intake', input: { intakeType: 'general_inquiry' } });

    history.push(...exchange(submit, 'Submitted as case INT-1234. Read the case number to the caller.'));
    const recorded = await converse(bedrock, history);
    expect(recorded.text).toContain('case INT-1234');
    expect(recorded.toolUse).toBeUndefined();

    history.push(
      { role: 'assistant', content: [{ text: recorded.text }] },
      { role: 'user', content: [{ text: '(the caller keyed in 5)' }] },
    );
    expect((await converse(bedrock, history)).text).toMatch(/You pressed 5/);

    history.push(
      { role: 'assistant', content: [{ text: 'You pressed 5.' }] },
      { role: 'user', content: [{ text: 'No thanks, goodbye.' }] },
    );
    const bye = await converse(bedrock, history);
    expect(bye.text).toMatch(/Goodbye/);
    expect(bye.toolUse?.name).toBe('end_call');
  });

  it('hands the caller to a person when they ask for one, with the transfer tool', async () => {
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const reply = await converse(bedrock, [{ role: 'user', content: [{ text: 'Can I speak to a person, please?' }] }]);
    expect(reply.text).toMatch(/connecting you/);
    expect(reply.toolUse).toMatchObject({
      name: 'transfer_to_human',
      input: { reason: 'the caller asked for a person' },
    });
  });

  it('answers a conversation Bedrock would refuse with the modeled ValidationException', async () => {
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const orphan: Message[] = [
      { role: 'user', content: [{ toolResult: { toolUseId: 'tooluse_nobody', content: [{ text: 'x' }] } }] },
    ];
    await expect(converse(bedrock, orphan)).rejects.toBeInstanceOf(BedrockValidation);
    const twice: Message[] = [
      { role: 'user', content: [{ text: 'one' }] },
      { role: 'user', content: [{ text: 'two' }] },
    ];
    await expect(converse(bedrock, twice)).rejects.toThrow(/alternate/);
    const unoffered: Message[] = [
      { role: 'user', content: [{ text: 'one' }] },
      { role: 'assistant', content: [{ toolUse: { toolUseId: 't1', name: 'delete_everything', input: {} } }] },
      { role: 'user', content: [{ toolResult: { toolUseId: 't1', content: [{ text: 'done' }] } }] },
    ];
    await expect(converse(bedrock, unoffered)).rejects.toThrow(/not in toolConfig/);
  });

  it('reads the turn as the agent builds it: the newest block decides, withheld tools are never called', async () => {
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const lookup = { toolUseId: 'tooluse_a', name: 'lookup_caller', input: {} };
    const save = { toolUseId: 'tooluse_b', name: 'save_intake_progress', input: {} };
    const afterTwoSteps: Message[] = [
      { role: 'user', content: [{ text: 'Hi, this is Ada Lovelace, a billing question.' }] },
      { role: 'assistant', content: [{ toolUse: lookup }, { toolUse: save }] },
      {
        role: 'user',
        content: [
          { toolResult: { toolUseId: 'tooluse_a', content: [{ text: 'A new caller.' }] } },
          { toolResult: { toolUseId: 'tooluse_b', content: [{ text: 'Saved.' }] } },
        ],
      },
    ];
    // Two results in one turn: the newer (save) decides, so the next step is submit, not another save.
    expect((await converse(bedrock, afterTwoSteps)).toolUse?.name).toBe('submit_intake');
    const keyAfterResults: Message[] = [...afterTwoSteps];
    keyAfterResults[2] = { role: 'user', content: [...afterTwoSteps[2].content!, { text: '(the caller keyed in 7)' }] };
    expect((await converse(bedrock, keyAfterResults)).text).toMatch(/You pressed 7/);

    // LiveKit's last tool step: no toolConfig, the history as text. The model answers in words only.
    const withheld = await bedrock.send(
      new ConverseStreamCommand({
        modelId: 'm',
        messages: [
          { role: 'user', content: [{ text: 'Hi, this is Ada Lovelace.' }] },
          { role: 'assistant', content: [{ text: '[called tool submit_intake with {}]' }] },
          { role: 'user', content: [{ text: '[tool submit_intake returned: Submitted as case C-42.]' }] },
        ],
      }),
    );
    const events: ConverseStreamOutput[] = [];
    for await (const event of withheld.stream ?? []) events.push(event);
    expect(events.some((event) => event.contentBlockStart?.start?.toolUse)).toBe(false);
    expect(events.map((event) => event.contentBlockDelta?.delta?.text ?? '').join('')).toContain('case C-42');
    // Tool blocks without a toolConfig are refused, as Bedrock does.
    const noConfig = bedrock.send(new ConverseStreamCommand({ modelId: 'm', messages: afterTwoSteps }));
    await expect(noConfig).rejects.toThrow(/toolConfig: must be defined/);
  });

  it('answers Converse with a forced record_call_insights tool use that fits the contract (enrichment)', async () => {
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const response = await bedrock.send(
      new ConverseCommand({
        modelId: 'model',
        messages: [
          {
            role: 'user',
            content: [
              {
                text:
                  'Call c-1, ended by agent hangup.\n\n[agent] Hello.\n' +
                  '[caller] Hi, this is Jane Doe, my appointment moved.',
              },
            ],
          },
        ],
        toolConfig: {
          tools: [{ toolSpec: { name: 'record_call_insights', inputSchema: { json: { type: 'object' } as never } } }],
          toolChoice: { tool: { name: 'record_call_insights' } },
        },
      }),
    );
    expect(response.stopReason).toBe('tool_use');
    const toolUse = response.output!.message!.content!.find((block) => block.toolUse)!.toolUse!;
    const insights = callInsightsSchema.parse(toolUse.input);
    expect(insights.intakeFields).toContainEqual({ name: 'full_name', value: 'Jane Doe', confidence: 0.9 });
    expect(insights.intent).toBe('appointment request');
  });
});

describe("the enrichment Lambda's Converse call over the wire", () => {
  const noBackoff = { maxAttempts: 3, baseDelayMs: 1 };
  const transcript = (callId: string, said: string): Transcript =>
    transcriptSchema.parse({
      schemaVersion: 1,
      callId,
      roomName: `room-${callId}`,
      callerNumber: '+14155550123',
      startedAt: '2026-11-30T10:00:00.000Z',
      endedAt: '2026-11-30T10:02:00.000Z',
      endReason: 'agent_hangup',
      turns: [
        {
          seq: 0,
          speaker: 'agent',
          text: 'Hello.',
          startedAt: '2026-11-30T10:00:01.000Z',
          endedAt: '2026-11-30T10:00:02.000Z',
        },
        {
          seq: 1,
          speaker: 'caller',
          text: said,
          startedAt: '2026-11-30T10:00:03.000Z',
          endedAt: '2026-11-30T10:00:06.000Z',
        },
      ],
    });

  it('gets insights that fit the contract in one attempt', async () => {
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const result = await requestInsights(
      bedrock,
      'model',
      transcript('enrich-1', 'Hi, this is Mary Major, I have a question about billing.'),
      noBackoff,
    );
    expect(result).toMatchObject({ ok: true, attempts: 1 });
    if (!result.ok) return;
    expect(result.insights.intent).toBe('billing request');
    expect(result.insights.intakeFields).toContainEqual({ name: 'full_name', value: 'Mary Major', confidence: 0.9 });
  });

  it('retries through throttling and gives up on output that never fits, after the one corrective turn', async () => {
    const key = `enrich-${randomUUID()}`;
    fake.register(key, {
      // Found by the call id in the transcript: the Lambda's request names no session.
      match: [`Call ${key}`],
      insights: { summary: '', intent: 'x' },
      faults: [{ service: 'bedrock', operation: 'converse', exception: 'throttlingException', at: 'response' }],
    });
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const result = await requestInsights(bedrock, 'model', transcript(key, 'Hello there.'), noBackoff);
    expect(result).toMatchObject({ ok: false, attempts: 2 });
    if (result.ok) return;
    expect(result.detail).toMatch(/summary/);
    const requests = fake.session(key)!.bedrock.requests;
    // One throttled (no reply recorded) + the first answer + the corrective turn.
    expect(requests.map((request) => request.operation)).toEqual(['converse', 'converse']);
    expect(fake.session(key)!.exceptions).toEqual([
      { service: 'bedrock', exception: 'throttlingException', at: 'response' },
    ]);
  });
});

describe('Polly over the wire', () => {
  it.each([8000, 16000])('SynthesizeSpeech returns espeak-ng speech as %i Hz PCM', async (rate) => {
    const polly = client((c) => new PollyClient(c));
    const text = 'Thank you for calling the intake line.';
    const response = await polly.send(
      new SynthesizeSpeechCommand({
        Text: text,
        OutputFormat: 'pcm',
        SampleRate: String(rate),
        VoiceId: 'Ruth',
        Engine: 'neural',
      }),
    );
    const pcm = await response.AudioStream!.transformToByteArray();
    expect(response.ContentType).toBe('audio/pcm');
    expect(response.RequestCharacters).toBe(text.length);
    const expected = espeakPcmBytes(text, rate);
    expect(Math.abs(pcm.length - expected)).toBeLessThanOrEqual(expected * 0.01);
    expect(pcm.length / 2 / rate).toBeGreaterThan(1.5);
    expect(speechRms(pcm)).toBeGreaterThan(SPEECH_RMS_LEVEL);
  });

  it('StartSpeechSynthesisStream speaks sentences as they complete and closes with the characters billed', async () => {
    const polly = client((c) => new PollyClient(c));
    const key = `polly-${randomUUID()}`;
    tagged(polly, key);
    const arrivals: number[] = [];
    let releaseRest!: () => void;
    const rest = new Promise<void>((resolve) => (releaseRest = resolve));
    async function* text(): AsyncGenerator<StartSpeechSynthesisStreamActionStream> {
      yield { TextEvent: { Text: 'Hello there. ', TextType: 'text' } };
      // Audio of the first sentence must come back before the rest of the text is even written.
      await rest;
      yield { TextEvent: { Text: 'How can I ', TextType: 'text' } };
      yield { TextEvent: { Text: 'help you today', TextType: 'text', FlushStreamConfiguration: { Force: true } } };
      yield { CloseStreamEvent: {} };
    }
    const response = await polly.send(
      new StartSpeechSynthesisStreamCommand({
        Engine: 'generative',
        VoiceId: 'Ruth',
        OutputFormat: 'pcm',
        SampleRate: '16000',
        ActionStream: text(),
      }),
    );
    const chunks: Uint8Array[] = [];
    let billed: number | undefined;
    for await (const event of response.EventStream ?? []) {
      if (event.AudioEvent?.AudioChunk) {
        chunks.push(event.AudioEvent.AudioChunk);
        arrivals.push(performance.now());
        releaseRest();
      } else if (event.StreamClosedEvent) billed = event.StreamClosedEvent.RequestCharacters;
    }
    const pcm = Buffer.concat(chunks);
    expect(billed).toBe('Hello there. How can I help you today'.length);
    const expected = espeakPcmBytes('Hello there.', 16000) + espeakPcmBytes('How can I help you today', 16000);
    expect(Math.abs(pcm.length - expected)).toBeLessThanOrEqual(expected * 0.01);
    expect(speechRms(pcm)).toBeGreaterThan(SPEECH_RMS_LEVEL);
    expect(fake.session(key)!.polly.texts).toEqual(['Hello there.', 'How can I help you today']);
  });

  it('speaks SSML as SSML (a break is heard as time) and refuses text over the limit', async () => {
    const polly = client((c) => new PollyClient(c));
    /** Seconds of speech Polly returns for the text. */
    const say = async (Text: string, TextType: 'text' | 'ssml') => {
      const response = await polly.send(
        new SynthesizeSpeechCommand({ Text, TextType, OutputFormat: 'pcm', VoiceId: 'Ruth' }),
      );
      const pcm = await response.AudioStream!.transformToByteArray();
      return pcm.length / 2 / 16_000;
    };
    const plain = await say('<speak>Hello there.</speak>', 'ssml');
    const paused = await say('<speak>Hello <break time="800ms"/> there.</speak>', 'ssml');
    expect(paused - plain).toBeGreaterThan(0.6);
    await expect(say('Hello <b>there', 'ssml')).rejects.toBeInstanceOf(PollyValidation);
    await expect(say('x'.repeat(6001), 'text')).rejects.toThrow(/6000-character limit/);
  });

  it('refuses streaming synthesis on an engine other than generative', async () => {
    const polly = client((c) => new PollyClient(c));
    async function* text(): AsyncGenerator<StartSpeechSynthesisStreamActionStream> {
      yield { CloseStreamEvent: {} };
    }
    const send = polly.send(
      new StartSpeechSynthesisStreamCommand({
        Engine: 'neural',
        VoiceId: 'Ruth',
        OutputFormat: 'pcm',
        ActionStream: text(),
      }),
    );
    await expect(send).rejects.toBeInstanceOf(PollyValidation);
  });
});

describe('modeled exceptions', () => {
  it('throws what production throws: exception events mid-stream and error responses, per service', async () => {
    const key = `faults-${randomUUID()}`;
    fake.register(key, {
      faults: [
        { service: 'bedrock', exception: 'throttlingException', at: 'stream', message: 'slow down' },
        { service: 'bedrock', exception: 'throttlingException', at: 'response' },
        { service: 'transcribe', exception: 'LimitExceededException', at: 'stream' },
        { service: 'polly', exception: 'ThrottlingException', at: 'stream', operation: 'synthesis-stream' },
      ],
    });
    const bedrock = tagged(
      client((c) => new BedrockRuntimeClient(c)),
      key,
    );
    const ask = async () => {
      const response = await bedrock.send(
        new ConverseStreamCommand({ modelId: 'm', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
      );
      const events: ConverseStreamOutput[] = [];
      for await (const event of response.stream ?? []) events.push(event);
      return events;
    };
    // An HTTP 429 before any stream, then an exception event after messageStart: both the SDK's modeled class.
    await expect(ask()).rejects.toBeInstanceOf(BedrockThrottling);
    const midStream = await ask().catch((error: unknown) => error);
    expect(midStream).toBeInstanceOf(BedrockThrottling);
    expect((midStream as Error).message).toBe('slow down');
    expect((await ask()).some((event) => event.contentBlockDelta)).toBe(true);

    const transcribeClient = tagged(
      client((c) => new TranscribeStreamingClient(c)),
      key,
    );
    await expect(transcribe(transcribeClient, silence(200))).rejects.toBeInstanceOf(LimitExceededException);

    const polly = tagged(
      client((c) => new PollyClient(c)),
      key,
    );
    async function* text(): AsyncGenerator<StartSpeechSynthesisStreamActionStream> {
      yield { TextEvent: { Text: 'Hello.', TextType: 'text' } };
      yield { CloseStreamEvent: {} };
    }
    const speak = async () => {
      const response = await polly.send(
        new StartSpeechSynthesisStreamCommand({
          Engine: 'generative',
          VoiceId: 'Ruth',
          OutputFormat: 'pcm',
          ActionStream: text(),
        }),
      );
      for await (const _ of response.EventStream ?? []) {
        // audio until the exception
      }
    };
    await expect(speak()).rejects.toBeInstanceOf(PollyThrottling);
    expect(fake.session(key)!.exceptions.map((entry) => entry.exception)).toEqual([
      'throttlingException',
      'throttlingException',
      'LimitExceededException',
      'ThrottlingException',
    ]);
  });
});

describe('sessions', () => {
  it('keeps two concurrent sessions with different scripts apart', async () => {
    const [a, b] = [randomUUID(), randomUUID()];
    fake.register(a, { callerSays: ['I am caller A.'] });
    fake.register(b, { callerSays: ['I am caller B.'] });
    const speech = concatSamples(silence(200), synthesizeSpeech('testing one two'), silence(500));
    // One client, one HTTP/2 connection, both streams on it at once, paced like a live call.
    const shared = client((c) => new TranscribeStreamingClient(c));
    const [heardA, heardB] = await Promise.all([transcribe(shared, speech, a, 20), transcribe(shared, speech, b, 20)]);
    expect(heardA.finals.map((result) => result.Alternatives![0].Transcript)).toEqual(['I am caller A.']);
    expect(heardB.finals.map((result) => result.Alternatives![0].Transcript)).toEqual(['I am caller B.']);
    expect(fake.session(a)!.transcribe.streams).toBe(1);
    expect(fake.session(b)!.transcribe.streams).toBe(1);
  });

  it("selects a scenario by a value of Bedrock's requestMetadata, the key a worker could send", async () => {
    const key = `call-${randomUUID()}`;
    fake.register(key, { replies: [{ whenGreeting: true, say: 'Scenario by metadata.' }], intakeScript: false });
    const bedrock = client((c) => new BedrockRuntimeClient(c));
    const response = await bedrock.send(
      new ConverseStreamCommand({
        modelId: 'm',
        messages: [{ role: 'user', content: [{ text: '(call connected)' }] }],
        requestMetadata: { callId: key },
      }),
    );
    let said = '';
    for await (const event of response.stream ?? []) said += event.contentBlockDelta?.delta?.text ?? '';
    expect(said).toBe('Scenario by metadata.');
    expect(fake.session(key)!.via).toBe('explicit');
  });

  it('lets Polly find the session whose model reply it is asked to say', async () => {
    const key = `reply-${randomUUID()}`;
    fake.register(key, {
      replies: [{ whenGreeting: true, say: `Welcome to scenario ${key}, how can I help?` }],
      intakeScript: false,
    });
    const bedrock = tagged(
      client((c) => new BedrockRuntimeClient(c)),
      key,
    );
    const response = await bedrock.send(
      new ConverseStreamCommand({
        modelId: 'm',
        messages: [{ role: 'user', content: [{ text: '(call connected)' }] }],
      }),
    );
    let said = '';
    for await (const event of response.stream ?? []) said += event.contentBlockDelta?.delta?.text ?? '';
    // An untagged client on its own connection: only the text ties it to the session.
    const polly = client((c) => new PollyClient(c));
    await (
      await polly.send(new SynthesizeSpeechCommand({ Text: said, OutputFormat: 'pcm', VoiceId: 'Ruth' }))
    ).AudioStream!.transformToByteArray();
    expect(fake.session(key)!.polly.texts).toEqual([said]);
    expect(fake.session(key)!.bedrock.requests).toHaveLength(1);
  });
});

describe('a call whose clients name no session (the worker today)', () => {
  it('folds what Transcribe heard, what Bedrock answered and what Polly said into one record', async () => {
    const own = new AwsFake({
      scenarios: { default: { callerSays: ['Hello, this is Alan Turing about my account.'] } },
    });
    const endpoint = await own.start();
    const config = { endpoint, region: REGION, credentials, maxAttempts: 1 };
    const transcribeClient = new TranscribeStreamingClient(config);
    const bedrock = new BedrockRuntimeClient(config);
    const polly = new PollyClient(config);
    try {
      const greeting = await bedrock.send(
        new ConverseStreamCommand({
          modelId: 'm',
          messages: [{ role: 'user', content: [{ text: '(call connected)' }] }],
        }),
      );
      let greetingText = '';
      for await (const event of greeting.stream ?? []) greetingText += event.contentBlockDelta?.delta?.text ?? '';
      const heard = await transcribe(
        transcribeClient,
        concatSamples(synthesizeSpeech('hello there my friend'), silence(700)),
      );
      const words = heard.finals[0].Alternatives![0].Transcript!;
      expect(words).toBe('Hello, this is Alan Turing about my account.');
      const lookup = await bedrock.send(
        new ConverseStreamCommand({
          modelId: 'm',
          messages: [
            { role: 'user', content: [{ text: '(call connected)' }] },
            { role: 'assistant', content: [{ text: greetingText }] },
            { role: 'user', content: [{ text: words }] },
          ],
          toolConfig: {
            tools: [{ toolSpec: { name: 'lookup_caller', inputSchema: { json: { type: 'object' } as never } } }],
          },
        }),
      );
      let reply = '';
      for await (const event of lookup.stream ?? []) reply += event.contentBlockDelta?.delta?.text ?? '';
      // Polly gets the reply in pieces, as the agent streams it: "Thank you." alone is every call's.
      async function* pieces(): AsyncGenerator<StartSpeechSynthesisStreamActionStream> {
        for (const word of reply.split(/(?<= )/)) yield { TextEvent: { Text: word, TextType: 'text' } };
        yield { CloseStreamEvent: {} };
      }
      const spoken = await polly.send(
        new StartSpeechSynthesisStreamCommand({
          Engine: 'generative',
          VoiceId: 'Ruth',
          OutputFormat: 'pcm',
          ActionStream: pieces(),
        }),
      );
      for await (const _ of spoken.EventStream ?? []) {
        // audio
      }
      const [record, ...others] = own.sessions;
      expect(others).toEqual([]);
      expect(record.mergedFrom.length).toBeGreaterThanOrEqual(1);
      expect(record.transcribe.utterances.map((utterance) => utterance.text)).toEqual([words]);
      expect(record.bedrock.requests.map((request) => request.reply.tool ?? null)).toEqual([null, 'lookup_caller']);
      expect(record.polly.texts.join(' ')).toBe(reply.trim());
    } finally {
      for (const built of [transcribeClient, bedrock, polly]) built.destroy();
      await own.stop();
    }
  });

  it('keeps writing to the call when the session of a stream still open is folded into it', async () => {
    const own = new AwsFake({
      scenarios: { default: { callerSays: ['This is the first thing I say.', 'And this is the second thing.'] } },
    });
    const endpoint = await own.start();
    const config = { endpoint, region: REGION, credentials, maxAttempts: 1 };
    const transcribeClient = new TranscribeStreamingClient(config);
    const bedrock = new BedrockRuntimeClient(config);
    try {
      const greeting = await bedrock.send(
        new ConverseStreamCommand({
          modelId: 'm',
          messages: [{ role: 'user', content: [{ text: '(call connected)' }] }],
        }),
      );
      let greetingText = '';
      for await (const event of greeting.stream ?? []) greetingText += event.contentBlockDelta?.delta?.text ?? '';

      let releaseSecond!: () => void;
      const second = new Promise<void>((resolve) => (releaseSecond = resolve));
      const speech = concatSamples(synthesizeSpeech('one two three four'), silence(700));
      async function* caller(): AsyncGenerator<AudioStream> {
        yield* audioEvents(speech);
        await second;
        yield* audioEvents(speech);
      }
      const response = await transcribeClient.send(
        new StartStreamTranscriptionCommand({
          LanguageCode: 'en-US',
          MediaEncoding: 'pcm',
          MediaSampleRateHertz: 16_000,
          AudioStream: caller(),
        }),
      );
      const finals: string[] = [];
      const reading = (async () => {
        for await (const event of response.TranscriptResultStream ?? []) {
          for (const result of event.TranscriptEvent?.Transcript?.Results ?? []) {
            if (!result.IsPartial) finals.push(result.Alternatives![0].Transcript!);
          }
        }
      })();
      await own.until('the first final', () => finals.length === 1);
      // The greeting is the newest sentence here: the Transcribe session is folded into the greeting's.
      const merging = await bedrock.send(
        new ConverseStreamCommand({
          modelId: 'm',
          messages: [
            { role: 'user', content: [{ text: finals[0] }] },
            { role: 'assistant', content: [{ text: greetingText }] },
            { role: 'user', content: [{ text: '(the caller keyed in 1)' }] },
          ],
        }),
      );
      for await (const _ of merging.stream ?? []) {
        // the reply
      }
      releaseSecond();
      await reading;
      expect(finals).toEqual(['This is the first thing I say.', 'And this is the second thing.']);
      const calls = own.sessions.filter(
        (record) => record.transcribe.streams > 0 || record.bedrock.requests.length > 0,
      );
      expect(calls).toHaveLength(1);
      expect(calls[0].transcribe.utterances.map((utterance) => utterance.text)).toEqual(finals);
      expect(calls[0].bedrock.requests).toHaveLength(2);
    } finally {
      for (const built of [transcribeClient, bedrock]) built.destroy();
      await own.stop();
    }
  });

  it('keeps two calls of the same scenario apart: shared sentences tell no call from another', async () => {
    const own = new AwsFake();
    const endpoint = await own.start();
    const config = { endpoint, region: REGION, credentials, maxAttempts: 1 };
    const made = [0, 1].map(() => new TranscribeStreamingClient(config));
    try {
      const speech = concatSamples(synthesizeSpeech('good morning to you'), silence(700));
      await Promise.all(made.map((transcribeClient) => transcribe(transcribeClient, speech, undefined, 10)));
      const records = own.sessions;
      expect(records).toHaveLength(2);
      for (const record of records)
        expect(record.transcribe.utterances.map((u) => u.text)).toEqual([DEFAULT_SCENARIO.callerSays[0]]);
    } finally {
      for (const built of made) built.destroy();
      await own.stop();
    }
  });
});

describe('latency knobs', () => {
  it('holds back Transcribe finals, Bedrock first tokens and Polly first bytes by what is set', async () => {
    const own = new AwsFake({ latency: { transcribeFinalDelayMs: 300, bedrockTtftMs: 250, pollyTtfbMs: 200 } });
    const endpoint = await own.start();
    const config = { endpoint, region: REGION, credentials, maxAttempts: 1 };
    const transcribeClient = new TranscribeStreamingClient(config);
    const bedrock = new BedrockRuntimeClient(config);
    const polly = new PollyClient(config);
    try {
      // Audio sent at once: the utterance ends the moment it arrives, so the final waits only for the knob.
      const started = performance.now();
      const response = await transcribeClient.send(
        new StartStreamTranscriptionCommand({
          LanguageCode: 'en-US',
          MediaEncoding: 'pcm',
          MediaSampleRateHertz: 16_000,
          AudioStream: audioEvents(concatSamples(synthesizeSpeech('hello there'), silence(700))),
        }),
      );
      let finalAt: number | undefined;
      for await (const event of response.TranscriptResultStream ?? []) {
        if (event.TranscriptEvent?.Transcript?.Results?.some((result) => !result.IsPartial))
          finalAt ??= performance.now() - started;
      }
      expect(finalAt).toBeGreaterThanOrEqual(300);

      const askedAt = performance.now();
      const answer = await bedrock.send(
        new ConverseStreamCommand({ modelId: 'm', messages: [{ role: 'user', content: [{ text: 'hi' }] }] }),
      );
      let tokenAt: number | undefined;
      for await (const event of answer.stream ?? [])
        if (event.contentBlockDelta) tokenAt ??= performance.now() - askedAt;
      expect(tokenAt).toBeGreaterThanOrEqual(250);

      const speakAt = performance.now();
      const speech = await polly.send(
        new SynthesizeSpeechCommand({ Text: 'Hello there.', OutputFormat: 'pcm', VoiceId: 'Ruth' }),
      );
      const reader = speech.AudioStream!.transformToWebStream().getReader();
      await reader.read();
      expect(performance.now() - speakAt).toBeGreaterThanOrEqual(200);
      await reader.cancel();
    } finally {
      for (const built of [transcribeClient, bedrock, polly]) built.destroy();
      await own.stop();
    }
  });

  it('holds a final back for a stable partial due after it: the stable words never come after the final', async () => {
    const own = new AwsFake({ latency: { transcribeEndSilenceMs: 300, transcribeStableAfterMs: 600 } });
    const endpoint = await own.start();
    const transcribeClient = new TranscribeStreamingClient({ endpoint, region: REGION, credentials, maxAttempts: 1 });
    try {
      const started = performance.now();
      const response = await transcribeClient.send(
        new StartStreamTranscriptionCommand({
          LanguageCode: 'en-US',
          MediaEncoding: 'pcm',
          MediaSampleRateHertz: 16_000,
          EnablePartialResultsStabilization: true,
          PartialResultsStability: 'high',
          AudioStream: audioEvents(concatSamples(synthesizeSpeech('hello there'), silence(400))),
        }),
      );
      const arrivals: { stable: boolean; partial: boolean; at: number }[] = [];
      for await (const event of response.TranscriptResultStream ?? []) {
        for (const result of event.TranscriptEvent?.Transcript?.Results ?? []) {
          const stable = result.Alternatives![0].Items!.every((item) => item.Stable === true);
          arrivals.push({ stable, partial: !!result.IsPartial, at: performance.now() - started });
        }
      }
      const final = arrivals.findIndex((arrival) => !arrival.partial);
      expect(final).toBeGreaterThan(0);
      expect(arrivals[final - 1]).toMatchObject({ stable: true, partial: true });
      // Audio sent at once: the end of speech is heard the moment it arrives; 300 ms more make the 600.
      expect(arrivals[final - 1].at).toBeGreaterThanOrEqual(200);
      expect(arrivals[final].at).toBeGreaterThanOrEqual(arrivals[final - 1].at);
    } finally {
      transcribeClient.destroy();
      await own.stop();
    }
  });
});

describe('clients that go away', () => {
  /** An event as the SDK sends it: encoded, then wrapped in a signed envelope. */
  function signedEvent(type: string, body: Uint8Array, contentType: string): Buffer {
    const inner = codec.encode({
      headers: {
        ':event-type': { type: 'string', value: type },
        ':message-type': { type: 'string', value: 'event' },
        ':content-type': { type: 'string', value: contentType },
      },
      body,
    });
    const outer = codec.encode({
      headers: {
        ':date': { type: 'timestamp', value: new Date() },
        ':chunk-signature': { type: 'binary', value: new Uint8Array(32) },
      },
      body: inner,
    });
    return Buffer.from(outer);
  }

  /** Opens a request, sends `body` (all of it when `complete`), drops the connection at the first bytes back. */
  async function vanishMidStream(
    path: string,
    service: string,
    headers: Record<string, string>,
    body: Buffer,
    complete = false,
  ) {
    const session = http2.connect(url);
    session.on('error', () => undefined);
    const request = session.request({
      ':method': 'POST',
      ':path': path,
      authorization: signedFor(service),
      ...headers,
    });
    request.on('error', () => undefined);
    const firstBytes = new Promise<void>((resolve) => request.once('data', () => resolve()));
    if (complete) request.end(body);
    else request.write(body);
    await firstBytes;
    session.destroy();
  }

  it('survives connections dropped in the middle of every stream and keeps serving', async () => {
    const key = randomUUID();
    const eventStream = { 'content-type': 'application/vnd.amazon.eventstream', [SESSION_HEADER]: key };
    fake.setLatency({ bedrockTokenIntervalMs: 40 });
    try {
      await vanishMidStream(
        '/model/m/converse-stream',
        'bedrock',
        { 'content-type': 'application/json', [SESSION_HEADER]: key },
        Buffer.from(JSON.stringify({ messages: [{ role: 'user', content: [{ text: '(call connected)' }] }] })),
        true,
      );
    } finally {
      fake.setLatency({ bedrockTokenIntervalMs: 0 });
    }
    const speech = concatSamples(synthesizeSpeech('hello there, how are you doing today'), silence(700));
    await vanishMidStream(
      '/stream-transcription',
      'transcribe',
      {
        ...eventStream,
        'x-amzn-transcribe-language-code': 'en-US',
        'x-amzn-transcribe-media-encoding': 'pcm',
        'x-amzn-transcribe-sample-rate': '16000',
      },
      Buffer.concat(
        Array.from({ length: Math.ceil(speech.length / 800) }, (_, index) =>
          signedEvent(
            'AudioEvent',
            new Uint8Array(speech.slice(index * 800, index * 800 + 800).buffer),
            'application/octet-stream',
          ),
        ),
      ),
    );
    await vanishMidStream(
      '/v1/synthesisStream',
      'polly',
      { ...eventStream, 'x-amzn-engine': 'generative', 'x-amzn-voiceid': 'Ruth', 'x-amzn-outputformat': 'pcm' },
      signedEvent(
        'TextEvent',
        Buffer.from(JSON.stringify({ Text: 'A sentence never heard to the end. ' })),
        'application/json',
      ),
    );
    // A connection dropped while the request body is still arriving: refused and counted, nothing served.
    const cutKey = randomUUID();
    const cut = http2.connect(url);
    cut.on('error', () => undefined);
    const half = cut.request({
      ':method': 'POST',
      ':path': '/model/m/converse-stream',
      authorization: signedFor('bedrock'),
      'content-type': 'application/json',
      [SESSION_HEADER]: cutKey,
    });
    half.on('error', () => undefined);
    half.write('{"messages":[{"role":"user","content":[{"te');
    await new Promise((resolve) => setTimeout(resolve, 50));
    cut.destroy();
    await fake.until('the cut request to be refused', () => (fake.session(cutKey)?.rejected.length ?? 0) > 0, 10_000);
    expect(fake.session(cutKey)!.bedrock.requests).toEqual([]);

    // Each stream had got going when its connection went.
    const record = fake.session(key)!;
    expect(record.bedrock.requests).toHaveLength(1);
    expect(record.transcribe.partials).toBeGreaterThan(0);
    expect(record.polly.requests).toBe(1);

    // Still serving, on every service.
    const polly = client((c) => new PollyClient(c));
    const after = await polly.send(
      new SynthesizeSpeechCommand({ Text: 'Still here.', OutputFormat: 'pcm', VoiceId: 'Ruth' }),
    );
    expect((await after.AudioStream!.transformToByteArray()).length).toBeGreaterThan(1000);
    const { finals } = await transcribe(
      client((c) => new TranscribeStreamingClient(c)),
      speech,
    );
    expect(finals).toHaveLength(1);
  });
});

describe('the wire itself', () => {
  it('is reached through AWS_ENDPOINT_URL_* by clients built without an endpoint', async () => {
    const saved = { ...process.env };
    Object.assign(process.env, fake.env, {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: 'AKIDENV',
      AWS_SECRET_ACCESS_KEY: 'env-secret',
    });
    try {
      const polly = new PollyClient({});
      clients.push(polly);
      const response = await polly.send(
        new SynthesizeSpeechCommand({ Text: 'Hi there.', OutputFormat: 'pcm', VoiceId: 'Ruth' }),
      );
      expect((await response.AudioStream!.transformToByteArray()).length).toBeGreaterThan(1000);
    } finally {
      process.env = saved;
    }
  });

  it('refuses an unsigned request and a request signed for another service', async () => {
    const session = http2.connect(url);
    try {
      const ask = (headers: Record<string, string>) =>
        new Promise<{ status: number; type: string }>((resolve, reject) => {
          const request = session.request({
            ':method': 'POST',
            ':path': '/v1/speech',
            'content-type': 'application/json',
            ...headers,
          });
          request.on('response', (h) => resolve({ status: Number(h[':status']), type: String(h['x-amzn-errortype']) }));
          request.on('error', reject);
          request.end('{"Text":"hi","OutputFormat":"pcm","VoiceId":"Ruth"}');
        });
      expect(await ask({})).toEqual({ status: 403, type: 'UnrecognizedClientException' });
      const wrong = signedFor('bedrock');
      expect(await ask({ authorization: wrong })).toEqual({ status: 403, type: 'UnrecognizedClientException' });
    } finally {
      session.destroy();
    }
  });

  it('ends a stream whose event frames do not decode with a BadRequestException, never passing it on', async () => {
    const key = randomUUID();
    const session = http2.connect(url);
    try {
      const request = session.request({
        ':method': 'POST',
        ':path': '/stream-transcription',
        'content-type': 'application/vnd.amazon.eventstream',
        'x-amzn-transcribe-language-code': 'en-US',
        'x-amzn-transcribe-media-encoding': 'pcm',
        'x-amzn-transcribe-sample-rate': '16000',
        'x-amzn-transcribe-session-id': key,
        authorization: signedFor('transcribe'),
      });
      const body: Buffer[] = [];
      request.on('data', (chunk: Buffer) => body.push(chunk));
      const ended = new Promise((resolve) => request.on('end', resolve));
      // A well-formed frame that is not signed: an unsigned event stream is refused, not heard.
      const unsigned = codec.encode({
        headers: {
          ':event-type': { type: 'string', value: 'AudioEvent' },
          ':message-type': { type: 'string', value: 'event' },
        },
        body: new Uint8Array(3200),
      });
      request.end(Buffer.from(unsigned));
      await ended;
      const message = codec.decode(Buffer.concat(body));
      expect(message.headers[':message-type'].value).toBe('exception');
      expect(message.headers[':exception-type'].value).toBe('BadRequestException');
      expect(Buffer.from(message.body).toString()).toMatch(/unsigned/);
      expect(fake.session(key)!.transcribe.audioSeconds).toBe(0);
      expect(fake.session(key)!.rejected).toHaveLength(1);
    } finally {
      session.destroy();
    }
  });
});

describe('admin API (HTTP/1.1 on the same port)', () => {
  it('registers scenarios, sets latencies, reports sessions, and names the field of a bad scenario', async () => {
    const key = randomUUID();
    const put = (path: string, body: unknown) =>
      fetch(`${url}/_fake/${path}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
    expect((await put(`scenarios/${key}`, { callerSays: ['Via the admin API.'] })).status).toBe(204);
    const bad = await put(`scenarios/${key}`, {
      callerSays: 'not a list',
      faults: [{ service: 'polly', exception: 'NoSuchThing' }],
    });
    expect(bad.status).toBe(400);
    const { error } = (await bad.json()) as { error: string };
    expect(error).toMatch(/callerSays/);
    expect(error).toMatch(/faults\[0\]\.exception/);
    expect((await put('latency', { bedrockTtftMs: -1 })).status).toBe(400);
    const latency = await put('latency', { pollyTtfbMs: 5 });
    expect(await latency.json()).toMatchObject({ pollyTtfbMs: 5, bedrockTtftMs: 0 });
    fake.setLatency({ pollyTtfbMs: 0 });

    const { finals } = await transcribe(
      client((c) => new TranscribeStreamingClient(c)),
      concatSamples(synthesizeSpeech('hello'), silence(400)),
      key,
    );
    expect(finals[0].Alternatives![0].Transcript).toBe('Via the admin API.');
    const record = await (await fetch(`${url}/_fake/sessions/${key}`)).json();
    expect(record).toMatchObject({ key, via: 'explicit', transcribe: { streams: 1 } });
    expect((await fetch(`${url}/_fake/sessions/nobody`)).status).toBe(404);
  });
});

describe("the agent's own AWS plugins against the fake", () => {
  const noRetry = { maxRetry: 0, retryIntervalMs: 0, timeoutMs: 20_000 };

  /** Speech into a TranscribeSTT stream as 20 ms frames, then its final transcripts. */
  async function listen(plugin: TranscribeSTT, samples: Int16Array): Promise<{ finals: string[]; stable: string[] }> {
    const stream = plugin.stream({ connOptions: noRetry });
    const frame = 320;
    for (let offset = 0; offset < samples.length; offset += frame) {
      const piece = new Int16Array(frame);
      piece.set(samples.subarray(offset, offset + frame));
      stream.pushFrame(new AudioFrame(piece, 16_000, 1, frame));
    }
    stream.endInput();
    const finals: string[] = [];
    const stable: string[] = [];
    for await (const event of stream) {
      if (event.type === stt.SpeechEventType.FINAL_TRANSCRIPT) finals.push(event.alternatives![0].text);
      if (event.type === stt.SpeechEventType.INTERIM_TRANSCRIPT)
        stable.push(String(event.alternatives![0].metadata?.stableText ?? ''));
    }
    return { finals, stable };
  }

  it('TranscribeSTT: speech in, the script out, stable text in the interim events', async () => {
    const key = `stt-${randomUUID()}`;
    fake.register(key, { callerSays: ['I would like to report a burst pipe in my kitchen.'] });
    const plugin = new TranscribeSTT({
      client: tagged(
        client((c) => new TranscribeStreamingClient(c)),
        key,
      ),
    });
    const { finals, stable } = await listen(
      plugin,
      concatSamples(silence(300), synthesizeSpeech('I would like to report a burst pipe in my kitchen.'), silence(500)),
    );
    expect(finals).toEqual(['I would like to report a burst pipe in my kitchen.']);
    expect(stable.some((text) => text.startsWith('I would'))).toBe(true);
    expect(fake.session(key)!.transcribe.sampleRates).toEqual([16_000]);
  });

  it('TranscribeSTT: preflights on the stable partial, then the final confirms or revises it', async () => {
    const key = `stt-preflight-${randomUUID()}`;
    const revised = { final: 'I do not want to end the call yet.', stable: 'I want to end the call.' };
    fake.register(key, { callerSays: ['I would like to report a burst pipe.', revised] });
    const settled: boolean[] = [];
    const plugin = new TranscribeSTT({
      client: tagged(
        client((c) => new TranscribeStreamingClient(c)),
        key,
      ),
      onPreflightSettled: ({ confirmed }) => settled.push(confirmed),
    });
    const stream = plugin.stream({ connOptions: noRetry });
    const audio = concatSamples(
      silence(300),
      synthesizeSpeech('I would like to report a burst pipe.'),
      silence(1_000),
      synthesizeSpeech('I do not want to end the call yet.'),
      silence(800),
    );
    fake.setLatency({ transcribeStableAfterMs: 250 });
    const events: { type: stt.SpeechEventType; text: string }[] = [];
    try {
      const frame = 320;
      for (let offset = 0; offset < audio.length; offset += frame) {
        const piece = new Int16Array(frame);
        piece.set(audio.subarray(offset, offset + frame));
        stream.pushFrame(new AudioFrame(piece, 16_000, 1, frame));
      }
      stream.endInput();
      for await (const event of stream) {
        const kinds = [stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, stt.SpeechEventType.FINAL_TRANSCRIPT];
        if (kinds.includes(event.type)) events.push({ type: event.type, text: event.alternatives![0].text });
      }
    } finally {
      fake.setLatency({ transcribeStableAfterMs: null });
    }
    expect(events).toEqual([
      { type: stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, text: 'I would like to report a burst pipe.' },
      { type: stt.SpeechEventType.FINAL_TRANSCRIPT, text: 'I would like to report a burst pipe.' },
      { type: stt.SpeechEventType.PREFLIGHT_TRANSCRIPT, text: revised.stable },
      { type: stt.SpeechEventType.FINAL_TRANSCRIPT, text: revised.final },
    ]);
    expect(settled).toEqual([true, false]);
  });

  it('TranscribeSTT with pii "redact": what reaches the agent carries [PII], never the number', async () => {
    const key = `stt-pii-${randomUUID()}`;
    fake.register(key, { callerSays: ['My number is 415 555 0142.'] });
    const plugin = new TranscribeSTT({
      pii: 'redact',
      client: tagged(
        client((c) => new TranscribeStreamingClient(c)),
        key,
      ),
    });
    const { finals, stable } = await listen(
      plugin,
      concatSamples(silence(200), synthesizeSpeech('my number is four one five'), silence(700)),
    );
    expect(finals).toEqual(['My number is [PII].']);
    expect(stable.join(' ')).not.toMatch(/0142/);
  });

  it('BedrockLLM: a tool call round trip with the real request format', async () => {
    const plugin = new BedrockLLM({
      client: client((c) => new BedrockRuntimeClient(c)),
      cacheSystemPrompt: true,
      cacheTools: true,
    });
    const lookup = llm.tool({
      name: 'lookup_caller',
      description: 'Find the caller',
      parameters: { type: 'object', properties: {} },
      execute: async () => 'x',
    });
    const save = llm.tool({
      name: 'save_intake_progress',
      description: 'Save',
      parameters: { type: 'object', properties: {} },
      execute: async () => 'x',
    });
    const chatCtx = llm.ChatContext.empty();
    chatCtx.addMessage({ role: 'system', content: 'You are the intake agent.' });
    chatCtx.addMessage({ role: 'user', content: 'Hello, this is Grace Hopper calling about my account.' });
    const first = await collect(plugin.chat({ chatCtx, toolCtx: [lookup, save], connOptions: noRetry }));
    expect(first.text).toMatch(/look you up/);
    expect(first.calls).toHaveLength(1);
    expect(first.calls[0]).toMatchObject({ name: 'lookup_caller', args: '{}' });
    expect(first.usage?.completionTokens).toBeGreaterThan(0);

    chatCtx.insert([
      first.calls[0],
      llm.FunctionCallOutput.create({
        callId: first.calls[0].callId,
        name: 'lookup_caller',
        output: 'A new caller.',
        isError: false,
      }),
    ]);
    const second = await collect(plugin.chat({ chatCtx, toolCtx: [lookup, save], connOptions: noRetry }));
    expect(second.calls[0].name).toBe('save_intake_progress');
    expect(JSON.parse(second.calls[0].args)).toEqual({
      intakeType: 'general_inquiry',
      fields: {
        full_name: 'Grace Hopper',
        topic: 'account',
        details: 'Hello, this is Grace Hopper calling about my account.',
      },
    });
  });

  it('BedrockLLM: a modeled exception mid-stream reaches the agent as an unrecoverable APIError', async () => {
    const key = `llm-fault-${randomUUID()}`;
    fake.register(key, {
      faults: [{ service: 'bedrock', exception: 'validationException', at: 'stream', message: 'bad prompt' }],
    });
    const plugin = new BedrockLLM({
      client: tagged(
        client((c) => new BedrockRuntimeClient(c)),
        key,
      ),
    });
    // LiveKit's LLMStream reports a failed run as the LLM's error event and ends the stream empty.
    const errors: { error: unknown; recoverable: boolean }[] = [];
    plugin.on('error', (event) => errors.push(event));
    const chatCtx = llm.ChatContext.empty();
    chatCtx.addMessage({ role: 'user', content: 'Hi' });
    const reply = await collect(plugin.chat({ chatCtx, connOptions: noRetry }));
    expect(reply).toMatchObject({ text: '', calls: [] });
    expect(errors).toHaveLength(1);
    expect(errors[0].recoverable).toBe(false);
    expect(errors[0].error).toBeInstanceOf(APIError);
    expect(String((errors[0].error as Error).message)).toMatch(/ValidationException: bad prompt/);
  });

  it('BedrockLLM: a dropped connection (transport error, no exception named) is reported, not silent', async () => {
    const key = `llm-drop-${randomUUID()}`;
    fake.register(key, { faults: [{ service: 'bedrock', at: 'transport' }] });
    const bedrock = tagged(
      client((c) => new BedrockRuntimeClient(c)),
      key,
    );
    // Over the bare SDK: the send fails without any service's modeled exception (the SDK's TimeoutError "http2
    // request did not get a response").
    const bare = await bedrock
      .send(new ConverseStreamCommand({ modelId: 'm', messages: [{ role: 'user', content: [{ text: 'Hi' }] }] }))
      .catch((error: unknown) => error);
    expect(bare).toBeInstanceOf(Error);
    expect((bare as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBeUndefined();

    const fresh = tagged(
      client((c) => new BedrockRuntimeClient(c)),
      `${key}-plugin`,
    );
    fake.register(`${key}-plugin`, { faults: [{ service: 'bedrock', at: 'transport', times: 10 }] });
    // Only options every version of the plugin has: how it retries is its own business.
    const plugin = new BedrockLLM({ client: fresh });
    const errors: { error: unknown }[] = [];
    plugin.on('error', (event) => errors.push(event));
    const chatCtx = llm.ChatContext.empty();
    chatCtx.addMessage({ role: 'user', content: 'Hi' });
    const reply = await collect(plugin.chat({ chatCtx, connOptions: noRetry }));
    expect(reply.text).toBe('');
    expect(errors).toHaveLength(1);
    expect(errors[0].error).toBeInstanceOf(APIError);
    expect(fake.session(`${key}-plugin`)!.exceptions.every((entry) => entry.at === 'transport')).toBe(true);
  });

  it.each([
    ['SynthesizeSpeech (neural)', { engine: 'neural' as const, streaming: false, sampleRate: 8000 as const }],
    [
      'StartSpeechSynthesisStream (generative, the production default)',
      { engine: 'generative' as const, streaming: true, sampleRate: 16000 as const },
    ],
  ])('PollyTTS over %s: frames as long as espeak-ng takes to say it', async (_name, options) => {
    const plugin = new PollyTTS({ client: client((c) => new PollyClient(c)), ...options });
    const text = 'Your request is recorded. Is there anything else?';
    let samples = 0;
    let level = 0;
    if (options.streaming) {
      const stream = plugin.stream({ connOptions: noRetry });
      for (const piece of ['Your requ', 'est is recorded. ', 'Is there anything ', 'else?']) stream.pushText(piece);
      stream.endInput();
      for await (const audio of stream) {
        if (audio === tts.SynthesizeStream.END_OF_STREAM) break;
        samples += audio.frame.samplesPerChannel;
        level = Math.max(level, rms(audio.frame.data));
      }
    } else {
      const frame = await plugin.synthesize(text, noRetry).collect();
      samples = frame.samplesPerChannel;
      level = rms(frame.data);
    }
    // The stream speaks the two sentences separately (as they complete); espeak's rendering of each is the reference.
    const expectedBytes = options.streaming
      ? espeakPcmBytes('Your request is recorded.', options.sampleRate) +
        espeakPcmBytes('Is there anything else?', options.sampleRate)
      : espeakPcmBytes(text, options.sampleRate);
    const frameSamples = options.sampleRate / 50;
    // Within one 20 ms frame (the plugin pads the last one) plus 1 %.
    expect(Math.abs(samples - expectedBytes / 2)).toBeLessThanOrEqual(frameSamples + (expectedBytes / 2) * 0.01);
    expect(level).toBeGreaterThan(SPEECH_RMS_LEVEL);
  });

  it('two plugin sessions at once, each on its own client like two calls, keep their scripts apart', async () => {
    const [a, b] = [`call-a-${randomUUID()}`, `call-b-${randomUUID()}`];
    fake.register(a, { callerSays: ['This is the first caller.'] });
    fake.register(b, { callerSays: ['This is the second caller.'] });
    const speech = concatSamples(silence(200), synthesizeSpeech('hello there'), silence(500));
    const [heardA, heardB] = await Promise.all(
      [a, b].map((key) =>
        listen(
          new TranscribeSTT({
            client: tagged(
              client((c) => new TranscribeStreamingClient(c)),
              key,
            ),
          }),
          speech,
        ),
      ),
    );
    expect(heardA.finals).toEqual(['This is the first caller.']);
    expect(heardB.finals).toEqual(['This is the second caller.']);
  });
});

async function collect(stream: AsyncIterable<llm.ChatChunk>) {
  let text = '';
  const calls: llm.FunctionCall[] = [];
  let usage: llm.CompletionUsage | undefined;
  for await (const chunk of stream) {
    text += chunk.delta?.content ?? '';
    calls.push(...(chunk.delta?.toolCalls ?? []));
    usage = chunk.usage ?? usage;
  }
  return { text, calls, usage };
}

describe('the CLI', () => {
  let cli: ChildProcess | undefined;
  afterAll(() => {
    // Its own process group: the tsx loader and the server go together, pass or fail.
    if (cli?.pid && cli.exitCode === null) process.kill(-cli.pid, 'SIGKILL');
  });

  it('starts on the given address and prints the environment to export', async () => {
    const entry = fileURLToPath(new URL('../src/aws-fake/cli.ts', import.meta.url));
    const args = ['--host', '127.0.0.1', '--port', '0', '--ttft-ms', '40', '--stable-after-ms', '250'];
    cli = spawn(process.execPath, ['--import', 'tsx', entry, ...args], {
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AWS_FAKE_LOG_LEVEL: 'warn' },
    });
    let out = '';
    const printed = await new Promise<Record<string, string>>((resolve, reject) => {
      cli!.on('exit', (code) => reject(new Error(`the CLI exited (${code}) before it printed: ${out}`)));
      cli!.stdout!.on('data', (chunk: Buffer) => {
        out += chunk.toString();
        const lines = Object.fromEntries(
          [...out.matchAll(/^export (\w+)=(\S+)$/gm)].map((match) => [match[1], match[2]]),
        );
        // All lines go out in one write: once the last endpoint line is complete, so are the others.
        if (lines.AWS_ENDPOINT_URL_POLLY && out.endsWith('\n')) resolve(lines);
      });
    });
    const endpoint = printed.AWS_ENDPOINT_URL_BEDROCK_RUNTIME;
    expect(endpoint).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(printed.AWS_ENDPOINT_URL_TRANSCRIBE_STREAMING).toBe(endpoint);
    expect(printed.AWS_ENDPOINT_URL_POLLY).toBe(endpoint);
    const bedrock = new BedrockRuntimeClient({ endpoint, region: REGION, credentials, maxAttempts: 1 });
    clients.push(bedrock);
    const started = performance.now();
    const response = await bedrock.send(
      new ConverseStreamCommand({
        modelId: 'm',
        messages: [{ role: 'user', content: [{ text: '(call connected)' }] }],
      }),
    );
    let firstToken: number | undefined;
    for await (const event of response.stream ?? [])
      if (event.contentBlockDelta) firstToken ??= performance.now() - started;
    // --ttft-ms reached the server: the first token waited for it.
    expect(firstToken).toBeGreaterThanOrEqual(40);
    const latency = (await (await fetch(`${endpoint}/_fake/latency`)).json()) as Record<string, unknown>;
    expect(latency).toMatchObject({ bedrockTtftMs: 40, transcribeStableAfterMs: 250 });
  });

  it('refuses to listen beyond loopback: it has no authentication', () => {
    const entry = fileURLToPath(new URL('../src/aws-fake/cli.ts', import.meta.url));
    const refused = spawnSync(process.execPath, ['--import', 'tsx', entry, '--host', '0.0.0.0'], {
      encoding: 'utf8',
      timeout: 60_000,
    });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toMatch(/--host: a loopback address/);
    expect(refused.stdout).toBe('');
  });
});
