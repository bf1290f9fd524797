/**
 * Phrases the edge writes to its log for each event operators count (the CDK edge stack turns them into CloudWatch
 * metrics). Kamailio's config template must keep its phrases word for word, and counts each in the statistic of the
 * same name (`kamcmd stats.get_statistics all`): a test checks both. The last one is RTPEngine's own log line.
 */
export const EDGE_LOG_EVENTS = {
  allowlistRejects: 'not in allowlist',
  floodBans: 'pike flood from',
  scannerDrops: 'scanner User-Agent from',
  malformedDrops: 'edge: malformed',
  noLiveKitNode: 'no LiveKit SIP node available',
  topologyStoreDown: 'topology store unreachable',
  unansweredCalls: 'rang unanswered',
  /** Message size, header count, Via count, routing or identity header bytes over the bounds (513/400, or dropped). */
  oversizedRefusals: 'edge: oversized',
  /** A reply topos could not restore (its store lost or the record gone): dropped, never sent on unhidden. */
  topologyHidingFailures: 'topology hiding failed',
  /** Request-URI not sip: (416: tel:, sips:) or whose user is no plausible number (404, 400 when malformed). */
  implausibleNumbers: 'edge: implausible Request-URI',
  /** A new call whose INVITE carries no SDP offer (488). */
  invitesWithoutOffer: 'INVITE without SDP offer',
  /** Carrier SDP naming a connection address outside edge.mediaAllowlist (488 for requests, dropped for replies). */
  foreignMediaAddresses: 'media address outside mediaAllowlist',
  /**
   * SDP from a peer the edge could not rebuild without its sender's name (a second s=/o=/v=, a malformed o=, a line
   * or line count over the bound, no m=, a body not labelled application/sdp): 488, dropped for replies. The line
   * names the side it came from ("from carrier" or "from LiveKit").
   */
  sdpRefusals: 'SDP not rewritable',
  /** SDP RTPEngine could not anchor (503 for new calls, 488 in dialog, dropped for replies): the edge's media failed. */
  mediaAnchorFailures: 'media anchoring failed',
  /** A reply that matches no transaction of the edge (dropped, never relayed statelessly). */
  strayReplies: 'reply without transaction',
  /** A request on the LiveKit-side socket from an address outside the current dispatcher set (dropped). */
  unknownLiveKitPeers: 'is not a LiveKit SIP node',
  /** An in-dialog request from the carrier whose next hop (Route or Request-URI) is no LiveKit SIP node (403). */
  foreignNextHops: 'outside the LiveKit set',
  /** A 2xx the carrier never ACKed: the call never became established, its media is freed. */
  unconfirmedCalls: 'not confirmed by ACK',
  /** A new call whose attestation level (from X-Twilio-VerStat) edge.callerPolicy.rejectAttestation names (603). */
  attestationRefusals: 'caller attestation refused',
  /** A caller number on edge.callerPolicy.deny (603). */
  deniedCallers: 'caller on the deny list',
  /** A caller number missing from edge.callerPolicy.allow, when that list is given (603). */
  unlistedCallers: 'caller not on the allow list',
  /** A withheld or unreadable caller number while edge.callerPolicy.anonymous is reject (433). */
  anonymousCallers: 'withheld caller number refused',
  /** RTPEngine: a media packet from another source than the one negotiated (dropped; its log is rate-limited). */
  mediaSourceDrops: 'Drop due to strict-source attribute',
} as const;

/** Events RTPEngine logs (not Kamailio): counted by RTPEngine's own error totals, not by a Kamailio statistic. */
export const RTPENGINE_LOG_EVENTS: readonly (keyof typeof EDGE_LOG_EVENTS)[] = ['mediaSourceDrops'];

/** Events Kamailio logs without a counter of its own (they page through their own alarms). */
export const UNCOUNTED_LOG_EVENTS: readonly (keyof typeof EDGE_LOG_EVENTS)[] = ['noLiveKitNode', 'topologyStoreDown'];

/**
 * How RTPEngine forwards media on a host, logged once per start by bin/edge-media-mode.sh (the edge stack counts
 * both, and alarms on userspace: it costs about five times the CPU per call of in-kernel forwarding).
 */
export const EDGE_MEDIA_MODE_LOG_EVENTS = {
  kernel: 'media forwarding in kernel',
  userspace: 'media forwarding in userspace',
} as const;
