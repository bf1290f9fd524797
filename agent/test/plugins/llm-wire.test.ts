import { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import { type APIError, DEFAULT_API_CONNECT_OPTIONS, initializeLogger, llm, type metrics } from '@livekit/agents';
import { describe, expect, it } from 'vitest';
import { BEDROCK_MODEL_EXTRA, BedrockFallbackLLM, BedrockLLM } from '../../src/plugins/aws/llm.js';
import { eventFrame, exceptionFrame, useAwsWire, type WireExchange, type WireHandler } from '../support/aws-wire.js';

/**
 * BedrockLLM against Bedrock on the wire (the real SDK client, event-stream frames from the SDK's codec), under the
 * framework's own retry loop with its default connection options (3 retries) unless a test says otherwise.
 */

initializeLogger({ pretty: false, level: 'silent' });
const EVENT_STREAM = 'application/vnd.amazon.eventstream';
const CONVERSE = /\/converse-stream$/;
const aws = useAwsWire(BedrockRuntimeClient);

function modelOf(exchange: WireExchange): string {
  return decodeURIComponent(/\/model\/([^/]+)\/converse-stream/.exec(exchange.path)?.[1] ?? '');
}

/** A whole answer: text in pieces, then messageStop and usage. */
function answer(...parts: string[]): WireHandler {
  return async (exchange) => {
    await exchange.json();
    exchange.respond(EVENT_STREAM, { 'x-amzn-requestid': `req-${modelOf(exchange)}-${aws.wire.requests.length}` });
    await exchange.write(eventFrame('messageStart', { role: 'assistant' }));
    for (const text of parts) {
      await exchange.write(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text } }));
    }
    await exchange.write(eventFrame('contentBlockStop', { contentBlockIndex: 0 }));
    await exchange.write(eventFrame('messageStop', { stopReason: 'end_turn' }));
    const usage = { inputTokens: 10, outputTokens: 3, totalTokens: 13 };
    await exchange.write(eventFrame('metadata', { usage, metrics: { latencyMs: 5 } }));
    exchange.end();
  };
}

/** Each request is served by the next handler; the last one serves the rest. */
function script(...handlers: WireHandler[]): WireHandler {
  let served = 0;
  return (exchange) => handlers[Math.min(served++, handlers.length - 1)](exchange);
}

const throttled: WireHandler = async (exchange) => {
  await exchange.json();
  exchange.fail(429, 'ThrottlingException', 'Too many requests, please wait before trying again.');
};

function userCtx(text = 'Hello') {
  const ctx = llm.ChatContext.empty();
  ctx.addMessage({ role: 'user', content: text });
  return ctx;
}

function newLLM(model = 'primary-model') {
  return new BedrockLLM({ client: aws.client, model });
}

function errorsOf(model: llm.LLM): { error: APIError; recoverable: boolean }[] {
  const errors: { error: APIError; recoverable: boolean }[] = [];
  model.on('error', (event) => errors.push({ error: event.error as APIError, recoverable: event.recoverable }));
  return errors;
}

async function texts(stream: llm.LLMStream): Promise<{ text: string; models: string[] }> {
  let text = '';
  const models: string[] = [];
  for await (const chunk of stream) {
    text += chunk.delta?.content ?? '';
    const model = chunk.delta?.extra?.[BEDROCK_MODEL_EXTRA];
    if (typeof model === 'string') models.push(model);
  }
  return { text, models };
}

describe('BedrockLLM on the wire, framework defaults', () => {
  it('detects a stream that stalls after its headers within the timeout, aborts it and retries', async () => {
    let stalled: WireExchange | undefined;
    aws.wire.on(
      CONVERSE,
      script(
        async (exchange) => {
          stalled = exchange;
          await exchange.json();
          exchange.respond(EVENT_STREAM);
          await exchange.write(eventFrame('messageStart', { role: 'assistant' }));
          await exchange.closed; // says nothing more
        },
        answer('After ', 'the stall.'),
      ),
    );
    const timeoutMs = 300;
    const model = newLLM();
    const errors = errorsOf(model);

    const connOptions = { ...DEFAULT_API_CONNECT_OPTIONS, timeoutMs };
    const { text } = await texts(model.chat({ chatCtx: userCtx(), connOptions }));

    expect(text).toBe('After the stall.');
    expect(aws.wire.requests).toHaveLength(2);
    const detectedAfter = aws.wire.requests[1].at - aws.wire.requests[0].at;
    // The timeout, then the framework's first retry interval (100 ms); the rest is slack for a loaded machine (timers fire late there, never early).
    expect(detectedAfter).toBeGreaterThanOrEqual(timeoutMs);
    expect(detectedAfter).toBeLessThan(timeoutMs + 100 + 1_000);
    await stalled!.closed; // the stalled request was aborted, not left open
    expect(errors).toHaveLength(1);
    expect(errors[0].recoverable).toBe(true);
    expect(errors[0].error.name).toBe('APITimeoutError');
  });

  it('retries a throttled request through the framework loop, once per attempt (no SDK retries)', async () => {
    aws.wire.on(CONVERSE, script(throttled, throttled, answer('Third time.')));
    const model = newLLM();
    const errors = errorsOf(model);
    const connOptions = { ...DEFAULT_API_CONNECT_OPTIONS, retryIntervalMs: 50 };
    const { text } = await texts(model.chat({ chatCtx: userCtx(), connOptions }));
    expect(text).toBe('Third time.');
    expect(aws.wire.count(CONVERSE)).toBe(3);
    expect(errors.map((e) => [e.recoverable, (e.error as { statusCode?: number }).statusCode])).toEqual([
      [true, 429],
      [true, 429],
    ]);
  });

  it('treats a lost connection as retryable', async () => {
    aws.wire.on(
      CONVERSE,
      script(async (exchange) => {
        await exchange.json();
        exchange.drop();
      }, answer('Reconnected.')),
    );
    const model = newLLM();
    const errors = errorsOf(model);
    const { text } = await texts(model.chat({ chatCtx: userCtx() }));
    expect(text).toBe('Reconnected.');
    expect(errors.map((e) => [e.error.name, e.error.retryable])).toEqual([['APIConnectionError', true]]);
  });

  it('retries a stream exception thrown before any text, and says nothing twice', async () => {
    aws.wire.on(
      CONVERSE,
      script(
        async (exchange) => {
          await exchange.json();
          exchange.respond(EVENT_STREAM);
          await exchange.write(eventFrame('messageStart', { role: 'assistant' }));
          await exchange.write(exceptionFrame('modelStreamErrorException', 'the model stream broke'));
          exchange.end();
        },
        answer('Clean ', 'answer.'),
      ),
    );
    const model = newLLM();
    const errors = errorsOf(model);
    const { text } = await texts(model.chat({ chatCtx: userCtx() }));
    expect(errors.map((e) => e.recoverable)).toEqual([true]);
    expect(text).toBe('Clean answer.');
    expect(aws.wire.count(CONVERSE)).toBe(2);
  });

  it('does not retry once text went out: the SDK throws the stream exception and the failure is final', async () => {
    aws.wire.on(CONVERSE, async (exchange) => {
      await exchange.json();
      exchange.respond(EVENT_STREAM);
      await exchange.write(eventFrame('messageStart', { role: 'assistant' }));
      await exchange.write(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Half a sen' } }));
      await exchange.write(exceptionFrame('throttlingException', 'slow down'));
      exchange.end();
    });
    const model = newLLM();
    const errors = errorsOf(model);
    const { text } = await texts(model.chat({ chatCtx: userCtx() }));
    expect(text).toBe('Half a sen');
    expect(aws.wire.count(CONVERSE)).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0].recoverable).toBe(false);
    expect(errors[0].error.message).toContain('ThrottlingException');
  });

  it('does not take a stream cut off before messageStop for a whole answer', async () => {
    aws.wire.on(
      CONVERSE,
      script(async (exchange) => {
        await exchange.json();
        exchange.respond(EVENT_STREAM);
        await exchange.write(eventFrame('messageStart', { role: 'assistant' }));
        exchange.end();
      }, answer('Complete.')),
    );
    const model = newLLM();
    const errors = errorsOf(model);
    const { text } = await texts(model.chat({ chatCtx: userCtx() }));
    expect(errors.map((e) => e.error.name)).toEqual(['APIConnectionError']);
    expect(text).toBe('Complete.');
    expect(aws.wire.count(CONVERSE)).toBe(2);
  });

  it('fails a validation error at once', async () => {
    aws.wire.on(CONVERSE, async (exchange) => {
      await exchange.json();
      exchange.fail(400, 'ValidationException', 'messages: bad');
    });
    const model = newLLM();
    const errors = errorsOf(model);
    await texts(model.chat({ chatCtx: userCtx() }));
    expect(aws.wire.count(CONVERSE)).toBe(1);
    expect(errors).toHaveLength(1);
    expect(errors[0].error).toMatchObject({ statusCode: 400, retryable: false });
  });

  it('aborts the HTTP/2 request when the stream is closed (barge-in)', async () => {
    let open: WireExchange | undefined;
    aws.wire.on(CONVERSE, async (exchange) => {
      open = exchange;
      await exchange.json();
      exchange.respond(EVENT_STREAM);
      await exchange.write(eventFrame('contentBlockDelta', { contentBlockIndex: 0, delta: { text: 'Well' } }));
      await exchange.closed;
    });
    const model = newLLM();
    const errors = errorsOf(model);
    const stream = model.chat({ chatCtx: userCtx() });
    const first = await stream.next();
    expect(first.value?.delta?.content).toBe('Well');
    stream.close();
    await open!.closed;
    expect(aws.wire.count(CONVERSE)).toBe(1);
    expect(errors).toEqual([]);
  });
});

describe('fallback through llm.FallbackAdapter', () => {
  const PRIMARY = /\/model\/primary-model\//;
  const FALLBACK = /\/model\/fallback-model\//;

  it('skips a throttled primary on later turns; chunks and metrics name the model that answered', async () => {
    aws.wire.on(PRIMARY, throttled).on(FALLBACK, answer('From ', 'the fallback.'));
    const adapter = new BedrockFallbackLLM([newLLM('primary-model'), newLLM('fallback-model')]);
    const served: string[] = [];
    adapter.on('metrics_collected', (m) => {
      const collected = m as metrics.LLMMetrics;
      if (collected.label !== 'aws.BedrockLLM' || collected.ttftMs < 0) return;
      served.push(String(collected.metadata?.modelName));
    });
    const errors = errorsOf(adapter);

    const first = await texts(adapter.chat({ chatCtx: userCtx(), connOptions: DEFAULT_API_CONNECT_OPTIONS }));
    expect(first).toEqual({ text: 'From the fallback.', models: ['fallback-model'] });
    // The adapter checks in the background whether the primary recovered: let that request finish.
    await new Promise((resolve) => setTimeout(resolve, 100));
    const primaryAfterFirstTurn = aws.wire.count(PRIMARY);
    expect(primaryAfterFirstTurn).toBeGreaterThanOrEqual(1);

    const second = await texts(adapter.chat({ chatCtx: userCtx('Again'), connOptions: DEFAULT_API_CONNECT_OPTIONS }));

    expect(second.models).toEqual(['fallback-model']);
    // Not asked at all on the second turn: no attempt, no backoff.
    expect(aws.wire.count(PRIMARY)).toBe(primaryAfterFirstTurn);
    await new Promise((resolve) => setImmediate(resolve));
    expect(served).toEqual(['fallback-model', 'fallback-model']);
    expect(errors).toEqual([]);
  });

  it('tries each model once per turn when all fail, and fails the turn once (no outer retry loop)', async () => {
    aws.wire.on(PRIMARY, throttled).on(FALLBACK, throttled);
    const adapter = new BedrockFallbackLLM([newLLM('primary-model'), newLLM('fallback-model')]);
    const errors = errorsOf(adapter);
    const { text } = await texts(adapter.chat({ chatCtx: userCtx(), connOptions: DEFAULT_API_CONNECT_OPTIONS }));
    expect(text).toBe('');
    await new Promise((resolve) => setTimeout(resolve, 100));
    // One attempt each, and at most the adapter's one background check each: the session's loop (3 retries) is off.
    expect(aws.wire.count(PRIMARY)).toBeLessThanOrEqual(2);
    expect(aws.wire.count(FALLBACK)).toBeLessThanOrEqual(2);
    expect(errors).toHaveLength(1);
    expect(errors[0].recoverable).toBe(false);
    expect(errors[0].error.message).toMatch(/all LLMs failed/);
  });
});
