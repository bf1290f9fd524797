import { describe, expect, it } from 'vitest';
import { OrphanedCallRecovery, PARTICIPANT_KIND, type RoomMember } from '../src/recovery';

const job = (id: string, room: string, identity = `agent-${id}`) => ({
  job: { id, room: { name: room } },
  acceptArguments: { identity },
});
const caller: RoomMember = { identity: 'sip_+14155550123', kind: PARTICIPANT_KIND.sip };
const agent: RoomMember = { identity: 'agent-AJ_9', kind: PARTICIPANT_KIND.agent };

function harness(rooms: Record<string, RoomMember[]>, maxDispatchesPerRoom?: number) {
  const dispatched: string[] = [];
  const removed: string[] = [];
  const logged: string[] = [];
  const recovery = new OrphanedCallRecovery({
    listParticipants: async (room) => {
      if (room === 'call-broken') throw new Error('LiveKit unreachable');
      return rooms[room] ?? [];
    },
    removeParticipant: async (room, identity) => void removed.push(`${room}/${identity}`),
    dispatch: async (room) => void dispatched.push(room),
    logger: {
      info: () => undefined,
      warn: (_context: unknown, message?: string) => void logged.push(`warn ${message}`),
      error: (_context: unknown, message?: string) => void logged.push(`error ${message}`),
    } as never,
    maxDispatchesPerRoom,
  });
  const observe = (...jobs: ReturnType<typeof job>[]) => Promise.all(recovery.observe(jobs));
  return { recovery, dispatched, removed, logged, observe };
}

describe('a call whose job died', () => {
  it('is dispatched again when its job vanished and the caller is alone in the room', async () => {
    const { dispatched, observe } = harness({ 'call-a': [caller], 'call-b': [] });
    await observe(job('AJ_1', 'call-a'), job('AJ_2', 'call-b'));
    expect(dispatched).toEqual([]);
    // Both jobs are gone: call-a still has its caller (the job died), call-b is empty (the call ended).
    await observe();
    expect(dispatched).toEqual(['call-a']);
  });

  it("takes the dead job's lingering participant out first (LiveKit would time it out only later)", async () => {
    const lingering: RoomMember = { identity: 'agent-AJ_1', kind: PARTICIPANT_KIND.agent };
    const { dispatched, removed, observe } = harness({ 'call-a': [caller, lingering] });
    await observe(job('AJ_1', 'call-a'));
    await observe();
    expect(removed).toEqual(['call-a/agent-AJ_1']);
    expect(dispatched).toEqual(['call-a']);
  });

  it('is left alone when another agent is there, the room is gone, or another job serves the room', async () => {
    const { dispatched, observe } = harness({ 'call-a': [caller, agent], 'call-c': [caller] });
    await observe(job('AJ_1', 'call-a'), job('AJ_2', 'call-gone'), job('AJ_3', 'call-c'));
    await observe(job('AJ_4', 'call-c'));
    expect(dispatched).toEqual([]);
  });

  it('is dispatched at most maxDispatchesPerRoom times: a job that keeps dying does not loop', async () => {
    const { dispatched, logged, observe } = harness({ 'call-a': [caller] }, 2);
    for (const id of ['AJ_1', 'AJ_2', 'AJ_3']) {
      await observe(job(id, 'call-a'));
      await observe();
    }
    expect(dispatched).toEqual(['call-a', 'call-a']);
    expect(logged.at(-1)).toMatch(/^error call left without an agent again/);
  });

  it('logs, and neither throws nor dispatches, when LiveKit cannot be asked', async () => {
    const { dispatched, logged, observe } = harness({});
    await observe(job('AJ_1', 'call-broken'));
    await expect(observe()).resolves.toBeDefined();
    expect(dispatched).toEqual([]);
    expect(logged).toEqual(['error could not check or re-dispatch a call whose job ended']);
  });
});
