import { llm } from '@livekit/agents';
import { describe, expect, it } from 'vitest';
import {
  hasToolHistory,
  LEADING_USER_PLACEHOLDER,
  toBedrockConversation,
  toBedrockToolConfig,
} from '../../src/plugins/aws/bedrock-format.js';

function call(callId: string, name: string, args: string) {
  return llm.FunctionCall.create({ callId, name, args });
}
function output(callId: string, name: string, text: string, isError = false) {
  return llm.FunctionCallOutput.create({ callId, name, output: text, isError });
}

const lookupTool = llm.tool({
  name: 'lookup_caller',
  description: 'Find the caller by phone number',
  parameters: {
    type: 'object',
    properties: { phone: { type: 'string', description: 'E.164 number' } },
    required: ['phone'],
  },
  execute: async () => 'ok',
});
const hangUpTool = llm.tool({ name: 'hang_up', description: 'End the call', execute: async () => 'bye' });

describe('toBedrockConversation', () => {
  it('moves system and developer messages to system blocks and caches them', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'system', content: 'You are the intake agent.' });
    ctx.addMessage({ role: 'developer', content: 'Speak briefly.' });
    ctx.addMessage({ role: 'user', content: 'Hello' });

    const { system, messages } = toBedrockConversation(ctx, { cacheSystemPrompt: true });

    expect(system).toEqual([
      { text: 'You are the intake agent.' },
      { text: 'Speak briefly.' },
      { cachePoint: { type: 'default' } },
    ]);
    expect(messages).toEqual([{ role: 'user', content: [{ text: 'Hello' }] }]);
  });

  it('adds no cache point when caching is off or there is no system prompt', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Hello' });
    expect(toBedrockConversation(ctx, { cacheSystemPrompt: true }).system).toEqual([]);
    ctx.addMessage({ role: 'system', content: 'Rules' });
    expect(toBedrockConversation(ctx).system).toEqual([{ text: 'Rules' }]);
  });

  it('merges consecutive turns of the same role and drops blank text', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'My name is Ana.' });
    ctx.addMessage({ role: 'user', content: '   ' });
    ctx.addMessage({ role: 'user', content: 'I fell at work.' });
    ctx.addMessage({ role: 'assistant', content: 'Sorry to hear that.' });
    ctx.addMessage({ role: 'assistant', content: 'When did it happen?' });

    expect(toBedrockConversation(ctx).messages).toEqual([
      { role: 'user', content: [{ text: 'My name is Ana.' }, { text: 'I fell at work.' }] },
      { role: 'assistant', content: [{ text: 'Sorry to hear that.' }, { text: 'When did it happen?' }] },
    ]);
  });

  it('starts with a user turn when the agent spoke first (greeting)', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'system', content: 'Rules' });
    ctx.addMessage({ role: 'assistant', content: 'Thanks for calling, how can I help?' });
    ctx.addMessage({ role: 'user', content: 'I need to report an injury.' });

    const { messages } = toBedrockConversation(ctx);
    expect(messages[0]).toEqual({ role: 'user', content: [{ text: LEADING_USER_PLACEHOLDER }] });
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
  });

  it('sends a user turn even when the context only has instructions', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'system', content: 'Greet the caller.' });
    expect(toBedrockConversation(ctx).messages).toEqual([
      { role: 'user', content: [{ text: LEADING_USER_PLACEHOLDER }] },
    ]);
  });

  it('pairs tool calls with their results, keeping parallel calls in one turn', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Look me up and then hang up.' });
    ctx.addMessage({ role: 'assistant', content: 'One moment.' });
    ctx.insert([
      call('tu_1', 'lookup_caller', '{"phone":"+15550100"}'),
      call('tu_2', 'hang_up', ''),
      output('tu_1', 'lookup_caller', '{"name":"Ana"}'),
      output('tu_2', 'hang_up', 'not allowed yet', true),
    ]);
    ctx.addMessage({ role: 'assistant', content: 'I found you, Ana.' });

    const { messages } = toBedrockConversation(ctx);
    expect(messages).toEqual([
      { role: 'user', content: [{ text: 'Look me up and then hang up.' }] },
      {
        role: 'assistant',
        content: [
          { text: 'One moment.' },
          { toolUse: { toolUseId: 'tu_1', name: 'lookup_caller', input: { phone: '+15550100' } } },
          { toolUse: { toolUseId: 'tu_2', name: 'hang_up', input: {} } },
        ],
      },
      {
        role: 'user',
        content: [
          { toolResult: { toolUseId: 'tu_1', content: [{ text: '{"name":"Ana"}' }], status: 'success' } },
          { toolResult: { toolUseId: 'tu_2', content: [{ text: 'not allowed yet' }], status: 'error' } },
        ],
      },
      { role: 'assistant', content: [{ text: 'I found you, Ana.' }] },
    ]);
  });

  it('puts tool results before the next user words in the same user turn', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Who am I?' });
    ctx.insert([call('tu_1', 'lookup_caller', '{"phone":"+15550100"}'), output('tu_1', 'lookup_caller', 'Ana')]);
    ctx.addMessage({ role: 'user', content: 'Hello?' });

    const { messages } = toBedrockConversation(ctx);
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    expect(messages[2].content).toEqual([
      { toolResult: { toolUseId: 'tu_1', content: [{ text: 'Ana' }], status: 'success' } },
      { text: 'Hello?' },
    ]);
  });

  it('drops a call without an output and an output without a call', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Hi' });
    ctx.insert([call('tu_pending', 'lookup_caller', '{}'), output('tu_orphan', 'hang_up', 'done')]);

    const { messages } = toBedrockConversation(ctx);
    expect(JSON.stringify(messages)).not.toContain('tu_pending');
    expect(JSON.stringify(messages)).not.toContain('tu_orphan');
    expect(messages).toEqual([{ role: 'user', content: [{ text: 'Hi' }] }]);
  });

  it('keeps malformed tool arguments visible instead of failing', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Hi' });
    ctx.insert([call('tu_1', 'lookup_caller', '{"phone":'), output('tu_1', 'lookup_caller', 'bad input', true)]);
    const toolUse = toBedrockConversation(ctx).messages[1].content?.[0];
    expect(toolUse).toEqual({ toolUse: { toolUseId: 'tu_1', name: 'lookup_caller', input: { raw: '{"phone":' } } });
  });

  it('renders tool history as text when no tool config will be sent', () => {
    const ctx = llm.ChatContext.empty();
    ctx.addMessage({ role: 'user', content: 'Who am I?' });
    ctx.insert([call('tu_1', 'lookup_caller', '{"phone":"+1"}'), output('tu_1', 'lookup_caller', 'Ana')]);
    ctx.addMessage({ role: 'assistant', content: 'You are Ana.' });

    const { messages } = toBedrockConversation(ctx, { toolHistoryAsText: true });
    expect(JSON.stringify(messages)).not.toContain('toolUse');
    expect(messages).toEqual([
      { role: 'user', content: [{ text: 'Who am I?' }] },
      { role: 'assistant', content: [{ text: '[called tool lookup_caller with {"phone":"+1"}]' }] },
      { role: 'user', content: [{ text: '[tool lookup_caller returned: Ana]' }] },
      { role: 'assistant', content: [{ text: 'You are Ana.' }] },
    ]);
    expect(hasToolHistory(ctx)).toBe(true);
  });

  it('skips hand-off items and converts inline images for user turns', () => {
    const ctx = llm.ChatContext.empty();
    ctx.insert(llm.AgentHandoffItem.create({ newAgentId: 'intake' }));
    ctx.addMessage({
      role: 'user',
      content: [
        'See this',
        llm.createImageContent({ image: `data:image/png;base64,${Buffer.from('png!').toString('base64')}` }),
      ],
    });
    const { messages } = toBedrockConversation(ctx);
    expect(messages).toHaveLength(1);
    expect(messages[0].content?.[0]).toEqual({ text: 'See this' });
    const image = messages[0].content?.[1] as { image: { format: string; source: { bytes: Uint8Array } } };
    expect(image.image.format).toBe('png');
    expect(Buffer.from(image.image.source.bytes).toString()).toBe('png!');
  });
});

describe('toBedrockToolConfig', () => {
  const toolCtx = new llm.ToolContext([lookupTool, hangUpTool]);

  it('turns function tools into toolSpecs with JSON Schema and a cache point', () => {
    const config = toBedrockToolConfig(toolCtx, 'auto', { cacheTools: true });
    expect(config?.toolChoice).toEqual({ auto: {} });
    expect(config?.tools).toEqual([
      {
        toolSpec: {
          name: 'hang_up',
          description: 'End the call',
          inputSchema: { json: expect.objectContaining({ type: 'object' }) },
        },
      },
      {
        toolSpec: {
          name: 'lookup_caller',
          description: 'Find the caller by phone number',
          inputSchema: {
            json: {
              type: 'object',
              properties: { phone: { type: 'string', description: 'E.164 number' } },
              required: ['phone'],
            },
          },
        },
      },
      { cachePoint: { type: 'default' } },
    ]);
  });

  it('maps required, named and none tool choices', () => {
    expect(toBedrockToolConfig(toolCtx, 'required')?.toolChoice).toEqual({ any: {} });
    expect(toBedrockToolConfig(toolCtx, { type: 'function', function: { name: 'hang_up' } })?.toolChoice).toEqual({
      tool: { name: 'hang_up' },
    });
    expect(toBedrockToolConfig(toolCtx, 'none')).toBeUndefined();
    expect(toBedrockToolConfig(undefined, 'auto')).toBeUndefined();
    expect(toBedrockToolConfig(new llm.ToolContext([]), 'auto')).toBeUndefined();
  });

  it('names the missing tool when a named choice does not exist', () => {
    expect(() => toBedrockToolConfig(toolCtx, { type: 'function', function: { name: 'transfer' } })).toThrow(
      /toolChoice\.function\.name: no tool named "transfer"/,
    );
  });
});
