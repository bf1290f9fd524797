import { spawnSync } from 'node:child_process';

export const SPEECH_SAMPLE_RATE = 16_000;
const cache = new Map<string, Int16Array>();

/**
 * Real speech for the pipeline: espeak-ng says `text`, sox turns it into 16 kHz mono 16-bit PCM. (Installed by the
 * CI script; the VAD under test is a neural model, so synthetic tones would not exercise it.) `narrowband`: through
 * an 8 kHz telephone channel first (band-limited to 4 kHz, as a carrier's G.711 leg delivers it), then back to 16 kHz.
 */
export function synthesizeSpeech(text: string, { narrowband = false }: { narrowband?: boolean } = {}): Int16Array {
  const key = `${narrowband ? 'nb' : 'wb'}:${text}`;
  const cached = cache.get(key);
  if (cached) return cached;
  const channel = narrowband ? 'sox -t wav - -r 8000 -c 1 -t wav - | ' : '';
  const result = spawnSync(
    'sh',
    [
      '-c',
      `espeak-ng -s 165 --stdout "$1" | ${channel}sox -t wav - -r 16000 -c 1 -b 16 -e signed-integer -t raw -`,
      'speech',
      text,
    ],
    { maxBuffer: 64 * 1024 * 1024 },
  );
  if (result.status !== 0 || result.stdout.length === 0) {
    throw new Error(`espeak-ng/sox failed (${result.status}): ${result.stderr.toString()}`);
  }
  const bytes = result.stdout;
  const samples = new Int16Array(
    bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength - (bytes.byteLength % 2)),
  );
  cache.set(key, samples);
  return samples;
}

/** Root-mean-square level of 16-bit PCM, 0…32767. */
/** The parts one after the other, as one run of samples. */
export function concatSamples(...parts: Int16Array[]): Int16Array {
  const out = new Int16Array(parts.reduce((sum, part) => sum + part.length, 0));
  let offset = 0;
  for (const part of parts) {
    out.set(part, offset);
    offset += part.length;
  }
  return out;
}

export function rms(samples: Int16Array): number {
  if (samples.length === 0) return 0;
  let sum = 0;
  for (const sample of samples) sum += sample * sample;
  return Math.sqrt(sum / samples.length);
}

/** RMS over a 10 ms window above which audio counts as speech (the fake Transcribe listens the same way). */
export const SPEECH_RMS_LEVEL = 400;

/** Where the speech in `samples` ends, in ms from the start: the end of its last 10 ms window above the speech level. */
export function speechEndMs(samples: Int16Array, sampleRate = SPEECH_SAMPLE_RATE): number {
  const window = sampleRate / 100;
  for (let end = Math.ceil(samples.length / window) * window; end > 0; end -= window) {
    if (rms(samples.subarray(end - window, end)) > SPEECH_RMS_LEVEL)
      return (Math.min(end, samples.length) / sampleRate) * 1000;
  }
  return 0;
}

/** Where the speech in `samples` starts, in ms: the start of its first 10 ms window above the speech level. */
export function speechStartMs(samples: Int16Array, sampleRate = SPEECH_SAMPLE_RATE): number {
  const window = sampleRate / 100;
  for (let start = 0; start < samples.length; start += window) {
    if (rms(samples.subarray(start, start + window)) > SPEECH_RMS_LEVEL) return (start / sampleRate) * 1000;
  }
  return 0;
}

/** How long the speech in `samples` lasts, first to last loud window (what a listening Transcribe fake measures). */
export function speechSpanMs(samples: Int16Array, sampleRate = SPEECH_SAMPLE_RATE): number {
  return speechEndMs(samples, sampleRate) - speechStartMs(samples, sampleRate);
}
