/**
 * The agent's CloudWatch metrics (embedded metric format): emitted by the worker, graphed and alarmed by the
 * observability tier. Names live here once so the dashboard and the emitter cannot drift apart.
 */
export const METRICS_NAMESPACE_ROOT = 'VoiceIntake';

/**
 * Each deployment publishes under its own namespace (`VoiceIntake/<deploymentName>`): two deployments in one account
 * and region never mix their figures, nor scale on each other's calls. Log metric filters cannot add a constant
 * dimension, so the namespace, not a dimension, carries the deployment.
 */
export function metricsNamespace(deploymentName: string): string {
  return `${METRICS_NAMESPACE_ROOT}/${deploymentName}`;
}

export const AGENT_METRICS = {
  endOfUtteranceDelay: 'EndOfUtteranceDelay',
  sttFinalDelay: 'TranscriptionDelay',
  llmTimeToFirstToken: 'LlmTimeToFirstToken',
  ttsTimeToFirstByte: 'TtsTimeToFirstByte',
  voiceToVoiceLatency: 'VoiceToVoiceLatency',
  toolLatency: 'ToolLatency',
  toolErrors: 'ToolErrors',
  /** An error event of the call's session (STT, LLM or TTS), with properties service and recoverable. */
  serviceErrors: 'ServiceErrors',
  /** A caller turn the agent could not answer (the LLM failed every attempt): the caller heard an apology. */
  unansweredTurns: 'UnansweredTurns',
  /** A reply started before the caller's turn was committed (on Transcribe's stable words or its final) was kept. */
  speculationHits: 'SpeculationHits',
  /** Replies started on words the committed turn did not say: cancelled unheard, their LLM tokens wasted. */
  speculationCancels: 'SpeculationCancels',
  /** How long Transcribe's final came after the stable words of the same utterance (what speculation can hide). */
  finalAfterPreflightWait: 'FinalAfterPreflightWait',
  callsStarted: 'CallsStarted',
  callsEnded: 'CallsEnded',
  /**
   * A call this worker left because another worker claimed it while it still ran (a second dispatch of the room):
   * its writes stopped there, the caller stayed with the other worker.
   */
  callsTakenOver: 'CallsTakenOver',
  /**
   * A call the worker could not set up (Redis unreachable, the call's session state unreadable — corrupt, or written
   * by a newer worker — or its session would not start): nothing was said; the caller was transferred to
   * DEFAULT_TRANSFER_TARGET, or hung up on when there is none or the transfer failed.
   */
  callSetupFailures: 'CallSetupFailures',
  /** Gauge, once a minute per worker task: calls the task holds now (Average = per task, Sum = in progress). */
  activeCalls: 'ActiveCalls',
} as const;

export type AgentMetricName = (typeof AGENT_METRICS)[keyof typeof AGENT_METRICS];

/** Emitted once a minute per worker task, so a one-minute period holds one data point per task. */
export const ACTIVE_CALLS_INTERVAL_SECONDS = 60;

/** Counted from the SIP edge hosts' Kamailio and RTPEngine log lines (CloudWatch Logs metric filters, edge stack). */
export const EDGE_METRICS = {
  allowlistRejects: 'EdgeAllowlistRejects',
  floodBans: 'EdgeFloodBans',
  scannerDrops: 'EdgeScannerDrops',
  malformedDrops: 'EdgeMalformedDrops',
  noLiveKitNode: 'EdgeNoLiveKitNode',
  topologyStoreDown: 'EdgeTopologyStoreDown',
  unansweredCalls: 'EdgeUnansweredCalls',
  oversizedRefusals: 'EdgeOversizedRefusals',
  topologyHidingFailures: 'EdgeTopologyHidingFailures',
  implausibleNumbers: 'EdgeImplausibleNumbers',
  invitesWithoutOffer: 'EdgeInvitesWithoutOffer',
  foreignMediaAddresses: 'EdgeForeignMediaAddresses',
  sdpRefusals: 'EdgeSdpRefusals',
  mediaAnchorFailures: 'EdgeMediaAnchorFailures',
  strayReplies: 'EdgeStrayReplies',
  unknownLiveKitPeers: 'EdgeUnknownLiveKitPeers',
  foreignNextHops: 'EdgeForeignNextHops',
  unconfirmedCalls: 'EdgeUnconfirmedCalls',
  mediaSourceDrops: 'EdgeMediaSourceDrops',
  attestationRefusals: 'EdgeAttestationRefusals',
  deniedCallers: 'EdgeDeniedCallers',
  unlistedCallers: 'EdgeUnlistedCallers',
  anonymousCallers: 'EdgeAnonymousCallers',
} as const;

/**
 * How the edge hosts forward media (RTPEngine in the kernel, or its userspace fallback): counted at each RTPEngine
 * start from the edge's log; the edge stack alarms on userspace.
 */
export const EDGE_MEDIA_MODE_METRICS = {
  kernel: 'EdgeMediaKernelForwarding',
  userspace: 'EdgeMediaUserspaceForwarding',
} as const;

/**
 * The MCP server's log events about forwarding submitted cases to the backend (`event` in its JSON log lines), and the
 * metrics counted from them (metric filters on its log group): one name for the server that logs and the filter.
 */
export const MCP_SERVER_LOG_EVENTS = {
  /** The backend refused a case for good (4xx): it is not retried; an operator decides (README: redrive). */
  caseForwardRefused: 'case_forward_refused',
  /** A submitted case still waits for the backend past the overdue age (logged on every redrive pass). */
  caseForwardOverdue: 'case_forward_overdue',
} as const;

export const MCP_SERVER_METRICS = {
  caseForwardRefused: 'CaseForwardRefused',
  caseForwardOverdue: 'CaseForwardOverdue',
} as const satisfies Record<keyof typeof MCP_SERVER_LOG_EVENTS, string>;

/** Counted from LiveKit SIP's log lines (metric filters on the LiveKit cluster's log group). */
export const LIVEKIT_SIP_METRICS = {
  callErrors: 'LiveKitSipCallErrors',
  callsRejected: 'LiveKitSipCallsRejected',
} as const;
