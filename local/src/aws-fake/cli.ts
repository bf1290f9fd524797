import { parseArgs } from 'node:util';
import pino from 'pino';
import { AwsFake } from './server';

const USAGE = `Usage: tsx local/src/aws-fake/cli.ts [--host 127.0.0.1] [--port 4599]
         [--ttft-ms N] [--ttfb-ms N] [--final-delay-ms N] [--stable-after-ms N]

Serves Transcribe streaming, Bedrock runtime and Polly to the AWS SDK v3 on one port and prints the
environment to export. Admin API (HTTP/1.1): GET /_fake/sessions, PUT /_fake/scenarios/<key>, PUT /_fake/latency.`;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '0' },
      'ttft-ms': { type: 'string' },
      'ttfb-ms': { type: 'string' },
      'final-delay-ms': { type: 'string' },
      'stable-after-ms': { type: 'string' },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  });
  if (values.help) {
    process.stdout.write(`${USAGE}\n`);
    return;
  }
  const number = (name: string, raw: string | undefined): number | undefined => {
    if (raw === undefined) return undefined;
    const value = Number(raw);
    if (!Number.isFinite(value) || value < 0) throw new Error(`--${name}: a non-negative number, got "${raw}"`);
    return value;
  };
  // The fake has no authentication (its admin API rewrites what the services answer): loopback only.
  if (!/^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|::1|localhost)$/.test(values.host)) {
    throw new Error(`--host: a loopback address (127.0.0.0/8, ::1), got "${values.host}"`);
  }
  const port = number('port', values.port)!;
  if (!Number.isInteger(port) || port > 65535) throw new Error(`--port: 0-65535, got "${values.port}"`);
  const latency = Object.fromEntries(
    Object.entries({
      bedrockTtftMs: number('ttft-ms', values['ttft-ms']),
      pollyTtfbMs: number('ttfb-ms', values['ttfb-ms']),
      transcribeFinalDelayMs: number('final-delay-ms', values['final-delay-ms']),
      transcribeStableAfterMs: number('stable-after-ms', values['stable-after-ms']),
    }).filter(([, value]) => value !== undefined),
  );
  // Logs go to stderr: stdout carries only the lines to export.
  const logger = pino({ name: 'aws-fake', level: process.env.AWS_FAKE_LOG_LEVEL ?? 'info' }, pino.destination(2));
  const fake = new AwsFake({ host: values.host, port, latency, logger });
  const url = await fake.start();
  const lines = Object.entries(fake.env).map(([name, value]) => `export ${name}=${value}`);
  // The SDK signs every request; the fake checks the signature's service, not the key.
  for (const [name, value] of [
    ['AWS_REGION', 'us-east-1'],
    ['AWS_ACCESS_KEY_ID', 'fake'],
    ['AWS_SECRET_ACCESS_KEY', 'fake'],
  ]) {
    if (!process.env[name]) lines.push(`export ${name}=${value}`);
  }
  process.stdout.write(`${lines.join('\n')}\n`);
  logger.info({ url, admin: `${url}/_fake/sessions` }, 'ready');
  const stop = () => void fake.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((error: unknown) => {
  process.stderr.write(`aws-fake: ${(error as Error).message}\n`);
  process.exit(1);
});
