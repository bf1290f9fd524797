import type { ConverseStreamCommandInput } from '@aws-sdk/client-bedrock-runtime';
import { initializeLogger } from '@livekit/agents';
import { type AuditRecord, type Transcript, transcriptKey, transcriptSchema } from '@voice-intake/contracts';
import { beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_RECORDING_CONSENT_QUESTION, DEFAULT_RECORDING_NOTICE } from '../../src/records/call-audio';
import type { PlayedSegment } from '../support/audio-io';
import { type CallBackends, useCallBackends, verifiedAuditRecords } from '../support/call-backends';
import type { OpenCall } from '../support/call-harness';
import {
  listeningTranscribe,
  type ModelTurn,
  speakingPolly,
  streamingBedrock,
  type TranscribeLog,
} from '../support/fake-aws';
import { rms, SPEECH_RMS_LEVEL, synthesizeSpeech } from '../support/speech';

/**
 * Call recording through the production wiring (`prepareIntakeCall`): real speech down a paced line, real Silero VAD,
 * our Transcribe plugin (with PII entities from the fake service), the agent's audio through a real-time earpiece.
 * What is stored is read back as WAV parts and listened to: which channel carries energy where each party spoke, and
 * zeros where Transcribe marked PII.
 */

initializeLogger({ pretty: false, level: 'silent' });

const CALLER = '+14155550142';
const RATE = 16_000;
const FLUSH_MS = 500;
const HOLDBACK_MS = 3_000;
const GREETING = 'Hello, thanks for calling the intake line. How can I help you today?';
const ANSWER = 'I am sorry to hear that. I will take down the details of the burst pipe for you now.';
const FAREWELL = 'Thank you for calling, goodbye.';
const WELCOME = 'Thank you. How can I help you today?';

function lastUserContent(request: ConverseStreamCommandInput) {
  const messages = request.messages ?? [];
  const last = messages[messages.length - 1];
  return last?.role === 'user' ? (last.content ?? []) : [];
}

function saidIn(request: ConverseStreamCommandInput): string {
  return lastUserContent(request)
    .map((block) => block.text ?? '')
    .join(' ')
    .toLowerCase();
}

function toolResultOf(request: ConverseStreamCommandInput): string | undefined {
  const result = lastUserContent(request).find((block) => block.toolResult)?.toolResult;
  return result ? JSON.stringify(result) : undefined;
}

interface Stereo {
  left: Int16Array;
  right: Int16Array;
}

/** A stored part: a 44-byte PCM WAV header (checked) and interleaved 16-bit samples, caller left. */
function decodePart(body: Buffer): Stereo {
  expect(body.toString('ascii', 0, 4)).toBe('RIFF');
  expect(body.toString('ascii', 8, 12)).toBe('WAVE');
  expect(body.readUInt16LE(20)).toBe(1);
  expect(body.readUInt16LE(22)).toBe(2);
  expect(body.readUInt32LE(24)).toBe(RATE);
  expect(body.readUInt32LE(40)).toBe(body.length - 44);
  const frames = (body.length - 44) / 4;
  const left = new Int16Array(frames);
  const right = new Int16Array(frames);
  for (let i = 0; i < frames; i += 1) {
    left[i] = body.readInt16LE(44 + i * 4);
    right[i] = body.readInt16LE(46 + i * 4);
  }
  return { left, right };
}

function joinParts(parts: Stereo[]): Stereo {
  const total = parts.reduce((sum, part) => sum + part.left.length, 0);
  const left = new Int16Array(total);
  const right = new Int16Array(total);
  let offset = 0;
  for (const part of parts) {
    left.set(part.left, offset);
    right.set(part.right, offset);
    offset += part.left.length;
  }
  return { left, right };
}

const sampleAt = (ms: number) => Math.max(0, Math.round((ms * RATE) / 1000));
const between = (channel: Int16Array, fromMs: number, toMs: number) =>
  channel.subarray(sampleAt(fromMs), sampleAt(toMs));

/** Where the first 10 ms window louder than speech starts in `channel`, from `fromMs` on (ms). */
function firstLoudMs(channel: Int16Array, fromMs: number): number {
  const step = RATE / 100;
  for (let start = sampleAt(fromMs); start + step <= channel.length; start += step) {
    if (rms(channel.subarray(start, start + step)) > SPEECH_RMS_LEVEL) return (start / RATE) * 1000;
  }
  throw new Error(`no speech after ${fromMs} ms`);
}

interface CallRun {
  call: OpenCall;
  objects: Map<string, string>;
  recordings: Map<string, Buffer>;
  recordingPuts: string[];
  heard: TranscribeLog;
  model: { requests: ConverseStreamCommandInput[] };
  spoken: { texts: string[] };
  callId: string;
  startedAt: Date;
}

async function startCall(
  backends: CallBackends,
  callId: string,
  overrides: Record<string, string>,
  utterances: string[],
  decide: (request: ConverseStreamCommandInput) => ModelTurn,
  pii?: Record<number, [number, number]>,
): Promise<CallRun> {
  const store = backends.freshAws();
  const heard = listeningTranscribe(backends.transcribe, { utterances, pii });
  const model = streamingBedrock(backends.bedrock, decide);
  const spoken = speakingPolly(backends.polly);
  const startedAt = new Date();
  const call = await backends.openCall({
    env: { RECORD_FLUSH_MS: String(FLUSH_MS), ...overrides },
    callId,
    callerNumber: CALLER,
    startedAt,
  });
  return { call, ...store, heard, model, spoken, callId, startedAt };
}

function transcriptOf(run: CallRun): Transcript {
  const body = run.objects.get(`transcripts/${transcriptKey(run.callId, run.startedAt)}`);
  expect(body).toBeDefined();
  return transcriptSchema.parse(JSON.parse(body!));
}

const auditOf = (run: CallRun): Promise<AuditRecord[]> => verifiedAuditRecords(run.objects, run.callId);

const recordingRecords = (records: AuditRecord[]) => records.filter((record) => record.kind === 'recording');

describe('call recording through the call session', () => {
  const backends = useCallBackends();

  describe('announce, with PII redaction', () => {
    const PROBLEM = 'Hello, my name is John Smith and a water pipe burst in my kitchen this morning.';
    const GOODBYE = 'That is all for today, thank you, goodbye.';
    // "John Smith": words 4 and 5 of the problem.
    const PII_WORDS: [number, number] = [4, 6];
    let run: CallRun;
    let notice: PlayedSegment;
    let greeting: PlayedSegment;
    let answer: PlayedSegment;
    const callerSaid: { startedAt: number; endedAt: number }[] = [];
    let midCall: { at: number; stored: Map<string, Buffer> };
    let transcript: Transcript;
    let audio: Stereo;
    let recordingStart: number;

    beforeAll(async () => {
      run = await startCall(
        backends,
        // Digit-heavy, as a carrier's call id can be: redaction must leave it alone in the records' object keys.
        'rec-announce-1764523976123',
        { RECORDING_MODE: 'announce', PII_REDACTION: 'true' },
        [PROBLEM, GOODBYE],
        (request) => {
          const said = saidIn(request);
          if (toolResultOf(request)) return {};
          if (said.includes('water pipe')) return { text: ANSWER };
          if (said.includes('goodbye'))
            return { text: FAREWELL, toolUse: { name: 'end_call', input: { reason: 'done' } } };
          return { text: GREETING };
        },
        { 0: PII_WORDS },
      );
      const { call } = run;
      const noticeStarts = call.earpiece.nextSegment();
      const greetingDone = call.intake.greet();
      notice = await noticeStarts;
      const greetingStarts = call.earpiece.nextSegment();
      greeting = await greetingStarts;
      await greetingDone;

      const answerStarts = call.earpiece.nextSegment();
      let startedAt = 0;
      const endedAt = await call.line.say(synthesizeSpeech(PROBLEM), (at) => (startedAt = at));
      callerSaid.push({ startedAt, endedAt });
      answer = await answerStarts;
      while (answer.finishedAt === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      // What a worker killed right now would have left behind: the parts stored so far.
      await new Promise((resolve) => setTimeout(resolve, FLUSH_MS * 2));
      midCall = { at: Date.now(), stored: new Map(run.recordings) };

      await call.line
        .say(synthesizeSpeech(GOODBYE), (at) => (startedAt = at))
        .then((at) => {
          callerSaid.push({ startedAt, endedAt: at });
        });
      await call.hungUp;
      await call.close();
      transcript = transcriptOf(run);
      recordingStart = Date.parse(transcript.recording!.startedAt);
      audio = joinParts(
        transcript.recording!.parts.map((key) => decodePart(run.recordings.get(`transcripts/${key}`)!)),
      );
    }, 120_000);

    it('plays the notice first, before the greeting, and records that it did', () => {
      // Polly is asked sentence by sentence: the notice, then the greeting.
      expect(run.spoken.texts[0]).toBe(DEFAULT_RECORDING_NOTICE);
      expect(run.spoken.texts.slice(1).join(' ')).toMatch(new RegExp(`^${GREETING.replace(/[.?]/g, '\\$&')}`));
      expect(notice.startedAt).toBeLessThan(greeting.startedAt);
      expect(notice.interrupted).toBe(false);
      expect(notice.playedMs).toBeGreaterThan(1_000);
      expect(transcript.turns[0]).toMatchObject({ speaker: 'agent', text: DEFAULT_RECORDING_NOTICE });
    });

    it('stores stereo WAV parts referenced from the transcript, caller left and agent right', () => {
      const recording = transcript.recording!;
      expect(recording).toMatchObject({ mode: 'announce', sampleRate: RATE, failedParts: [] });
      expect(recording.parts.length).toBeGreaterThan(3);
      expect(recording.parts).toEqual([...run.recordings.keys()].map((key) => key.slice('transcripts/'.length)).sort());
      // The whole call is there: from the notice to the farewell.
      expect(audio.left.length / RATE).toBeGreaterThan((callerSaid[1].endedAt - recordingStart) / 1000 - 0.5);
      for (const segment of [notice, greeting, answer]) {
        const from = segment.startedAt - recordingStart + 100;
        const to = segment.startedAt + segment.playedMs! - recordingStart - 100;
        expect(rms(between(audio.right, from, to)), 'agent on the right').toBeGreaterThan(2_000);
        expect(rms(between(audio.left, from, to)), 'caller silent on the left').toBeLessThan(50);
      }
      for (const said of callerSaid) {
        const from = said.startedAt - recordingStart + 100;
        const to = said.endedAt - recordingStart - 100;
        expect(rms(between(audio.left, from, to)), 'caller on the left').toBeGreaterThan(SPEECH_RMS_LEVEL);
        expect(rms(between(audio.right, from, to)), 'agent silent on the right').toBeLessThan(50);
      }
    });

    it('silences on both channels the span Transcribe marked as PII, and nothing around it', () => {
      expect(run.heard.piiSpans).toHaveLength(1);
      const pii = run.heard.piiSpans[0];
      // The caller's utterance in the recording, found by its sound: its start is the fake's speech start.
      const speechStart = firstLoudMs(audio.left, callerSaid[0].startedAt - recordingStart - 100);
      const offset = speechStart - pii.speechStart * 1000;
      const [start, end] = [pii.start * 1000 + offset, pii.end * 1000 + offset];
      expect(end - start).toBeGreaterThan(200);
      const span = {
        left: between(audio.left, start + 10, end - 10),
        right: between(audio.right, start + 10, end - 10),
      };
      expect(span.left.length).toBeGreaterThan(RATE / 10);
      expect(span.left.every((sample) => sample === 0)).toBe(true);
      expect(span.right.every((sample) => sample === 0)).toBe(true);
      // The words before and after it are still there.
      expect(rms(between(audio.left, speechStart, start - 150))).toBeGreaterThan(SPEECH_RMS_LEVEL);
      expect(rms(between(audio.left, end + 150, pii.speechEnd * 1000 + offset))).toBeGreaterThan(SPEECH_RMS_LEVEL);
    });

    it('had stored the call up to the flush interval and hold-back before it ended (a killed worker loses no more)', () => {
      expect(midCall.stored.size).toBeGreaterThan(0);
      const keys = [...midCall.stored.keys()].sort();
      const covered = keys.reduce((sum, key) => sum + decodePart(midCall.stored.get(key)!).left.length, 0);
      const elapsedMs = midCall.at - recordingStart;
      // Load slack: a flush may be in flight.
      expect((covered / RATE) * 1000).toBeGreaterThan(elapsedMs - HOLDBACK_MS - FLUSH_MS - 700);
      // The answer had played and was in stored parts already, on the right.
      const stored = joinParts(keys.map((key) => decodePart(midCall.stored.get(key)!)));
      const from = answer.startedAt - recordingStart + 100;
      const to = Math.min(answer.startedAt + answer.playedMs! - recordingStart, (covered / RATE) * 1000) - 100;
      expect(to - from).toBeGreaterThan(500);
      expect(rms(between(stored.right, from, to))).toBeGreaterThan(2_000);
    });

    it('puts start and stop in the audit chain, naming the parts', async () => {
      const records = recordingRecords(await auditOf(run));
      expect(records.map((record) => record.subject)).toEqual(['started', 'stopped']);
      expect(records[0].payload).toMatchObject({
        mode: 'announce',
        sampleRate: RATE,
        channels: { left: 'caller', right: 'agent' },
      });
      expect((records[1].payload as { parts: string[] }).parts).toEqual(transcript.recording!.parts);
      expect(transcript.recording!.parts[0]).toBe(`recordings/${run.callId}/part-000001.wav`);
      const end = (await auditOf(run)).find((record) => record.kind === 'session_end');
      expect(end?.payload).toMatchObject({ recording: transcript.recording });
    });
  });

  describe('consent granted', () => {
    let run: CallRun;
    let question: PlayedSegment;
    let transcript: Transcript;

    beforeAll(async () => {
      run = await startCall(
        backends,
        'rec-consent-yes',
        { RECORDING_MODE: 'consent' },
        ['Yes, that is fine with me.', 'Nothing else, goodbye.'],
        (request) => {
          const result = toolResultOf(request);
          if (result?.includes('being recorded')) return { text: WELCOME };
          if (result) return {};
          const said = saidIn(request);
          if (said.includes('yes')) return { toolUse: { name: 'record_consent', input: { granted: true } } };
          if (said.includes('goodbye'))
            return { text: FAREWELL, toolUse: { name: 'end_call', input: { reason: 'done' } } };
          return { text: 'Sorry?' };
        },
      );
      const { call } = run;
      const questionStarts = call.earpiece.nextSegment();
      await call.intake.greet();
      question = await questionStarts;
      const welcomeStarts = call.earpiece.nextSegment();
      await call.line.say(synthesizeSpeech('Yes, that is fine with me.'));
      const welcome = await welcomeStarts;
      while (welcome.finishedAt === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      await call.line.say(synthesizeSpeech('Nothing else, goodbye.'));
      await call.hungUp;
      await call.close();
      transcript = transcriptOf(run);
    }, 120_000);

    it('asks first, offers the model record_consent, and stores the call once the caller said yes', () => {
      expect(run.spoken.texts.join(' ')).toMatch(
        new RegExp(`^${DEFAULT_RECORDING_CONSENT_QUESTION.replace(/[.?]/g, '\\$&')}`),
      );
      expect(run.model.requests[0].toolConfig?.tools?.map((tool) => tool.toolSpec?.name)).toContain('record_consent');
      expect(JSON.stringify(run.model.requests[0].system)).toContain('record_consent');
      expect(transcript.recording).toMatchObject({ mode: 'consent', consent: true, failedParts: [] });
      expect(transcript.recording!.parts.length).toBeGreaterThan(1);
      // The held audio went out too: the question itself opens the recording, on the right.
      const audio = joinParts(
        transcript.recording!.parts.map((key) => decodePart(run.recordings.get(`transcripts/${key}`)!)),
      );
      const start = Date.parse(transcript.recording!.startedAt);
      const from = question.startedAt - start + 100;
      const to = question.startedAt + question.playedMs! - start - 100;
      expect(rms(between(audio.right, from, to))).toBeGreaterThan(2_000);
      expect(rms(between(audio.left, from, to))).toBeLessThan(50);
    });

    it('records the consent in the audit chain between start and stop', async () => {
      const records = recordingRecords(await auditOf(run));
      expect(records.map((record) => [record.subject, record.payload])).toEqual([
        ['started', expect.objectContaining({ mode: 'consent', state: 'awaiting_consent' })],
        ['consent', { granted: true }],
        ['stopped', expect.objectContaining({ parts: transcript.recording!.parts, consentRefused: false })],
      ]);
    });
  });

  describe('consent refused', () => {
    let run: CallRun;
    let transcript: Transcript;
    const toolResults: string[] = [];

    beforeAll(async () => {
      run = await startCall(
        backends,
        'rec-consent-no',
        { RECORDING_MODE: 'consent' },
        ['No, please do not record me.', 'Actually record it after all, goodbye.'],
        (request) => {
          const result = toolResultOf(request);
          if (result) {
            toolResults.push(result);
            if (result.includes('Call ended')) return {};
            if (result.includes('already answered'))
              return { text: FAREWELL, toolUse: { name: 'end_call', input: { reason: 'done' } } };
            return { text: WELCOME };
          }
          const said = saidIn(request);
          // The caller talks the model into flipping the answer: the recording must not follow.
          if (said.includes('after all')) return { toolUse: { name: 'record_consent', input: { granted: true } } };
          if (said.includes('record')) return { toolUse: { name: 'record_consent', input: { granted: false } } };
          return { text: 'Sorry?' };
        },
      );
      const { call } = run;
      await call.intake.greet();
      const welcomeStarts = call.earpiece.nextSegment();
      await call.line.say(synthesizeSpeech('No, please do not record me.'));
      const welcome = await welcomeStarts;
      while (welcome.finishedAt === undefined) await new Promise((resolve) => setTimeout(resolve, 50));
      await call.line.say(synthesizeSpeech('Actually record it after all, goodbye.'));
      await call.hungUp;
      await call.close();
      transcript = transcriptOf(run);
    }, 120_000);

    it('stores no audio at all, even after the model was talked into saying yes later', () => {
      expect(toolResults.some((result) => result.includes('already answered (not recording)'))).toBe(true);
      expect(run.recordingPuts).toEqual([]);
      expect([...run.objects.keys()].filter((key) => key.includes('recordings/'))).toEqual([]);
      expect(transcript.recording).toEqual({
        mode: 'consent',
        sampleRate: RATE,
        startedAt: expect.any(String),
        consent: false,
        parts: [],
        failedParts: [],
      });
    });

    it('records the refusal and a stop with no parts in the audit chain', async () => {
      const records = recordingRecords(await auditOf(run));
      expect(records.map((record) => [record.subject, record.payload])).toEqual([
        ['started', expect.objectContaining({ state: 'awaiting_consent' })],
        ['consent', { granted: false }],
        ['stopped', expect.objectContaining({ parts: [], consentRefused: true })],
      ]);
    });
  });
});
