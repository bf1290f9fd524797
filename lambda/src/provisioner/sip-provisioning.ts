import { CALLER_HEADERS_TO_ATTRIBUTES, retryWithBackoff } from '@voice-intake/contracts';
import {
  RoomAgentDispatch,
  RoomConfiguration,
  SIPDispatchRule,
  SIPDispatchRuleIndividual,
  SIPDispatchRuleInfo,
  SIPInboundTrunkInfo,
  type SipClient,
} from 'livekit-server-sdk';

/** What LiveKit must hold for calls from the edge to reach our agent: one inbound trunk, one dispatch rule. */
export interface DesiredSipSetup {
  /** Names identify our trunk and rule on every run (create, update, delete find them by name). */
  trunkName: string;
  dispatchRuleName: string;
  /** Numbers (DIDs) the trunk answers; empty = any number arriving from the allowed addresses. */
  numbers: string[];
  /** Only the SIP edge hosts' private addresses may send calls. */
  allowedAddresses: string[];
  /** The agent dispatched into every call's room, by name. */
  agentName: string;
  /** One room per call: `<roomPrefix><caller>_<random>`. */
  roomPrefix: string;
}

export interface ProvisionedSip {
  trunkId: string;
  dispatchRuleId: string;
}

export interface RetryOptions {
  attempts: number;
  /** Ceiling of the first wait; each retry doubles it (full jitter, the shared backoff in contracts). */
  baseDelayMs: number;
  sleep?: (ms: number) => Promise<void>;
  random?: () => number;
}

/** LiveKit answered 5xx or the connection failed: worth another try. A 4xx is our mistake and is not retried. */
function isRetryable(error: unknown): boolean {
  const status = (error as { status?: number }).status;
  if (typeof status === 'number') return status >= 500;
  return true;
}

export function withRetries<T>(operation: () => Promise<T>, options: RetryOptions): Promise<T> {
  return retryWithBackoff(operation, { ...options, maxAttempts: options.attempts, isRetryable });
}

function sameSet(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().every((value, index) => value === [...b].sort()[index]);
}

/**
 * The edge's caller headers (attestation level, caller number) become the SIP participant's attributes; no other
 * header is mapped, so nothing else a carrier sends can pose as them.
 */
const HEADERS_TO_ATTRIBUTES: Record<string, string> = { ...CALLER_HEADERS_TO_ATTRIBUTES };

function desiredTrunk(desired: DesiredSipSetup, sipTrunkId = ''): SIPInboundTrunkInfo {
  return new SIPInboundTrunkInfo({
    sipTrunkId,
    name: desired.trunkName,
    numbers: desired.numbers,
    allowedAddresses: desired.allowedAddresses,
    headersToAttributes: HEADERS_TO_ATTRIBUTES,
  });
}

function sameMapping(a: Readonly<Record<string, string>> | undefined, b: Readonly<Record<string, string>>): boolean {
  const entries = Object.entries(a ?? {});
  return entries.length === Object.keys(b).length && entries.every(([key, value]) => b[key] === value);
}

function desiredRule(desired: DesiredSipSetup, trunkId: string, sipDispatchRuleId = ''): SIPDispatchRuleInfo {
  return new SIPDispatchRuleInfo({
    sipDispatchRuleId,
    name: desired.dispatchRuleName,
    trunkIds: [trunkId],
    rule: new SIPDispatchRule({
      rule: {
        case: 'dispatchRuleIndividual',
        value: new SIPDispatchRuleIndividual({ roomPrefix: desired.roomPrefix }),
      },
    }),
    roomConfig: new RoomConfiguration({ agents: [new RoomAgentDispatch({ agentName: desired.agentName })] }),
  });
}

function ruleMatches(rule: SIPDispatchRuleInfo, desired: DesiredSipSetup, trunkId: string): boolean {
  const individual = rule.rule?.rule.case === 'dispatchRuleIndividual' ? rule.rule.rule.value : undefined;
  const agents = rule.roomConfig?.agents.map((agent) => agent.agentName) ?? [];
  return (
    individual?.roomPrefix === desired.roomPrefix &&
    sameSet(rule.trunkIds, [trunkId]) &&
    sameSet(agents, [desired.agentName])
  );
}

/**
 * Makes LiveKit hold exactly the desired trunk and dispatch rule: creates what is missing, replaces what differs,
 * leaves what matches alone. Safe to run any number of times.
 */
export async function reconcileSip(
  client: SipClient,
  desired: DesiredSipSetup,
  retry: RetryOptions,
): Promise<ProvisionedSip & { changed: string[] }> {
  const changed: string[] = [];
  const trunks = await withRetries(() => client.listSipInboundTrunk(), retry);
  let trunk = trunks.find((candidate) => candidate.name === desired.trunkName);
  if (!trunk) {
    trunk = await withRetries(
      () =>
        client.createSipInboundTrunk(desired.trunkName, desired.numbers, {
          allowedAddresses: desired.allowedAddresses,
          headersToAttributes: HEADERS_TO_ATTRIBUTES,
        }),
      retry,
    );
    changed.push('trunk created');
  } else if (
    !sameSet(trunk.numbers, desired.numbers) ||
    !sameSet(trunk.allowedAddresses, desired.allowedAddresses) ||
    !sameMapping(trunk.headersToAttributes, HEADERS_TO_ATTRIBUTES)
  ) {
    const id = trunk.sipTrunkId;
    trunk = await withRetries(() => client.updateSipInboundTrunk(id, desiredTrunk(desired, id)), retry);
    changed.push('trunk updated');
  }
  const trunkId = trunk.sipTrunkId;

  const rules = await withRetries(() => client.listSipDispatchRule(), retry);
  let rule = rules.find((candidate) => candidate.name === desired.dispatchRuleName);
  if (!rule) {
    rule = await withRetries(
      () =>
        client.createSipDispatchRule(
          { type: 'individual', roomPrefix: desired.roomPrefix },
          { name: desired.dispatchRuleName, trunkIds: [trunkId], roomConfig: desiredRule(desired, trunkId).roomConfig },
        ),
      retry,
    );
    changed.push('dispatch rule created');
  } else if (!ruleMatches(rule, desired, trunkId)) {
    const id = rule.sipDispatchRuleId;
    rule = await withRetries(() => client.updateSipDispatchRule(id, desiredRule(desired, trunkId, id)), retry);
    changed.push('dispatch rule updated');
  }
  return { trunkId, dispatchRuleId: rule.sipDispatchRuleId, changed };
}

/** Removes our dispatch rule and trunk if they exist (found by name); nothing else is touched. */
export async function removeSip(
  client: SipClient,
  desired: Pick<DesiredSipSetup, 'trunkName' | 'dispatchRuleName'>,
  retry: RetryOptions,
): Promise<string[]> {
  const removed: string[] = [];
  const rules = await withRetries(() => client.listSipDispatchRule(), retry);
  for (const rule of rules.filter((candidate) => candidate.name === desired.dispatchRuleName)) {
    await withRetries(() => client.deleteSipDispatchRule(rule.sipDispatchRuleId), retry);
    removed.push(rule.sipDispatchRuleId);
  }
  const trunks = await withRetries(() => client.listSipInboundTrunk(), retry);
  for (const trunk of trunks.filter((candidate) => candidate.name === desired.trunkName)) {
    await withRetries(() => client.deleteSipTrunk(trunk.sipTrunkId), retry);
    removed.push(trunk.sipTrunkId);
  }
  return removed;
}
