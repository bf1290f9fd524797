import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { PollyClient } from '@aws-sdk/client-polly';
import { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { initializeLogger, llm } from '@livekit/agents';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BedrockLLM } from '../../src/plugins/aws/llm.js';
import { TranscribeSTT } from '../../src/plugins/aws/stt.js';
import { PollyTTS } from '../../src/plugins/aws/tts.js';
import { AwsWire, eventFrame } from '../support/aws-wire.js';

initializeLogger({ pretty: false, level: 'silent' });
let wire: AwsWire;
beforeAll(async () => (wire = await AwsWire.start()));
afterAll(async () => wire?.close());

/** A credentials provider that counts how often the SDK had to ask it (on ECS: a round trip each time). */
function countingCredentials() {
  const counter = { calls: 0 };
  const provider = async () => {
    counter.calls += 1;
    await new Promise((resolve) => setTimeout(resolve, 5));
    return { accessKeyId: 'AKIDTEST', secretAccessKey: 'test-secret', expiration: new Date(Date.now() + 3_600_000) };
  };
  return { counter, provider };
}

const until = async (condition: () => boolean) => {
  const deadline = Date.now() + 5_000;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
};

describe('prewarm', () => {
  it('resolves Bedrock credentials before the first turn, so the turn does not wait for them', async () => {
    const { counter, provider } = countingCredentials();
    const client = new BedrockRuntimeClient({ ...wire.clientConfig(), credentials: provider, maxAttempts: 1 });
    wire.on(/converse-stream$/, async (exchange) => {
      await exchange.json();
      exchange.respond('application/vnd.amazon.eventstream');
      await exchange.write(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Hi' } }));
      await exchange.write(eventFrame('messageStop', { stopReason: 'end_turn' }));
      exchange.end();
    });
    const model = new BedrockLLM({ client, model: 'm' });
    model.prewarm();
    await until(() => counter.calls === 1);
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Hello' });
    expect((await model.chat({ chatCtx: ctx }).collect()).text).toBe('Hi');
    expect(counter.calls).toBe(1);
    await model.aclose();
    client.destroy();
  });

  it('resolves Transcribe and Polly credentials once, however often it is asked', async () => {
    const transcribe = countingCredentials();
    const polly = countingCredentials();
    const sttClient = new TranscribeStreamingClient({ ...wire.clientConfig(), credentials: transcribe.provider });
    const stt = new TranscribeSTT({ client: sttClient });
    const tts = new PollyTTS({ client: new PollyClient({ ...wire.clientConfig(), credentials: polly.provider }) });
    stt.prewarm();
    stt.prewarm();
    tts.prewarm();
    tts.prewarm();
    await until(() => transcribe.counter.calls === 1 && polly.counter.calls === 1);
    await stt.close();
    await tts.close();
    expect(transcribe.counter.calls).toBe(1);
    expect(polly.counter.calls).toBe(1);
  });
});
