import { describe, expect, it } from 'vitest';
import { endpointingDelayFor, TextAwareEndpointing, textEnding } from '../src/endpointing';
import { SpeculationLedger } from '../src/speculation';

describe('SpeculationLedger', () => {
  const message = (id: string, createdAt: number) => ({ id, createdAt });

  it('holds a speculative reply’s records until its turn commits with the same message, then counts it kept', () => {
    const outcomes: string[] = [];
    const ledger = new SpeculationLedger({
      kept: () => outcomes.push('kept'),
      cancelled: (n) => outcomes.push(`x${n}`),
    });
    const records: string[] = [];
    const spoken = message('m1', 1);
    ledger.started(spoken);
    ledger.whenCommitted(spoken, () => records.push('request'));
    ledger.whenCommitted(spoken, () => records.push('response'));
    expect(records).toEqual([]);
    ledger.committed(spoken);
    expect(records).toEqual(['request', 'response']);
    expect(outcomes).toEqual(['kept']);
    // Once committed, later records of the same reply go out at once.
    ledger.whenCommitted(spoken, () => records.push('late'));
    expect(records.at(-1)).toBe('late');
  });

  it('drops every speculation the committed turn superseded, never one started for a later turn', () => {
    const cancelled: number[] = [];
    const ledger = new SpeculationLedger({ cancelled: (n) => cancelled.push(n) });
    const records: string[] = [];
    for (const [id, at] of [
      ['stable-1', 1],
      ['stable-2', 2],
      ['next-turn', 9],
    ] as const) {
      ledger.started(message(id, at));
      ledger.whenCommitted(message(id, at), () => records.push(id));
    }
    ledger.committed(message('final', 5));
    expect(records).toEqual([]);
    expect(cancelled).toEqual([2]);
    expect(ledger.pending).toBe(1);
    ledger.close();
    expect(cancelled).toEqual([2, 1]);
    expect(records).toEqual([]);
  });

  it('records a reply to a committed message, or to none (a greeting), at once', () => {
    const ledger = new SpeculationLedger();
    const records: string[] = [];
    ledger.whenCommitted(undefined, () => records.push('greeting'));
    ledger.seed(['resumed']);
    ledger.whenCommitted(message('resumed', 0), () => records.push('resumed'));
    expect(records).toEqual(['greeting', 'resumed']);
  });
});

describe('endpointing by text', () => {
  const delays = { completeMs: 300, defaultMs: 500, openMs: 1_200, pendingMs: 3_000 };

  it('classifies how the words so far end', () => {
    expect(textEnding('I would like to report a burst pipe.')).toBe('complete');
    expect(textEnding('Can somebody come tomorrow?')).toBe('complete');
    expect(textEnding('It started yesterday and')).toBe('open');
    expect(textEnding('My number is 555 01')).toBe('open');
    expect(textEnding('My number is five five')).toBe('open');
    expect(textEnding('My number is 555.')).toBe('open');
    expect(textEnding('I want a refund,')).toBe('open');
    expect(textEnding('Yes that is right')).toBe('plain');
    expect(endpointingDelayFor('Thanks.', delays)).toBe(300);
  });

  it('holds the turn while words are in flight, then sets the delay from how the finals end', () => {
    const applied: number[] = [];
    const endpointing = new TextAwareEndpointing(delays, (minDelay) => applied.push(minDelay));
    endpointing.transcribed('My name is', false);
    endpointing.transcribed('My name is Alex and', false);
    endpointing.transcribed('My name is Alex and', true);
    // After a pause the caller goes on: the next utterance's partials hold the turn until its final is in.
    endpointing.transcribed('my number', false);
    endpointing.transcribed('', false);
    endpointing.transcribed('my number is 555 0100.', true);
    endpointing.transcribed('Yes that is right', true);
    endpointing.turnCommitted();
    expect(applied).toEqual([3_000, 1_200, 3_000, 1_200, 500]);
  });
});
