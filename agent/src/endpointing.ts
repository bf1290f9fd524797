/**
 * Endpointing that reads the words: how long to wait after the caller's speech stops depends on how what they said so
 * far ends. A sentence that ends ("…my kitchen.", "…tomorrow?") can be answered soon; one that trails off on "and",
 * a comma (where a dropped "um" was) or a number being read out digit by digit usually goes on after a breath. And
 * while Transcribe still has words in flight (a partial newer than the last final), the turn is not over: LiveKit
 * commits a turn once it holds any final, so after a pause mid-turn it would otherwise answer the first half alone
 * while the second half's final is on its way.
 */

/** Delays (ms after the VAD's end of speech) that LiveKit's endpointing waits before it commits the turn. */
export interface EndpointingByText {
  /** After sentence-final punctuation. */
  completeMs: number;
  /** After anything else. */
  defaultMs: number;
  /** After a comma, a word that joins to more ("and", "the", "my"…) or a number. */
  openMs: number;
  /**
   * While a partial is newer than the last final. LiveKit restarts its wait when that final arrives, with the delay
   * then set, so this only bounds how long a final that never comes can hold the turn.
   */
  pendingMs: number;
}

/** Words after which a sentence cannot end: conjunctions, articles, possessives, prepositions. */
const JOINING_WORDS = new Set([
  'and',
  'or',
  'but',
  'because',
  'the',
  'a',
  'an',
  'my',
  'our',
  'your',
  'to',
  'of',
  'at',
  'for',
  'with',
  'from',
]);

const NUMBER_WORDS = new Set([
  'zero',
  'oh',
  'one',
  'two',
  'three',
  'four',
  'five',
  'six',
  'seven',
  'eight',
  'nine',
  'ten',
  'double',
  'triple',
]);

export type TextEnding = 'complete' | 'open' | 'plain';

/** How `text` (the caller's turn so far) ends. */
export function textEnding(text: string): TextEnding {
  const trimmed = text.trimEnd();
  if (!trimmed) return 'plain';
  const last = trimmed[trimmed.length - 1];
  if (last === '.' || last === '?' || last === '!') {
    // "… is 4 5." with a number before the full stop is still someone reading digits.
    return /\d[.]$/.test(trimmed) ? 'open' : 'complete';
  }
  if (last === ',' || last === ';' || last === ':' || last === '-') return 'open';
  const word = trimmed.split(/\s+/).pop()!.toLowerCase();
  if (/\d/.test(word) || NUMBER_WORDS.has(word) || JOINING_WORDS.has(word)) return 'open';
  return 'plain';
}

/** The endpointing delay for the turn so far. */
export function endpointingDelayFor(text: string, delays: EndpointingByText): number {
  const ending = textEnding(text);
  return ending === 'complete' ? delays.completeMs : ending === 'open' ? delays.openMs : delays.defaultMs;
}

/**
 * Follows the caller's transcript within a turn and sets LiveKit's endpointing `minDelay` whenever the ending class
 * changes (a handful of times per turn, on transcripts, never per audio frame). `apply` is the session's
 * `updateOptions`.
 */
export class TextAwareEndpointing {
  readonly #delays: EndpointingByText;
  readonly #apply: (minDelay: number) => void;
  #finals = '';
  #current: number;

  constructor(delays: EndpointingByText, apply: (minDelay: number) => void) {
    this.#delays = delays;
    this.#apply = apply;
    this.#current = delays.defaultMs;
  }

  /** A transcript of the caller's current turn: interim (latest words of the utterance) or final. */
  transcribed(text: string, isFinal: boolean): void {
    if (!text.trim()) return;
    if (!isFinal) {
      this.#set(this.#delays.pendingMs);
      return;
    }
    this.#finals = `${this.#finals} ${text}`.trim();
    this.#set(endpointingDelayFor(this.#finals, this.#delays));
  }

  /** The turn was committed: the next one starts from the default. */
  turnCommitted(): void {
    this.#finals = '';
    this.#set(this.#delays.defaultMs);
  }

  #set(minDelay: number): void {
    if (minDelay === this.#current) return;
    this.#current = minDelay;
    this.#apply(minDelay);
  }
}
