import { spawn } from 'node:child_process';
// One definition of "speech" for every fake that listens: the agent's test support owns it.
import { rms, SPEECH_RMS_LEVEL } from '../../../agent/test/support/speech';

export { rms, SPEECH_RMS_LEVEL };

/** A stretch of speech found in the audio, in seconds of stream time. */
export interface HeardUtterance {
  start: number;
  end: number;
}

/**
 * Finds utterances in 16-bit PCM by energy, in 10 ms windows so the result does not depend on how the client
 * chunks its audio: speech starts at the first loud window, and ends once `endSilenceMs` of quiet follow the last
 * loud one. Stretches with less than `minSpeechMs` of loud audio (clicks, line noise) are not utterances.
 */
export class UtteranceDetector {
  readonly #window: number;
  readonly #windowMs: number;
  #carry = new Int16Array(0);
  #streamMs = 0;
  #startMs: number | undefined;
  #lastLoudMs = 0;
  #loudMs = 0;

  constructor(
    sampleRate: number,
    private readonly options: { endSilenceMs: number; minSpeechMs: number; speechLevel: number },
  ) {
    this.#window = Math.round(sampleRate / 100);
    this.#windowMs = (this.#window / sampleRate) * 1000;
  }

  /** Stream time so far, in ms. */
  get streamMs(): number {
    return this.#streamMs;
  }

  /**
   * The utterance in progress: its start, how long it has been loud and how long it has been quiet since (its speech
   * ended then, unless it goes on); undefined in silence.
   */
  get current(): { startMs: number; loudMs: number; quietMs: number; speechEndMs: number } | undefined {
    if (this.#startMs === undefined) return undefined;
    return {
      startMs: this.#startMs,
      loudMs: this.#loudMs,
      quietMs: this.#streamMs - this.#lastLoudMs,
      speechEndMs: this.#lastLoudMs,
    };
  }

  /** Feeds audio; returns the utterances that ended within it. */
  push(samples: Int16Array): HeardUtterance[] {
    const all = this.#carry.length ? concatSamples(this.#carry, samples) : samples;
    const ended: HeardUtterance[] = [];
    let offset = 0;
    for (; offset + this.#window <= all.length; offset += this.#window) {
      const loud = rms(all.subarray(offset, offset + this.#window)) > this.options.speechLevel;
      this.#streamMs += this.#windowMs;
      if (loud) {
        this.#startMs ??= this.#streamMs - this.#windowMs;
        this.#lastLoudMs = this.#streamMs;
        this.#loudMs += this.#windowMs;
      } else if (this.#startMs !== undefined && this.#streamMs - this.#lastLoudMs >= this.options.endSilenceMs) {
        const utterance = this.#close();
        if (utterance) ended.push(utterance);
      }
    }
    this.#carry = all.slice(offset);
    return ended;
  }

  /** The input ended: whatever was being said is over. */
  end(): HeardUtterance | undefined {
    return this.#startMs === undefined ? undefined : this.#close();
  }

  #close(): HeardUtterance | undefined {
    const utterance = { start: this.#startMs! / 1000, end: this.#lastLoudMs / 1000 };
    const longEnough = this.#loudMs >= this.options.minSpeechMs;
    this.#startMs = undefined;
    this.#loudMs = 0;
    return longEnough ? utterance : undefined;
  }
}

function concatSamples(a: Int16Array, b: Int16Array): Int16Array {
  const out = new Int16Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

/** 16-bit little-endian PCM bytes as samples (a trailing odd byte is dropped). */
export function samplesOf(bytes: Uint8Array): Int16Array {
  const even = bytes.byteLength - (bytes.byteLength % 2);
  const copy = new Uint8Array(even);
  copy.set(bytes.subarray(0, even));
  return new Int16Array(copy.buffer);
}

const spoken = new Map<string, Promise<Buffer>>();
const MAX_CACHED = 500;

/**
 * Real speech: espeak-ng says `text` (read from stdin, so no text is ever taken for an option) and sox makes it
 * mono 16-bit PCM at `sampleRate`. Cached per text and rate: an agent says the same sentences on every call.
 */
export function speak(text: string, sampleRate: number, ssml = false): Promise<Buffer> {
  const key = `${sampleRate}|${ssml ? 'ssml' : 'text'}|${text}`;
  let cached = spoken.get(key);
  if (!cached) {
    cached = render(text, sampleRate, ssml);
    cached.catch(() => spoken.delete(key));
    if (spoken.size >= MAX_CACHED) spoken.delete(spoken.keys().next().value!);
    spoken.set(key, cached);
  }
  return cached;
}

function render(text: string, sampleRate: number, ssml: boolean): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const espeak = spawn('espeak-ng', ['-v', 'en-us', '-s', '165', ...(ssml ? ['-m'] : []), '--stdout'], {
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    const sox = spawn(
      'sox',
      ['-t', 'wav', '-', '-r', String(sampleRate), '-c', '1', '-b', '16', '-e', 'signed-integer', '-t', 'raw', '-'],
      {
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    const out: Buffer[] = [];
    const errors: string[] = [];
    espeak.stdout.pipe(sox.stdin);
    espeak.stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
    sox.stderr.on('data', (chunk: Buffer) => errors.push(chunk.toString()));
    sox.stdout.on('data', (chunk: Buffer) => out.push(chunk));
    espeak.on('error', reject);
    sox.on('error', reject);
    // espeak-ng treats a line break as a pause, not the end of input; one line keeps the rendering whole.
    espeak.stdin.end(text.replace(/\s+/g, ' '));
    sox.on('close', (code) => {
      const pcm = Buffer.concat(out);
      if (code !== 0 || pcm.length === 0)
        reject(new Error(`espeak-ng/sox failed (${code}): ${errors.join('').trim()}`));
      else resolve(pcm);
    });
  });
}
