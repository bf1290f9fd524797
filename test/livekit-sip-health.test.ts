import { execFile } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sipHealthProbe } from '../lib/constructs/livekit-cluster';
import { synthVoiceIntake } from './support/synth';

const run = promisify(execFile);

/** Stands in for LiveKit SIP's health port: answers with the status the test sets. */
let server: Server;
let status = 200;
beforeAll(async () => {
  server = createServer((_request, response) => {
    response.writeHead(status, { 'Content-Type': 'text/plain' });
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

/** Runs the probe the way the container's health check does (bash, the only tool the image is sure to have). */
async function probe(port: number): Promise<boolean> {
  const [, shell, flag, script] = sipHealthProbe(port);
  return run(shell, [flag, script], { timeout: 5_000 }).then(
    () => true,
    () => false,
  );
}

describe("LiveKit SIP's container health check", () => {
  it('passes while LiveKit SIP answers, including while it refuses calls for load (429)', async () => {
    const { port } = server.address() as AddressInfo;
    status = 200;
    expect(await probe(port)).toBe(true);
    // Under load LiveKit SIP answers 429 and refuses new calls itself: killing the task would drop every call on it.
    status = 429;
    expect(await probe(port)).toBe(true);
  });

  it('fails while LiveKit SIP is not started or stopped (503), and when nothing listens', async () => {
    const { port } = server.address() as AddressInfo;
    status = 503;
    expect(await probe(port)).toBe(false);
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const { port: freed } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    expect(await probe(freed)).toBe(false);
  });

  it('is what the task runs, on the configured port, with no tool the LiveKit SIP image lacks (wget, curl)', () => {
    const { templates } = synthVoiceIntake({ livekit: { sipHealthPort: 8181 } });
    const task = Object.values(templates.app.findResources('AWS::ECS::TaskDefinition')).find(
      (definition) => definition.Properties.NetworkMode === 'host',
    )!;
    const sip = (task.Properties.ContainerDefinitions as { Name: string; HealthCheck: { Command: string[] } }[]).find(
      (container) => container.Name === 'livekit-sip',
    )!;
    expect(sip.HealthCheck.Command.join(' ')).not.toMatch(/\b(wget|curl)\b/);
    expect(sip.HealthCheck.Command).toEqual(sipHealthProbe(8181));
  });
});
