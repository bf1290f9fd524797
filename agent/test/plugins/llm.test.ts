import {
  BedrockRuntimeClient,
  ConverseStreamCommand,
  type ConverseStreamCommandInput,
  type ConverseStreamOutput,
  ValidationException,
} from '@aws-sdk/client-bedrock-runtime';
import { type APIError, initializeLogger, llm, type metrics } from '@livekit/agents';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { BedrockLLM, type BedrockLLMOptions, toCompletionUsage } from '../../src/plugins/aws/llm.js';

initializeLogger({ pretty: false, level: 'silent' });
const bedrock = mockClient(BedrockRuntimeClient);
const noRetry = { maxRetry: 0, retryIntervalMs: 0, timeoutMs: 10_000 };

async function* eventStream(events: ConverseStreamOutput[], afterEach?: (i: number) => Promise<void>) {
  for (const [i, event] of events.entries()) {
    yield event;
    if (afterEach) await afterEach(i);
  }
}

function textEvents(...parts: string[]): ConverseStreamOutput[] {
  return [
    { messageStart: { role: 'assistant' } },
    ...parts.map((text) => ({ contentBlockDelta: { contentBlockIndex: 0, delta: { text } } })),
    { contentBlockStop: { contentBlockIndex: 0 } },
    { messageStop: { stopReason: 'end_turn' } },
    {
      metadata: {
        usage: {
          inputTokens: 12,
          outputTokens: 5,
          totalTokens: 17,
          cacheReadInputTokens: 100,
          cacheWriteInputTokens: 0,
        },
        metrics: { latencyMs: 80 },
      },
    },
  ];
}

function newLLM(opts: Partial<BedrockLLMOptions> = {}) {
  return new BedrockLLM({
    client: new BedrockRuntimeClient({ region: 'us-east-1' }),
    ...opts,
  });
}

function userCtx(text = 'Hello') {
  const ctx = llm.ChatContext.empty();
  ctx.addMessage({ role: 'system', content: 'You are the intake agent.' });
  ctx.addMessage({ role: 'user', content: text });
  return ctx;
}

function sentInputs(): ConverseStreamCommandInput[] {
  return bedrock.commandCalls(ConverseStreamCommand).map((c) => c.args[0].input);
}

beforeEach(() => bedrock.reset());
afterEach(() => bedrock.reset());

describe('BedrockLLM', () => {
  it('streams text deltas and reports usage including cache tokens', async () => {
    bedrock.on(ConverseStreamCommand).resolves({
      stream: eventStream(textEvents('Hi ', 'there.')),
      $metadata: { requestId: 'req-1' },
    });
    const model = newLLM({ temperature: 0.2, maxTokens: 300, topP: 0.9 });
    const collectedMetrics: metrics.LLMMetrics[] = [];
    model.on('metrics_collected', (m) => collectedMetrics.push(m as metrics.LLMMetrics));

    const chunks: llm.ChatChunk[] = [];
    for await (const chunk of model.chat({ chatCtx: userCtx(), connOptions: noRetry })) chunks.push(chunk);

    expect(chunks.filter((c) => c.delta?.content).map((c) => c.delta?.content)).toEqual(['Hi ', 'there.']);
    expect(chunks.every((c) => c.id === 'req-1')).toBe(true);
    expect(chunks.at(-1)?.usage).toEqual({
      promptTokens: 112,
      completionTokens: 5,
      promptCachedTokens: 100,
      cacheCreationTokens: 0,
      totalTokens: 117,
    });
    const [input] = sentInputs();
    expect(input.modelId).toBe('us.anthropic.claude-haiku-4-5-20251001-v1:0');
    expect(input.inferenceConfig).toEqual({ maxTokens: 300, temperature: 0.2, topP: 0.9 });
    expect(input.system).toEqual([{ text: 'You are the intake agent.' }, { cachePoint: { type: 'default' } }]);
    expect(input.toolConfig).toBeUndefined();
    await new Promise((r) => setImmediate(r));
    expect(collectedMetrics[0]).toMatchObject({
      promptCachedTokens: 100,
      completionTokens: 5,
      label: 'aws.BedrockLLM',
    });
  });

  it('accumulates tool-use input across deltas and emits the call at block stop', async () => {
    const lookup = llm.tool({
      name: 'lookup_caller',
      description: 'Find the caller',
      parameters: { type: 'object', properties: { phone: { type: 'string' } }, required: ['phone'] },
      execute: async () => 'Ana',
    });
    let emittedBeforeStop = -1;
    const collected: llm.ChatChunk[] = [];
    const events: ConverseStreamOutput[] = [
      { messageStart: { role: 'assistant' } },
      { contentBlockDelta: { contentBlockIndex: 0, delta: { text: 'Let me check.' } } },
      { contentBlockStop: { contentBlockIndex: 0 } },
      {
        contentBlockStart: {
          contentBlockIndex: 1,
          start: { toolUse: { toolUseId: 'tooluse_1', name: 'lookup_caller' } },
        },
      },
      { contentBlockDelta: { contentBlockIndex: 1, delta: { toolUse: { input: '{"pho' } } } },
      { contentBlockDelta: { contentBlockIndex: 1, delta: { toolUse: { input: 'ne":"+1555' } } } },
      { contentBlockDelta: { contentBlockIndex: 1, delta: { toolUse: { input: '0100"}' } } } },
      { contentBlockStop: { contentBlockIndex: 1 } },
      { messageStop: { stopReason: 'tool_use' } },
    ];
    bedrock.on(ConverseStreamCommand).resolves({
      stream: eventStream(events, async (i) => {
        // Before the tool block stops, no tool call may have reached the caller.
        if (i === 6) {
          await new Promise((r) => setImmediate(r));
          emittedBeforeStop = collected.filter((c) => c.delta?.toolCalls?.length).length;
        }
      }),
      $metadata: { requestId: 'req-tools' },
    });

    const stream = newLLM().chat({ chatCtx: userCtx('Who am I?'), toolCtx: [lookup], connOptions: noRetry });
    for await (const chunk of stream) collected.push(chunk);

    expect(emittedBeforeStop).toBe(0);
    const calls = collected.flatMap((c) => c.delta?.toolCalls ?? []);
    expect(calls).toHaveLength(1);
    expect(calls[0]).toBeInstanceOf(llm.FunctionCall);
    expect(calls[0]).toMatchObject({ callId: 'tooluse_1', name: 'lookup_caller', args: '{"phone":"+15550100"}' });
    expect(JSON.parse(calls[0].args)).toEqual({ phone: '+15550100' });
    const [input] = sentInputs();
    expect(input.toolConfig?.toolChoice).toEqual({ auto: {} });
    expect(input.toolConfig?.tools?.[0]).toMatchObject({ toolSpec: { name: 'lookup_caller' } });
    expect(input.toolConfig?.tools?.at(-1)).toEqual({ cachePoint: { type: 'default' } });
  });

  it('sends the tool choice given to chat() and withholds tools for "none"', async () => {
    const hangUp = llm.tool({ name: 'hang_up', description: 'End the call', execute: async () => 'bye' });
    bedrock.on(ConverseStreamCommand).callsFake(async () => ({ stream: eventStream(textEvents('ok')), $metadata: {} }));
    const model = newLLM({ toolChoice: 'required' });

    await model.chat({ chatCtx: userCtx(), toolCtx: [hangUp], connOptions: noRetry }).collect();
    await model
      .chat({
        chatCtx: userCtx(),
        toolCtx: [hangUp],
        toolChoice: { type: 'function', function: { name: 'hang_up' } },
        connOptions: noRetry,
      })
      .collect();
    await model.chat({ chatCtx: userCtx(), toolCtx: [hangUp], toolChoice: 'none', connOptions: noRetry }).collect();

    const [required, named, none] = sentInputs();
    expect(required.toolConfig?.toolChoice).toEqual({ any: {} });
    expect(named.toolConfig?.toolChoice).toEqual({ tool: { name: 'hang_up' } });
    expect(none.toolConfig).toBeUndefined();
  });

  it('fails fast on a validation error, without retrying or falling back', async () => {
    bedrock
      .on(ConverseStreamCommand)
      .rejects(new ValidationException({ message: 'messages: bad', $metadata: { httpStatusCode: 400 } }));
    const model = newLLM();
    const errors: APIError[] = [];
    model.on('error', (e) => errors.push(e.error as APIError));

    await model.chat({ chatCtx: userCtx(), connOptions: { ...noRetry, maxRetry: 2 } }).collect();

    expect(sentInputs()).toHaveLength(1);
    expect(errors[0].retryable).toBe(false);
    expect(errors[0]).toMatchObject({ statusCode: 400 });
    expect(errors[0].message).toContain('ValidationException');
  });

  it('aborts the in-flight request when the stream is closed (barge-in)', async () => {
    const sentSignal = () =>
      ((bedrock.send.getCall(0).args as unknown[])[1] as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
    bedrock.on(ConverseStreamCommand).callsFake(async () => ({
      stream: (async function* () {
        yield { contentBlockDelta: { contentBlockIndex: 0, delta: { text: 'Well' } } } as ConverseStreamOutput;
        await new Promise<void>((resolve) => sentSignal()?.addEventListener('abort', () => resolve()));
        yield { contentBlockDelta: { contentBlockIndex: 0, delta: { text: ' never said' } } } as ConverseStreamOutput;
      })(),
      $metadata: {},
    }));
    const stream = newLLM().chat({ chatCtx: userCtx(), connOptions: noRetry });
    const texts: string[] = [];
    for await (const chunk of stream) {
      if (chunk.delta?.content) texts.push(chunk.delta.content);
      stream.close();
    }
    expect(sentSignal()?.aborted).toBe(true);
    expect(texts).toEqual(['Well']);
  });

  it('rejects bad options naming the key', () => {
    expect(() => newLLM({ temperature: 3 })).toThrow(/options\.temperature/);
    expect(() => newLLM({ maxTokens: 0 })).toThrow(/options\.maxTokens/);
    expect(() => newLLM({ model: ' ' })).toThrow(/options\.model/);
    expect(() => newLLM({ requestMetadata: { callId: 'call<script>' } })).toThrow(/options\.requestMetadata\.callId/);
    expect(() => newLLM({ requestMetadata: { '': 'x' } })).toThrow(/options\.requestMetadata: key ""/);
    const tooMany = Object.fromEntries(Array.from({ length: 17 }, (_, index) => [`k${index}`, 'v']));
    expect(() => newLLM({ requestMetadata: tooMany })).toThrow(/options\.requestMetadata: at most 16/);
  });

  it('tags every request with its request metadata (the call ID in invocation logs)', async () => {
    bedrock.on(ConverseStreamCommand).resolves({ stream: eventStream(textEvents('ok')), $metadata: {} });
    await newLLM({ requestMetadata: { callId: 'call-42.a_b:c' } })
      .chat({ chatCtx: userCtx(), connOptions: noRetry })
      .collect();
    await newLLM().chat({ chatCtx: userCtx(), connOptions: noRetry }).collect();
    const [tagged, untagged] = sentInputs();
    expect(tagged.requestMetadata).toEqual({ callId: 'call-42.a_b:c' });
    expect(untagged).not.toHaveProperty('requestMetadata');
  });

  it('accepts an inference-profile ARN as the model', async () => {
    const arn = 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/abc123';
    bedrock.on(ConverseStreamCommand).resolves({ stream: eventStream(textEvents('ok')), $metadata: {} });
    const model = newLLM({ model: arn });
    expect(model.model).toBe(arn);
    await model.chat({ chatCtx: userCtx(), connOptions: noRetry }).collect();
    expect(sentInputs()[0].modelId).toBe(arn);
  });
});

describe('helpers', () => {
  it('counts cache reads and writes as prompt tokens', () => {
    expect(
      toCompletionUsage({
        inputTokens: 10,
        outputTokens: 4,
        totalTokens: 14,
        cacheReadInputTokens: 0,
        cacheWriteInputTokens: 900,
      }),
    ).toEqual({
      promptTokens: 910,
      completionTokens: 4,
      promptCachedTokens: 0,
      cacheCreationTokens: 900,
      totalTokens: 914,
    });
  });
});
