import { randomUUID } from 'node:crypto';
import type { ServerHttp2Stream } from 'node:http2';
import { type FakeRequest, type HandlerContext, respondFault, respondValidation, sessionHeader, streamException, streamFault, waitUntil } from './context';
import { EventStreamProtocolError, encodeEvent, inboundEvents, jsonPayload, readBody, respondEventStream, writeMessage } from './event-stream';
import { type FakeSession, sentencesOf } from './sessions';
import { speak } from './speech';

const ENGINES = new Set(['standard', 'neural', 'long-form', 'generative']);
/** PCM output exists at these rates only. */
const PCM_RATES = new Set(['8000', '16000']);
/** SynthesizeSpeech's limit on input characters per request. */
const MAX_TEXT = 6000;
/** A streaming session's limit here (a call's worth of speech many times over). */
const MAX_STREAM_TEXT = 100_000;
/** Audio goes out in pieces of this length, as it would while Polly speaks. */
const PIECE_MS = 100;

function problemWith(fields: { format?: unknown; voice?: unknown; engine?: unknown; rate?: unknown }): string | undefined {
  if (fields.format !== 'pcm') return `OutputFormat: this fake speaks pcm only, got "${String(fields.format)}"`;
  if (typeof fields.voice !== 'string' || !/^[A-Za-z-]{2,32}$/.test(fields.voice)) return 'VoiceId: a Polly voice ID is required';
  if (fields.engine !== undefined && !ENGINES.has(String(fields.engine))) return `Engine: unknown engine "${String(fields.engine)}"`;
  if (fields.rate !== undefined && !PCM_RATES.has(String(fields.rate))) return `SampleRate: pcm is 8000 or 16000 Hz, got "${String(fields.rate)}"`;
  return undefined;
}

function checkText(text: unknown, textType: unknown): string | undefined {
  if (typeof text !== 'string' || !text.trim()) return 'Text: must not be empty';
  if (textType !== undefined && textType !== 'text' && textType !== 'ssml') return `TextType: must be text or ssml, got "${String(textType)}"`;
  if (textType === 'ssml' && !/^\s*<speak[\s>][\s\S]*<\/speak>\s*$/.test(text)) return 'Text: SSML must be one <speak> element';
  return undefined;
}

/** Sends PCM in pieces, honouring the peer's flow control; false once the client went away. */
async function sendPcm(pcm: Buffer, sampleRate: number, write: (piece: Buffer) => Promise<boolean>): Promise<boolean> {
  const pieceBytes = Math.round((sampleRate * PIECE_MS) / 1000) * 2;
  for (let offset = 0; offset < pcm.length; offset += pieceBytes) {
    if (!(await write(pcm.subarray(offset, offset + pieceBytes)))) return false;
  }
  return true;
}

function recordSpeech(session: FakeSession, text: string, pcm: Buffer, sampleRate: number): void {
  session.record.polly.texts.push(text);
  session.record.polly.audioSeconds += pcm.length / 2 / sampleRate;
}

/** SynthesizeSpeech (`POST /v1/speech`): the text as espeak-ng says it, streamed as PCM after the simulated TTFB. */
export async function handleSynthesizeSpeech(ctx: HandlerContext, request: FakeRequest): Promise<void> {
  const receivedAt = performance.now();
  const { stream, headers } = request;
  let input: Record<string, unknown> = {};
  let problem: string | undefined;
  try {
    const parsed: unknown = JSON.parse((await readBody(stream, 64 * 1024)).toString('utf8'));
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) throw new Error('not an object');
    input = parsed as Record<string, unknown>;
  } catch (error) {
    problem = error instanceof EventStreamProtocolError ? error.message : 'the body must be a JSON object';
  }
  const text = typeof input.Text === 'string' ? input.Text : '';
  const session = ctx.sessions.resolve({ explicit: sessionHeader(headers), texts: [text], connection: stream.session! });
  problem ??=
    problemWith({ format: input.OutputFormat, voice: input.VoiceId, engine: input.Engine, rate: input.SampleRate }) ??
    checkText(input.Text, input.TextType) ??
    (text.length > MAX_TEXT ? `Text: ${text.length} characters is over the ${MAX_TEXT}-character limit` : undefined);
  if (problem) {
    session.record.rejected.push(problem);
    return respondValidation(request, 'polly', problem);
  }
  const refused = session.takeFault('polly', 'speech', 'response') ?? session.takeFault('polly', 'speech', 'stream');
  if (refused) return respondFault(request, refused);
  session.record.polly.requests += 1;

  const sampleRate = Number(input.SampleRate ?? 16000);
  let pcm: Buffer;
  try {
    pcm = await speak(text, sampleRate, input.TextType === 'ssml');
  } catch (error) {
    ctx.logger.error({ err: error }, 'speech synthesis failed');
    return respondFault(request, { service: 'polly', exception: 'ServiceFailureException', message: 'synthesis failed', at: 'response', times: 1 });
  }
  recordSpeech(session, text, pcm, sampleRate);
  await waitUntil(receivedAt + ctx.latency().pollyTtfbMs, stream);
  if (stream.destroyed) return;
  stream.respond({
    ':status': 200,
    'content-type': 'audio/pcm',
    'x-amzn-requestcharacters': String(text.length),
    'x-amzn-requestid': randomUUID(),
  });
  if (await sendPcm(pcm, sampleRate, (piece) => writeMessage(stream, piece))) stream.end();
}

/**
 * StartSpeechSynthesisStream (`POST /v1/synthesisStream`, generative engine only): TextEvents in, AudioEvents out as
 * soon as a sentence is complete or a flush is forced; CloseStreamEvent → the rest, then StreamClosedEvent.
 */
export async function handleSynthesisStream(ctx: HandlerContext, request: FakeRequest): Promise<void> {
  const startedAt = performance.now();
  const { stream, headers } = request;
  const engine = headers['x-amzn-engine'];
  const rate = headers['x-amzn-samplerate'] ?? '16000';
  const sampleRate = Number(rate);
  let problem =
    problemWith({ format: headers['x-amzn-outputformat'], voice: headers['x-amzn-voiceid'], engine, rate }) ??
    (engine !== 'generative' ? `Engine: streaming synthesis needs the generative engine, got "${String(engine)}"` : undefined);
  if (!problem && !String(headers['content-type']).startsWith('application/vnd.amazon.eventstream')) problem = 'content-type: an event stream is required';
  if (problem) {
    const session = ctx.sessions.resolve({ explicit: sessionHeader(headers), texts: [], connection: stream.session! });
    session.record.rejected.push(problem);
    return respondValidation(request, 'polly', problem);
  }
  respondEventStream(stream, { 'x-amzn-requestid': randomUUID() });

  let session: FakeSession | undefined;
  /** Segments spoken before the session was known, recorded once it is. */
  const unrecorded: { text: string; pcm: Buffer }[] = [];
  let said = '';
  let buffer = '';
  let characters = 0;
  let firstAudio = true;
  let out: Promise<boolean> = Promise.resolve(true);
  const say = (raw: string, ssml: boolean) => {
    const text = raw.trim();
    if (!text) return;
    const spoken = speak(text, sampleRate, ssml);
    // Segments are spoken in the order they were flushed, whatever order espeak finishes them in.
    out = out.then(async (alive) => {
      if (!alive) return false;
      const pcm = await spoken;
      if (session) recordSpeech(session, text, pcm, sampleRate);
      else unrecorded.push({ text, pcm });
      if (firstAudio) await waitUntil(startedAt + ctx.latency().pollyTtfbMs, stream);
      firstAudio = false;
      return sendPcm(pcm, sampleRate, (piece) => writeMessage(stream, encodeEvent('AudioEvent', piece)));
    });
  };
  /**
   * The session is found once a whole sentence of some length was said, not at the first event: the agent sends
   * words as the model writes them, and "Thank you." is every call's. Speech does not wait for it.
   */
  const join = (segment: string, last = false): boolean => {
    if (session) return true;
    said = `${said} ${segment}`.trim();
    const explicit = sessionHeader(headers);
    if (!last && explicit.length === 0 && sentencesOf(said).length === 0) return true;
    session = ctx.sessions.resolve({ explicit, texts: [said], connection: stream.session! });
    session.record.polly.requests += 1;
    for (const early of unrecorded.splice(0)) recordSpeech(session, early.text, early.pcm, sampleRate);
    const fault = session.takeFault('polly', 'synthesis-stream', 'stream') ?? session.takeFault('polly', 'synthesis-stream', 'response');
    if (!fault) return true;
    void streamFault(stream, fault);
    return false;
  };
  try {
    let closed = false;
    for await (const event of inboundEvents(stream as AsyncIterable<Buffer>)) {
      if (stream.destroyed) return;
      if (closed) throw new EventStreamProtocolError(`${event.type} after CloseStreamEvent`);
      if (event.type === 'CloseStreamEvent') {
        closed = true;
        if (buffer.trim() && !join(buffer)) return;
        say(buffer, false);
        buffer = '';
        continue;
      }
      if (event.type !== 'TextEvent') throw new EventStreamProtocolError(`unexpected ${event.type} in an ActionStream`);
      const payload = jsonPayload(event);
      if (typeof payload.Text !== 'string') throw new EventStreamProtocolError('TextEvent.Text: must be a string');
      if (payload.TextType !== undefined && payload.TextType !== 'text' && payload.TextType !== 'ssml') {
        throw new EventStreamProtocolError(`TextEvent.TextType: must be text or ssml, got "${String(payload.TextType)}"`);
      }
      characters += payload.Text.length;
      if (characters > MAX_STREAM_TEXT) throw new EventStreamProtocolError(`more than ${MAX_STREAM_TEXT} characters of text`);
      buffer += payload.Text;
      const force = (payload.FlushStreamConfiguration as { Force?: unknown } | undefined)?.Force === true;
      // Whole sentences are spoken as they complete; a forced flush speaks whatever is buffered.
      const cut = force ? buffer.length : lastSentenceEnd(buffer);
      if (cut > 0) {
        const segment = buffer.slice(0, cut);
        buffer = buffer.slice(cut);
        if (segment.trim() && !join(segment)) return;
        say(segment, payload.TextType === 'ssml');
      }
    }
    if (!closed) throw new EventStreamProtocolError('the ActionStream ended without a CloseStreamEvent');
    if (!join('', true)) return;
    if (!(await out)) return;
    for (const early of unrecorded.splice(0)) recordSpeech(session!, early.text, early.pcm, sampleRate);
    await writeMessage(stream, encodeEvent('StreamClosedEvent', { RequestCharacters: characters }));
    if (!stream.destroyed) stream.end();
  } catch (error) {
    if (stream.destroyed) return;
    const message = error instanceof EventStreamProtocolError ? error.message : `synthesis failed: ${(error as Error).message}`;
    (session ?? ctx.sessions.resolve({ explicit: sessionHeader(headers), texts: [], connection: stream.session! })).record.rejected.push(message);
    await out.catch(() => false);
    await streamException(stream as ServerHttp2Stream, 'polly', 'ValidationException', message);
  }
}

/** Index just past the last sentence end (`.`, `!`, `?` followed by a space) in `text`, or 0. */
function lastSentenceEnd(text: string): number {
  let cut = 0;
  for (const match of text.matchAll(/[.!?]+(?=\s)/g)) cut = match.index + match[0].length;
  return cut;
}
