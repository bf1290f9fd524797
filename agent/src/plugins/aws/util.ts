/** Drop keys whose value is undefined, so SDK requests carry only what was set. */
export function stripUndefined<T extends object>(value: T): T {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as T;
}

/** The resolved-config fields of an SDK client that a warm-up touches. */
interface WarmableClient {
  config: { credentials?: unknown; region?: unknown };
}

/**
 * What can be paid before the first request: credentials (on ECS a round trip to the container credentials
 * endpoint) and the region. The AWS SDK opens a fresh HTTP/2 connection for every event-stream request (and for every
 * request of these clients: `disableConcurrentStreams`), so the TLS handshake itself cannot be paid ahead.
 */
export async function warmUpClient(client: WarmableClient, signal?: AbortSignal): Promise<void> {
  const resolve = async (provider: unknown) => (typeof provider === 'function' ? await provider() : provider);
  if (signal?.aborted) return;
  await resolve(client.config.region);
  if (signal?.aborted) return;
  await resolve(client.config.credentials);
}
