import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { type AuditRecord, type AuditSegmentObject, LocalHmacSealKey, verifyAuditTrail } from '@voice-intake/contracts';
import { TEST_SEAL_SECRET } from './server-process';

export const testSealKey = new LocalHmacSealKey(TEST_SEAL_SECRET);

/** The sealed segments a server wrote under DATA_DIR for one call, by chain folder (bucket key layout). */
export function localChains(dataDir: string, callId: string): Map<string, AuditSegmentObject[]> {
  const callFolder = join(dataDir, 'audit', 'mcp-server', callId);
  const chains = new Map<string, AuditSegmentObject[]>();
  if (!existsSync(callFolder)) return chains;
  for (const chainId of readdirSync(callFolder).sort()) {
    const folder = join(callFolder, chainId);
    chains.set(
      chainId,
      readdirSync(folder)
        .sort()
        .map((name) => ({
          key: relative(dataDir, join(folder, name)),
          body: readFileSync(join(folder, name), 'utf8'),
        })),
    );
  }
  return chains;
}

/** Every record of a call on the server's chains, verified or not (what a reviewer would read). */
export function recordsOf(dataDir: string, callId: string): AuditRecord[] {
  return [...localChains(dataDir, callId).values()]
    .flat()
    .flatMap((object) =>
      object.body
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line)),
    )
    .filter((line) => line.type !== 'audit_seal');
}

/** Waits until every chain of the call verifies (its closing seal is written when the MCP session ends). */
export async function waitForSealedChains(dataDir: string, callId: string, timeoutMs = 30_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let last = 'no chain';
  while (Date.now() < deadline) {
    const chains = [...localChains(dataDir, callId).values()];
    const verdicts = await Promise.all(chains.map((objects) => verifyAuditTrail(objects, testSealKey)));
    const bad = verdicts.find((verdict) => !verdict.ok);
    if (chains.length > 0 && !bad) return chains.length;
    last = bad && !bad.ok ? bad.reason : last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`chains of ${callId} not sealed closed: ${last}`);
}
