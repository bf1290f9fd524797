import type { BedrockRuntimeClient } from '@aws-sdk/client-bedrock-runtime';
import type { PollyClient } from '@aws-sdk/client-polly';
import type { S3Client } from '@aws-sdk/client-s3';
import type { TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { type AgentMetrics, llm, type VAD, voice } from '@livekit/agents';
import {
  AGENT_METRICS,
  type AgentMetricName,
  type AttestationLevel,
  AuditChainForkError,
  type CallEndReason,
  GENESIS_HASH,
  type SessionState,
} from '@voice-intake/contracts';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { AgentEnv } from './config';
import { type EndpointingByText, TextAwareEndpointing } from './endpointing';
import { findTransferTarget, IntakeAgent, type IntakeAgentCallbacks } from './intake-agent';
import { type DroppedKeyPress, KeypadEntry } from './keypad';
import { McpToolset } from './mcp/toolset';
import type { MetricsEmitter } from './metrics';
import { BedrockFallbackLLM, bedrockLLM, PollyTTS, TranscribeSTT } from './plugins/aws';
import { CallAudio, callAudioFor } from './records/call-audio';
import { CallRecorder, TranscriptPartForkError } from './records/call-recorder';
import { redactPii } from './records/redact';
import { auditSealKeyFor } from './records/seal-key';
import { HANDOVER_LINE, handleServiceFailures } from './service-failures';
import { SpeculationLedger } from './speculation';
import { RedisSessionStore, SessionTakenOverError } from './state/session-store';

/** The call as LiveKit SIP describes it. */
export interface CallIdentity {
  callId: string;
  roomName: string;
  callerNumber: string;
  /** How far the network vouched for callerNumber (the SIP edge's level); none when unknown. */
  attestation?: AttestationLevel;
  calledNumber?: string;
  startedAt: Date;
}

/**
 * Phone audio: endpoint a little later than for a headset (line noise, slower turn-taking); barge-in by VAD. The LLM
 * starts before the turn is committed (preemptive generation: on Transcribe's stable words, then on the final), the
 * TTS only once it is, so nothing is said to words the final does not confirm.
 */
export const PHONE_TURN_HANDLING = {
  turnDetection: 'vad',
  endpointing: { minDelay: 500, maxDelay: 3_000 },
  interruption: { enabled: true, mode: 'vad', minDuration: 400 },
  preemptiveGeneration: { enabled: true, preemptiveTts: false, maxSpeechDuration: 10_000, maxRetries: 3 },
} as const;

/** Endpointing delay by how the caller's words end (see agent/README.md, "Speculative turn-taking"). */
export const PHONE_ENDPOINTING_BY_TEXT: EndpointingByText = {
  completeMs: 500,
  defaultMs: 500,
  openMs: 1_200,
  pendingMs: PHONE_TURN_HANDLING.endpointing.maxDelay,
};

/** The session's turn handling options, as `voice.AgentSession` takes them. */
export type SessionTurnHandling = NonNullable<ConstructorParameters<typeof voice.AgentSession>[0]>['turnHandling'];

export interface IntakeCallOptions {
  env: AgentEnv;
  call: CallIdentity;
  workerId: string;
  /** The process's Silero model (loaded once in prewarm). */
  vad: VAD;
  redis: Redis;
  s3: S3Client;
  /** Pre-built AWS clients (shared per process; tests inject mocked ones). Default: each plugin creates its own. */
  aws?: { transcribe?: TranscribeStreamingClient; bedrock?: BedrockRuntimeClient; polly?: PollyClient };
  metrics: MetricsEmitter;
  logger: Logger;
  /** Hands the call to a person at `target` (LiveKit SIP transfer: a SIP REFER to the carrier). */
  transfer: (target: string) => Promise<void>;
  /** Ends the call after the goodbye (disconnects the room / shuts the job down). */
  hangUp: (reason: string) => void;
  /**
   * Leaves the call without ending it: another worker has claimed it and goes on with the caller (shuts the job
   * down; the caller stays in the room).
   */
  leave: (reason: string) => void;
  /** Overrides for the session (tests shorten endpointing; production keeps the phone defaults). */
  turnHandling?: SessionTurnHandling;
  /** Endpointing delay by the caller's words; `false`: `turnHandling`'s fixed minDelay. Default the phone's. */
  endpointingByText?: EndpointingByText | false;
  /** Answer on Transcribe's stable words before the final (PREFLIGHT_TRANSCRIPT). Default true. */
  speculate?: boolean;
}

/** One intake call, wired: session state, records, MCP tools, the AWS pipeline and the agent. */
export interface IntakeCall {
  readonly session: voice.AgentSession;
  readonly agent: IntakeAgent;
  readonly recorder: CallRecorder;
  /** The call's audio recording (RECORDING_MODE announce/consent; after a takeover, only where it goes on recording). */
  readonly audio?: CallAudio;
  readonly resumed: boolean;
  /** Opens the conversation: a greeting, or an apology when this worker took the call over. */
  greet(): Promise<void>;
  /**
   * A DTMF key press of the caller's: collected with the next ones into one entry (ended by `#`, a pause or a length
   * bound), handed to the model as one message and recorded as one turn (masked as a whole with PII_REDACTION).
   * Anything but a single keypad key is dropped and counted.
   */
  keyPressed(key: string): void;
  /** A key press refused before it reached the call (sent by another participant): counted and logged. */
  keyRefused(reason: DroppedKeyPress): void;
  /**
   * Writes the final transcript and state, closes the MCP session. Safe to call once the call is over. `endReason`: how
   * the call ended, where the call cannot tell (its session never started: `error`); the first call's holds.
   */
  finish(endReason?: CallEndReason): Promise<void>;
}

/**
 * The latency figures in one of LiveKit's metrics events. LiveKit reports -1 for a time to first token or byte that
 * never came (a reply cancelled before its first token, e.g. a preemptive generation the caller talked over): that
 * is no latency, and emitting it would drag the averages down, so it is left out.
 */
export function latencyMetricsOf(collected: AgentMetrics): Partial<Record<AgentMetricName, number>> {
  const latency = (value: number | undefined) => (value !== undefined && value >= 0 ? value : undefined);
  const figures: Partial<Record<AgentMetricName, number | undefined>> =
    collected.type === 'eou_metrics'
      ? {
          [AGENT_METRICS.endOfUtteranceDelay]: latency(collected.endOfUtteranceDelayMs),
          [AGENT_METRICS.sttFinalDelay]: latency(collected.transcriptionDelayMs),
        }
      : collected.type === 'llm_metrics'
        ? { [AGENT_METRICS.llmTimeToFirstToken]: latency(collected.ttftMs) }
        : collected.type === 'tts_metrics'
          ? { [AGENT_METRICS.ttsTimeToFirstByte]: latency(collected.ttfbMs) }
          : {};
  return Object.fromEntries(Object.entries(figures).filter(([, value]) => value !== undefined));
}

/** How a keypad entry reaches the model (INTAKE_INSTRUCTIONS tells it so). */
export function keypadMessage(keys: string): string {
  return `(the caller keyed in ${keys})`;
}

/** A worker taking over a call gives the model the last turns the previous worker stored. */
function resumedContext(turns: { speaker: 'caller' | 'agent'; text: string }[]): llm.ChatContext {
  const chatCtx = llm.ChatContext.empty();
  for (const turn of turns)
    chatCtx.addMessage({ role: turn.speaker === 'caller' ? 'user' : 'assistant', content: turn.text });
  return chatCtx;
}

/**
 * Everything a call needs besides the room: the worker entry passes a LiveKit room to `session.start`, tests and
 * benchmarks pass their own audio input and output. One wiring, so what the tests exercise is what production runs.
 */
export async function prepareIntakeCall(options: IntakeCallOptions): Promise<IntakeCall> {
  const { env, call, workerId, metrics, logger } = options;
  const log = logger.child({ callId: call.callId, room: call.roomName });
  const dimensions = { callId: call.callId };

  const sessions = new RedisSessionStore(options.redis, { ttlSeconds: env.SESSION_TTL_SECONDS });
  const started = await sessions.start({
    ...call,
    startedAt: call.startedAt.toISOString(),
    workerId,
    status: 'active',
    intake: { fields: {}, confirmed: false },
    lastTurns: [],
    nextTurnSeq: 0,
    nextTranscriptPart: 0,
    audit: { seq: 0, prevHash: GENESIS_HASH },
  });
  const { resumed } = started;
  // Every write of this worker's goes through its hold, refused once another worker has claimed the call.
  const held = resumed ? await sessions.claim(call.callId, workerId) : sessions.hold(started.state);
  const { state } = held;
  // A second dispatch of one room (a takeover while this worker still runs) makes two workers: the one claimed last
  // goes on, this one stops writing at the first refusal or pre-flush check and leaves, the caller staying with the
  // other. Nothing it stores after the claim can fork the records its successor continues.
  let takenOverBy: string | undefined;
  let finishing = false;
  const stopWritingOnTakeover: (() => void)[] = [];
  const whenTakenOver = (stop: () => void) => (takenOverBy ? stop() : stopWritingOnTakeover.push(stop));
  const leaveIfTakenOver = (error: unknown): boolean => {
    // A refused state write names the claim; an audit segment another writer stored (its claim not seen yet) does not.
    const by =
      error instanceof SessionTakenOverError
        ? error.heldBy.workerId
        : error instanceof AuditChainForkError || error instanceof TranscriptPartForkError
          ? 'another writer of its records'
          : undefined;
    if (by === undefined) return false;
    if (takenOverBy) return true;
    takenOverBy = by;
    const heldBy = error instanceof SessionTakenOverError ? error.heldBy : undefined;
    log.error({ takenOverBy: heldBy ?? by, claimEpoch: held.holder.claimEpoch }, 'call taken over; leaving it');
    metrics.emit({ [AGENT_METRICS.callsTakenOver]: 1 }, dimensions);
    for (const stop of stopWritingOnTakeover) stop();
    if (!finishing) options.leave(`taken over by ${by}`);
    return true;
  };

  /** What the session state keeps of this worker's records (set below, once the recording is set up). */
  let positionNow: (() => Partial<SessionState>) | undefined;
  let savedPosition = '';
  /** Saves where this worker's records stand (unless unchanged since): refused once another worker holds the call. */
  const savePosition = async ({ checkClaim }: { checkClaim: boolean }) => {
    const now = positionNow?.();
    const saved = JSON.stringify(now ?? null);
    if (!now || saved === savedPosition) return checkClaim ? held.check() : undefined;
    await held.update((current) => ({ ...current, ...now }));
    savedPosition = saved;
  };

  const recorder = new CallRecorder({
    s3: options.s3,
    transcriptsBucket: env.TRANSCRIPTS_BUCKET,
    auditBucket: env.AUDIT_BUCKET,
    sealKey: auditSealKeyFor(env),
    call,
    redact: env.PII_REDACTION ? redactPii : undefined,
    flushIntervalMs: env.RECORD_FLUSH_MS,
    resume: resumed ? state : undefined,
    // Before each flush writes, its audit segments sealed: the position is saved (a worker taking the call over goes
    // on after those segments, stored or not, never gives their index again) and the claim checked with it (a worker
    // taken over stores nothing over its successor's). A save that cannot be made (Redis unreachable) writes anyway:
    // without a claim nobody else writes, and the records matter.
    beforeWrite: () =>
      savePosition({ checkClaim: true }).catch((error) => {
        if (leaveIfTakenOver(error)) throw error;
        log.warn({ err: error }, 'session position not saved before a flush');
      }),
    onForked: (error) => leaveIfTakenOver(error),
  });
  recorder.start();
  const attestation = call.attestation ?? 'none';
  recorder.audit('session_start', resumed ? 'resumed' : 'started', {
    workerId,
    claimEpoch: held.holder.claimEpoch,
    callerNumber: call.callerNumber,
    attestation,
  });
  whenTakenOver(() => recorder.abandon());
  const recording = await callAudioFor({
    env,
    callId: call.callId,
    s3: options.s3,
    audit: (subject, payload) => recorder.audit('recording', subject, payload),
    resumed,
    resumeFrom: state.recording,
    callStartedAt: state.startedAt,
  });
  // Recording on this worker; or, on a takeover that does not go on recording, only the earlier workers' parts.
  const audio = recording instanceof CallAudio ? recording : undefined;
  if (audio) whenTakenOver(() => audio.abandon());
  /** What the session state keeps of this worker's records: a worker taking the call over goes on from there. */
  const position = () => ({ ...recorder.position, ...(recording ? { recording: recording.position } : {}) });
  if (recording) {
    // Where the recording stands is saved before its first part is stored: a worker taking over from here knows this
    // segment and its clock start (its parts, it lists in the bucket).
    await held
      .update((current) => ({ ...current, recording: recording.position }))
      .catch((error) => leaveIfTakenOver(error) || log.warn({ err: error }, 'recording position not saved'));
  }
  if (audio) recorder.alsoFlush(() => audio.flush());
  // Saved before every flush writes (above) and after it, once its writes are stored: a worker taking the call over
  // continues the transcript, the audit chain and the recording after everything this one stored, never over it
  // (saving only with each turn left records flushed since then to be written again by the next worker: a forked
  // chain, overwritten parts). An unchanged position is not saved again.
  positionNow = position;
  recorder.afterFlush(() =>
    savePosition({ checkClaim: false }).catch((error) => {
      if (!leaveIfTakenOver(error)) log.warn({ err: error }, 'session position not saved');
    }),
  );

  const toolset = new McpToolset({
    url: env.MCP_URL,
    token: env.MCP_TOKEN,
    sessionSecret: env.MCP_SESSION_SECRET,
    call: { callId: call.callId, callerNumber: call.callerNumber, attestation },
    onToolCall: (event) => {
      recorder.toolCall(event);
      metrics.emit(
        { [AGENT_METRICS.toolLatency]: event.durationMs, [AGENT_METRICS.toolErrors]: event.isError ? 1 : 0 },
        { ...dimensions, tool: event.name },
      );
    },
  });

  const stt = new TranscribeSTT({
    language: env.TRANSCRIBE_LANGUAGE,
    pii: env.PII_REDACTION ? 'redact' : undefined,
    client: options.aws?.transcribe,
    preflight: options.speculate ?? env.SPECULATIVE_TURNS,
    onPreflightSettled: ({ waitMs }) => metrics.emit({ [AGENT_METRICS.finalAfterPreflightWait]: waitMs }, dimensions),
  });
  const model = bedrockLLM({
    model: env.BEDROCK_MODEL_ID,
    fallbackModel: env.BEDROCK_FALLBACK_MODEL_ID,
    client: options.aws?.bedrock,
    // Bedrock's invocation logs then name the call each request served.
    requestMetadata: { callId: call.callId },
  });
  const tts = new PollyTTS({
    voice: env.POLLY_VOICE,
    engine: env.POLLY_ENGINE,
    streaming: env.POLLY_ENGINE === 'generative',
    client: options.aws?.polly,
  });
  // The session prewarms its LLM; the caller speaks first to Transcribe and hears Polly first.
  stt.prewarm();
  tts.prewarm();
  if (model instanceof BedrockFallbackLLM) {
    for (const candidate of model.models) {
      candidate.on('error', ({ error, recoverable }) =>
        log.warn({ model: candidate.model, recoverable, err: error }, 'bedrock model failed'),
      );
    }
    // The adapter emits this event without declaring it in its typed events.
    const onAvailability = ({ llm: changed, available }: llm.AvailabilityChangedEvent) =>
      log.warn({ model: changed.model, available }, 'bedrock model availability changed');
    (model as unknown as NodeJS.EventEmitter).on('llm_availability_changed', onAvailability);
  }
  const turnHandling = options.turnHandling ?? PHONE_TURN_HANDLING;
  const session = new voice.AgentSession({ vad: options.vad, stt, llm: model, tts, turnHandling });
  const speculation = new SpeculationLedger({
    kept: () => metrics.emit({ [AGENT_METRICS.speculationHits]: 1 }, dimensions),
    cancelled: (count) => metrics.emit({ [AGENT_METRICS.speculationCancels]: count }, dimensions),
  });
  // Overridden turn handling (tests) keeps its own fixed delay unless told otherwise.
  const byText = options.endpointingByText ?? (options.turnHandling ? false : PHONE_ENDPOINTING_BY_TEXT);
  const endpointing = byText
    ? new TextAwareEndpointing(byText, (minDelay) =>
        session.updateOptions({ turnHandling: { endpointing: { minDelay } } }),
      )
    : undefined;
  if (endpointing) {
    session.on(voice.AgentSessionEventTypes.UserInputTranscribed, ({ transcript, isFinal }) =>
      endpointing.transcribed(transcript, isFinal),
    );
  }

  // Every turn goes to the transcript and the session state as it happens.
  session.on(voice.AgentSessionEventTypes.ConversationItemAdded, (event) => {
    const item = event.item;
    if (item.type === 'message' && item.role === 'user') {
      // The caller's turn is committed: a reply started on these words may be recorded now, others never.
      speculation.committed(item);
      endpointing?.turnCommitted();
    }
    if (item.type !== 'message' || (item.role !== 'user' && item.role !== 'assistant')) return;
    const text = item.textContent ?? '';
    if (!text) return;
    const at = new Date(item.createdAt).toISOString();
    let turn: ReturnType<typeof recorder.addTurn>;
    try {
      turn = recorder.addTurn({
        speaker: item.role === 'user' ? 'caller' : 'agent',
        text,
        startedAt: at,
        endedAt: at,
        confidence: item.transcriptConfidence,
        interrupted: item.interrupted,
      });
    } catch (error) {
      // A turn the transcript cannot take must not take the reply with it: the framework emits this event on the
      // reply's own path.
      log.error({ err: error, role: item.role, chars: text.length }, 'turn not recorded');
      return;
    }
    if (item.role === 'assistant' && item.metrics.e2eLatency !== undefined) {
      metrics.emit({ [AGENT_METRICS.voiceToVoiceLatency]: item.metrics.e2eLatency * 1000 }, dimensions);
    }
    const now = position();
    void held
      .appendTurn(turn, now)
      .then(() => (savedPosition = JSON.stringify(now)))
      .catch((error) => leaveIfTakenOver(error) || log.warn({ err: error }, 'session state not updated'));
  });
  session.on(voice.AgentSessionEventTypes.MetricsCollected, ({ metrics: collected }) => {
    // With a fallback, the adapter reports a figure of its own beside each model's: count each request once.
    if (collected.type === 'llm_metrics' && collected.label === 'FallbackAdapter') return;
    // Each model reports its own request: the figure names the model that served it.
    const servedBy: Record<string, string> =
      collected.type === 'llm_metrics' ? { model: collected.metadata?.modelName ?? env.BEDROCK_MODEL_ID } : {};
    metrics.emit(latencyMetricsOf(collected), { ...dimensions, ...servedBy });
  });

  let endReason: CallEndReason = 'caller_hangup';
  const transfer: IntakeAgentCallbacks['transfer'] = async (target, reason) => {
    endReason = 'transferred';
    recorder.audit('transfer', target, { reason });
    // A worker taken over transfers nothing: the call is its successor's.
    await held
      .update((current) => ({ ...current, status: 'transferring' }))
      .catch((error) => {
        leaveIfTakenOver(error);
        throw error;
      });
    await options.transfer(target);
  };
  handleServiceFailures({
    session,
    metrics,
    properties: dimensions,
    log,
    handOver: async (reason, speak) => {
      const fallbackTarget = env.DEFAULT_TRANSFER_TARGET;
      const target = await findTransferTarget(toolset, reason, fallbackTarget).catch(() => fallbackTarget);
      if (!target) return false;
      if (speak) await session.say(HANDOVER_LINE).waitForPlayout();
      await transfer(target, reason);
      return true;
    },
  });
  const agent = new IntakeAgent(
    await toolset.tools(),
    toolset,
    {
      defaultTransferTarget: env.DEFAULT_TRANSFER_TARGET,
      transfer,
      hangUp: async (reason) => {
        // A worker taken over must not end the call its successor holds: it only leaves.
        await held.check().catch((error) => leaveIfTakenOver(error));
        if (takenOverBy) return;
        endReason = 'agent_hangup';
        // The model wrote the reason: with PII_REDACTION it is logged masked, as it is recorded.
        log.info({ reason: env.PII_REDACTION ? redactPii(reason) : reason }, 'agent hangs up');
        options.hangUp(reason);
      },
      llmExchange: {
        request: (request) => recorder.audit('llm_request', env.BEDROCK_MODEL_ID, request),
        // Names the model that answered: with a fallback, not always the configured one.
        response: (response) => recorder.audit('llm_response', response.model ?? env.BEDROCK_MODEL_ID, response),
      },
      recording: audio?.agentHooks(),
      speculation,
    },
    resumed ? resumedContext(state.lastTurns) : undefined,
  );

  const keypad = new KeypadEntry({
    onEntry: (keys) => {
      // Answered at once, never speculatively: its records need no confirmation. The model gets the keys as pressed;
      // the transcript and audit log get the entry masked as one string, like a number spoken.
      const userInput = llm.ChatMessage.create({ role: 'user', content: keypadMessage(keys) });
      speculation.seed([userInput.id]);
      void session.generateReply({ userInput });
    },
    onDropped: (reason, droppedKeyPresses) =>
      log.warn({ reason, droppedKeyPresses }, 'key press dropped: not a single keypad key from the caller'),
  });

  metrics.emit({ [AGENT_METRICS.callsStarted]: 1 }, dimensions);
  let finished: Promise<void> | undefined;
  return {
    session,
    agent,
    recorder,
    audio,
    resumed,
    greet: async () => {
      // The recording notice comes first; in consent mode the question is the opening and the answer comes next.
      await audio?.open(session);
      if (audio?.awaitsConsent) return;
      await session
        .generateReply({
          instructions: resumed
            ? 'Apologise for the interruption and pick up where the call left off.'
            : 'Greet the caller and offer to take their details.',
        })
        .waitForPlayout();
    },
    keyPressed: (key) => keypad.press(key),
    keyRefused: (reason) => keypad.drop(reason),
    finish: (endedBy) =>
      (finished ??= (async () => {
        finishing = true;
        if (endedBy) endReason = endedBy;
        const unfinished = keypad.close();
        if (unfinished > 0) log.info({ keys: unfinished }, 'keypad entry left unfinished at the end of the call');
        // A call taken over ends with its successor: no recording stop, final transcript or ended state from here.
        await held.check().catch((error) => leaveIfTakenOver(error));
        if (!takenOverBy) {
          // The recording stops first: its last parts and its stop record belong in the transcript and the chain.
          const stopped = await recording
            ?.stop()
            .catch((error) => void log.error({ err: error }, 'recording not stopped'));
          await recorder
            .finish(endReason, stopped ? { recording: stopped } : {})
            .catch((error) => leaveIfTakenOver(error) || log.error({ err: error }, 'final transcript not written'));
          await held
            .update((current) => ({ ...current, status: 'ended', ...position() }))
            .catch((error) => leaveIfTakenOver(error));
        }
        await toolset.close();
        speculation.close();
        metrics.emit({ [AGENT_METRICS.callsEnded]: 1 }, dimensions);
      })()),
  };
}
