import { voice } from '@livekit/agents';
import { AGENT_METRICS } from '@voice-intake/contracts';
import type { Logger } from 'pino';
import type { MetricsEmitter } from './metrics';

/** Said when the model failed every attempt at a turn: the caller hears something, and is offered a person. */
export const UNANSWERED_APOLOGY =
  "I'm sorry, I'm having trouble on my side. Could you say that again? If it keeps happening, I'll put you through " +
  'to a colleague.';
/** Said when it failed again and nobody can take the call. */
export const UNANSWERED_AGAIN =
  "I'm sorry, I still can't answer right now, and no colleague is free. Please call back a little later, or stay on " +
  'the line and try again.';
/** Said before the call goes to a person because the model kept failing. */
export const HANDOVER_LINE = "I'm sorry about that. I'm putting you through to a colleague now.";

const OUR_LINES = new Set([UNANSWERED_APOLOGY, UNANSWERED_AGAIN, HANDOVER_LINE]);

export interface ServiceFailureOptions {
  session: voice.AgentSession;
  metrics: MetricsEmitter;
  /** Properties of every metric line (the call id). */
  properties: Record<string, string>;
  log: Logger;
  /**
   * Finds a person and transfers the call, after `HANDOVER_LINE` was heard when `speak` (not when the caller can no
   * longer hear us or be heard); false when nobody can take it.
   */
  handOver: (reason: string, speak: boolean) => Promise<boolean>;
}

/**
 * Listens to the session's `error` events: each is logged and counted (`ServiceErrors`, by service and whether the
 * framework will retry). When a turn cannot be answered (the LLM failed for good) the caller hears an apology and
 * the offer of a person instead of silence; when the next turn fails too, the call goes to a person if one can take
 * it. When speech recognition failed for good, or synthesis twice in a row, the call goes to a person without a word
 * (none could be heard). The framework itself only logs the first unrecoverable errors and closes the session after a few.
 */
export function handleServiceFailures(options: ServiceFailureOptions): { readonly unansweredInARow: number } {
  const { session, metrics, properties, log } = options;
  let unansweredInARow = 0;

  const answerUnansweredTurn = async () => {
    unansweredInARow += 1;
    metrics.emit({ [AGENT_METRICS.unansweredTurns]: 1 }, { ...properties, inARow: unansweredInARow });
    try {
      if (unansweredInARow >= 2 && (await options.handOver('the assistant could not answer the caller', true))) return;
      await session.say(unansweredInARow >= 2 ? UNANSWERED_AGAIN : UNANSWERED_APOLOGY).waitForPlayout();
    } catch (error) {
      log.error({ err: error }, 'could not tell the caller about the failure');
    }
  };

  let handedOver = false;
  let ttsFailuresInARow = 0;
  const handOverSilently = async (service: string) => {
    if (handedOver) return;
    handedOver = true;
    const failed = service === 'stt' ? 'speech recognition' : 'speech synthesis';
    try {
      const handedTo = await options.handOver(`the ${failed} failed`, false);
      if (!handedTo) log.error({ service }, 'no one to hand the call to');
    } catch (error) {
      log.error({ err: error, service }, 'could not hand the call over');
    }
  };

  session.on(voice.AgentSessionEventTypes.Error, ({ error }) => {
    const service = error.type.replace(/_error$/, '');
    const recoverable = 'recoverable' in error ? error.recoverable : false;
    const label = 'label' in error ? error.label : undefined;
    const fields = { service, label, recoverable, err: 'error' in error ? error.error : error };
    if (recoverable) log.warn(fields, 'service failed, the framework retries');
    else log.error(fields, 'service failed');
    metrics.emit({ [AGENT_METRICS.serviceErrors]: 1 }, { ...properties, service, recoverable: String(recoverable) });
    if (recoverable) return;
    if (error.type === 'llm_error') void answerUnansweredTurn();
    // Transcribe gave up after every reconnect: the caller can no longer be heard. A person can hear them.
    else if (error.type === 'stt_error') void handOverSilently(service);
    // Polly failed twice, after its retries, with no audio in between: the caller hears nothing.
    else if (error.type === 'tts_error' && ++ttsFailuresInARow >= 2) void handOverSilently(service);
  });

  session.on(voice.AgentSessionEventTypes.MetricsCollected, ({ metrics: collected }) => {
    if (collected.type === 'tts_metrics' && collected.audioDurationMs > 0) ttsFailuresInARow = 0;
  });

  session.on(voice.AgentSessionEventTypes.ConversationItemAdded, ({ item }) => {
    if (item.type !== 'message' || item.role !== 'assistant') return;
    if (!OUR_LINES.has(item.textContent ?? '')) unansweredInARow = 0;
  });

  return {
    get unansweredInARow() {
      return unansweredInARow;
    },
  };
}
