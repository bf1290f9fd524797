import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { type JobContext, type JobProcess, defineAgent, llm, voice } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { RoomEvent } from '@livekit/rtc-node';
import { AGENT_METRICS, ANONYMOUS_CALLER, e164Schema } from '@voice-intake/contracts';
import { Redis } from 'ioredis';
import { SipClient } from 'livekit-server-sdk';
import pino from 'pino';
import { readAgentEnv, redisConnection } from './config';
import { IntakeAgent } from './intake-agent';
import { McpToolset } from './mcp/toolset';
import { MetricsEmitter } from './metrics';
import { BedrockLLM, PollyTTS, TranscribeSTT } from './plugins/aws';
import { CallRecorder } from './records/call-recorder';
import { redactPii } from './records/redact';
import { RedisSessionStore } from './state/session-store';

const WORKER_ID = `${process.env.HOSTNAME ?? 'worker'}-${randomUUID().slice(0, 8)}`;
const logger = pino({ base: { service: 'voice-intake-agent', workerId: WORKER_ID } });
const metrics = new MetricsEmitter();

/** Phone audio: endpoint a little later than for a headset (line noise, slower turn-taking). */
const TURN_HANDLING = { minEndpointingDelay: 0.5, maxEndpointingDelay: 3.0, minInterruptionDuration: 0.4 };

function callerNumberOf(attributes: Record<string, string>): string {
  const raw = attributes['sip.phoneNumber'];
  const parsed = e164Schema.safeParse(raw?.startsWith('+') ? raw : raw ? `+${raw}` : undefined);
  return parsed.success ? parsed.data : ANONYMOUS_CALLER;
}

/** A worker taking over a call gives the model the last turns the previous worker stored. */
function resumedContext(turns: { speaker: 'caller' | 'agent'; text: string }[]): llm.ChatContext {
  const chatCtx = llm.ChatContext.empty();
  for (const turn of turns) chatCtx.addMessage({ role: turn.speaker === 'caller' ? 'user' : 'assistant', content: turn.text });
  return chatCtx;
}

export default defineAgent({
  // One Silero model per process, loaded before any call arrives.
  prewarm: async (proc: JobProcess) => {
    proc.userData.vad = await silero.VAD.load({ minSilenceDuration: 0.45 });
  },

  entry: async (ctx: JobContext) => {
    const env = readAgentEnv();
    await ctx.connect();
    const participant = await ctx.waitForParticipant();
    const callId = participant.attributes['sip.callID'] || ctx.room.name || randomUUID();
    const call = {
      callId: callId.replace(/[^A-Za-z0-9._:-]/g, '-'),
      roomName: ctx.room.name ?? callId,
      callerNumber: callerNumberOf(participant.attributes),
      calledNumber: participant.attributes['sip.trunkPhoneNumber'],
      startedAt: new Date(),
    };
    const log = logger.child({ callId: call.callId, room: call.roomName });

    const connection = redisConnection(env);
    const redis = typeof connection === 'string' ? new Redis(connection, { maxRetriesPerRequest: 3 }) : new Redis({ ...connection, maxRetriesPerRequest: 3 });
    const sessions = new RedisSessionStore(redis, { ttlSeconds: env.SESSION_TTL_SECONDS });
    const { state, resumed } = await sessions.start({
      ...call,
      startedAt: call.startedAt.toISOString(),
      workerId: WORKER_ID,
      status: 'active',
      intake: { fields: {}, confirmed: false },
      lastTurns: [],
      nextTurnSeq: 0,
      nextTranscriptPart: 0,
      audit: { seq: 0, prevHash: '0'.repeat(64) },
    });
    if (resumed) await sessions.claim(call.callId, WORKER_ID);

    const recorder = new CallRecorder({
      s3: new S3Client({}),
      transcriptsBucket: env.TRANSCRIPTS_BUCKET,
      auditBucket: env.AUDIT_BUCKET,
      call,
      redact: env.PII_REDACTION ? redactPii : undefined,
      flushIntervalMs: env.RECORD_FLUSH_MS,
      resume: resumed ? state : undefined,
    });
    recorder.start();
    recorder.audit('session_start', resumed ? 'resumed' : 'started', { workerId: WORKER_ID, callerNumber: call.callerNumber });

    const toolset = new McpToolset({
      url: env.MCP_URL,
      token: env.MCP_TOKEN,
      sessionSecret: env.MCP_SESSION_SECRET,
      call: { callId: call.callId, callerNumber: call.callerNumber },
      onToolCall: (event) => {
        recorder.audit('tool_call', event.name, { arguments: event.arguments });
        recorder.audit('tool_result', event.name, { text: event.resultText, isError: event.isError });
        metrics.emit({ [AGENT_METRICS.toolLatency]: event.durationMs, [AGENT_METRICS.toolErrors]: event.isError ? 1 : 0 }, { callId: call.callId, tool: event.name });
      },
    });
    const sip = new SipClient(env.LIVEKIT_URL.replace(/^ws/, 'http'), env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);

    const session = new voice.AgentSession({
      vad: ctx.proc.userData.vad as silero.VAD,
      stt: new TranscribeSTT({ language: env.TRANSCRIBE_LANGUAGE, pii: env.PII_REDACTION ? 'redact' : undefined }),
      llm: new BedrockLLM({ model: env.BEDROCK_MODEL_ID, fallbackModel: env.BEDROCK_FALLBACK_MODEL_ID }),
      tts: new PollyTTS({ voice: env.POLLY_VOICE, engine: env.POLLY_ENGINE, streaming: env.POLLY_ENGINE === 'generative' }),
      turnHandling: TURN_HANDLING as never,
    });

    // Every turn goes to the transcript and the session state as it happens.
    session.on(voice.AgentSessionEventTypes.ConversationItemAdded, (event) => {
      const item = event.item;
      if (item.type !== 'message' || (item.role !== 'user' && item.role !== 'assistant')) return;
      const text = item.textContent ?? '';
      if (!text) return;
      const ended = new Date(item.createdAt);
      const turn = recorder.addTurn({
        speaker: item.role === 'user' ? 'caller' : 'agent',
        text,
        startedAt: ended.toISOString(),
        endedAt: ended.toISOString(),
        confidence: item.transcriptConfidence,
        interrupted: item.interrupted,
      });
      if (item.role === 'assistant' && item.metrics.e2eLatency !== undefined) {
        metrics.emit({ [AGENT_METRICS.voiceToVoiceLatency]: item.metrics.e2eLatency * 1000 }, { callId: call.callId });
      }
      void sessions.appendTurn(call.callId, turn).then(() => sessions.update(call.callId, (current) => ({ ...current, ...recorder.position }))).catch((error) => log.warn({ err: error }, 'session state not updated'));
    });
    session.on(voice.AgentSessionEventTypes.MetricsCollected, ({ metrics: collected }) => {
      if (collected.type === 'eou_metrics') {
        metrics.emit(
          { [AGENT_METRICS.endOfUtteranceDelay]: collected.endOfUtteranceDelayMs, [AGENT_METRICS.sttFinalDelay]: collected.transcriptionDelayMs },
          { callId: call.callId },
        );
      } else if (collected.type === 'llm_metrics') {
        metrics.emit({ [AGENT_METRICS.llmTimeToFirstToken]: collected.ttftMs }, { callId: call.callId });
      } else if (collected.type === 'tts_metrics') {
        metrics.emit({ [AGENT_METRICS.ttsTimeToFirstByte]: collected.ttfbMs }, { callId: call.callId });
      }
    });

    // Key presses reach the model as words it can act on.
    ctx.room.on(RoomEvent.DtmfReceived, (_code, digit) => {
      void session.generateReply({ userInput: `(the caller pressed ${digit})` });
    });

    let endReason: 'caller_hangup' | 'agent_hangup' | 'transferred' = 'caller_hangup';
    const agent = new IntakeAgent(await toolset.tools(), toolset, {
      defaultTransferTarget: env.DEFAULT_TRANSFER_TARGET,
      transfer: async (target, reason) => {
        endReason = 'transferred';
        recorder.audit('transfer', target, { reason });
        await sessions.update(call.callId, (current) => ({ ...current, status: 'transferring' }));
        await sip.transferSipParticipant(call.roomName, participant.identity, target, { playDialtone: false });
      },
      hangUp: async (reason) => {
        endReason = 'agent_hangup';
        log.info({ reason }, 'agent hangs up');
        ctx.shutdown(reason);
      },
    }, resumed ? resumedContext(state.lastTurns) : undefined);

    ctx.addShutdownCallback(async () => {
      await recorder.finish(endReason).catch((error) => log.error({ err: error }, 'final transcript not written'));
      await sessions.update(call.callId, (current) => ({ ...current, status: 'ended', ...recorder.position })).catch(() => undefined);
      await toolset.close();
      redis.disconnect();
      metrics.emit({ [AGENT_METRICS.callsEnded]: 1 }, { callId: call.callId });
    });

    metrics.emit({ [AGENT_METRICS.callsStarted]: 1 }, { callId: call.callId });
    await session.start({ agent, room: ctx.room });
    await session.generateReply({
      instructions: resumed ? 'Apologise for the interruption and pick up where the call left off.' : 'Greet the caller and offer to take their details.',
    });
  },
});
