import { initializeLogger } from '@livekit/agents';
import {
  recordingPartKey,
  recordingPartKeys,
  type SessionState,
  sessionStateSchema,
  type Transcript,
  transcriptKey,
  transcriptSchema,
} from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RECORDING_NOTICE } from '../../src/records/call-audio';
import { BURST_PIPE, burstPipeReply, GOODBYE } from '../support/burst-pipe-call';
import { until, useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import type { OpenCall } from '../support/call-harness';
import { listeningTranscribe, speakingPolly, streamingBedrock } from '../support/fake-aws';
import { synthesizeSpeech } from '../support/speech';

/**
 * A recorded call whose worker dies mid-call and another takes it over (the production wiring, `prepareIntakeCall`,
 * twice on one call id and one Redis): the first saved where its recording stood with each part flush, and stored one
 * more part after its last save; the second says the notice again, goes on recording under part names of its own
 * (never rewriting a part the first stored), and its transcript lists every part in the bucket — the one the session
 * state never counted too — with both clock starts.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CALL_ID = 'rec-takeover';
const STATE_KEY = `voice-intake:session:${CALL_ID}`;
const FLUSH_MS = 500;

/** What a worker taking the call over stored, spoke and wrote: the caller says goodbye and it ends the call. */
interface Takeover {
  startedAt: Date;
  call: OpenCall;
  puts: string[];
  spoke: string[];
  transcript: Transcript;
}

async function takeOver(
  backends: ReturnType<typeof useCallBackends>,
  store: ReturnType<ReturnType<typeof useCallBackends>['freshAws']>,
  env: Record<string, string>,
  callId: string,
): Promise<Takeover> {
  const putsBefore = store.recordingPuts.length;
  for (const mock of [backends.transcribe, backends.bedrock, backends.polly]) mock.reset();
  listeningTranscribe(backends.transcribe, { utterances: [GOODBYE] });
  streamingBedrock(backends.bedrock, burstPipeReply);
  const polly = speakingPolly(backends.polly);
  const startedAt = new Date();
  const call = await backends.openCall({ env, callId, callerNumber: '+14155550142', startedAt });
  await call.intake.greet();
  await call.line.say(synthesizeSpeech(GOODBYE));
  await call.hungUp;
  await call.close();
  const puts = store.recordingPuts.slice(putsBefore).map((key) => key.slice('transcripts/'.length));
  const body = store.objects.get(`transcripts/${transcriptKey(callId, startedAt)}`);
  return { startedAt, call, puts, spoke: polly.texts, transcript: transcriptSchema.parse(JSON.parse(body ?? 'null')) };
}

describe('a recorded call taken over by another worker', () => {
  const backends = useCallBackends();
  let store: ReturnType<typeof backends.freshAws>;
  let saved: SessionState;
  const savedParts = () => recordingPartKeys(CALL_ID, saved.recording!.partsPerSegment);
  /** Parts the first worker stored: all of them, and those it had saved in the session state. */
  let firstStored: string[];
  let secondPuts: string[];
  let secondSpoke: string[];
  let second: OpenCall;
  let secondStartedAt: Date;
  let transcript: Transcript;

  beforeAll(async () => {
    store = backends.freshAws();
    listeningTranscribe(backends.transcribe, { utterances: [BURST_PIPE] });
    streamingBedrock(backends.bedrock, burstPipeReply);
    speakingPolly(backends.polly);
    const env = { RECORDING_MODE: 'announce', RECORD_FLUSH_MS: String(FLUSH_MS) };
    const first = await backends.openCall({ env, callId: CALL_ID, callerNumber: '+14155550142' });
    await first.intake.greet();
    const answered = first.earpiece.nextSegment();
    await first.line.say(synthesizeSpeech(BURST_PIPE));
    await answered;
    const redis = backends.redis.client();
    const stateNow = async () => sessionStateSchema.parse(JSON.parse((await redis.get(STATE_KEY)) ?? 'null'));
    // The first worker's flushes saved where its recording stands.
    let partsSaved = 0;
    await until(() => {
      void stateNow().then((state) => (partsSaved = state.recording?.partsPerSegment[0] ?? 0));
      return partsSaved >= 2;
    }, 30_000);

    // It dies: its timer stops, its session ends without finishing — but only after one more part went to S3 that
    // the session state never heard of (a worker killed between storing a part and saving).
    clearInterval((first.intake.recorder as unknown as { timer: NodeJS.Timeout }).timer);
    // Its last flush (any in flight, then one more) saves where it stands.
    await first.intake.recorder.flush();
    const savedRaw = (await redis.get(STATE_KEY)) ?? 'null';
    saved = sessionStateSchema.parse(JSON.parse(savedRaw));
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    await first.intake.audio?.flush();
    await first.intake.session.close();
    await first.line.close();
    // Closing its session here still saved (a killed process would not have): the state is what it last saved.
    await redis.set(STATE_KEY, savedRaw, 'KEEPTTL');
    firstStored = [...store.recordings.keys()];
    const takeover = await takeOver(backends, store, env, CALL_ID);
    ({ startedAt: secondStartedAt, call: second, puts: secondPuts, spoke: secondSpoke, transcript } = takeover);
  }, 180_000);

  it('the first worker saved its recording with its parts, and stored one more after that', () => {
    expect(saved.recording).toMatchObject({ mode: 'announce', segment: 0, resumedAt: [] });
    const parts = savedParts();
    expect(parts.slice(0, 2)).toEqual([recordingPartKey(CALL_ID, 1), recordingPartKey(CALL_ID, 2)]);
    const stored = firstStored.map((key) => key.slice('transcripts/'.length));
    expect(stored.length).toBeGreaterThan(parts.length);
    for (const key of parts) expect(stored).toContain(key);
  });

  it('the second worker was told the call is recorded again, before its apology', () => {
    expect(second.intake.resumed).toBe(true);
    expect(secondSpoke[0]).toBe(DEFAULT_RECORDING_NOTICE);
  });

  it('went on recording under part names of its own: nothing the first worker stored was written again', () => {
    expect(secondPuts.length).toBeGreaterThan(0);
    for (const key of secondPuts) expect(key).toMatch(new RegExp(`^recordings/${CALL_ID}/part-r1-\\d{6}\\.wav$`));
    const firstKeys = new Set(firstStored.map((key) => key.slice('transcripts/'.length)));
    expect(secondPuts.filter((key) => firstKeys.has(key))).toEqual([]);
  });

  it('lists every part the first worker stored (the one after its last save too), then its own, and both clocks', () => {
    const recording = transcript.recording!;
    const own = [...new Set(secondPuts)];
    const first = firstStored.map((key) => key.slice('transcripts/'.length)).sort();
    expect(first).toEqual(recordingPartKeys(CALL_ID, [first.length]));
    expect(recording.parts).toEqual([...first, ...own]);
    expect(recording.failedParts).toEqual([]);
    expect(recording.unverifiedParts).toBeUndefined();
    expect(recording.startedAt).toBe(saved.recording!.startedAt);
    expect(recording.resumedAt).toHaveLength(1);
    expect(Date.parse(recording.resumedAt![0])).toBeGreaterThanOrEqual(secondStartedAt.getTime() - 1_000);
  });

  it('the audit chain verifies and says what the bucket held beyond the saved counts, and the resume as segment 1', async () => {
    const records = await verifiedAuditRecords(store.objects, CALL_ID);
    const recording = (subject: string) =>
      records.filter((record) => record.kind === 'recording' && record.subject === subject);
    expect(recording('earlier_parts_listed').at(-1)?.payload).toEqual({
      storedParts: firstStored.length,
      savedParts: savedParts().length,
    });
    expect(recording('started').at(-1)?.payload).toMatchObject({ resumedSegment: 1, earlierParts: firstStored.length });
    expect(records.some((record) => record.subject === 'not_resumed')).toBe(false);
  });
});

/**
 * The worker dies before its first flush saved anything (a couple of seconds into the call): the session state holds
 * only where the recording started (saved before its first part), yet parts are in the bucket. The worker taking over
 * finds them there and names them all.
 */
describe('a recorded call whose worker died before its first flush saved', () => {
  const EARLY_ID = 'rec-takeover-early';
  const EARLY_KEY = `voice-intake:session:${EARLY_ID}`;
  const backends = useCallBackends();
  let store: ReturnType<typeof backends.freshAws>;
  let savedAtStart: SessionState;
  let firstStartedAt: string;
  let firstStored: string[];
  let secondPuts: string[];
  let transcript: Transcript;

  beforeAll(async () => {
    store = backends.freshAws();
    listeningTranscribe(backends.transcribe, { utterances: [BURST_PIPE] });
    streamingBedrock(backends.bedrock, burstPipeReply);
    speakingPolly(backends.polly);
    // Its flush timer never fires before it dies: nothing but the start is ever saved.
    const env = { RECORDING_MODE: 'announce', RECORD_FLUSH_MS: '30000' };
    const first = await backends.openCall({ env, callId: EARLY_ID, callerNumber: '+14155550142' });
    const audio = first.intake.audio!;
    firstStartedAt = audio.startedAt.toISOString();
    const redis = backends.redis.client();
    const savedRaw = (await redis.get(EARLY_KEY)) ?? 'null';
    savedAtStart = sessionStateSchema.parse(JSON.parse(savedRaw));
    clearInterval((first.intake.recorder as unknown as { timer: NodeJS.Timeout }).timer);
    await first.intake.greet();
    // Parts go out (the audio's own flush, as the timer would run it) and it dies before the position is saved.
    await until(() => audio.elapsed() > 4_500, 30_000);
    await audio.flush();
    await first.intake.session.close();
    await first.line.close();
    await redis.set(EARLY_KEY, savedRaw, 'KEEPTTL');
    firstStored = [...store.recordings.keys()].map((key) => key.slice('transcripts/'.length)).sort();
    ({ puts: secondPuts, transcript } = await takeOver(backends, store, env, EARLY_ID));
  }, 180_000);

  it('the state held only where the recording started: segment 0, its clock, no part counted', () => {
    expect(savedAtStart.recording).toEqual({
      mode: 'announce',
      sampleRate: 16_000,
      segment: 0,
      startedAt: firstStartedAt,
      resumedAt: [],
      partsPerSegment: [0],
    });
    expect(firstStored.length).toBeGreaterThan(0);
    expect(firstStored).toEqual(recordingPartKeys(EARLY_ID, [firstStored.length]));
  });

  it('the transcript names every part the first worker stored, then the second’s, on the first clock', () => {
    const own = [...new Set(secondPuts)];
    expect(own.length).toBeGreaterThan(0);
    for (const key of own) expect(key).toMatch(new RegExp(`^recordings/${EARLY_ID}/part-r1-\\d{6}\\.wav$`));
    expect(transcript.recording?.parts).toEqual([...firstStored, ...own]);
    expect(transcript.recording?.startedAt).toBe(firstStartedAt);
    expect(transcript.recording?.failedParts).toEqual([]);
  });
});
