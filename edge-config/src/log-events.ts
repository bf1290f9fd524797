/**
 * Phrases the edge's Kamailio config writes to the log for each event operators count (the CDK edge stack turns
 * them into CloudWatch metrics). The config template must keep them word for word: a test checks it does.
 */
export const EDGE_LOG_EVENTS = {
  allowlistRejects: 'not in allowlist',
  floodBans: 'pike flood from',
  scannerDrops: 'scanner User-Agent from',
  malformedDrops: 'edge: malformed',
  noLiveKitNode: 'no LiveKit SIP node available',
  topologyStoreDown: 'topology store unreachable',
  unansweredCalls: 'rang unanswered',
} as const;
