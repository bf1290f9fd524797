import type { ReadableStream as AudioStream } from 'node:stream/web';
import { llm, voice } from '@livekit/agents';
import type { AudioFrame } from '@livekit/rtc-node';
import { z } from 'zod';
import type { McpToolset } from './mcp/toolset';
import { BEDROCK_MODEL_EXTRA } from './plugins/aws';
import type { AgentRecordingHooks } from './records/call-audio';
import type { SpeculationLedger } from './speculation';

/** How the agent runs an enterprise intake call; the fields themselves come from the MCP server's form. */
export const INTAKE_INSTRUCTIONS = `You answer the phone for an organisation's intake line. You are speaking, not writing:
short sentences, no lists, no markdown, spell out numbers the way people say them.

The call, in order:
1. Greet the caller briefly and say you can take their details.
2. Call lookup_caller once. If they are known, greet them by name and mention an open case only if it seems relevant.
3. Ask what the call is about, pick the intake type, and call get_intake_form for it.
4. Ask for one field at a time, using the form's prompts. After each answer call save_intake_progress; if it reports a
   field error, ask again for that field in plain words.
5. When nothing required is missing, read the details back and ask the caller to confirm or correct them.
6. On confirmation call submit_intake and tell the caller their case number, digit by digit.
7. Ask if there is anything else; offer a callback (schedule_callback) or a person (transfer_to_human).
8. When the caller is done, thank them and call end_call.

Rules: answer questions about the organisation only from search_knowledge results. Never invent a case number,
policy, price or promise. If the caller asks for a person, is upset, or needs something outside intake, use
transfer_to_human. If a tool fails, apologise once and offer another way to help. Keys the caller presses arrive
as one message per entry, "(the caller keyed in 1234#)"; a # at the end is the key that ended it.`;

export interface IntakeAgentCallbacks {
  /** Hand the call to a person at `target` (sip:/tel:); resolves once the transfer was requested. */
  transfer: (target: string, reason: string) => Promise<void>;
  /** Hang up after the goodbye has been spoken. */
  hangUp: (reason: string) => Promise<void>;
  /** Used when the MCP server names no target. */
  defaultTransferTarget?: string;
  /** Sees every LLM request (the whole prompt) and its response (text and tool calls): the compliance log. */
  llmExchange?: {
    request: (request: LlmRequestRecord) => void;
    response: (response: LlmResponseRecord) => void;
  };
  /** The call's recording: it hears the caller's audio as the STT does; consent mode adds its tool and instructions. */
  recording?: AgentRecordingHooks;
  /**
   * Holds the records of a reply started before its turn was committed (preemptive generation) until the turn
   * commits with the same words, and drops them when it does not. Without it every exchange is recorded at once.
   */
  speculation?: SpeculationLedger;
}

/** What went to the model, as the compliance log keeps it. */
export interface LlmRequestRecord {
  messages: unknown;
  tools: string[];
  /** Sent before the caller's turn was committed, on the words it had then (confirmed since, or not recorded). */
  speculative?: boolean;
}

/** What the model answered, as the compliance log keeps it. */
export interface LlmResponseRecord {
  text: string;
  toolCalls: { name: string; arguments: string; callId: string }[];
  usage?: unknown;
  /** The model that produced the reply (with a fallback model, not always the first); absent when none answered. */
  model?: string;
  /** True when the reply was cut off (barge-in) before the model finished it: what it said up to then. */
  interrupted: boolean;
}

const TARGET = /\b((?:sip|tel):[^\s)]+)/;

/** The person the MCP server picks for this call, or the default target; undefined when nobody can take it. */
export async function findTransferTarget(
  toolset: McpToolset,
  reason: string,
  defaultTarget?: string,
): Promise<string | undefined> {
  const decision = await toolset.call('request_human_transfer', { reason });
  return TARGET.exec(decision)?.[1] ?? defaultTarget;
}

/** Local tools: the two actions that change the call itself, not the backend. */
export function callControlTools(toolset: McpToolset, callbacks: IntakeAgentCallbacks) {
  return {
    transfer_to_human: llm.tool({
      description: 'Connect the caller to a person. Say you are connecting them before calling this.',
      parameters: z.object({ reason: z.string().min(3).max(300).describe('Why, in a few words') }),
      execute: async ({ reason }, { ctx }) => {
        const target = await findTransferTarget(toolset, reason, callbacks.defaultTransferTarget);
        if (!target) return 'No one is available to take the call right now. Offer a callback instead.';
        // "I'm connecting you now" must be heard before the REFER takes the caller away.
        await ctx.waitForPlayout();
        await callbacks.transfer(target, reason);
        return `Transferring to ${target}.`;
      },
    }),
    end_call: llm.tool({
      description: 'Hang up once the caller has nothing more and you have said goodbye.',
      parameters: z.object({ reason: z.string().max(200).describe('Why the call ends') }),
      execute: async ({ reason }, { ctx }) => {
        // The goodbye is usually spoken in the same turn as this call: let the caller hear it before the line drops.
        await ctx.waitForPlayout();
        await callbacks.hangUp(reason);
        return 'Call ended.';
      },
    }),
  };
}

/**
 * The call-control tools the model is offered: transfer only where a person can be reached — the MCP server offers
 * `request_human_transfer` (transfer targets configured) or a default target is set; with transfer turned off
 * (`TRANSFER_TARGETS={}`) the model never promises a transfer it cannot make.
 */
export function offeredCallControlTools(
  mcpTools: Record<string, unknown>,
  toolset: McpToolset,
  callbacks: IntakeAgentCallbacks,
) {
  const { transfer_to_human, ...always } = callControlTools(toolset, callbacks);
  const canTransfer = 'request_human_transfer' in mcpTools || callbacks.defaultTransferTarget !== undefined;
  return canTransfer ? { transfer_to_human, ...always } : always;
}

/**
 * The MCP server's tools the model is offered: all but `request_human_transfer`, which only picks a target and records
 * the request — called by the model it moves nobody while the caller is told they are being connected. The agent
 * calls it itself inside `transfer_to_human` and when it hands a failing call over.
 */
export function modelMcpTools<T>(mcpTools: Record<string, T>): Record<string, T> {
  const { request_human_transfer: _agentOnly, ...offered } = mcpTools;
  return offered;
}

/** The intake agent: our instructions, the MCP server's tools and the call-control tools. */
export class IntakeAgent extends voice.Agent {
  readonly #exchange?: IntakeAgentCallbacks['llmExchange'];
  readonly #recording?: AgentRecordingHooks;
  readonly #speculation?: SpeculationLedger;

  constructor(
    mcpTools: Record<string, llm.AnonFunctionTool>,
    toolset: McpToolset,
    callbacks: IntakeAgentCallbacks,
    chatCtx?: llm.ChatContext,
  ) {
    const recording = callbacks.recording;
    super({
      instructions: recording?.instructions
        ? `${INTAKE_INSTRUCTIONS}\n\n${recording.instructions}`
        : INTAKE_INSTRUCTIONS,
      chatCtx,
      tools: {
        ...modelMcpTools(mcpTools),
        ...offeredCallControlTools(mcpTools, toolset, callbacks),
        ...recording?.tools,
      },
    });
    this.#exchange = callbacks.llmExchange;
    this.#recording = recording;
    this.#speculation = callbacks.speculation;
  }

  /** The default STT node; with a recording, the audio it hears is recorded and its PII spans silenced. */
  override async sttNode(
    audio: AudioStream<AudioFrame> | AsyncIterable<AudioFrame>,
    modelSettings: voice.ModelSettings,
  ) {
    const recording = this.#recording;
    if (!recording) return voice.Agent.default.sttNode(this, audio, modelSettings);
    return recording.sttNode(audio, (heard) => voice.Agent.default.sttNode(this, heard, modelSettings));
  }

  /**
   * The newest user message of a request, when that request was made before the caller's turn was committed: LiveKit
   * sets a message's turn metrics when it commits the turn, and a message already in the agent's conversation (or a
   * reply to none, such as the greeting) is committed too.
   */
  #speculativeMessage(chatCtx: llm.ChatContext): llm.ChatMessage | undefined {
    let newest: llm.ChatMessage | undefined;
    for (const item of chatCtx.items) if (item.type === 'message' && item.role === 'user') newest = item;
    if (!newest || newest.metrics.onUserTurnCompletedDelay !== undefined) return undefined;
    if (this.chatCtx.getById(newest.id) !== undefined) return undefined;
    return newest;
  }

  /**
   * The default LLM node, with the prompt recorded as the request goes out and the response once it is complete, or
   * once it was cut off (barge-in cancels the stream: what the model had said by then is recorded, marked so).
   */
  override async llmNode(chatCtx: llm.ChatContext, toolCtx: llm.ToolContext, modelSettings: voice.ModelSettings) {
    const exchange = this.#exchange;
    if (!exchange) return voice.Agent.default.llmNode(this, chatCtx, toolCtx, modelSettings);
    const speculative = this.#speculativeMessage(chatCtx);
    if (speculative) this.#speculation?.started(speculative);
    const output = await voice.Agent.default.llmNode(this, chatCtx, toolCtx, modelSettings);
    if (!output) return output;
    // A speculative reply's records wait for its turn to commit, and go nowhere if it commits with other words.
    const afterCommit = (record: () => void) =>
      this.#speculation && speculative ? this.#speculation.whenCommitted(speculative, record) : record();
    let requestRecorded = false;
    const recordRequest = () => {
      if (requestRecorded) return;
      requestRecorded = true;
      const messages = chatCtx.toJSON({ excludeImage: true, excludeAudio: true }).items;
      const tools = llm.sortedToolNames(toolCtx);
      exchange.request(speculative ? { messages, tools, speculative: true } : { messages, tools });
    };
    // The LLM stream starts its request on a timer queued when it was made; this one runs right after it, so hashing
    // the whole prompt into the audit chain happens while the request is on its way, not before it leaves.
    setTimeout(() => afterCommit(recordRequest), 0);
    const reader = output.getReader();
    const response: LlmResponseRecord = { text: '', toolCalls: [], interrupted: false };
    let recorded = false;
    const record = (interrupted: boolean) => {
      if (recorded) return;
      recorded = true;
      const settled = { ...response, interrupted };
      afterCommit(() => {
        recordRequest(); // the prompt always comes before its response in the chain
        exchange.response(settled);
      });
    };
    return new ReadableStream<llm.ChatChunk | string>({
      async pull(controller) {
        let next: Awaited<ReturnType<typeof reader.read>>;
        try {
          next = await reader.read();
        } catch (error) {
          record(true);
          controller.error(error);
          return;
        }
        if (next.done) {
          record(false);
          controller.close();
          return;
        }
        const chunk = next.value;
        if (typeof chunk === 'string') response.text += chunk;
        else {
          response.text += chunk.delta?.content ?? '';
          for (const call of chunk.delta?.toolCalls ?? []) {
            response.toolCalls.push({ name: call.name, arguments: call.args, callId: call.callId });
          }
          const model = chunk.delta?.extra?.[BEDROCK_MODEL_EXTRA];
          if (typeof model === 'string') response.model = model;
          response.usage = chunk.usage ?? response.usage;
        }
        controller.enqueue(chunk);
      },
      async cancel(reason) {
        record(true);
        await reader.cancel(reason);
      },
    });
  }
}
