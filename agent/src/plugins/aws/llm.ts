import {
  BedrockRuntimeClient,
  ConverseStreamCommand,
  type ConverseStreamCommandInput,
  type ConverseStreamOutput,
  type TokenUsage,
} from '@aws-sdk/client-bedrock-runtime';
import {
  APIConnectionError,
  type APIConnectOptions,
  APIError,
  DEFAULT_API_CONNECT_OPTIONS,
  llm,
  shortuuid,
} from '@livekit/agents';
import { hasToolHistory, toBedrockConversation, toBedrockToolConfig } from './bedrock-format.js';
import { isAbortError, toAPIError } from './errors.js';
import { StallWatch } from './stall.js';
import { stripUndefined, warmUpClient } from './util.js';

/** Key in a chunk's `delta.extra` naming the model that produced it (with a fallback, not always the first). */
export const BEDROCK_MODEL_EXTRA = 'aws.bedrock.model';

export interface BedrockLLMOptions {
  /** Model ID, cross-region inference profile ID or inference-profile ARN. Default `us.anthropic.claude-haiku-4-5-20251001-v1:0`. */
  model: string;
  /** AWS region for the client this plugin creates. Default: the SDK's resolution (AWS_REGION, profile). */
  region?: string;
  /** A pre-built client (shared across sessions, custom credentials, tests). Default: one is created. */
  client?: BedrockRuntimeClient;
  /** Sampling temperature. Default: the model's. */
  temperature?: number;
  /** Maximum output tokens. Default 1024 (a spoken reply is short; this bounds a runaway answer). */
  maxTokens: number;
  /** Nucleus sampling. Default: the model's. */
  topP?: number;
  /** Tool choice when `chat()` does not give one. Default `auto`. */
  toolChoice: llm.ToolChoice;
  /** Put a `cachePoint` after the system prompt (prompt caching). Default true. */
  cacheSystemPrompt: boolean;
  /** Put a `cachePoint` after the tool definitions (prompt caching). Default true. */
  cacheTools: boolean;
  /** Passed through as `additionalModelRequestFields` (model-specific parameters). Default none. */
  additionalModelRequestFields?: Record<string, unknown>;
  /**
   * Key-value pairs Bedrock writes beside each request in its model invocation logs (e.g. the call ID, so a call's
   * invocations can be found and billed). At most 16; keys 1–256 and values 0–256 characters of letters, digits,
   * spaces and `:_@$#=/+,-.`. Default none.
   */
  requestMetadata?: Record<string, string>;
}

export const DEFAULT_BEDROCK_LLM_OPTIONS: BedrockLLMOptions = {
  model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
  maxTokens: 1024,
  toolChoice: 'auto',
  cacheSystemPrompt: true,
  cacheTools: true,
};

/** Amazon Bedrock (ConverseStream) LLM for LiveKit Agents. */
export class BedrockLLM extends llm.LLM {
  readonly #opts: BedrockLLMOptions;
  readonly #client: BedrockRuntimeClient;
  readonly #ownsClient: boolean;

  constructor(opts: Partial<BedrockLLMOptions> = {}) {
    super();
    this.#opts = { ...DEFAULT_BEDROCK_LLM_OPTIONS, ...stripUndefined(opts) };
    validateLLMOptions(this.#opts);
    this.#ownsClient = !opts.client;
    // One retry owner: the framework's (connOptions) or the FallbackAdapter's. SDK retries would hide throttling
    // from it and multiply the attempts.
    this.#client = opts.client ?? new BedrockRuntimeClient({ region: opts.region, maxAttempts: 1 });
  }

  label(): string {
    return 'aws.BedrockLLM';
  }

  override get model(): string {
    return this.#opts.model;
  }

  override get provider(): string {
    return 'aws.bedrock';
  }

  chat({
    chatCtx,
    toolCtx,
    connOptions = DEFAULT_API_CONNECT_OPTIONS,
    toolChoice,
  }: {
    chatCtx: llm.ChatContext;
    toolCtx?: llm.ToolContextLike;
    connOptions?: APIConnectOptions;
    parallelToolCalls?: boolean;
    toolChoice?: llm.ToolChoice;
    extraKwargs?: Record<string, unknown>;
  }): BedrockLLMStream {
    return new BedrockLLMStream(this, {
      chatCtx,
      toolCtx,
      connOptions,
      client: this.#client,
      opts: { ...this.#opts, toolChoice: toolChoice ?? this.#opts.toolChoice },
    });
  }

  /** Credentials and region resolved before the first turn (each ConverseStream opens its own HTTP/2 connection). */
  protected override async _prewarmImpl(signal: AbortSignal): Promise<void> {
    await warmUpClient(this.#client, signal);
  }

  override async aclose(): Promise<void> {
    await super.aclose();
    if (this.#ownsClient) this.#client.destroy();
  }
}

/**
 * The framework's `llm.FallbackAdapter` over Bedrock models, as the only retry owner of the LLM: it tries the
 * available models in order, marks one that fails unavailable (later turns skip it at no cost while a background
 * request checks whether it recovered) and gives up once every model failed. The session's own retry loop around
 * the adapter is turned off (`maxRetry: 0`), or each turn would walk the whole list up to four times.
 */
export class BedrockFallbackLLM extends llm.FallbackAdapter {
  constructor(
    readonly models: BedrockLLM[],
    options: Omit<llm.FallbackAdapterOptions, 'llms'> = {},
  ) {
    super({ ...options, llms: models });
  }

  override get model(): string {
    return this.models.map((model) => model.model).join(',');
  }

  override get provider(): string {
    return 'aws.bedrock';
  }

  override chat(opts: Parameters<llm.FallbackAdapter['chat']>[0]): llm.LLMStream {
    const connOptions = { ...DEFAULT_API_CONNECT_OPTIONS, ...opts.connOptions, maxRetry: 0 };
    return super.chat({ ...opts, connOptions });
  }

  override prewarm(): void {
    for (const model of this.models) model.prewarm();
  }

  override async aclose(): Promise<void> {
    await Promise.all(this.models.map((model) => model.aclose()));
    await super.aclose();
  }
}

/** One Bedrock model, or with `fallbackModel` both behind the framework's FallbackAdapter. */
export function bedrockLLM(
  opts: Partial<BedrockLLMOptions> & { fallbackModel?: string; fallback?: Omit<llm.FallbackAdapterOptions, 'llms'> },
): BedrockLLM | BedrockFallbackLLM {
  const { fallbackModel, fallback, ...primary } = opts;
  if (fallbackModel === undefined) return new BedrockLLM(primary);
  if (!fallbackModel.trim()) throw new Error('BedrockLLM options.fallbackModel: must not be empty');
  const models = [new BedrockLLM(primary), new BedrockLLM({ ...primary, model: fallbackModel })];
  return new BedrockFallbackLLM(models, fallback);
}

export class BedrockLLMStream extends llm.LLMStream {
  readonly #client: BedrockRuntimeClient;
  readonly #opts: BedrockLLMOptions;
  /** Whether anything reached the caller during this attempt: then a retry would repeat it. */
  #emitted = false;

  constructor(
    owner: BedrockLLM,
    params: {
      chatCtx: llm.ChatContext;
      toolCtx?: llm.ToolContextLike;
      connOptions: APIConnectOptions;
      client: BedrockRuntimeClient;
      opts: BedrockLLMOptions;
    },
  ) {
    super(owner, { chatCtx: params.chatCtx, toolCtx: params.toolCtx, connOptions: params.connOptions });
    this.#client = params.client;
    this.#opts = params.opts;
  }

  /** The request sent to Bedrock, without the model (which changes on fallback). */
  buildRequest(): Omit<ConverseStreamCommandInput, 'modelId'> {
    const toolConfig = toBedrockToolConfig(this.toolCtx, this.#opts.toolChoice, { cacheTools: this.#opts.cacheTools });
    const { system, messages } = toBedrockConversation(this.chatCtx, {
      cacheSystemPrompt: this.#opts.cacheSystemPrompt,
      toolHistoryAsText: !toolConfig && hasToolHistory(this.chatCtx),
    });
    return stripUndefined({
      system: system.length > 0 ? system : undefined,
      messages,
      toolConfig,
      inferenceConfig: stripUndefined({
        maxTokens: this.#opts.maxTokens,
        temperature: this.#opts.temperature,
        topP: this.#opts.topP,
      }),
      additionalModelRequestFields: this.#opts.additionalModelRequestFields as never,
      requestMetadata: this.#opts.requestMetadata,
    });
  }

  /**
   * One attempt on one model. Retries belong to the framework's loop (connOptions) or, with a fallback model, to
   * `llm.FallbackAdapter`: a failure before anything was emitted is retryable when the service says so; once text or
   * a tool call went out it is final, since a retry would say it again.
   */
  protected async run(): Promise<void> {
    this.#emitted = false;
    let request: Omit<ConverseStreamCommandInput, 'modelId'>;
    try {
      request = this.buildRequest();
    } catch (error) {
      throw new APIError(`bedrock: cannot build the request: ${(error as Error).message}`, { retryable: false });
    }
    const modelId = this.#opts.model;
    const watch = new StallWatch(this.connOptions.timeoutMs, `bedrock ${modelId}`, this.abortController.signal);
    try {
      const response = await watch.race(
        this.#client.send(new ConverseStreamCommand({ ...request, modelId }), { abortSignal: watch.signal }),
      );
      watch.touch();
      const requestId = response.$metadata?.requestId ?? shortuuid('bedrock_');
      const toolUses = new Map<number, { toolUseId: string; name: string; input: string }>();
      let stopped = false;
      for await (const event of watch.events(response.stream ?? [])) {
        if (this.abortController.signal.aborted) return;
        stopped ||= event.messageStop !== undefined;
        this.#handleEvent(event, requestId, modelId, toolUses);
      }
      // An aborted HTTP/2 stream (or a lost connection) can end the event stream quietly rather than throw.
      if (watch.timedOut) throw watch.error();
      if (!stopped && !this.abortController.signal.aborted) {
        throw new APIConnectionError({ message: `bedrock ${modelId}: the stream ended before messageStop` });
      }
    } catch (error) {
      if (this.abortController.signal.aborted) return;
      if (!watch.timedOut && isAbortError(error)) return;
      const failure = watch.timedOut ? watch.error() : error;
      // Text or tool calls already went out: repeating the request would say them twice.
      throw toAPIError(failure, `bedrock ${modelId}`, this.#emitted ? { retryable: false } : {});
    } finally {
      watch.stop();
    }
  }

  #handleEvent(
    event: ConverseStreamOutput,
    requestId: string,
    modelId: string,
    toolUses: Map<number, { toolUseId: string; name: string; input: string }>,
  ): void {
    if (event.contentBlockStart) {
      const toolUse = event.contentBlockStart.start?.toolUse;
      if (toolUse?.toolUseId && toolUse.name) {
        toolUses.set(event.contentBlockStart.contentBlockIndex ?? 0, {
          toolUseId: toolUse.toolUseId,
          name: toolUse.name,
          input: '',
        });
      }
    } else if (event.contentBlockDelta) {
      const { delta, contentBlockIndex = 0 } = event.contentBlockDelta;
      if (delta?.text) {
        this.#put(modelId, { id: requestId, delta: { role: 'assistant', content: delta.text } });
      } else if (delta?.toolUse) {
        const toolUse = toolUses.get(contentBlockIndex);
        if (toolUse) toolUse.input += delta.toolUse.input ?? '';
      }
      // reasoningContent (extended thinking) is not spoken and not sent back; it is dropped.
    } else if (event.contentBlockStop) {
      const index = event.contentBlockStop.contentBlockIndex ?? 0;
      const toolUse = toolUses.get(index);
      if (toolUse) {
        toolUses.delete(index);
        this.#put(modelId, {
          id: requestId,
          delta: {
            role: 'assistant',
            toolCalls: [
              llm.FunctionCall.create({ callId: toolUse.toolUseId, name: toolUse.name, args: toolUse.input || '{}' }),
            ],
          },
        });
      }
    } else if (event.messageStop) {
      if (event.messageStop.stopReason === 'max_tokens') {
        this.logger.warn({ maxTokens: this.#opts.maxTokens }, 'bedrock reply cut off at maxTokens');
      }
    } else if (event.metadata?.usage) {
      this.queue.put({ id: requestId, usage: toCompletionUsage(event.metadata.usage) });
    }
    // Modelled stream exceptions are thrown by the SDK's event-stream reader, not yielded; unknown members are skipped.
  }

  /** The first output of an attempt names its model, so records and metrics credit the model that answered. */
  #put(modelId: string, chunk: llm.ChatChunk): void {
    if (!this.#emitted && chunk.delta) chunk.delta.extra = { ...chunk.delta.extra, [BEDROCK_MODEL_EXTRA]: modelId };
    this.#emitted = true;
    this.queue.put(chunk);
  }
}

/** Bedrock's inputTokens exclude cache reads and writes; LiveKit's promptTokens count every prompt token. */
export function toCompletionUsage(usage: TokenUsage): llm.CompletionUsage {
  const cacheRead = usage.cacheReadInputTokens ?? 0;
  const cacheWrite = usage.cacheWriteInputTokens ?? 0;
  const promptTokens = (usage.inputTokens ?? 0) + cacheRead + cacheWrite;
  const completionTokens = usage.outputTokens ?? 0;
  return {
    promptTokens,
    completionTokens,
    promptCachedTokens: cacheRead,
    cacheCreationTokens: cacheWrite,
    totalTokens: promptTokens + completionTokens,
  };
}

function validateLLMOptions(opts: BedrockLLMOptions): void {
  if (!opts.model.trim()) throw new Error('BedrockLLM options.model: must be a model ID or inference-profile ARN');
  if (opts.temperature !== undefined && !(opts.temperature >= 0 && opts.temperature <= 1)) {
    throw new Error(`BedrockLLM options.temperature: must be between 0 and 1, got ${opts.temperature}`);
  }
  if (opts.topP !== undefined && !(opts.topP >= 0 && opts.topP <= 1)) {
    throw new Error(`BedrockLLM options.topP: must be between 0 and 1, got ${opts.topP}`);
  }
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) {
    throw new Error(`BedrockLLM options.maxTokens: must be a positive integer, got ${opts.maxTokens}`);
  }
  validateRequestMetadata(opts.requestMetadata);
}

/** Bedrock's own limits on `requestMetadata`: checked here so a bad pair fails at start-up, not on every turn. */
const REQUEST_METADATA_TEXT = /^[a-zA-Z0-9\s:_@$#=/+,.-]*$/;
function validateRequestMetadata(metadata: Record<string, string> | undefined): void {
  if (metadata === undefined) return;
  const entries = Object.entries(metadata);
  if (entries.length > 16) {
    throw new Error(`BedrockLLM options.requestMetadata: at most 16 pairs, got ${entries.length}`);
  }
  for (const [key, value] of entries) {
    if (key.length < 1 || key.length > 256 || !REQUEST_METADATA_TEXT.test(key)) {
      throw new Error(
        `BedrockLLM options.requestMetadata: key ${JSON.stringify(key)} must be 1–256 letters, digits, spaces or :_@$#=/+,-.`,
      );
    }
    if (typeof value !== 'string' || value.length > 256 || !REQUEST_METADATA_TEXT.test(value)) {
      throw new Error(
        `BedrockLLM options.requestMetadata.${key}: must be at most 256 letters, digits, spaces or :_@$#=/+,-.`,
      );
    }
  }
}
