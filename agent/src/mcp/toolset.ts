import { llm } from '@livekit/agents';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import type { CallToolResult, Tool as McpTool } from '@modelcontextprotocol/sdk/types.js';
import { MCP_SESSION_HEADER, issueSessionHeader } from '@voice-intake/contracts';

export interface McpToolsetOptions {
  /** The MCP endpoint, e.g. http://mcp.internal:8080/mcp. */
  url: string;
  /** Bearer token (Secrets Manager in AWS). */
  token: string;
  /** Secret that signs the per-call session header (the server's MCP_SESSION_SECRET; defaults to the token). */
  sessionSecret?: string;
  /** The call this toolset acts for: the server takes the caller's number from here, never from the model. */
  call: { callId: string; callerNumber: string };
  /** Per tool call. */
  callTimeoutMs?: number;
  /** Observes every call (name, arguments, result text, error, duration): the compliance log and metrics hang here. */
  onToolCall?: (event: ToolCallEvent) => void;
}

export interface ToolCallEvent {
  name: string;
  arguments: Record<string, unknown>;
  resultText?: string;
  isError: boolean;
  durationMs: number;
}

const DEFAULTS = { callTimeoutMs: 8_000 };

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

  constructor(options: McpToolsetOptions) {
    this.options = { ...DEFAULTS, ...options };
  }

  private headers(): Record<string, string> {
    const { token, sessionSecret, call } = this.options;
    return {
      authorization: `Bearer ${token}`,
      [MCP_SESSION_HEADER]: issueSessionHeader(call, sessionSecret ?? token, 3_600),
    };
  }

  private async connect(): Promise<Client> {
    if (this.client) return this.client;
    this.connecting ??= (async () => {
      const client = new Client({ name: 'voice-intake-agent', version: '0.1.0' });
      const transport = new StreamableHTTPClientTransport(new URL(this.options.url), { requestInit: { headers: this.headers() } });
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

  /** Calls one tool; always resolves to text for the model. */
  async call(name: string, args: Record<string, unknown>, abortSignal?: AbortSignal): Promise<string> {
    const started = performance.now();
    const finish = (resultText: string, isError: boolean) => {
      this.options.onToolCall?.({ name, arguments: args, resultText, isError, durationMs: performance.now() - started });
      return resultText;
    };
    for (const attempt of [1, 2]) {
      try {
        const client = await this.connect();
        const result = (await client.callTool({ name, arguments: args }, undefined, {
          timeout: this.options.callTimeoutMs,
          signal: abortSignal,
        })) as CallToolResult;
        const text = textOf(result);
        return finish(result.isError ? `The ${name} tool reported a problem: ${text}` : text, result.isError === true);
      } catch (error) {
        await this.reset();
        // One reconnect for a server that restarted (its sessions are gone); a timeout or abort is not retried.
        const message = (error as Error).message ?? String(error);
        if (attempt === 1 && !/timed out|abort/i.test(message)) continue;
        return finish(`The ${name} tool is not available right now (${/timed out/i.test(message) ? 'it took too long' : 'connection failed'}). Apologise briefly and offer another way to help.`, true);
      }
    }
    return finish(`The ${name} tool is not available right now.`, true);
  }

  async close(): Promise<void> {
    await this.reset();
  }
}
