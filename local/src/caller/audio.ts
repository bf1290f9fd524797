/**
 * The caller's audio: espeak-ng speech written as the softphone's microphone (8 kHz mono WAV, the phone's rate), and
 * what the softphone recorded read back as samples, split into speech and silence.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, fstatSync, openSync, readSync } from 'node:fs';

export const PHONE_SAMPLE_RATE = 8_000;
const WAV_HEADER_BYTES = 44;

/** RMS over a 20 ms frame above which a phone recording counts as speech (line silence is near 0; speech 1000+). */
export const SPEECH_RMS = 300;

/**
 * Writes `text` spoken by espeak-ng, followed by `silenceAfterSeconds` of silence, as an 8 kHz 16-bit mono WAV.
 * Returns the length of the speech itself, in ms (where the caller stops talking within the file).
 */
export function writeUtterance(path: string, text: string, silenceAfterSeconds: number): { speechMs: number } {
  const result = spawnSync(
    'sh',
    [
      '-c',
      'espeak-ng -s 160 --stdout "$1" | sox -t wav - -r 8000 -c 1 -b 16 -e signed-integer "$2" pad 0 "$3"',
      'utterance',
      text,
      path,
      String(silenceAfterSeconds),
    ],
    { encoding: 'utf8' },
  );
  if (result.status !== 0) throw new Error(`espeak-ng/sox failed (${result.status}): ${result.stderr}`);
  const samples = readWavSamples(path);
  const segments = speechSegments(samples);
  return { speechMs: segments.length > 0 ? segments[segments.length - 1].endMs : 0 };
}

/** Writes `seconds` of silence as an 8 kHz WAV (the microphone while the caller listens). */
export function writeSilence(path: string, seconds: number): void {
  const format = ['-r', '8000', '-c', '1', '-b', '16', '-e', 'signed-integer'];
  const result = spawnSync('sox', ['-n', ...format, path, 'trim', '0', String(seconds)], { encoding: 'utf8' });
  if (result.status !== 0) throw new Error(`sox failed (${result.status}): ${result.stderr}`);
}

/**
 * The 16-bit samples of a WAV the softphone is still writing (its header's sizes are only filled in at the end, so
 * everything after the 44-byte header is taken; an odd trailing byte is left for the next read).
 */
export function readWavSamples(path: string): Int16Array {
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const length = Math.max(0, size - WAV_HEADER_BYTES) & ~1;
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, WAV_HEADER_BYTES);
    return new Int16Array(buffer.buffer, buffer.byteOffset, length / 2);
  } finally {
    closeSync(fd);
  }
}

export interface SpeechSegment {
  readonly startMs: number;
  readonly endMs: number;
}

/** Root-mean-square level of 16-bit PCM. */
export function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  return Math.sqrt(sum / samples.length);
}

/**
 * Speech in a recording: runs of 20 ms frames above SPEECH_RMS, joined across pauses shorter than `bridgeMs`
 * (gaps between words and sentences), dropping blips shorter than `minSpeechMs` (clicks, comfort noise).
 */
export function speechSegments(
  samples: Int16Array,
  options: { sampleRate?: number; bridgeMs?: number; minSpeechMs?: number } = {},
): SpeechSegment[] {
  const sampleRate = options.sampleRate ?? PHONE_SAMPLE_RATE;
  const bridgeMs = options.bridgeMs ?? 700;
  const minSpeechMs = options.minSpeechMs ?? 120;
  const frame = sampleRate / 50;
  const segments: { startMs: number; endMs: number }[] = [];
  for (let offset = 0; offset + frame <= samples.length; offset += frame) {
    if (rms(samples.subarray(offset, offset + frame)) < SPEECH_RMS) continue;
    const startMs = (offset / sampleRate) * 1000;
    const endMs = startMs + 20;
    const last = segments[segments.length - 1];
    if (last && startMs - last.endMs <= bridgeMs) last.endMs = endMs;
    else segments.push({ startMs, endMs });
  }
  return segments.filter((segment) => segment.endMs - segment.startMs >= minSpeechMs);
}

/** ms of audio in `samples`. */
export function durationMs(samples: Int16Array, sampleRate = PHONE_SAMPLE_RATE): number {
  return (samples.length / sampleRate) * 1000;
}
