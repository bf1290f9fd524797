import type {
  ToolChoice as BedrockToolChoice,
  ContentBlock,
  ImageFormat,
  Message,
  SystemContentBlock,
  Tool,
  ToolConfiguration,
  ToolUseBlock,
} from '@aws-sdk/client-bedrock-runtime';
import { llm } from '@livekit/agents';

/** Bedrock rejects a conversation whose first turn is the assistant's; this stands in for the caller. */
export const LEADING_USER_PLACEHOLDER = '(call connected)';

const CACHE_POINT = { cachePoint: { type: 'default' as const } };

export interface BedrockConversation {
  system: SystemContentBlock[];
  messages: Message[];
}

export interface ToBedrockConversationOptions {
  /** Append a `cachePoint` after the system prompt so Bedrock caches it. */
  cacheSystemPrompt?: boolean;
  /**
   * Render earlier tool calls and results as plain text. Bedrock refuses `toolUse`/`toolResult`
   * blocks when the request carries no `toolConfig` (tool choice "none", or an agent without
   * tools after a hand-off), yet the history must keep what the tools said.
   */
  toolHistoryAsText?: boolean;
}

type Role = 'user' | 'assistant';

/**
 * Convert a LiveKit chat context to Bedrock Converse `system` + `messages`.
 *
 * - system and developer messages become system blocks (in order);
 * - consecutive items of the same role are merged into one message (Bedrock requires alternation);
 * - each function call is paired with its output: the `toolUse` goes to the assistant turn and the
 *   `toolResult` to the user turn right after it; calls without an output and outputs without a
 *   call are dropped, because Bedrock rejects either;
 * - the conversation always starts with a user turn;
 * - empty text is dropped (Bedrock rejects blank text blocks).
 */
export function toBedrockConversation(
  chatCtx: llm.ChatContext,
  options: ToBedrockConversationOptions = {},
): BedrockConversation {
  const system: SystemContentBlock[] = [];
  const messages: Message[] = [];
  const outputsByCallId = new Map<string, llm.FunctionCallOutput>();
  for (const item of chatCtx.items) {
    if (item.type === 'function_call_output') outputsByCallId.set(item.callId, item);
  }

  // Tool results wait here until the assistant's run of tool calls ends, so parallel calls stay in
  // one assistant turn and their results in the one user turn that follows it.
  let pendingResults: ContentBlock[] = [];

  const append = (role: Role, blocks: ContentBlock[]) => {
    if (blocks.length === 0) return;
    const last = messages[messages.length - 1];
    if (last && last.role === role) {
      last.content = [...(last.content ?? []), ...blocks];
    } else {
      messages.push({ role, content: [...blocks] });
    }
  };
  const flushResults = () => {
    if (pendingResults.length === 0) return;
    append('user', pendingResults);
    pendingResults = [];
  };

  for (const item of chatCtx.items) {
    switch (item.type) {
      case 'message': {
        if (item.role === 'system' || item.role === 'developer') {
          const text = item.textContent?.trim();
          if (text) system.push({ text });
          break;
        }
        flushResults();
        const role: Role = item.role === 'assistant' ? 'assistant' : 'user';
        append(role, messageBlocks(item));
        break;
      }
      case 'function_call': {
        const output = outputsByCallId.get(item.callId);
        if (!output) break;
        if (options.toolHistoryAsText) {
          flushResults();
          append('assistant', [{ text: `[called tool ${item.name} with ${item.args || '{}'}]` }]);
          pendingResults.push({
            text: `[tool ${item.name} ${output.isError ? 'failed' : 'returned'}: ${output.output}]`,
          });
          break;
        }
        append('assistant', [
          {
            toolUse: {
              toolUseId: item.callId,
              name: item.name,
              input: parseToolInput(item.args) as ToolUseBlock['input'],
            },
          },
        ]);
        pendingResults.push({
          toolResult: {
            toolUseId: item.callId,
            content: [{ text: output.output || '(no output)' }],
            status: output.isError ? 'error' : 'success',
          },
        });
        break;
      }
      case 'function_call_output':
        // Placed together with its call above; an output without a call cannot be sent at all.
        break;
      default:
        // Agent hand-offs and config updates carry no conversation content.
        break;
    }
  }
  flushResults();

  if (messages.length === 0 || messages[0].role !== 'user') {
    messages.unshift({ role: 'user', content: [{ text: LEADING_USER_PLACEHOLDER }] });
  }
  if (options.cacheSystemPrompt && system.length > 0) system.push(CACHE_POINT);
  return { system, messages };
}

function messageBlocks(message: llm.ChatMessage): ContentBlock[] {
  const blocks: ContentBlock[] = [];
  // textContent joins strings and instructions, and strips LiveKit's expressive markup from the assistant.
  const text = message.textContent;
  if (text?.trim()) blocks.push({ text });
  for (const part of message.content) {
    if (typeof part !== 'object' || !('type' in part)) continue;
    if (part.type === 'audio_content') {
      if (part.transcript?.trim()) blocks.push({ text: part.transcript });
    } else if (part.type === 'image_content' && message.role === 'user') {
      const image = imageBlock(part);
      if (image) blocks.push(image);
    }
  }
  return blocks;
}

const IMAGE_FORMATS: Record<string, ImageFormat> = {
  'image/png': 'png',
  'image/jpeg': 'jpeg',
  'image/jpg': 'jpeg',
  'image/gif': 'gif',
  'image/webp': 'webp',
};

/** Inline (data URL) images only: Bedrock takes bytes, and fetching remote URLs is not our job here. */
function imageBlock(content: llm.ImageContent): ContentBlock | undefined {
  if (typeof content.image !== 'string') return undefined;
  const match = /^data:([^;,]+);base64,(.*)$/s.exec(content.image);
  if (!match) return undefined;
  const format = IMAGE_FORMATS[match[1].toLowerCase()];
  if (!format) return undefined;
  return { image: { format, source: { bytes: Buffer.from(match[2], 'base64') } } };
}

/** Bedrock wants the tool input as a JSON object; LiveKit keeps it as the raw argument string. */
function parseToolInput(args: string): Record<string, unknown> {
  if (!args?.trim()) return {};
  try {
    const parsed: unknown = JSON.parse(args);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : { value: parsed };
  } catch {
    // The model produced malformed JSON earlier; keep it visible rather than failing the turn.
    return { raw: args };
  }
}

export interface ToBedrockToolConfigOptions {
  /** Append a `cachePoint` after the tool list so Bedrock caches it. */
  cacheTools?: boolean;
}

/**
 * Build Bedrock's `toolConfig` from the function tools of a LiveKit tool context.
 * Returns `undefined` when there is nothing to send: no tools, or tool choice "none" (Bedrock has no
 * "none" choice, so the tools are withheld instead).
 */
export function toBedrockToolConfig(
  toolCtx: llm.ToolContext | undefined,
  toolChoice: llm.ToolChoice | undefined,
  options: ToBedrockToolConfigOptions = {},
): ToolConfiguration | undefined {
  if (!toolCtx || toolChoice === 'none') return undefined;
  const entries = llm.sortedToolEntries(toolCtx);
  if (entries.length === 0) return undefined;

  const tools: Tool[] = entries.map(([name, tool]) => ({
    toolSpec: {
      name,
      description: tool.description || undefined,
      inputSchema: { json: toolInputJsonSchema(tool) as never },
    },
  }));
  if (options.cacheTools) tools.push(CACHE_POINT);

  let choice: BedrockToolChoice | undefined;
  if (toolChoice === 'required') {
    choice = { any: {} };
  } else if (typeof toolChoice === 'object') {
    const name = toolChoice.function.name;
    if (!entries.some(([toolName]) => toolName === name)) {
      throw new Error(`toolChoice.function.name: no tool named "${name}" in the tool context`);
    }
    choice = { tool: { name } };
  } else if (toolChoice === 'auto') {
    choice = { auto: {} };
  }
  return choice ? { tools, toolChoice: choice } : { tools };
}

function toolInputJsonSchema(tool: llm.FunctionTool): Record<string, unknown> {
  const schema = tool.parameters ? (llm.toJsonSchema(tool.parameters, false, false) as Record<string, unknown>) : {};
  // A tool without parameters still needs an object schema.
  return { type: 'object', properties: {}, ...stripMetaSchema(schema) };
}

function stripMetaSchema(schema: Record<string, unknown>): Record<string, unknown> {
  const { $schema: _ignored, ...rest } = schema;
  return rest;
}

/** True when the chat context contains a tool call that has an output (so it would be sent). */
export function hasToolHistory(chatCtx: llm.ChatContext): boolean {
  const outputs = new Set<string>();
  for (const item of chatCtx.items) if (item.type === 'function_call_output') outputs.add(item.callId);
  return chatCtx.items.some((item) => item.type === 'function_call' && outputs.has(item.callId));
}
