import { AGENT_METRICS } from '@voice-intake/contracts';
import type { Logger } from 'pino';
import { maskedError } from './log-redaction';
import type { MetricsEmitter } from './metrics';

const DEFAULT_TRANSFER_TIMEOUT_MS = 30_000;

/** How the caller left a call that could not be set up. */
type UnservedCallOutcome = 'transferred' | 'hung_up' | 'not_removed';

export interface CallSetupOptions {
  /** The call's id (its session state's key), in the log line and the metric line. */
  callId: string;
  logger: Logger;
  metrics: MetricsEmitter;
  /**
   * PII_REDACTION: masks what the logged errors say. A corrupt session record's JSON error quotes the record, and the
   * caller's number with it; LiveKit's errors name the caller's participant (`sip_+1…`).
   */
  redact?: (text: string) => string;
  /** Where a call that could not be set up goes (DEFAULT_TRANSFER_TARGET). None: the caller is hung up on. */
  transferTarget?: string;
  /** SIP-transfers the caller to `target` (LiveKit SIP: a REFER to the carrier). */
  transfer: (target: string) => Promise<void>;
  /** How long the transfer may take before the caller is hung up on instead. Default 30 s. */
  transferTimeoutMs?: number;
  /** Removes the caller's participant from the room: LiveKit SIP then sends the BYE. */
  removeCaller: () => Promise<void>;
  /** Closes what the setup made before it failed (the Redis connection; a call prepared, not started). */
  release: () => Promise<void> | void;
  /** Ends the job. */
  shutdown: (reason: string) => void;
}

/**
 * Runs a call's setup (`setup`: connecting its state, preparing the call, starting its session) and returns what it
 * made. When the setup fails, nothing has been said to the caller and there is no session to say anything with, so the
 * caller is handed to a person without a word: transferred to `transferTarget`, or hung up on when there is none or
 * the transfer fails — never left in the room in silence. The failure is logged once and counted
 * (`CallSetupFailures`), what the setup made is released, and the job ends; resolves `undefined` then.
 *
 * The call's stored session state is left as it is: a record this worker cannot read (corrupt, or written by a newer
 * worker during a rolling deploy) is not overwritten, deleted or repaired; a worker that can read it still may.
 */
export async function setUpCall<T>(setup: () => Promise<T>, options: CallSetupOptions): Promise<T | undefined> {
  try {
    return await setup();
  } catch (error) {
    await handOverUnservedCall(error, options);
    return undefined;
  }
}

async function handOverUnservedCall(error: unknown, options: CallSetupOptions): Promise<void> {
  const { callId, transferTarget, redact } = options;
  const log = options.logger.child(
    { callId },
    redact ? { serializers: { err: (err: unknown) => maskedError(err, redact) } } : {},
  );
  let outcome: UnservedCallOutcome = 'not_removed';
  try {
    log.error({ err: error, handOver: transferTarget ? 'transfer' : 'hang_up' }, 'call not set up; handing it over');
    options.metrics.emit({ [AGENT_METRICS.callSetupFailures]: 1 }, { callId });
    outcome = await transferOrHangUp(options, log);
  } finally {
    try {
      await options.release();
    } catch (releaseError) {
      log.warn({ err: releaseError }, 'not released after a failed call setup');
    }
    options.shutdown(`call setup failed (${outcome})`);
  }
}

async function transferOrHangUp(options: CallSetupOptions, log: Logger): Promise<UnservedCallOutcome> {
  if (options.transferTarget) {
    const timeoutMs = options.transferTimeoutMs ?? DEFAULT_TRANSFER_TIMEOUT_MS;
    let timer: NodeJS.Timeout | undefined;
    try {
      // A REFER the carrier never answers must not hold the caller (and this job) in silence.
      await Promise.race([
        options.transfer(options.transferTarget),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`transfer not done after ${timeoutMs} ms`)), timeoutMs);
        }),
      ]);
      return 'transferred';
    } catch (error) {
      log.error({ err: error }, 'caller not transferred after a failed call setup; hanging up');
    } finally {
      clearTimeout(timer);
    }
  }
  try {
    await options.removeCaller();
    return 'hung_up';
  } catch (error) {
    // The job ends all the same: the caller, alone in the room, is a call Recovery (src/recovery.ts) dispatches again,
    // and the next job's setup hands them over again.
    log.error({ err: error }, 'caller not removed after a failed call setup');
    return 'not_removed';
  }
}
