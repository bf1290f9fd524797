import type { Logger } from 'pino';

/** A participant of a call room, as LiveKit's room API lists it. */
export interface RoomMember {
  identity: string;
  /** LiveKit's ParticipantInfo.Kind: 3 = SIP (the caller), 4 = AGENT. */
  kind: number;
}

export const PARTICIPANT_KIND = { sip: 3, agent: 4 } as const;

export interface OrphanedCallRecoveryOptions {
  /** The room's participants (RoomServiceClient.listParticipants); [] when the room is gone. */
  listParticipants: (roomName: string) => Promise<RoomMember[]>;
  /** Takes a participant out of the room (RoomServiceClient.removeParticipant); a 404 is not an error. */
  removeParticipant: (roomName: string, identity: string) => Promise<void>;
  /** Asks LiveKit to dispatch the agent to the room again (AgentDispatchClient.createDispatch). */
  dispatch: (roomName: string) => Promise<void>;
  logger: Pick<Logger, 'info' | 'warn' | 'error'>;
  /** Dispatches per room at most (a job that keeps dying must not loop forever). Default 2. */
  maxDispatchesPerRoom?: number;
}

/**
 * A job process that dies mid-call (killed, out of memory, crashed) leaves the caller in the room with nobody: LiveKit
 * does not dispatch the room again, and the caller hears silence until they hang up. The worker's main process sees
 * every job come and go (it polls them for its load): a job gone while its room still holds the SIP caller and no
 * agent is such a call, and it asks LiveKit to dispatch the agent to that room again. The new job finds the call's
 * session state in Redis, claims it and apologises before carrying on. A call that ended normally has no caller left
 * in the room (hang-up, the agent's BYE, a transfer), so it is never dispatched again.
 */
export class OrphanedCallRecovery {
  private known = new Map<string, { room: string; identity?: string }>();
  private readonly dispatches = new Map<string, number>();
  private readonly maxDispatches: number;

  constructor(private readonly options: OrphanedCallRecoveryOptions) {
    this.maxDispatches = options.maxDispatchesPerRoom ?? 2;
  }

  /**
   * Called with the worker's current jobs on every load poll. Returns the checks it started for jobs that vanished
   * (callers may await them; the load poll does not).
   */
  observe(
    jobs: readonly { job: { id: string; room?: { name: string } }; acceptArguments?: { identity?: string } }[],
  ): Promise<void>[] {
    const current = new Map<string, { room: string; identity?: string }>();
    for (const { job, acceptArguments } of jobs) {
      if (job.room?.name) current.set(job.id, { room: job.room.name, identity: acceptArguments?.identity });
    }
    const gone = [...this.known].filter(([id]) => !current.has(id)).map(([, entry]) => entry);
    this.known = current;
    const stillServed = new Set([...current.values()].map((entry) => entry.room));
    const orphaned = gone.filter((entry) => !stillServed.has(entry.room));
    return orphaned.map((entry) => this.recover(entry.room, entry.identity));
  }

  private async recover(roomName: string, deadAgent: string | undefined): Promise<void> {
    const { logger } = this.options;
    try {
      const members = await this.options.listParticipants(roomName);
      const caller = members.find((member) => member.kind === PARTICIPANT_KIND.sip);
      logger.info({ room: roomName, callerInRoom: !!caller, participants: members.length }, 'job ended');
      if (!caller) return;
      // The dead job's own participant lingers until LiveKit times it out; any other agent serves the call.
      const agents = members.filter((member) => member.kind === PARTICIPANT_KIND.agent);
      if (agents.some((member) => member.identity !== deadAgent)) return;
      const done = this.dispatches.get(roomName) ?? 0;
      if (done >= this.maxDispatches) {
        logger.error({ room: roomName, dispatches: done }, 'call left without an agent again; not dispatching again');
        return;
      }
      this.dispatches.set(roomName, done + 1);
      // Bounded memory: the oldest rooms are forgotten first (Map keeps insertion order).
      if (this.dispatches.size > 10_000) this.dispatches.delete(this.dispatches.keys().next().value!);
      const context = { room: roomName, caller: caller.identity, attempt: done + 1 };
      logger.warn(context, 'job ended with the caller still in the room; dispatching the agent again');
      if (deadAgent && agents.length > 0) await this.options.removeParticipant(roomName, deadAgent);
      await this.options.dispatch(roomName);
    } catch (error) {
      logger.error({ err: error, room: roomName }, 'could not check or re-dispatch a call whose job ended');
    }
  }
}
