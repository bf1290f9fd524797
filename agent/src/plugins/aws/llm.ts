import {
  BedrockRuntimeClient,
  ConverseStreamCommand,
  type ConverseStreamCommandInput,
  type ConverseStreamOutput,
  type TokenUsage,
} from '@aws-sdk/client-bedrock-runtime';
import {
  type APIConnectOptions,
  APIError,
  APIStatusError,
  DEFAULT_API_CONNECT_OPTIONS,
  llm,
  shortuuid,
} from '@livekit/agents';
import { hasToolHistory, toBedrockConversation, toBedrockToolConfig } from './bedrock-format.js';
import { exceptionFromStreamMember, isAbortError, isRetryableAwsError, isThrottlingError, toAPIError } from './errors.js';
import { type BackoffOptions, DEFAULT_BACKOFF, backoffDelayMs, sleep } from '@voice-intake/contracts';
import { stripUndefined } from './util.js';

export interface BedrockLLMOptions {
  /** Model ID, cross-region inference profile ID or inference-profile ARN. Default `us.anthropic.claude-haiku-4-5-20251001-v1:0`. */
  model: string;
  /** Model used when the primary one stays throttled or unavailable after all retries. Default none. */
  fallbackModel?: string;
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
  /** Retries of a throttled/unavailable request per model, before the fallback model. Default 3. */
  throttleRetries: number;
  /** Backoff between those retries. Default 200 ms doubling to 2 s, with jitter. */
  backoff: BackoffOptions;
  /** Passed through as `additionalModelRequestFields` (model-specific parameters). Default none. */
  additionalModelRequestFields?: Record<string, unknown>;
}

export const DEFAULT_BEDROCK_LLM_OPTIONS: BedrockLLMOptions = {
  model: 'us.anthropic.claude-haiku-4-5-20251001-v1:0',
  maxTokens: 1024,
  toolChoice: 'auto',
  cacheSystemPrompt: true,
  cacheTools: true,
  throttleRetries: 3,
  backoff: DEFAULT_BACKOFF,
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
    // The SDK's own retries would hide throttling from our backoff-then-fallback policy.
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

  override async aclose(): Promise<void> {
    if (this.#ownsClient) this.#client.destroy();
    await super.aclose();
  }
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
    });
  }

  protected async run(): Promise<void> {
    this.#emitted = false;
    let request: Omit<ConverseStreamCommandInput, 'modelId'>;
    try {
      request = this.buildRequest();
    } catch (error) {
      throw new APIError(`bedrock: cannot build the request: ${(error as Error).message}`, { retryable: false });
    }
    const models = [this.#opts.model, ...(this.#opts.fallbackModel ? [this.#opts.fallbackModel] : [])];
    let lastError: unknown;

    for (const [modelIndex, modelId] of models.entries()) {
      for (let attempt = 0; attempt <= this.#opts.throttleRetries; attempt++) {
        try {
          await this.#streamOnce({ ...request, modelId });
          return;
        } catch (error) {
          if (this.abortController.signal.aborted || isAbortError(error)) return;
          // Text or tool calls already went out: repeating the request would say it twice.
          if (this.#emitted) throw toAPIError(error, `bedrock ${modelId}`, { retryable: false });
          if (!isBackoffWorthy(error)) throw toAPIError(error, `bedrock ${modelId}`);
          lastError = error;
          if (attempt === this.#opts.throttleRetries) break;
          const delayMs = backoffDelayMs(attempt, this.#opts.backoff);
          this.logger.warn(
            { model: modelId, attempt: attempt + 1, delayMs, error: String(error) },
            'bedrock request throttled or unavailable, backing off',
          );
          try {
            await sleep(delayMs, this.abortController.signal);
          } catch {
            return; // aborted while waiting
          }
        }
      }
      if (modelIndex + 1 < models.length) {
        this.logger.warn({ model: modelId, fallbackModel: models[modelIndex + 1] }, 'switching to the fallback model');
      }
    }
    const tried = models.join(', ');
    const attempts = (this.#opts.throttleRetries + 1) * models.length;
    throw new APIStatusError({
      message: `bedrock: still throttled or unavailable after ${attempts} attempts on ${tried}: ${String(lastError)}`,
      options: {
        statusCode: isThrottlingError(lastError) ? 429 : 503,
        // This plugin already retried with backoff (and fell back); more retries would only add delay.
        retryable: false,
        body: { models, attempts },
      },
    });
  }

  async #streamOnce(input: ConverseStreamCommandInput): Promise<void> {
    const response = await this.#client.send(new ConverseStreamCommand(input), {
      abortSignal: this.abortController.signal,
    });
    const requestId = response.$metadata?.requestId ?? shortuuid('bedrock_');
    const toolUses = new Map<number, { toolUseId: string; name: string; input: string }>();

    for await (const event of response.stream ?? []) {
      if (this.abortController.signal.aborted) return;
      this.#handleEvent(event, requestId, toolUses);
    }
  }

  #handleEvent(
    event: ConverseStreamOutput,
    requestId: string,
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
        this.#put({ id: requestId, delta: { role: 'assistant', content: delta.text } });
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
        this.#put({
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
    } else {
      const exception = exceptionFromStreamMember(event);
      if (exception) throw exception;
    }
  }

  #put(chunk: llm.ChatChunk): void {
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

function isBackoffWorthy(error: unknown): boolean {
  return isThrottlingError(error) || (isRetryableAwsError(error) && !isAbortError(error));
}

function validateLLMOptions(opts: BedrockLLMOptions): void {
  if (!opts.model.trim()) throw new Error('BedrockLLM options.model: must be a model ID or inference-profile ARN');
  if (opts.fallbackModel !== undefined && !opts.fallbackModel.trim()) {
    throw new Error('BedrockLLM options.fallbackModel: must not be empty');
  }
  if (opts.temperature !== undefined && !(opts.temperature >= 0 && opts.temperature <= 1)) {
    throw new Error(`BedrockLLM options.temperature: must be between 0 and 1, got ${opts.temperature}`);
  }
  if (opts.topP !== undefined && !(opts.topP >= 0 && opts.topP <= 1)) {
    throw new Error(`BedrockLLM options.topP: must be between 0 and 1, got ${opts.topP}`);
  }
  if (!Number.isInteger(opts.maxTokens) || opts.maxTokens < 1) {
    throw new Error(`BedrockLLM options.maxTokens: must be a positive integer, got ${opts.maxTokens}`);
  }
  if (!Number.isInteger(opts.throttleRetries) || opts.throttleRetries < 0) {
    throw new Error(`BedrockLLM options.throttleRetries: must be a non-negative integer, got ${opts.throttleRetries}`);
  }
}
