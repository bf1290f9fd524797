import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { OpenSearchKnowledge } from '../../src/knowledge/opensearch';

/** Starts a stand-in HTTP server on a free loopback port; returns its base URL. */
export async function listenOnLoopback(server: Server): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

export function closeServer(server: Server): Promise<void> {
  return new Promise<void>((resolve) => server.close(() => resolve()));
}

/** The OpenSearch adapter pointed at a stand-in, with fixed credentials so signatures are checkable. */
export function openSearchAt(endpoint: string, service: 'es' | 'aoss'): OpenSearchKnowledge {
  return new OpenSearchKnowledge({
    endpoint,
    index: 'knowledge',
    region: 'us-east-1',
    service,
    credentials: async () => ({ accessKeyId: 'AKIDEXAMPLE', secretAccessKey: 'secret' }),
  });
}
