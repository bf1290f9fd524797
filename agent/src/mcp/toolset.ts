import { llm } from '@livekit/agents';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { FetchLike } from '@modelcontextprotocol/sdk/shared/transport.js';
import {
  type CallToolResult,
  CallToolResultSchema,
  McpError,
  type Tool as McpTool,
} from '@modelcontextprotocol/sdk/types.js';
import { AjvJsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/ajv';
import type { JsonSchemaValidator } from '@modelcontextprotocol/sdk/validation/types.js';
import {
  type AttestationLevel,
  issueSessionHeader,
  MCP_SESSION_HEADER,
  TOOL_OUTCOME_META_KEY,
  type ToolCallOutcome,
  toolCallOutcomeSchema,
} from '@voice-intake/contracts';
import { z } from 'zod';

export interface McpToolsetOptions {
  /** The MCP endpoint, e.g. http://mcp.internal:8080/mcp. */
  url: string;
  /** Bearer token (Secrets Manager in AWS). */
  token: string;
  /** Secret that signs the per-call session header (the server's MCP_SESSION_SECRET; defaults to the token). */
  sessionSecret?: string;
  /** The call this toolset acts for: the server takes the caller's number from here, never from the model. */
  call: { callId: string; callerNumber: string; attestation?: AttestationLevel };
  /** Per tool call. */
  callTimeoutMs?: number;
  /** Observes every call (name, arguments, result text, error, duration): the compliance log and metrics hang here. */
  onToolCall?: (event: ToolCallEvent) => void;
}

export interface ToolCallEvent {
  name: string;
  /** As the model gave them: any JSON (a model can send null or a list; the server refuses those, on the record). */
  arguments: unknown;
  /** Argument names the tool's input schema does not list (the server drops them; the record keeps them). */
  strippedArguments?: string[];
  /** ok, tool_error, rejected (the server refused the call: unknown tool, bad arguments) or failed (transport). */
  outcome: ToolCallOutcome;
  resultText?: string;
  isError: boolean;
  /** The JSON-RPC error code when the server refused the request itself (-32602: invalid params). */
  errorCode?: number;
  /** The outcome the server stated in a result the agent could not read (recorded `failed`: the tool did run). */
  statedOutcome?: ToolCallOutcome;
  durationMs: number;
}

/** How the server says a call ended (in the result's _meta); a server that does not say is read from isError. */
function outcomeOf(result: CallToolResult): ToolCallOutcome {
  const stated = toolCallOutcomeSchema.safeParse(result._meta?.[TOOL_OUTCOME_META_KEY]);
  if (stated.success) return stated.data;
  return result.isError ? 'tool_error' : 'ok';
}

const DEFAULTS = { callTimeoutMs: 8_000 };

/** How long one request's session header is valid: signed per request, it only has to outlast the request's start. */
export const SESSION_HEADER_TTL_SECONDS = 300;

/**
 * JSON-RPC errors by which a server refuses a request it read: invalid request, unknown method, invalid params. Only
 * the server's answers carry them here: the toolset reads results itself rather than through the SDK's `callTool`,
 * whose client-side checks of a result raise the same codes for a tool that did run.
 */
const REFUSALS = new Set([-32600, -32601, -32602]);

/** Any answer: the toolset reads it itself (`unreadable`). */
const ANY_RESULT = z.unknown();

let checker: AjvJsonSchemaValidator | undefined;
/** One JSON Schema compiler per process, for the tools' output schemas (the SDK's own, Ajv). */
function outputSchemaChecker(): AjvJsonSchemaValidator {
  checker ??= new AjvJsonSchemaValidator();
  return checker;
}

/** The outcome the server states in a result's _meta, when a result too malformed to read still says one. */
function statedOutcomeOf(raw: unknown): ToolCallOutcome | undefined {
  const meta = raw !== null && typeof raw === 'object' ? (raw as { _meta?: unknown })._meta : undefined;
  const stated =
    meta !== null && typeof meta === 'object' ? (meta as Record<string, unknown>)[TOOL_OUTCOME_META_KEY] : undefined;
  const parsed = toolCallOutcomeSchema.safeParse(stated);
  return parsed.success ? parsed.data : undefined;
}

/**
 * A request that certainly never reached the tool: the connection was refused, or the server answered 404 (a server
 * that restarted does not know the session and runs nothing for it).
 */
function neverReachedServer(error: unknown): boolean {
  if (error instanceof StreamableHTTPError) return error.code === 404;
  for (let cause = error, depth = 0; cause && depth < 5; depth++) {
    if ((cause as { code?: unknown }).code === 'ECONNREFUSED') return true;
    cause = (cause as { cause?: unknown }).cause;
  }
  return false;
}

function textOf(result: CallToolResult): string {
  return result.content
    .filter((block): block is { type: 'text'; text: string } => block.type === 'text')
    .map((block) => block.text)
    .join('\n');
}

/**
 * The MCP server's tools as LiveKit function tools. Connects over Streamable HTTP with the bearer token and a signed
 * session header binding the call, lists the tools once, and passes their JSON Schemas to the LLM unchanged. A call
 * that fails, times out or finds the server gone becomes a short error the model can speak about, never an exception;
 * the next call reconnects (the server may have restarted).
 */
export class McpToolset {
  private readonly options: Required<Pick<McpToolsetOptions, 'callTimeoutMs'>> & McpToolsetOptions;
  private client?: Client;
  private connecting?: Promise<Client>;
  /** Each listed tool's argument names, to name the ones a call adds. */
  private readonly argumentNames = new Map<string, Set<string>>();
  /** The output schema of each listed tool that declares one, compiled. */
  private readonly outputValidators = new Map<string, JsonSchemaValidator<unknown>>();

  constructor(options: McpToolsetOptions) {
    this.options = { ...DEFAULTS, ...options };
  }

  /**
   * Every request the transport makes (tool calls, listings, the event stream, the session's end) goes with a session
   * header signed as it leaves, valid `SESSION_HEADER_TTL_SECONDS`: a call longer than any one header keeps its
   * caller-bound tools (a header signed once at connect expired an hour into the call, and every tool then refused).
   */
  private readonly fetchWithSession: FetchLike = (url, init) => {
    const { token, sessionSecret, call } = this.options;
    const headers = new Headers(init?.headers);
    headers.set('authorization', `Bearer ${token}`);
    headers.set(MCP_SESSION_HEADER, issueSessionHeader(call, sessionSecret ?? token, SESSION_HEADER_TTL_SECONDS));
    return fetch(url, { ...init, headers });
  };

  private async connect(): Promise<Client> {
    if (this.client) return this.client;
    this.connecting ??= (async () => {
      const client = new Client({ name: 'voice-intake-agent', version: '0.1.0' });
      const transport = new StreamableHTTPClientTransport(new URL(this.options.url), { fetch: this.fetchWithSession });
      try {
        await client.connect(transport);
      } catch (error) {
        this.connecting = undefined;
        throw error;
      }
      client.onclose = () => {
        if (this.client === client) this.client = undefined;
      };
      this.client = client;
      this.connecting = undefined;
      return client;
    })();
    return this.connecting;
  }

  /** Drops the connection so the next call makes a new one. */
  private async reset(): Promise<void> {
    const client = this.client;
    this.client = undefined;
    await client?.close().catch(() => undefined);
  }

  /** Lists the server's tools and wraps each as a LiveKit tool keyed by name (anonymous: the key names it). */
  async tools(): Promise<Record<string, llm.AnonFunctionTool>> {
    const client = await this.connect();
    const { tools } = await client.listTools();
    for (const tool of tools) {
      this.argumentNames.set(tool.name, new Set(Object.keys(tool.inputSchema.properties ?? {})));
      if (tool.outputSchema)
        this.outputValidators.set(tool.name, outputSchemaChecker().getValidator(tool.outputSchema));
    }
    return Object.fromEntries(tools.map((tool) => [tool.name, this.wrap(tool)]));
  }

  private wrap(tool: McpTool): llm.AnonFunctionTool {
    // MCP input schemas are JSON Schema already: LiveKit takes them as they are (its typings expect a literal schema).
    const defineTool = llm.tool as unknown as (definition: {
      description: string;
      parameters: McpTool['inputSchema'];
      execute: (args: Record<string, unknown>, opts: { abortSignal?: AbortSignal }) => Promise<string>;
    }) => llm.AnonFunctionTool;
    return defineTool({
      description: tool.description ?? tool.name,
      parameters: tool.inputSchema,
      execute: (args, opts) => this.call(tool.name, args, opts?.abortSignal),
    });
  }

  /** Calls one tool with the model's arguments as they are; always resolves to text for the model. */
  async call(name: string, args: unknown, abortSignal?: AbortSignal): Promise<string> {
    const started = performance.now();
    const known = this.argumentNames.get(name);
    const stripped =
      known && args !== null && typeof args === 'object' && !Array.isArray(args)
        ? Object.keys(args).filter((key) => !known.has(key))
        : [];
    const finish = (
      resultText: string,
      outcome: ToolCallOutcome,
      extra: { errorCode?: number; statedOutcome?: ToolCallOutcome } = {},
    ) => {
      this.options.onToolCall?.({
        name,
        arguments: args,
        ...(stripped.length > 0 ? { strippedArguments: stripped } : {}),
        outcome,
        resultText,
        isError: outcome !== 'ok',
        ...(extra.errorCode === undefined ? {} : { errorCode: extra.errorCode }),
        ...(extra.statedOutcome === undefined ? {} : { statedOutcome: extra.statedOutcome }),
        durationMs: performance.now() - started,
      });
      return resultText;
    };
    const unavailable = (why: string) =>
      finish(
        `The ${name} tool is not available right now (${why}). Apologise briefly and offer another way to help.`,
        'failed',
      );
    for (const attempt of [1, 2]) {
      let client: Client;
      try {
        client = await this.connect();
      } catch {
        // The call was never sent: one more connection may reach a server that was restarting.
        await this.reset();
        if (attempt === 1) continue;
        return unavailable('connection failed');
      }
      let raw: unknown;
      try {
        // The arguments go as the model gave them: the server checks them and records what it refuses. The answer is
        // taken as it comes and read below: the SDK's own reading cannot tell a result it could not read (the tool
        // ran) from the server refusing the request.
        raw = await client.request({ method: 'tools/call', params: { name, arguments: args } } as never, ANY_RESULT, {
          timeout: this.options.callTimeoutMs,
          signal: abortSignal,
        });
      } catch (error) {
        // The server answered with a JSON-RPC error: it refused the request itself, the tool did not run.
        if (error instanceof McpError && REFUSALS.has(error.code)) {
          return finish(`The ${name} tool refused the request: ${error.message}`, 'rejected', {
            errorCode: error.code,
          });
        }
        await this.reset();
        // Sent again only when it never reached the server (refused connection; a server that restarted and forgot
        // the session answers 404 before running anything). Anything else may have run the tool: never twice.
        if (attempt === 1 && neverReachedServer(error)) continue;
        const message = error instanceof Error ? error.message : String(error);
        return unavailable(/timed out/i.test(message) ? 'it took too long' : 'connection failed');
      }
      const unreadable = this.unreadable(name, raw);
      if (unreadable) {
        return finish(
          `The ${name} tool ran, but its answer could not be read (${unreadable}). Do not call it again for this; ` +
            'tell the caller it may have gone through and offer another way to help.',
          'failed',
          { statedOutcome: statedOutcomeOf(raw) },
        );
      }
      const result = raw as CallToolResult;
      const text = textOf(result);
      return finish(result.isError ? `The ${name} tool reported a problem: ${text}` : text, outcomeOf(result));
    }
    return unavailable('connection failed');
  }

  /**
   * What is wrong with a tool's answer, naming the field: off the MCP result schema, or (for a tool that declared an
   * output schema and did not report an error) without structured content or with structured content off that schema.
   */
  private unreadable(name: string, raw: unknown): string | undefined {
    const parsed = CallToolResultSchema.safeParse(raw);
    if (!parsed.success) {
      const issue = parsed.error.issues[0];
      return `${issue?.path.join('.') || 'result'}: ${issue?.message ?? 'invalid'}`;
    }
    const validate = this.outputValidators.get(name);
    if (!validate || parsed.data.isError) return undefined;
    if (parsed.data.structuredContent === undefined) return 'structuredContent: missing, the tool declares an output';
    const checked = validate(parsed.data.structuredContent);
    return checked.valid ? undefined : `structuredContent: ${checked.errorMessage ?? 'off the output schema'}`;
  }

  /** Ends the MCP session (the server then seals its chain for this call closed) and the connection. */
  async close(): Promise<void> {
    const transport = this.client?.transport as StreamableHTTPClientTransport | undefined;
    await transport?.terminateSession().catch(() => undefined);
    await this.reset();
  }
}
