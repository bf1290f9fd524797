import { describe, expect, it } from 'vitest';
import {
  auditSegmentKey,
  enrichedKeyForTranscript,
  parseRecordingPartKey,
  parseTranscriptKey,
  recordingPartKey,
  recordingPrefix,
  transcriptKey,
  transcriptPartKey,
  transcriptSchema,
} from '../src';

describe('S3 key layout', () => {
  it('files final transcripts by UTC date and call id, parts under their own prefix', () => {
    const key = transcriptKey('call-42', new Date('2026-11-24T23:59:59-05:00'));
    expect(key).toBe('transcripts/2026/11/25/call-42.json');
    expect(transcriptPartKey('call-42', 7)).toBe('transcript-parts/call-42/000007.json');
    expect(auditSegmentKey('agent', 'call-42', 12)).toBe('audit/agent/call-42/00000012.jsonl');
    expect(auditSegmentKey('mcp-server', 'call-42', 3, 'b1c2')).toBe('audit/mcp-server/call-42/b1c2/00000003.jsonl');
  });

  it('puts the enriched record beside its transcript and refuses other keys', () => {
    expect(enrichedKeyForTranscript('transcripts/2026/11/25/call-42.json')).toBe('enriched/2026/11/25/call-42.json');
    expect(() => enrichedKeyForTranscript('transcript-parts/call-42/000001.json')).toThrow(/not a transcript key/);
  });
});

describe('transcript keys read back from an event', () => {
  it('reads the call id and day of exactly the keys transcriptKey builds', () => {
    const key = transcriptKey('call-42', new Date('2026-11-24T15:00:00Z'));
    expect(parseTranscriptKey(key)).toEqual({ callId: 'call-42', day: new Date('2026-11-24T00:00:00Z') });
    expect(parseTranscriptKey('transcripts/2026/02/28/a.b:c_d-1.json')).toMatchObject({ callId: 'a.b:c_d-1' });
  });

  it('refuses every other key under the prefix', () => {
    for (const key of [
      'transcripts/junk',
      'transcripts/call-42.json',
      'transcripts/2026/11/24/call-42',
      'transcripts/2026/11/24/call-42.json.gz',
      'transcripts/2026/11/24/sub/call-42.json',
      'transcripts/2026/13/01/call-42.json',
      'transcripts/2026/02/30/call-42.json',
      'transcripts/2026/1/24/call-42.json',
      'transcripts/0099/11/24/call-42.json',
      'transcripts/2026/11/24/bad id.json',
      'transcripts/2026/11/24/..json',
      'transcripts/2026/11/24/.json',
      'enriched/2026/11/24/call-42.json',
      'xtranscripts/2026/11/24/call-42.json',
    ]) {
      expect(parseTranscriptKey(key), key).toBeUndefined();
    }
  });
});

describe('recording part keys read back from a listing', () => {
  it('reads the segment and part of exactly the keys recordingPartKey builds for the call', () => {
    for (const [part, segment] of [
      [1, 0],
      [100_000, 0],
      [7, 1],
      [12, 999],
    ]) {
      expect(parseRecordingPartKey('call-42', recordingPartKey('call-42', part, segment))).toEqual({ segment, part });
    }
    expect(recordingPrefix('call-42')).toBe('recordings/call-42/');
  });

  it('refuses everything else under the prefix, and other calls', () => {
    const prefix = 'recordings/call-42/';
    for (const name of [
      'part-000000.wav',
      'part-100001.wav',
      'part-r0-000001.wav',
      'part-r01-000001.wav',
      'part-r1000-000001.wav',
      'part-1.wav',
      'part-0000001.wav',
      'part-000001.WAV',
      'part-000001.wav.tmp',
      'x/part-000001.wav',
      '../part-000001.wav',
      'part--1-000001.wav',
    ]) {
      expect(parseRecordingPartKey('call-42', prefix + name), name).toBeUndefined();
    }
    expect(parseRecordingPartKey('call-42', recordingPartKey('call-4', 1))).toBeUndefined();
    expect(parseRecordingPartKey('call-4', recordingPartKey('call-42', 1))).toBeUndefined();
    expect(parseRecordingPartKey('call-42', `transcripts/call-42/part-000001.wav`)).toBeUndefined();
  });
});

describe('transcript schema', () => {
  const base = {
    schemaVersion: 1,
    callId: 'call-42',
    roomName: 'intake-call-42',
    callerNumber: '+14155550123',
    startedAt: '2026-11-24T10:00:00.000Z',
    endedAt: '2026-11-24T10:03:00.000Z',
    endReason: 'caller_hangup',
    turns: [
      {
        seq: 0,
        speaker: 'agent',
        text: 'Hello',
        startedAt: '2026-11-24T10:00:01.000Z',
        endedAt: '2026-11-24T10:00:02.000Z',
      },
    ],
  };

  it('accepts a transcript and fills turn defaults', () => {
    const parsed = transcriptSchema.parse(base);
    expect(parsed.turns[0]).toMatchObject({ interrupted: false, redacted: false });
  });

  it('names the bad field', () => {
    const result = transcriptSchema.safeParse({ ...base, callerNumber: '4155550123' });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0].path).toEqual(['callerNumber']);
    expect(transcriptSchema.safeParse({ ...base, callerNumber: 'anonymous' }).success).toBe(true);
  });
});
