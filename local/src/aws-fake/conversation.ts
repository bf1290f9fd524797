import type { ReplyRule, Scenario } from './scenario';

/**
 * The model's side of a call, decided from what the request contains (the latest caller words, the latest tool
 * results, which tools already ran) — never from how many requests came before, so concurrent calls and retried
 * requests get the same answer for the same conversation.
 */

/** Converse's wire shapes, as far as the fake reads them. */
export interface WireContentBlock {
  text?: string;
  toolUse?: { toolUseId?: string; name?: string; input?: unknown };
  toolResult?: { toolUseId?: string; status?: string; content?: { text?: string; json?: unknown }[] };
  cachePoint?: unknown;
}
export interface WireMessage {
  role?: string;
  content?: WireContentBlock[];
}
export interface WireConverseRequest {
  messages?: WireMessage[];
  system?: { text?: string }[];
  toolConfig?: { tools?: { toolSpec?: { name?: string } }[]; toolChoice?: { tool?: { name?: string } } };
  requestMetadata?: Record<string, string>;
}

/** What the model does on one request. */
export interface ModelTurn {
  text?: string;
  toolUse?: { name: string; input: Record<string, unknown> };
}

export class ConverseValidationError extends Error {
  override readonly name = 'ConverseValidationError';
}

/** Bedrock's own rules for a conversation; a request that breaks them gets the ValidationException it would get. */
export function validateConversation(request: WireConverseRequest): void {
  const messages = request.messages;
  if (!Array.isArray(messages) || messages.length === 0)
    throw new ConverseValidationError('messages: at least one message is required');
  const offered = offeredTools(request);
  const usesTools = messages.some((message) => message.content?.some((block) => block.toolUse || block.toolResult));
  if (usesTools && !offered)
    throw new ConverseValidationError('toolConfig: must be defined when using toolUse and toolResult content blocks');
  let previousToolUses = new Set<string>();
  messages.forEach((message, index) => {
    if (message.role !== 'user' && message.role !== 'assistant') {
      throw new ConverseValidationError(`messages.${index}.role: must be user or assistant`);
    }
    if (index === 0 && message.role !== 'user')
      throw new ConverseValidationError('messages.0: a conversation must start with a user message');
    if (index > 0 && messages[index - 1].role === message.role) {
      throw new ConverseValidationError(`messages.${index}: roles must alternate between user and assistant`);
    }
    if (!Array.isArray(message.content) || message.content.length === 0) {
      throw new ConverseValidationError(`messages.${index}.content: must not be empty`);
    }
    const toolUses = new Set<string>();
    message.content.forEach((block, blockIndex) => {
      const where = `messages.${index}.content.${blockIndex}`;
      if (block.text !== undefined && !block.text.trim())
        throw new ConverseValidationError(`${where}.text: must not be blank`);
      if (block.toolUse) {
        if (message.role !== 'assistant')
          throw new ConverseValidationError(`${where}.toolUse: only in assistant messages`);
        if (!block.toolUse.toolUseId || !block.toolUse.name)
          throw new ConverseValidationError(`${where}.toolUse: needs toolUseId and name`);
        if (offered && !offered.has(block.toolUse.name)) {
          throw new ConverseValidationError(`${where}.toolUse.name: ${block.toolUse.name} is not in toolConfig`);
        }
        toolUses.add(block.toolUse.toolUseId);
      }
      if (block.toolResult) {
        if (message.role !== 'user') throw new ConverseValidationError(`${where}.toolResult: only in user messages`);
        if (!block.toolResult.toolUseId || !previousToolUses.has(block.toolResult.toolUseId)) {
          throw new ConverseValidationError(
            `${where}.toolResult: toolUseId ${block.toolResult.toolUseId} answers no toolUse of the previous turn`,
          );
        }
        previousToolUses.delete(block.toolResult.toolUseId);
      }
    });
    if (message.role === 'user' && previousToolUses.size > 0) {
      throw new ConverseValidationError(
        `messages.${index}: toolUse ${[...previousToolUses].join(', ')} of the previous turn has no toolResult`,
      );
    }
    previousToolUses = toolUses;
  });
}

function offeredTools(request: WireConverseRequest): Set<string> | undefined {
  const tools = request.toolConfig?.tools;
  if (!tools) return undefined;
  return new Set(tools.map((tool) => tool.toolSpec?.name).filter((name): name is string => !!name));
}

/** Placeholder the agent's Bedrock format puts first when a conversation would otherwise start with the model. */
const CONNECTED = /^\(call connected\)$/i;
/** A keypad entry as the agent hands it to the model (agent/src/call-session.ts, keypadMessage). */
const KEY_PRESS = /^\(the caller keyed in ([0-9*#A-D]{1,32})\)$/i;
/** How the agent writes tool history when it withholds tools (LiveKit's last step after maxToolSteps). */
const TOOL_AS_TEXT = /^\[tool ([\w-]+) (returned|failed): ([\s\S]*)\]$/;
const CALL_AS_TEXT = /^\[called tool ([\w-]+) with /;

interface Reading {
  greeting: boolean;
  callerWords?: string;
  keyPress?: string;
  /** What ends the latest message: the newest thing the model has to answer. */
  latest?: 'result' | 'words' | 'key';
  /** Tool results in the latest message, by tool name. */
  results: { name: string; text: string; error: boolean }[];
  /** Every tool that already returned a result in this conversation. */
  done: Set<string>;
  allCallerWords: string[];
}

function textOf(result: NonNullable<WireContentBlock['toolResult']>): string {
  return (result.content ?? [])
    .map((part) => part.text ?? (part.json === undefined ? '' : JSON.stringify(part.json)))
    .join(' ');
}

export function readConversation(request: WireConverseRequest): Reading {
  const messages = request.messages ?? [];
  const names = new Map<string, string>();
  const done = new Set<string>();
  const allCallerWords: string[] = [];
  for (const message of messages) {
    for (const block of message.content ?? []) {
      if (block.toolUse?.toolUseId && block.toolUse.name) names.set(block.toolUse.toolUseId, block.toolUse.name);
      if (block.toolResult?.toolUseId) done.add(names.get(block.toolResult.toolUseId) ?? '?');
      const text = block.text?.trim();
      if (!text || message.role !== 'user') continue;
      const asText = TOOL_AS_TEXT.exec(text);
      if (asText) done.add(asText[1]);
      else if (!CONNECTED.test(text) && !KEY_PRESS.test(text)) allCallerWords.push(text);
    }
  }
  const last = messages[messages.length - 1];
  const results: Reading['results'] = [];
  let callerWords: string | undefined;
  let keyPress: string | undefined;
  let latest: Reading['latest'];
  if (last?.role === 'user') {
    for (const block of last.content ?? []) {
      if (block.toolResult?.toolUseId) {
        results.push({
          name: names.get(block.toolResult.toolUseId) ?? '?',
          text: textOf(block.toolResult),
          error: block.toolResult.status === 'error',
        });
        latest = 'result';
      } else if (block.text) {
        const text = block.text.trim();
        const key = KEY_PRESS.exec(text);
        const asText = TOOL_AS_TEXT.exec(text);
        if (key) {
          keyPress = key[1];
          latest = 'key';
        } else if (asText) {
          results.push({ name: asText[1], text: asText[3], error: asText[2] === 'failed' });
          latest = 'result';
        } else if (!CONNECTED.test(text) && !CALL_AS_TEXT.test(text)) {
          callerWords = callerWords ? `${callerWords} ${text}` : text;
          latest = 'words';
        }
      }
    }
  }
  return {
    greeting: allCallerWords.length === 0 && results.length === 0 && !keyPress,
    callerWords,
    keyPress,
    latest,
    results,
    done,
    allCallerWords,
  };
}

function ruleMatches(rule: ReplyRule, reading: Reading): boolean {
  if (rule.whenGreeting && !reading.greeting) return false;
  if (rule.whenToolResult && !reading.results.some((result) => result.name === rule.whenToolResult)) return false;
  if (rule.whenCallerSays && !(reading.callerWords && new RegExp(rule.whenCallerSays, 'i').test(reading.callerWords)))
    return false;
  return true;
}

const TOPICS = ['billing', 'account', 'appointment', 'complaint'] as const;

/** Intake fields from the caller's words: "this is <Name>", the topic by keyword, the words as details. */
export function intakeFieldsFrom(words: string): { intakeType: string; fields: Record<string, string> } {
  const name = /\b(?:this is|my name is|i am|i'm)\s+([A-Z][a-z]+(?:\s+[A-Z][a-z]+){0,3})/.exec(words)?.[1];
  const topic = TOPICS.find((candidate) => new RegExp(`\\b${candidate}`, 'i').test(words)) ?? 'other';
  return {
    intakeType: 'general_inquiry',
    fields: { ...(name ? { full_name: name } : {}), topic, details: words.slice(0, 2000) },
  };
}

const GOODBYE = /\b(good ?bye|bye|that is all|that's all|nothing else)\b/i;
const PERSON = /\b(a person|a human|someone|transfer|an agent|a colleague)\b/i;

/** The built-in intake call: greet, look the caller up, save and submit their request, answer keys, hang up. */
function intakeTurn(reading: Reading, scenario: Scenario, offered: (name: string) => boolean): ModelTurn | undefined {
  const tool = (name: string, input: Record<string, unknown>, text?: string): ModelTurn =>
    offered(name) ? { text, toolUse: { name, input } } : { text: text ?? `I cannot use ${name} right now.` };
  const intake = scenario.intake ?? intakeFieldsFrom(reading.allCallerWords[0] ?? '');

  if (reading.greeting)
    return { text: 'Hello, you have reached the intake line. Who am I speaking with, and how can I help?' };
  // Several results can share a turn (tool calls of consecutive steps): the newest one decides.
  const result = reading.latest === 'result' ? reading.results.at(-1) : undefined;
  if (result) {
    if (result.error) return { text: 'I am sorry, that did not work. Let me try to help another way.' };
    switch (result.name) {
      case 'lookup_caller':
        return tool(
          'save_intake_progress',
          { intakeType: intake.intakeType, fields: intake.fields },
          'Thank you, I am noting that down.',
        );
      case 'save_intake_progress':
        return tool('submit_intake', { intakeType: intake.intakeType });
      case 'submit_intake': {
        const caseId = /case ([A-Za-z0-9-]+)/.exec(result.text)?.[1];
        return {
          text:
            `Your request is recorded${caseId ? ` as case ${caseId}` : ''}. ` +
            'Is there anything else I can do for you?',
        };
      }
      case 'end_call':
      case 'transfer_to_human':
        return {};
      default:
        return { text: 'Thank you. Is there anything else?' };
    }
  }
  if (reading.latest === 'key' && reading.keyPress)
    return { text: `You pressed ${reading.keyPress}. Is there anything else?` };
  const words = reading.callerWords ?? '';
  if (GOODBYE.test(words))
    return tool('end_call', { reason: 'the caller said goodbye' }, 'Thank you for calling. Goodbye.');
  if (PERSON.test(words))
    return tool(
      'transfer_to_human',
      { reason: 'the caller asked for a person' },
      'I am connecting you to a colleague now.',
    );
  if (!reading.done.has('lookup_caller'))
    return tool('lookup_caller', {}, 'Thank you. One moment while I look you up.');
  if (!reading.done.has('submit_intake'))
    return tool('save_intake_progress', { intakeType: intake.intakeType, fields: intake.fields });
  return undefined;
}

/** The scenario's reply to one ConverseStream request. */
export function decideTurn(request: WireConverseRequest, scenario: Scenario): ModelTurn {
  const reading = readConversation(request);
  const tools = offeredTools(request);
  // No toolConfig, no tools: the agent withholds them on its last step, and a model cannot call what it was not given.
  const offered = (name: string) => !!tools && tools.has(name);
  for (const rule of scenario.replies) {
    if (!ruleMatches(rule, reading)) continue;
    // A model cannot call a tool it was not offered: the rule speaks its text only.
    const toolUse = rule.callTool && offered(rule.callTool.name) ? rule.callTool : undefined;
    return { text: rule.say, toolUse };
  }
  if (scenario.intakeScript) {
    const turn = intakeTurn(reading, scenario, offered);
    if (turn) return turn;
  }
  return { text: reading.greeting ? 'Hello.' : 'I see. Please go on.' };
}
