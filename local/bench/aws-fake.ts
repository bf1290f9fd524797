/**
 * What the AWS fake itself adds to a turn, with every latency knob at 0: the floor under the end-to-end figures.
 * Real SDK clients, real espeak-ng audio, loopback. Prints p50/p95 per stage; no pass/fail.
 *
 *   npm run bench:aws-fake -w local [-- --rounds 20]
 */
import { parseArgs } from 'node:util';
import { BedrockRuntimeClient, ConverseStreamCommand } from '@aws-sdk/client-bedrock-runtime';
import { PollyClient, StartSpeechSynthesisStreamCommand, SynthesizeSpeechCommand } from '@aws-sdk/client-polly';
import { type AudioStream, StartStreamTranscriptionCommand, TranscribeStreamingClient } from '@aws-sdk/client-transcribe-streaming';
import { speechEndMs, synthesizeSpeech } from '../../agent/test/support/speech';
import { AwsFake } from '../src/aws-fake';

const { values } = parseArgs({ options: { rounds: { type: 'string', default: '15' } } });
const rounds = Number(values.rounds);
const config = { region: 'us-east-1', credentials: { accessKeyId: 'bench', secretAccessKey: 'bench' }, maxAttempts: 1 };

function percentile(samples: number[], p: number): number {
  const sorted = [...samples].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function report(name: string, samples: number[]): void {
  const fmt = (ms: number) => `${ms.toFixed(1).padStart(7)} ms`;
  console.log(`${name.padEnd(58)} p50 ${fmt(percentile(samples, 50))}  p95 ${fmt(percentile(samples, 95))}  (n=${samples.length})`);
}

async function main(): Promise<void> {
  const fake = new AwsFake();
  const endpoint = await fake.start();
  const transcribe = new TranscribeStreamingClient({ ...config, endpoint });
  const bedrock = new BedrockRuntimeClient({ ...config, endpoint });
  const polly = new PollyClient({ ...config, endpoint });
  try {
    // Transcribe: audio sent in real time (50 ms events every 50 ms); end of speech → final, which includes the
    // 500 ms of silence that ends an utterance (transcribeEndSilenceMs), as endpointing does in the service.
    const speech = synthesizeSpeech('I would like to report a burst pipe.');
    const audio = new Int16Array(speech.length + 16_000);
    audio.set(speech);
    const speechEnd = speechEndMs(speech);
    const finals: number[] = [];
    for (let round = 0; round < Math.min(rounds, 8); round += 1) {
      const started = performance.now();
      async function* events(): AsyncGenerator<AudioStream> {
        for (let offset = 0, index = 0; offset < audio.length; offset += 800, index += 1) {
          // An event leaves once its 50 ms have been spoken, as from a live microphone.
          const wait = started + (index + 1) * 50 - performance.now();
          if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
          yield { AudioEvent: { AudioChunk: new Uint8Array(audio.slice(offset, offset + 800).buffer) } };
        }
      }
      const response = await transcribe.send(
        new StartStreamTranscriptionCommand({ LanguageCode: 'en-US', MediaEncoding: 'pcm', MediaSampleRateHertz: 16_000, AudioStream: events() }),
      );
      for await (const event of response.TranscriptResultStream ?? []) {
        if (event.TranscriptEvent?.Transcript?.Results?.some((result) => !result.IsPartial)) {
          finals.push(performance.now() - (started + speechEnd));
        }
      }
    }
    report('Transcribe: end of speech → final (500 ms end silence incl.)', finals);

    const ttft: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const started = performance.now();
      const response = await bedrock.send(
        new ConverseStreamCommand({ modelId: 'bench', messages: [{ role: 'user', content: [{ text: `Hello, this is round ${round}.` }] }] }),
      );
      let first: number | undefined;
      for await (const event of response.stream ?? []) if (event.contentBlockDelta) first ??= performance.now() - started;
      ttft.push(first!);
    }
    report('Bedrock ConverseStream: request → first token', ttft);

    const cold: number[] = [];
    const warm: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      for (const [samples, text] of [
        [cold, `This sentence is number ${round} of the benchmark.`],
        [warm, 'This sentence is said on every call.'],
      ] as const) {
        const started = performance.now();
        const response = await polly.send(new SynthesizeSpeechCommand({ Text: text, OutputFormat: 'pcm', SampleRate: '16000', VoiceId: 'Ruth' }));
        const reader = response.AudioStream!.transformToWebStream().getReader();
        await reader.read();
        samples.push(performance.now() - started);
        while (!(await reader.read()).done) {
          // drain
        }
      }
    }
    report('Polly SynthesizeSpeech: request → first byte, new text', cold);
    report('Polly SynthesizeSpeech: request → first byte, cached text', warm);

    const streamed: number[] = [];
    for (let round = 0; round < rounds; round += 1) {
      const started = performance.now();
      async function* text() {
        yield { TextEvent: { Text: `Streaming sentence ${round} is here. `, TextType: 'text' as const } };
        yield { CloseStreamEvent: {} };
      }
      const response = await polly.send(
        new StartSpeechSynthesisStreamCommand({ Engine: 'generative', VoiceId: 'Ruth', OutputFormat: 'pcm', SampleRate: '16000', ActionStream: text() }),
      );
      let first: number | undefined;
      for await (const event of response.EventStream ?? []) if (event.AudioEvent) first ??= performance.now() - started;
      streamed.push(first!);
    }
    report('Polly StartSpeechSynthesisStream: request → first audio, new text', streamed);
  } finally {
    for (const client of [transcribe, bedrock, polly]) client.destroy();
    await fake.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
