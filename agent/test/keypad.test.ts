import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { callerKeyPresses, type DroppedKeyPress, KeypadEntry } from '../src/keypad';

describe('KeypadEntry', () => {
  let entries: string[];
  let dropped: [DroppedKeyPress, number][];
  let keypad: KeypadEntry;
  beforeEach(() => {
    vi.useFakeTimers();
    entries = [];
    dropped = [];
    keypad = new KeypadEntry({
      onEntry: (keys) => entries.push(keys),
      onDropped: (reason, count) => dropped.push([reason, count]),
      pauseMs: 3_000,
      maxKeys: 20,
    });
  });
  afterEach(() => vi.useRealTimers());

  const press = (keys: string) => {
    for (const key of keys) {
      keypad.press(key);
      vi.advanceTimersByTime(200);
    }
  };

  it('hands a card number keyed in over as one entry, ended by #', () => {
    press('4111111111111111#');
    expect(entries).toEqual(['4111111111111111#']);
  });

  it('ends an entry after a pause, not before', () => {
    press('123');
    vi.advanceTimersByTime(2_500);
    expect(entries).toEqual([]);
    vi.advanceTimersByTime(500);
    expect(entries).toEqual(['123']);
    press('9');
    vi.advanceTimersByTime(3_000);
    expect(entries).toEqual(['123', '9']);
  });

  it('ends an entry at its length bound', () => {
    press('1'.repeat(25));
    expect(entries[0]).toBe('1'.repeat(20));
    vi.advanceTimersByTime(3_000);
    expect(entries).toEqual(['1'.repeat(20), '1'.repeat(5)]);
  });

  it('drops and counts what is not a single keypad key, keeping the entry around it', () => {
    for (const key of ['1', '12', '1\n', '', 'E', 'x', '\u0661', ' ', '\n', undefined, 5, '2', '#']) keypad.press(key);
    expect(entries).toEqual(['12#']);
    expect(dropped.map(([reason]) => reason)).toEqual(Array(10).fill('not_a_keypad_key'));
    expect(keypad.dropped).toBe(10);
  });

  it('accepts every keypad key', () => {
    press('0123456789*ABCD#');
    expect(entries).toEqual(['0123456789*ABCD#']);
  });

  it('discards an unfinished entry when closed, and takes nothing after', () => {
    press('4111');
    expect(keypad.close()).toBe(4);
    press('1#');
    vi.advanceTimersByTime(5_000);
    expect(entries).toEqual([]);
  });
});

describe('callerKeyPresses', () => {
  it("passes on the SIP caller's keys only", () => {
    const pressed: string[] = [];
    const refused: DroppedKeyPress[] = [];
    const listener = callerKeyPresses('sip_+14155550142', {
      keyPressed: (key) => pressed.push(key),
      keyRefused: (reason) => refused.push(reason),
    });
    listener(1, '1', { identity: 'sip_+14155550142' });
    listener(2, '2', { identity: 'someone-else' });
    listener(3, '3', undefined);
    listener(4, '4', { identity: 'sip_+14155550142' });
    expect(pressed).toEqual(['1', '4']);
    expect(refused).toEqual(['not_the_caller', 'not_the_caller']);
  });
});
