import {
  type AuditActor,
  type AuditRecord,
  type AuditSealVerifier,
  type AuditSegmentObject,
  type AuditTrailVerdict,
  auditChainPrefix,
  callIdSchema,
  verifyAuditTrail,
} from '@voice-intake/contracts';
import type { RecordSource } from './source';

/** One chain of a call and what verifying it found. */
export interface ChainReport {
  actor: AuditActor;
  /** `agent`, or `mcp-server/<chainId>`. */
  name: string;
  verdict: AuditTrailVerdict;
  /** The records as stored, verified or not (a report shows what is there, marked by the verdict). */
  records: AuditRecord[];
}

export interface CallVerification {
  callId: string;
  chains: ChainReport[];
  ok: boolean;
}

async function objectsOf(source: RecordSource, keys: string[]): Promise<AuditSegmentObject[]> {
  return Promise.all(keys.map(async (key) => ({ key, body: (await source.get(key)) ?? '' })));
}

/** Records as stored (every line that parses and is not a seal), for display beside a failed verdict. */
function storedRecords(objects: AuditSegmentObject[]): AuditRecord[] {
  return objects.flatMap((object) =>
    object.body
      .split('\n')
      .filter((line) => line.trim() !== '')
      .flatMap((line) => {
        try {
          const value = JSON.parse(line) as AuditRecord & { type?: string };
          return value.type === 'audit_seal' ? [] : [value];
        } catch {
          return [];
        }
      }),
  );
}

/**
 * Verifies every chain of a call: the agent's (one per call) and the MCP server's (one per server session). A call
 * without an agent chain fails: its absence is a finding, not an empty OK.
 */
export async function verifyCall(
  source: RecordSource,
  callId: string,
  verifier: AuditSealVerifier,
): Promise<CallVerification> {
  callIdSchema.parse(callId);
  const chains: ChainReport[] = [];
  const agentObjects = await objectsOf(source, await source.list(auditChainPrefix('agent', callId)));
  const agentVerdict: AuditTrailVerdict =
    agentObjects.length > 0
      ? await verifyAuditTrail(agentObjects, verifier)
      : { ok: false, reason: 'no agent audit segments found for this call', records: [] };
  chains.push({ actor: 'agent', name: 'agent', verdict: agentVerdict, records: storedRecords(agentObjects) });

  const serverKeys = await source.list(auditChainPrefix('mcp-server', callId));
  const byChain = new Map<string, string[]>();
  for (const key of serverKeys) {
    const chainId = key.slice(auditChainPrefix('mcp-server', callId).length).split('/')[0];
    byChain.set(chainId, [...(byChain.get(chainId) ?? []), key]);
  }
  for (const [chainId, keys] of byChain) {
    const objects = await objectsOf(source, keys);
    chains.push({
      actor: 'mcp-server',
      name: `mcp-server/${chainId}`,
      verdict: await verifyAuditTrail(objects, verifier),
      records: storedRecords(objects),
    });
  }
  return { callId, chains, ok: chains.every((chain) => chain.verdict.ok) };
}

/** One line per chain: `OK <chain>: <n> records, sealed closed` or `FAIL <chain>: record <seq>: <why>`. */
export function describeVerification(result: CallVerification): string[] {
  return result.chains.map(({ name, verdict }) => {
    if (verdict.ok) return `OK   ${name}: ${verdict.records.length} records, ${verdict.seals.length} seals, closed`;
    const segment = verdict.segment !== undefined ? `segment ${verdict.segment}` : 'chain';
    const where = verdict.seq !== undefined ? `record ${verdict.seq}` : segment;
    return `FAIL ${name}: ${where}${verdict.object ? ` (${verdict.object})` : ''}: ${verdict.reason}`;
  });
}
