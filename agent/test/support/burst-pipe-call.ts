import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';

/** A short call two workers share in the takeover tests: the caller reports a burst pipe, then says goodbye. */
export const BURST_PIPE = 'A water pipe burst in my kitchen this morning.';
export const GOODBYE = 'That is all for today, thank you, goodbye.';

/** The fake model of that call: a greeting, a note of the pipe, and `end_call` after the goodbye. */
export function burstPipeReply(request: ConverseStreamCommandInput) {
  const last = request.messages?.at(-1);
  const said = (last?.role === 'user' ? (last.content ?? []) : [])
    .map((block) => block.text ?? '')
    .join(' ')
    .toLowerCase();
  if (last?.content?.some((block) => block.toolResult)) return {};
  if (said.includes('water pipe')) return { text: 'I am sorry to hear that. I will note the burst pipe.' };
  if (said.includes('goodbye'))
    return { text: 'Thank you for calling, goodbye.', toolUse: { name: 'end_call', input: { reason: 'done' } } };
  return { text: 'Hello, how can I help you today?' };
}
