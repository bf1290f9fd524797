import { randomUUID } from 'node:crypto';
import { callInsightsSchema } from '@voice-intake/contracts';
import {
  type FakeRequest,
  type HandlerContext,
  respondFault,
  respondValidation,
  sessionHeader,
  streamFault,
  waitUntil,
} from './context';
import {
  ConverseValidationError,
  decideTurn,
  intakeFieldsFrom,
  type ModelTurn,
  readConversation,
  validateConversation,
  type WireConverseRequest,
} from './conversation';
import { EventStreamProtocolError, encodeEvent, readBody, respondEventStream, writeMessage } from './event-stream';
import type { FakeSession } from './sessions';

const MAX_REQUEST_BYTES = 2 * 1024 * 1024;

/** Every text of a conversation in order: system, then each message's text and tool-result text. */
function textsOf(request: WireConverseRequest): string[] {
  const texts: string[] = [];
  for (const message of request.messages ?? []) {
    for (const block of message.content ?? []) {
      if (block.text) texts.push(block.text);
      for (const part of block.toolResult?.content ?? []) if (part.text) texts.push(part.text);
    }
  }
  return texts;
}

/** A rough token count (≈ 4 characters a token), so usage figures move with the prompt. */
const tokensOf = (text: string) => Math.max(1, Math.ceil(text.length / 4));

/** Parses and checks a Converse request; answers the ValidationException Bedrock would and returns undefined. */
async function readConverse(
  ctx: HandlerContext,
  request: FakeRequest,
): Promise<{ body: WireConverseRequest; raw: string; session: FakeSession } | undefined> {
  const { stream, headers } = request;
  let raw = '';
  let body: WireConverseRequest | undefined;
  let problem: string | undefined;
  try {
    raw = (await readBody(stream, MAX_REQUEST_BYTES)).toString('utf8');
    const parsed: unknown = JSON.parse(raw);
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
      throw new ConverseValidationError('the body must be a JSON object');
    body = parsed as WireConverseRequest;
    validateConversation(body);
  } catch (error) {
    problem =
      error instanceof ConverseValidationError || error instanceof EventStreamProtocolError
        ? error.message
        : `the body is not valid JSON: ${(error as Error).message}`;
  }
  const metadata =
    body?.requestMetadata && typeof body.requestMetadata === 'object' ? Object.values(body.requestMetadata) : [];
  const session = ctx.sessions.resolve({
    explicit: [...metadata.filter((value): value is string => typeof value === 'string'), ...sessionHeader(headers)],
    texts: body ? textsOf(body) : [],
    matchText: raw,
    connection: stream.session,
  });
  if (problem || !body) {
    session.record.rejected.push(problem ?? 'no body');
    respondValidation(request, 'bedrock', problem ?? 'no body');
    return undefined;
  }
  return { body, raw, session };
}

function modelIdOf(path: string): string {
  const encoded = /^\/model\/([^/]+)\//.exec(path)?.[1] ?? '';
  try {
    return decodeURIComponent(encoded);
  } catch {
    return '';
  }
}

function record(
  session: FakeSession,
  operation: string,
  modelId: string,
  body: WireConverseRequest,
  turn: ModelTurn,
): void {
  const reading = readConversation(body);
  session.record.bedrock.requests.push({
    operation,
    modelId,
    callerWords: reading.callerWords,
    toolResults: reading.results.map((result) => result.name),
    reply: { text: turn.text, tool: turn.toolUse?.name },
  });
}

/**
 * ConverseStream (`POST /model/{id}/converse-stream`): the scenario's turn as Bedrock streams it — messageStart,
 * text deltas a word at a time (after the simulated time to first token), a tool use in start / input pieces /
 * stop, messageStop with `tool_use` or `end_turn`, then metadata with usage.
 */
export async function handleConverseStream(ctx: HandlerContext, request: FakeRequest): Promise<void> {
  const receivedAt = performance.now();
  const modelId = modelIdOf(request.path);
  const read = await readConverse(ctx, request);
  if (!read) return;
  const { body, raw, session } = read;
  if (!modelId) return respondValidation(request, 'bedrock', 'modelId: required');
  const refused = session.takeFault('bedrock', 'converse-stream', 'response');
  if (refused) return respondFault(request, refused);

  const turn = decideTurn(body, session.scenario);
  record(session, 'converse-stream', modelId, body, turn);
  if (turn.text) ctx.sessions.remember(turn.text, session.key);
  const { stream } = request;
  respondEventStream(stream, { 'x-amzn-requestid': randomUUID() });
  const send = (type: string, payload: Record<string, unknown>) => writeMessage(stream, encodeEvent(type, payload));

  await send('messageStart', { role: 'assistant' });
  const fault = session.takeFault('bedrock', 'converse-stream', 'stream');
  if (fault) return streamFault(stream, fault);
  const { bedrockTtftMs, bedrockTokenIntervalMs } = ctx.latency();
  await waitUntil(receivedAt + bedrockTtftMs, stream);
  let block = 0;
  let outputTokens = 0;
  if (turn.text) {
    const tokens = turn.text.match(/\S+\s*/g) ?? [];
    for (const [position, token] of tokens.entries()) {
      // Paced from the request, not token to token, so timer slack does not add up.
      if (position > 0 && bedrockTokenIntervalMs > 0)
        await waitUntil(receivedAt + bedrockTtftMs + position * bedrockTokenIntervalMs, stream);
      if (!(await send('contentBlockDelta', { contentBlockIndex: block, delta: { text: token } }))) return;
      outputTokens += 1;
    }
    await send('contentBlockStop', { contentBlockIndex: block });
    block += 1;
  }
  if (turn.toolUse) {
    const json = JSON.stringify(turn.toolUse.input);
    const toolUseId = `tooluse_${randomUUID().replace(/-/g, '').slice(0, 22)}`;
    await send('contentBlockStart', {
      contentBlockIndex: block,
      start: { toolUse: { toolUseId, name: turn.toolUse.name } },
    });
    // Input arrives in pieces, as Bedrock sends it: the client has to put them back together.
    for (let offset = 0; offset < json.length; offset += 16) {
      await send('contentBlockDelta', {
        contentBlockIndex: block,
        delta: { toolUse: { input: json.slice(offset, offset + 16) } },
      });
    }
    await send('contentBlockStop', { contentBlockIndex: block });
    outputTokens += tokensOf(json);
  }
  await send('messageStop', { stopReason: turn.toolUse ? 'tool_use' : 'end_turn' });
  const inputTokens = tokensOf(raw);
  await send('metadata', {
    usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
    metrics: { latencyMs: Math.round(performance.now() - receivedAt) },
  });
  if (!stream.destroyed) stream.end();
}

/**
 * What the caller said: the caller turns of the call's JSON data line (the enrichment Lambda's prompt), else
 * `[caller] …` lines.
 */
function callerTextsOf(transcript: string): string[] {
  for (const line of transcript.split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      const { turns } = JSON.parse(line) as { turns?: { speaker?: unknown; text?: unknown }[] };
      if (!Array.isArray(turns)) continue;
      return turns.flatMap((turn) => (turn.speaker === 'caller' && typeof turn.text === 'string' ? [turn.text] : []));
    } catch {
      // Not the call's data: read on.
    }
  }
  return [...transcript.matchAll(/^\[caller\] (.+)$/gm)].map((match) => match[1]);
}

/**
 * Structured call insights for a forced `record_call_insights` tool call (the enrichment Lambda): built from the
 * transcript's caller turns, or the scenario's own `insights` (which may be invalid on purpose).
 */
function insightsFor(body: WireConverseRequest, session: FakeSession): Record<string, unknown> {
  if (session.scenario.insights) return session.scenario.insights;
  const transcript = textsOf(body).join('\n');
  const callerLines = callerTextsOf(transcript);
  const first = callerLines[0] ?? transcript.slice(0, 300);
  const { fields } = intakeFieldsFrom(first);
  const insights = {
    summary: `The caller said: ${first}`.slice(0, 2000),
    intent: `${fields.topic} request`,
    intakeFields: Object.entries(fields).map(([name, value]) => ({
      name,
      value: value.slice(0, 1000),
      confidence: 0.9,
    })),
    urgency: 'normal',
    sentiment: 'neutral',
    followUpActions: ['Review the request and reply to the caller.'],
  };
  // The fake's own answer must fit the contract: a wrong one here would be a bug in the fake, not the model.
  return callInsightsSchema.parse(insights);
}

/** Converse (`POST /model/{id}/converse`): one JSON answer; a forced tool gets a tool use with fitting input. */
export async function handleConverse(ctx: HandlerContext, request: FakeRequest): Promise<void> {
  const receivedAt = performance.now();
  const modelId = modelIdOf(request.path);
  const read = await readConverse(ctx, request);
  if (!read) return;
  const { body, raw, session } = read;
  if (!modelId) return respondValidation(request, 'bedrock', 'modelId: required');
  const refused =
    session.takeFault('bedrock', 'converse', 'response') ?? session.takeFault('bedrock', 'converse', 'stream');
  if (refused) return respondFault(request, refused);

  const forced = body.toolConfig?.toolChoice?.tool?.name;
  const turn: ModelTurn =
    forced === 'record_call_insights'
      ? { toolUse: { name: forced, input: insightsFor(body, session) } }
      : forced
        ? { toolUse: { name: forced, input: {} } }
        : decideTurn(body, session.scenario);
  record(session, 'converse', modelId, body, turn);
  await waitUntil(receivedAt + ctx.latency().bedrockTtftMs, request.stream);
  const content: Record<string, unknown>[] = [];
  if (turn.text) content.push({ text: turn.text });
  if (turn.toolUse)
    content.push({
      toolUse: { toolUseId: `tooluse_${randomUUID().slice(0, 8)}`, name: turn.toolUse.name, input: turn.toolUse.input },
    });
  const inputTokens = tokensOf(raw);
  const outputTokens = tokensOf(JSON.stringify(content));
  if (request.stream.destroyed) return;
  request.stream.respond({ ':status': 200, 'content-type': 'application/json', 'x-amzn-requestid': randomUUID() });
  request.stream.end(
    JSON.stringify({
      output: { message: { role: 'assistant', content } },
      stopReason: turn.toolUse ? 'tool_use' : 'end_turn',
      usage: { inputTokens, outputTokens, totalTokens: inputTokens + outputTokens },
      metrics: { latencyMs: Math.round(performance.now() - receivedAt) },
    }),
  );
}
