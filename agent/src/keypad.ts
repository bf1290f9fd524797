/** A key a phone keypad sends as DTMF (RFC 4733 events 0–15): one character, nothing else. */
export const DTMF_KEY = /^[0-9*#A-D]$/;

/** Why a key press was not taken. */
export type DroppedKeyPress = 'not_a_keypad_key' | 'not_the_caller';

export interface KeypadOptions {
  /**
   * One keyed-in entry, in order: ended by `#` (included), by a pause of `pauseMs` after the last key, or by
   * `maxKeys` keys. A card number keyed in arrives here whole, not key by key.
   */
  onEntry: (keys: string) => void;
  /** A key press that was not taken (dropped), with how many this call has dropped so far. */
  onDropped?: (reason: DroppedKeyPress, droppedSoFar: number) => void;
  /** Silence after the last key that ends an entry. Default 3 s (the usual inter-digit timeout of phone menus). */
  pauseMs?: number;
  /** Keys in one entry at most (a 19-digit card number and a terminator fit). Default 32. */
  maxKeys?: number;
}

/**
 * Collects a caller's key presses into entries: one message for the model per entry (one request, one reply), and one
 * string to mask, so a number keyed in is masked like the same number spoken. What is not a single keypad key is
 * dropped and counted.
 */
export class KeypadEntry {
  readonly #options: Required<Omit<KeypadOptions, 'onDropped'>> & Pick<KeypadOptions, 'onDropped'>;
  #keys = '';
  #timer?: ReturnType<typeof setTimeout>;
  #dropped = 0;
  #closed = false;

  constructor(options: KeypadOptions) {
    this.#options = { pauseMs: 3_000, maxKeys: 32, ...options };
  }

  /** Key presses dropped so far (not a keypad key, not the caller's). */
  get dropped(): number {
    return this.#dropped;
  }

  /** Refuses a key press (it came from someone other than the caller): counted, never passed on. */
  drop(reason: DroppedKeyPress): void {
    this.#dropped += 1;
    this.#options.onDropped?.(reason, this.#dropped);
  }

  /** One key press as LiveKit reports it; anything but a single keypad key is dropped. */
  press(key: unknown): void {
    if (this.#closed) return;
    if (typeof key !== 'string' || !DTMF_KEY.test(key)) {
      this.drop('not_a_keypad_key');
      return;
    }
    this.#keys += key;
    clearTimeout(this.#timer);
    if (key === '#' || this.#keys.length >= this.#options.maxKeys) this.#end();
    else this.#timer = setTimeout(() => this.#end(), this.#options.pauseMs);
  }

  /** Stops taking keys; an entry still open is discarded (the call is over). Returns how many keys it held. */
  close(): number {
    this.#closed = true;
    clearTimeout(this.#timer);
    const pending = this.#keys.length;
    this.#keys = '';
    return pending;
  }

  #end(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const keys = this.#keys;
    this.#keys = '';
    if (keys) this.#options.onEntry(keys);
  }
}

/** What takes a call's key presses (the call session). */
export interface KeyPressSink {
  keyPressed(key: string): void;
  keyRefused(reason: DroppedKeyPress): void;
}

/**
 * The room's DTMF listener (`RoomEvent.DtmfReceived`): keys from the SIP caller's participant go to the call; keys any
 * other participant sends (or with none named) are refused, counted, never heard by the model.
 */
export function callerKeyPresses(callerIdentity: string, sink: KeyPressSink) {
  return (_code: number, key: string, participant?: { identity: string }): void =>
    participant?.identity === callerIdentity ? sink.keyPressed(key) : sink.keyRefused('not_the_caller');
}
