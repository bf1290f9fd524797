import { initializeLogger } from '@livekit/agents';
import {
  AGENT_METRICS,
  recordingPartKey,
  type SessionState,
  sessionStateSchema,
  type Transcript,
  transcriptKey,
  transcriptSchema,
} from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import { SessionTakenOverError } from '../../src/state/session-store';
import { BURST_PIPE, burstPipeReply, GOODBYE } from '../support/burst-pipe-call';
import { useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import type { OpenCall } from '../support/call-harness';
import { listeningTranscribe, speakingPolly, streamingBedrock } from '../support/fake-aws';
import { synthesizeSpeech } from '../support/speech';

/**
 * Two workers on one call at once — the room dispatched again while its first job still runs (the production wiring,
 * `prepareIntakeCall`, twice on one call id and one Redis). The second claims the call; the first, still running,
 * finds out at its next flush and leaves: it writes nothing more (no transcript part, audit segment or recording part,
 * no final transcript, no ended state), and the second carries the call to its end with one unbroken audit chain.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CALL_ID = 'double-dispatch';
const FLUSH_MS = 300;
const AFTER_CLAIM = 'words the first worker heard after the claim';

const metricsOf = (lines: string[]) => lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('a call claimed by a second worker while the first still runs', () => {
  const backends = useCallBackends();
  let store: ReturnType<typeof backends.freshAws>;
  let first: OpenCall;
  let firstStartedAt: Date;
  let secondStartedAt: Date;
  const firstMetrics: string[] = [];
  const secondMetrics: string[] = [];
  let leftReason: string;
  const firstTransfers: string[] = [];
  let firstTransfer: unknown;
  let firstHungUp: boolean;
  /** What the bucket held once the first worker had left (its last flush in flight included). */
  let objectsWhenLeft: Map<string, string>;
  let recordingPutsWhenLeft: number;
  let finalState: SessionState;
  let transcript: Transcript;

  beforeAll(async () => {
    store = backends.freshAws();
    listeningTranscribe(backends.transcribe, { utterances: [BURST_PIPE] });
    streamingBedrock(backends.bedrock, burstPipeReply);
    speakingPolly(backends.polly);
    const env = { RECORDING_MODE: 'announce', RECORD_FLUSH_MS: String(FLUSH_MS) };
    firstStartedAt = new Date();
    first = await backends.openCall({
      env,
      callId: CALL_ID,
      callerNumber: '+14155550142',
      startedAt: firstStartedAt,
      metricLines: firstMetrics,
      transfers: firstTransfers,
    });
    await first.intake.greet();
    const answered = first.earpiece.nextSegment();
    await first.line.say(synthesizeSpeech(BURST_PIPE));
    await answered;
    // Stored and saved: the second worker goes on after this.
    await first.intake.recorder.flush();

    // The second dispatch: the first worker's timer, session and line are all still running.
    listeningTranscribe(backends.transcribe, { utterances: [GOODBYE] });
    secondStartedAt = new Date(firstStartedAt.getTime() + 1_000);
    const second = await backends.openCall({
      env,
      callId: CALL_ID,
      callerNumber: '+14155550142',
      startedAt: secondStartedAt,
      metricLines: secondMetrics,
    });
    const stillIn = new Promise<string>((resolve) => setTimeout(() => resolve('still in the call'), 10_000).unref());
    leftReason = await Promise.race([first.left, stillIn]);
    // A flush that started before the claim may still land; wait for it, then nothing more may.
    await first.intake.recorder.flush();
    objectsWhenLeft = new Map(store.objects);
    recordingPutsWhenLeft = store.recordingPuts.length;

    // The first worker keeps hearing and saying things until its job is gone: none of it may be stored.
    first.intake.recorder.addTurn({
      speaker: 'caller',
      text: AFTER_CLAIM,
      startedAt: new Date().toISOString(),
      endedAt: new Date().toISOString(),
    });
    first.intake.recorder.audit('llm_request', 'model', { said: AFTER_CLAIM });
    await first.intake.recorder.flush();
    await first.intake.audio?.flush();
    // Its model may still decide to end or transfer the call: neither may touch the call the second worker holds.
    const tool = (name: string) => {
      const found = first.intake.agent.toolCtx.getFunctionTool(name);
      if (!found) throw new Error(`no ${name} tool`);
      return found as unknown as { execute(args: object, options: object): Promise<unknown> };
    };
    const toolOptions = { ctx: { waitForPlayout: async () => undefined }, toolCallId: 'after-claim' };
    await tool('end_call').execute({ reason: 'the caller is done' }, toolOptions);
    firstTransfer = await tool('transfer_to_human')
      .execute({ reason: 'the caller wants a person' }, toolOptions)
      .then(String, (error: unknown) => error);
    firstHungUp = await Promise.race([
      first.hungUp.then(() => true),
      new Promise<boolean>((resolve) => setTimeout(() => resolve(false), 300)),
    ]);

    await second.intake.greet();
    await second.line.say(synthesizeSpeech(GOODBYE));
    await second.hungUp;
    await first.close();
    await second.close();
    finalState = sessionStateSchema.parse(
      JSON.parse((await backends.redis.client().get(`voice-intake:session:${CALL_ID}`)) ?? 'null'),
    );
    const body = store.objects.get(`transcripts/${transcriptKey(CALL_ID, secondStartedAt)}`);
    transcript = transcriptSchema.parse(JSON.parse(body ?? 'null'));
  }, 180_000);

  it('the first worker leaves the call to the second, naming it, and counts it', () => {
    expect(leftReason).toMatch(/^taken over by worker-local$/);
    expect(metricsOf(firstMetrics).filter((line) => line[AGENT_METRICS.callsTakenOver] === 1)).toHaveLength(1);
    expect(metricsOf(secondMetrics).some((line) => AGENT_METRICS.callsTakenOver in line)).toBe(false);
  });

  it('after it left, the first worker neither hangs up nor transfers the call the second holds', () => {
    expect(firstHungUp).toBe(false);
    expect(firstTransfers).toEqual([]);
    expect(firstTransfer).toBeInstanceOf(SessionTakenOverError);
  });

  it('after it left, the first worker stored nothing: no part, segment, recording or final transcript', async () => {
    // Segment 0's parts (the first worker's): `part-000001.wav`; a takeover's segment n: `part-r<n>-000001.wav`.
    const firstSegmentParts = (keys: string[]) => keys.filter((key) => /\/part-\d{6}\.wav$/.test(key));
    expect(firstSegmentParts(store.recordingPuts.slice(recordingPutsWhenLeft))).toEqual([]);
    for (const [key, body] of store.objects) {
      expect(body, key).not.toContain(AFTER_CLAIM);
      if (objectsWhenLeft.has(key)) expect(body, key).toBe(objectsWhenLeft.get(key));
    }
    // One final transcript per call and day (the bucket refuses a second write): the second worker's.
    const final = transcriptSchema.parse(
      JSON.parse(store.objects.get(`transcripts/${transcriptKey(CALL_ID, firstStartedAt)}`) ?? 'null'),
    );
    expect(final.startedAt).toBe(secondStartedAt.toISOString());
    // The recording part names used above are the ones the first worker wrote before it left.
    expect(store.recordingPuts.slice(0, recordingPutsWhenLeft)).toContain(
      `transcripts/${recordingPartKey(CALL_ID, 1, 0)}`,
    );
  });

  it('the second worker ends the call: its state, its transcript, one unbroken audit chain', async () => {
    expect(finalState).toMatchObject({ claimEpoch: 1, status: 'ended' });
    expect(transcript.endReason).toBe('agent_hangup');
    expect(transcript.turns.map((turn) => turn.text)).not.toContain(AFTER_CLAIM);
    const seqs = transcript.turns.map((turn) => turn.seq);
    expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    expect(new Set(seqs).size).toBe(seqs.length);
    const records = await verifiedAuditRecords(store.objects, CALL_ID);
    const starts = records.filter((record) => record.kind === 'session_start');
    expect(starts.map((record) => [record.subject, (record.payload as { claimEpoch: number }).claimEpoch])).toEqual([
      ['started', 0],
      ['resumed', 1],
    ]);
    expect(records.filter((record) => record.kind === 'session_end')).toHaveLength(1);
    expect(JSON.stringify(records)).not.toContain(AFTER_CLAIM);
  });
});
