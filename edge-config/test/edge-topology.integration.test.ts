/**
 * topos against topoh, class by class: the rendered loopback edge (real Kamailio and RTPEngine) between a raw carrier
 * (127.0.3.40) and a raw LiveKit node (127.0.2.1:5060, the only one in the dispatcher set), so the test writes every
 * message either side sends and keeps every message either side receives. For each leak class and each module it
 * records what crossed: a header or SDP line naming the other side's addresses, Via branches or Contact in the clear
 * ("plain"), or carried in topoh's reversible encoding ("masked"), and whether the dialog still worked.
 *
 * The carrier must never see a LiveKit-side address (edge 127.0.1.1, nodes 127.0.2.x) nor LiveKit's Via, Contact or
 * Record-Route; LiveKit must never see the carrier's addresses (edge EIP 127.0.0.1, carrier 127.0.3.x) beyond From,
 * To and Call-ID. The edge with topos keeps both in every class (asserted); what topoh does is asserted as measured,
 * so a change in either module's behaviour fails here. README "Topology hiding" has the table.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeHarness } from '../harness/harness';
import {
  type Address,
  answerOptions,
  headerOf,
  headerValues,
  replyTo,
  sdp,
  statusOf,
  UdpPeer,
  uriOf,
} from '../harness/raw-peer';
import { TOPOH_MASK } from '../src/render';

const LOOPBACK = JSON.parse(readFileSync(resolve(__dirname, '..', 'examples', 'loopback.json'), 'utf8'));
const CARRIER_IP = '127.0.3.40';
const NODE: Address = { ip: '127.0.2.1', port: 5060 };
/** On the LiveKit side, but no dispatcher node: forged in-dialog requests aim here. */
const NOT_A_NODE: Address = { ip: '127.0.2.9', port: 5099 };
/** The node's own address, but not its SIP port: forged in-dialog requests aim here too. */
const NODE_OTHER_PORT = 5070;
const INTERNAL_SIP: Address = { ip: LOOPBACK.host.internalSipIp, port: LOOPBACK.host.internalSipPort };
const NUMBER = '+15550100100';
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));
const token = () => Math.random().toString(36).slice(2, 10);

/** What names the LiveKit side (addresses, the node's Contact user, its Via branches): never for the carrier's eyes. */
const LIVEKIT_SIDE = /127\.0\.[12]\.\d+|lk-node|z9hG4bKlk/;
/** What names the carrier side (the EIP, carrier hosts, its Contact user, its Via branches): never for LiveKit's. */
const CARRIER_SIDE = /127\.0\.0\.1\b|127\.0\.3\.\d+|carrier-contact|z9hG4bKcr/;
/** An SDP as LiveKit SIP (or a chattier stack) might write it: every line that could name the software or a person. */
function revealingSdp(ip: string, port: number, name: string, version = 1, extra: readonly string[] = []): string {
  return [
    'v=0',
    `o=${name} 4242 ${version} IN IP4 ${ip}`,
    `s=${name}`,
    `i=${name} media session`,
    `u=https://${name.toLowerCase()}.example/sip`,
    `e=ops@${name.toLowerCase()}.example`,
    'p=+1 555 0100',
    `c=IN IP4 ${ip}`,
    't=0 0',
    `a=tool:${name} 1.11.0`,
    ...extra,
    `m=audio ${port} RTP/AVP 8 101`,
    'a=rtpmap:8 PCMA/8000',
    'a=rtpmap:101 telephone-event/8000',
    'a=fmtp:101 0-16',
    'a=ptime:20',
    `a=X-${name}-node:node-1`,
    `a=label:${name}`,
    'a=sendrecv',
    '',
  ].join('\r\n');
}

/** The SDP body of a SIP message, as its lines. */
const sdpLines = (message: string) => (message.split('\r\n\r\n')[1] ?? '').split('\r\n').filter(Boolean);

/**
 * What the edge lets an SDP say of its sender: one v=, an o= without user, the neutral session name, addresses (the
 * edge's, RTPEngine's), timing, media, and only the codec, packet-time, direction and RTCP attributes.
 */
function expectNeutralSdp(message: string | undefined, what: string, name: string) {
  expect(message, what).toBeDefined();
  const lines = sdpLines(message ?? '');
  expect(
    lines.filter((line) => line.startsWith('s=')),
    what,
  ).toEqual(['s=-']);
  expect(
    lines.filter((line) => line.startsWith('o=')),
    what,
  ).toEqual([expect.stringMatching(/^o=- \d+ \d+ IN IP4 /)]);
  expect(
    lines.filter((line) => line.startsWith('v=')),
    what,
  ).toEqual(['v=0']);
  expect(
    lines.filter(
      (line) =>
        !/^([vosctm]=|a=(rtpmap|fmtp|ptime|maxptime|sendrecv|sendonly|recvonly|inactive|rtcp|rtcp-mux)(:|$))/.test(
          line,
        ),
    ),
    what,
  ).toEqual([]);
  expect((message ?? '').split('\r\n\r\n')[1], what).not.toMatch(new RegExp(name, 'i'));
  expect(
    lines.some((line) => line.startsWith('m=audio ')),
    what,
  ).toBe(true);
}

/** The carrier's identity, end to end by RFC 3261 §16.6: a proxy passes From, To and Call-ID as they are. */
const IDENTITY = /^(From|f|To|t|Call-ID|i)\s*:/i;

type Module = 'topos' | 'topoh';
interface Sight {
  /** Header or SDP lines naming the other side in the clear. */
  readonly plain: string[];
  /** Headers topoh encoded (its mask address): the other side's header, reversibly encoded. */
  readonly masked: string[];
  /** The most Via headers a request this side received carried (the path it is shown, the edge's Via included). */
  readonly requestVias: number;
  /** The first line seen for each header in plain or masked (cut to 80 characters): the record's evidence. */
  readonly lines: string[];
}
interface ClassResult {
  readonly carrier: Sight;
  readonly livekit: Sight;
  /** What did not work (empty when every step of the class went through). */
  readonly failures: string[];
}

/** The header name (or "sdp <type>") of each line naming `side`, deduplicated, in order of first sight. */
function sight(messages: readonly string[], side: RegExp, skipIdentity: boolean): Sight {
  const plain = new Set<string>();
  const masked = new Set<string>();
  const lines = new Map<string, string>();
  let requestVias = 0;
  for (const message of messages) {
    if (!message.startsWith('SIP/2.0')) requestVias = Math.max(requestVias, headerValues(message, 'Via').length);
    const [head, body = ''] = message.split('\r\n\r\n');
    const [, ...headers] = head.split('\r\n');
    for (const line of headers) {
      const name = line.split(':')[0].trim();
      if (skipIdentity && IDENTITY.test(line)) continue;
      if (side.test(line)) plain.add(name);
      if (line.includes(TOPOH_MASK.ip)) masked.add(name);
      if ((side.test(line) || line.includes(TOPOH_MASK.ip)) && !lines.has(name)) lines.set(name, line.slice(0, 80));
    }
    const requestLine = head.split('\r\n')[0];
    if (side.test(requestLine)) {
      plain.add('Request-URI');
      lines.set('Request-URI', requestLine.slice(0, 80));
    }
    for (const line of body.split('\r\n')) {
      if (!side.test(line)) continue;
      plain.add(`sdp ${line.slice(0, 2)}`);
      lines.set(`sdp ${line.slice(0, 2)}`, line.slice(0, 80));
    }
  }
  return { plain: [...plain], masked: [...masked], requestVias, lines: [...lines.values()] };
}

const cseqOf = (message: string) => headerOf(message, 'CSeq');
/** The host of a SIP URI (after the user part, before port and parameters). */
const hostOf = (uri: string) => /^sips?:(?:[^@]*@)?([^:;>]+)/.exec(uri)?.[1];

/** One side of a dialog as its user agent keeps it (RFC 3261 §12.1): where requests go and with which headers. */
interface DialogSide {
  remoteTarget: string;
  routeSet: string[];
  local: string;
  remote: string;
  cseq: number;
}

/** Where a request in the dialog goes first: the first Route's host (loose routing), else the remote target's. */
const nextHop = (side: DialogSide) => hostOf(side.routeSet.length ? uriOf(side.routeSet[0]) : side.remoteTarget);

/** An in-dialog request from one side; `via` names the sender (its own branch prefix marks whose Via it is). */
function inDialog(
  method: string,
  side: DialogSide,
  callId: string,
  via: { address: Address; branch: string },
  extra: readonly string[] = [],
  body = '',
): string {
  side.cseq += method === 'ACK' ? 0 : 1;
  return [
    `${method} ${side.remoteTarget} SIP/2.0`,
    `Via: SIP/2.0/UDP ${via.address.ip}:${via.address.port};branch=${via.branch}${token()};rport`,
    ...side.routeSet.map((route) => `Route: ${route}`),
    'Max-Forwards: 70',
    `From: ${side.local}`,
    `To: ${side.remote}`,
    `Call-ID: ${callId}`,
    `CSeq: ${side.cseq} ${method}`,
    ...extra,
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** What topoh lost, as measured: its Contact names the mask address, and without the Route set nothing routes. */
const TOPOH_FAILURES: Record<string, string[]> = {
  'carrier ACK to the Contact': [
    `the Contact names ${TOPOH_MASK.ip}, not the edge: ACK and BYE to it go nowhere`,
    'the ACK (to the Contact) at LiveKit never arrived',
    'the BYE (to the Contact) at LiveKit never arrived',
  ],
};

describe.each(['topos', 'topoh'] as const)('leak classes with %s (real kamailio, rtpengine)', (module: Module) => {
  const dir = resolve(__dirname, '..', '.local', `test-topology-${module}`);
  const input = {
    ...LOOPBACK,
    livekitSip: { destinations: [{ host: NODE.ip, port: NODE.port, transport: 'udp' }] },
    topologyHiding: module,
  };
  const edge = new EdgeHarness({ dir, input, probeFrom: CARRIER_IP });
  let carrier: UdpPeer;
  let node: UdpPeer;
  const results: Record<string, ClassResult> = {};
  const carrierSip = () => edge.layout.carrierSip;

  beforeAll(async () => {
    await edge.start();
    node = await UdpPeer.open(NODE.ip, NODE.port);
    answerOptions(node);
    carrier = await UdpPeer.open(CARRIER_IP);
    const deadline = Date.now() + 30_000;
    while (!/FLAGS: AP/.test(await edge.kamcmd('dispatcher.list'))) {
      if (Date.now() > deadline) throw new Error('the LiveKit node never became active');
      await sleep(200);
    }
  }, 25 * 60_000);

  afterAll(async () => {
    carrier?.close();
    node?.close();
    await edge.stop();
    // The per-class record the README's table is made from.
    for (const [name, result] of Object.entries(results))
      console.log(`${module} | ${name} | ${JSON.stringify(result)}`);
  });

  /** A dialog opened by the carrier: both sides' state and everything each side received for its Call-ID. */
  async function openCall(
    options: { extraVias?: string[]; answer?: boolean; offer?: string; answerSdp?: string; nodeContact?: string } = {},
  ) {
    const callId = `leak-${module}-${token()}`;
    const failures: string[] = [];
    const requestUri = `sip:${NUMBER}@${carrierSip().ip}:${carrierSip().port}`;
    const fromTag = token();
    const from = `"carrier" <sip:+15550199000@${CARRIER_IP}>;tag=${fromTag}`;
    const offer = options.offer ?? sdp(CARRIER_IP, 41000);
    const invite = [
      `INVITE ${requestUri} SIP/2.0`,
      `Via: SIP/2.0/UDP ${CARRIER_IP}:${carrier.address.port};branch=z9hG4bKcr${token()};rport`,
      ...(options.extraVias ?? []),
      'Max-Forwards: 70',
      `From: ${from}`,
      `To: <${requestUri}>`,
      `Call-ID: ${callId}`,
      'CSeq: 1 INVITE',
      `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`,
      'Content-Type: application/sdp',
      `Content-Length: ${Buffer.byteLength(offer)}`,
      '',
      offer,
    ].join('\r\n');
    await carrier.send(invite, carrierSip());
    const atNode = await node.waitFor((d) => d.text.startsWith('INVITE ') && d.text.includes(callId), 5000);
    if (!atNode) throw new Error(`${callId}: the INVITE never reached the LiveKit node`);
    const nodeTag = token();
    const nodeTo = `${headerOf(atNode.text, 'To')};tag=${nodeTag}`;
    const nodeContact = `Contact: <${options.nodeContact ?? `sip:lk-node@${NODE.ip}:${NODE.port}`}>`;
    const reply = (status: string, body = '') =>
      replyTo(atNode.text, status, [nodeContact], body).replace(/^To: .*$/m, `To: ${nodeTo}`);
    // The node's dialog: remote target the INVITE's Contact, route set its Record-Route in order (UAS).
    const nodeSide: DialogSide = {
      remoteTarget: uriOf(headerOf(atNode.text, 'Contact')),
      routeSet: headerValues(atNode.text, 'Record-Route'),
      local: nodeTo,
      remote: headerOf(atNode.text, 'From'),
      cseq: 0,
    };
    const carrierSide: DialogSide = { remoteTarget: '', routeSet: [], local: from, remote: '', cseq: 1 };
    const call = {
      callId,
      invite,
      atNode,
      reply,
      nodeSide,
      carrierSide,
      failures,
      /** Every datagram each side received for this call so far. */
      seen: () => ({
        carrier: carrier.received.filter((d) => d.text.includes(callId)).map((d) => d.text),
        livekit: node.received.filter((d) => d.text.includes(callId)).map((d) => d.text),
      }),
      /** The node sends where its dialog says (the first Route, else the remote target): the edge's internal side. */
      nodeSends: (message: string) => {
        const hop = nextHop(nodeSide);
        if (hop !== INTERNAL_SIP.ip) failures.push(`LiveKit's next hop is ${hop}, not the edge`);
        return node.send(message, INTERNAL_SIP);
      },
      /** The carrier sends where its dialog says: the edge's carrier side. */
      carrierSends: (message: string) => {
        const hop = nextHop(carrierSide);
        if (hop !== carrierSip().ip) failures.push(`the carrier's next hop is ${hop}, not the edge`);
        return carrier.send(message, carrierSip());
      },
    };
    if (options.answer === false) return call;
    await node.send(reply('200 OK', options.answerSdp ?? sdp(NODE.ip, 42000)), atNode.from);
    const answered = await carrier.waitFor((d) => statusOf(d.text) === 200 && d.text.includes(callId), 5000);
    if (!answered) throw new Error(`${callId}: the carrier never got the 200`);
    carrierSide.remoteTarget = uriOf(headerOf(answered.text, 'Contact'));
    carrierSide.routeSet = headerValues(answered.text, 'Record-Route').reverse();
    carrierSide.remote = headerOf(answered.text, 'To');
    return call;
  }
  type Call = Awaited<ReturnType<typeof openCall>>;

  const carrierVia = () => ({ address: carrier.address, branch: 'z9hG4bKcr' });
  const nodeVia = () => ({ address: NODE, branch: 'z9hG4bKlk' });

  /** Waits for a message at `peer` for this call; a failure (not a throw) when it does not come. */
  async function expectAt(call: Call, peer: UdpPeer, what: string, match: (text: string) => boolean) {
    const found = await peer.waitFor((d) => d.text.includes(call.callId) && match(d.text), 5000);
    if (!found) call.failures.push(`${what} never arrived`);
    return found;
  }

  /**
   * One SDP refusal for `callId`: its own counter moved, RTPEngine's did not, and the call's one log line a metric
   * filter counts is that refusal, naming the side it came from.
   */
  async function expectSdpRefused(before: Snapshot, callId: string, side: 'carrier' | 'LiveKit', what: string) {
    const moved = async (counter: string) => ((await edge.counters())[counter] ?? 0) - (before.counters[counter] ?? 0);
    const deadline = Date.now() + 5000;
    while ((await moved('sdpRefusals')) < 1 && Date.now() < deadline) await sleep(100);
    expect(await moved('sdpRefusals'), what).toBe(1);
    expect(await moved('mediaAnchorFailures'), what).toBe(0);
    const counted = edge.countedLogEvents(callId).slice(before.logged);
    expect(
      counted.map(({ events }) => events),
      what,
    ).toEqual([['sdpRefusals']]);
    expect(counted[0].line, what).toContain(` from ${side} `);
  }

  /** The edge's counters, and how many counted log lines name `callId` so far. */
  interface Snapshot {
    readonly counters: Record<string, number>;
    readonly logged: number;
  }
  const snapshot = async (callId?: string): Promise<Snapshot> => ({
    counters: await edge.counters(),
    logged: callId ? edge.countedLogEvents(callId).length : 0,
  });

  async function carrierAcks(call: Call) {
    await call.carrierSends(inDialog('ACK', call.carrierSide, call.callId, carrierVia()));
    await expectAt(call, node, 'the ACK at LiveKit', (t) => t.startsWith('ACK '));
  }

  async function carrierHangsUp(call: Call) {
    await call.carrierSends(inDialog('BYE', call.carrierSide, call.callId, carrierVia()));
    const bye = await expectAt(call, node, "the carrier's BYE at LiveKit", (t) => t.startsWith('BYE '));
    if (bye) await call.nodeSends(replyTo(bye.text, '200 OK'));
    await expectAt(
      call,
      carrier,
      'the 200 for BYE at the carrier',
      (t) => statusOf(t) === 200 && /BYE/.test(cseqOf(t)),
    );
  }

  async function nodeHangsUp(call: Call, extraVias: string[] = []) {
    const bye = inDialog('BYE', call.nodeSide, call.callId, nodeVia()).replace(
      /^(Via: .*\r\n)/m,
      `$1${extraVias.map((via) => `${via}\r\n`).join('')}`,
    );
    await call.nodeSends(bye);
    const atCarrier = await expectAt(call, carrier, "LiveKit's BYE at the carrier", (t) => t.startsWith('BYE '));
    if (atCarrier) await call.carrierSends(replyTo(atCarrier.text, '200 OK'));
    await expectAt(call, node, 'the 200 for BYE at LiveKit', (t) => statusOf(t) === 200 && /BYE/.test(cseqOf(t)));
  }

  function record(name: string, call: Call): ClassResult {
    const { carrier: atCarrier, livekit: atLiveKit } = call.seen();
    const result = {
      carrier: sight(atCarrier, LIVEKIT_SIDE, false),
      livekit: sight(atLiveKit, CARRIER_SIDE, true),
      failures: call.failures,
    };
    results[name] = result;
    return result;
  }

  /**
   * Neither side sees the other in the clear with either module (asserted for both). topos shows neither side
   * anything of the other's, and every class works; topoh shows each side the other's routing headers masked, and
   * loses what the carrier sends to the Contact.
   */
  function verify(name: string, call: Call): ClassResult {
    const result = record(name, call);
    expect(result.carrier.plain, name).toEqual([]);
    expect(result.livekit.plain, name).toEqual([]);
    if (module === 'topos') {
      expect(result.carrier.masked, name).toEqual([]);
      expect(result.livekit.masked, name).toEqual([]);
      expect(result.failures, name).toEqual([]);
    } else {
      expect(result.carrier.masked, name).toEqual(expect.arrayContaining(['Record-Route', 'Contact']));
      expect(result.livekit.masked, name).toEqual(expect.arrayContaining(['Record-Route', 'Via', 'Contact']));
      expect(result.failures, name).toEqual(TOPOH_FAILURES[name] ?? []);
    }
    return result;
  }

  /** Vias of proxies on one side's path, each naming that side (its branch prefix). */
  const farVias = (count: number, host: (i: number) => string, branch: string) =>
    Array.from({ length: count }, (_, i) => `Via: SIP/2.0/UDP ${host(i)}:5060;branch=${branch}far${i}`);

  it('the carrier hangs up', async () => {
    const call = await openCall();
    await carrierAcks(call);
    await carrierHangsUp(call);
    verify('carrier hangs up', call);
    // The double Record-Route (one entry per socket): topos shows the carrier none; topoh masks the internal entry and
    // leaves the carrier-side one, which is what the carrier's in-dialog requests follow.
    const answerAtCarrier = call.seen().carrier.find((m) => statusOf(m) === 200 && /INVITE/.test(cseqOf(m))) ?? '';
    expect(headerValues(answerAtCarrier, 'Record-Route')).toEqual(
      module === 'topos' ? [] : [expect.stringMatching(/^<sip:192\.0\.2\.8;line=sr-/), '<sip:127.0.0.1;r2=on;lr>'],
    );
    if (module === 'topoh') {
      // Masking is a keyed shuffle of the base64 alphabet, the same for every message: the internal Record-Route the
      // carrier gets (sip:127.0.1.1;r2=on;lr) and the carrier-side one LiveKit gets (sip:127.0.0.1;r2=on;lr) differ
      // in one character, and so do their masks, in one symbol.
      const maskedRoute = (messages: string[]) =>
        messages.flatMap((m) => headerValues(m, 'Record-Route')).find((value) => value.includes(TOPOH_MASK.ip)) ?? '';
      const { carrier: atCarrier, livekit: atLiveKit } = call.seen();
      const internal = maskedRoute(atCarrier);
      const carrierSide = maskedRoute(atLiveKit);
      expect(internal).toMatch(/^<sip:192\.0\.2\.8;line=sr-/);
      expect(internal.length).toBe(carrierSide.length);
      expect([...internal].filter((symbol, i) => symbol !== carrierSide[i])).toHaveLength(1);
    }
  });

  it('LiveKit hangs up', async () => {
    const call = await openCall();
    await carrierAcks(call);
    await nodeHangsUp(call);
    verify('LiveKit hangs up', call);
  });

  it('a huge Via set, either way (as many as the bounds admit)', async () => {
    // 8 Vias (the sender's and 7 proxies'), the most a request may carry; its answer also carries the edge's.
    const call = await openCall({ extraVias: farVias(7, (i) => `127.0.3.${100 + i}`, 'z9hG4bKcr') });
    await carrierAcks(call);
    await nodeHangsUp(
      call,
      farVias(7, (i) => `127.0.2.${100 + i}`, 'z9hG4bKlk'),
    );
    const result = verify('huge Via set', call);
    // The INVITE's 8 Vias and the BYE's 8, plus the edge's own.
    const shown = module === 'topos' ? 1 : 9;
    expect(result.livekit.requestVias).toBe(shown);
    expect(result.carrier.requestVias).toBe(shown);
  });

  it('LiveKit re-INVITEs (new SDP), the carrier answers', async () => {
    const call = await openCall();
    await carrierAcks(call);
    const contact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
    await call.nodeSends(inDialog('INVITE', call.nodeSide, call.callId, nodeVia(), [contact], sdp(NODE.ip, 42002)));
    const reinvite = await expectAt(call, carrier, 're-INVITE at the carrier', (t) => t.startsWith('INVITE '));
    if (reinvite) {
      const carrierContact = `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`;
      await call.carrierSends(replyTo(reinvite.text, '200 OK', [carrierContact], sdp(CARRIER_IP, 41002)));
    }
    const answer = await expectAt(
      call,
      node,
      'the 200 for re-INVITE at LiveKit',
      (t) => statusOf(t) === 200 && /INVITE/.test(cseqOf(t)),
    );
    if (answer) await call.nodeSends(inDialog('ACK', call.nodeSide, call.callId, nodeVia()));
    await expectAt(call, carrier, 'the ACK for re-INVITE at the carrier', (t) => t.startsWith('ACK '));
    await carrierHangsUp(call);
    verify('re-INVITE from LiveKit', call);
  });

  it('the carrier re-INVITEs (new SDP), LiveKit answers', async () => {
    const call = await openCall();
    await carrierAcks(call);
    const contact = `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`;
    await call.carrierSends(
      inDialog('INVITE', call.carrierSide, call.callId, carrierVia(), [contact], sdp(CARRIER_IP, 41004)),
    );
    const reinvite = await expectAt(call, node, 're-INVITE at LiveKit', (t) => /^CSeq: 2 INVITE/m.test(t));
    if (reinvite) {
      const nodeContact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
      await call.nodeSends(replyTo(reinvite.text, '200 OK', [nodeContact], sdp(NODE.ip, 42004)));
    }
    const answer = await expectAt(
      call,
      carrier,
      'the 200 for re-INVITE at the carrier',
      (t) => /2 INVITE/.test(cseqOf(t)) && statusOf(t) === 200,
    );
    if (answer) await call.carrierSends(inDialog('ACK', call.carrierSide, call.callId, carrierVia()));
    await expectAt(
      call,
      node,
      'the ACK for re-INVITE at LiveKit',
      (t) => t.startsWith('ACK ') && /2 ACK/.test(cseqOf(t)),
    );
    await nodeHangsUp(call);
    verify('re-INVITE from the carrier', call);
  });

  it('LiveKit transfers the call (REFER), the carrier reports progress (NOTIFY)', async () => {
    const call = await openCall();
    await carrierAcks(call);
    const contact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
    await call.nodeSends(
      inDialog('REFER', call.nodeSide, call.callId, nodeVia(), [
        contact,
        'Refer-To: <sip:+15550100200@carrier.example>',
      ]),
    );
    const refer = await expectAt(call, carrier, 'REFER at the carrier', (t) => t.startsWith('REFER '));
    if (refer) {
      const carrierContact = `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`;
      await call.carrierSends(replyTo(refer.text, '202 Accepted', [carrierContact]));
    }
    await expectAt(call, node, 'the 202 at LiveKit', (t) => statusOf(t) === 202);
    const sipfrag = 'SIP/2.0 200 OK\r\n';
    const notify = inDialog('NOTIFY', call.carrierSide, call.callId, carrierVia(), [
      'Event: refer',
      'Subscription-State: terminated;reason=noresource',
      `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`,
      'Content-Type: message/sipfrag',
    ]).replace(/Content-Length: 0\r\n\r\n$/, `Content-Length: ${sipfrag.length}\r\n\r\n${sipfrag}`);
    await call.carrierSends(notify);
    const atNode = await expectAt(call, node, 'NOTIFY at LiveKit', (t) => t.startsWith('NOTIFY '));
    if (atNode) await call.nodeSends(replyTo(atNode.text, '200 OK'));
    await expectAt(
      call,
      carrier,
      'the 200 for NOTIFY at the carrier',
      (t) => statusOf(t) === 200 && /NOTIFY/.test(cseqOf(t)),
    );
    await nodeHangsUp(call);
    verify('REFER', call);
  });

  it('the carrier CANCELs while LiveKit rings', async () => {
    const call = await openCall({ answer: false });
    await call.nodeSends(call.reply('180 Ringing'));
    await expectAt(call, carrier, '180 at the carrier', (t) => statusOf(t) === 180);
    const cancel = call.invite
      .split('\r\n\r\n')[0]
      .replace(/^INVITE /, 'CANCEL ')
      .replace('CSeq: 1 INVITE', 'CSeq: 1 CANCEL')
      .split('\r\n')
      .filter((line) => !/^(Contact|Content-Type|Content-Length):/.test(line))
      .concat(['Content-Length: 0', '', ''])
      .join('\r\n');
    // CANCEL and the ACK for the 487 go where the INVITE went (no dialog to route by).
    await carrier.send(cancel, carrierSip());
    const atNode = await expectAt(call, node, 'CANCEL at LiveKit', (t) => t.startsWith('CANCEL '));
    if (atNode) {
      await call.nodeSends(replyTo(atNode.text, '200 OK'));
      await call.nodeSends(call.reply('487 Request Terminated'));
    }
    const terminated = await expectAt(call, carrier, '487 at the carrier', (t) => statusOf(t) === 487);
    if (terminated) {
      const ack = cancel
        .replace(/^CANCEL /, 'ACK ')
        .replace('CSeq: 1 CANCEL', 'CSeq: 1 ACK')
        .replace(/^To: .*$/m, `To: ${headerOf(terminated.text, 'To')}`);
      await carrier.send(ack, carrierSip());
    }
    await expectAt(call, node, "the edge's ACK for 487 at LiveKit", (t) => t.startsWith('ACK '));
    verify('CANCEL', call);
  });

  it("drops LiveKit's 2xx retransmitted after its transaction ended", async () => {
    const call = await openCall();
    const answeredAt = Date.now();
    await carrierAcks(call);
    await carrierHangsUp(call);
    // While it lives, the INVITE transaction relays a 2xx retransmission (statefully, hidden); after it, nothing may.
    await sleep(Math.max(0, answeredAt + 13_000 - Date.now()));
    const before = await edge.counters();
    const answers = (peer: UdpPeer, status: number) =>
      peer.received.filter((d) => d.text.includes(call.callId) && statusOf(d.text) === status).length;
    const carrierAnswers = answers(carrier, 200);
    // LiveKit retransmits its 2xx long after the call (the edge's INVITE transaction is gone).
    await node.send(call.reply('200 OK', sdp(NODE.ip, 42000)), call.atNode.from);
    await sleep(1000);
    if (answers(carrier, 200) !== carrierAnswers) call.failures.push("LiveKit's late 2xx reached the carrier");
    if ((await edge.counters()).strayReplies - (before.strayReplies ?? 0) !== 1)
      call.failures.push('the late 2xx was not counted as stray');
    verify('transaction-less reply', call);
  });

  it('the carrier ignores Record-Route and ACKs (and hangs up) to the Contact', async () => {
    const call = await openCall();
    const direct = { ...call.carrierSide, routeSet: [] };
    const target = hostOf(direct.remoteTarget);
    if (target !== carrierSip().ip)
      call.failures.push(`the Contact names ${target}, not the edge: ACK and BYE to it go nowhere`);
    // Delivered to the edge regardless: can it route them without the Route set?
    await carrier.send(inDialog('ACK', direct, call.callId, carrierVia()), carrierSip());
    await expectAt(call, node, 'the ACK (to the Contact) at LiveKit', (t) => t.startsWith('ACK '));
    await carrier.send(inDialog('BYE', direct, call.callId, carrierVia()), carrierSip());
    const bye = await expectAt(call, node, 'the BYE (to the Contact) at LiveKit', (t) => t.startsWith('BYE '));
    if (bye) await call.nodeSends(replyTo(bye.text, '200 OK'));
    else await nodeHangsUp(call);
    verify('carrier ACK to the Contact', call);
  });

  it('refuses in-dialog requests from the carrier whose next hop is no LiveKit node', async () => {
    const victim = await UdpPeer.open(NOT_A_NODE.ip, NOT_A_NODE.port);
    // A real node's address, another port: matched by address alone, this passed.
    const sameHost = await UdpPeer.open(NODE.ip, NODE_OTHER_PORT);
    try {
      const call = await openCall();
      await carrierAcks(call);
      const before = await edge.counters();
      // The edge's own two Route entries (its double Record-Route, carrier side first), then wherever the forger likes.
      const edgeRoutes = [
        `<sip:${carrierSip().ip}:${carrierSip().port};r2=on;lr>`,
        `<sip:${INTERNAL_SIP.ip}:${INTERNAL_SIP.port};r2=on;lr>`,
      ];
      const victimUri = `sip:victim@${NOT_A_NODE.ip}:${NOT_A_NODE.port}`;
      const nodeUri = `sip:lk-node@${NODE.ip}:${NODE.port}`;
      const forgeries = [
        { method: 'BYE', target: victimUri, routes: edgeRoutes },
        { method: 'INVITE', target: victimUri, routes: edgeRoutes, body: sdp(CARRIER_IP, 41100) },
        { method: 'INFO', target: victimUri, routes: edgeRoutes },
        { method: 'ACK', target: victimUri, routes: edgeRoutes },
        // A real node in the Request-URI, the victim in a Route after the edge's: the next hop is the Route.
        { method: 'BYE', target: nodeUri, routes: [...edgeRoutes, `<sip:${NOT_A_NODE.ip}:${NOT_A_NODE.port};lr>`] },
        // A host name: refused without a lookup (nodes are addresses).
        { method: 'BYE', target: 'sip:victim@livekit-node.invalid:5060', routes: edgeRoutes },
        { method: 'INFO', target: 'tel:+15550100100', routes: edgeRoutes },
        // The node's own address at another port, in the Request-URI or in a Route after the edge's.
        { method: 'BYE', target: `sip:lk-node@${NODE.ip}:${NODE_OTHER_PORT}`, routes: edgeRoutes },
        { method: 'BYE', target: nodeUri, routes: [...edgeRoutes, `<sip:${NODE.ip}:${NODE_OTHER_PORT};lr>`] },
        // No port and transport=tls: TLS's default, 5061, is no node's port.
        { method: 'BYE', target: `sip:lk-node@${NODE.ip};transport=tls`, routes: edgeRoutes },
        // Free text in the Route: logged, it must not read as other events to the metric filters.
        {
          method: 'BYE',
          target: nodeUri,
          routes: [...edgeRoutes, '<sip:livekit-node.invalid:5060;lr;note="pike flood from">'],
        },
      ];
      const loggedBefore = edge.countedLogEvents(call.callId).length;
      for (const { method, target, routes, body } of forgeries) {
        const side = { ...call.carrierSide, remoteTarget: target, routeSet: routes };
        const request = inDialog(method, side, call.callId, carrierVia(), [], body);
        call.carrierSide.cseq = side.cseq;
        await carrier.send(request, carrierSip());
        if (method === 'ACK') continue;
        const cseq = `${side.cseq} ${method}`;
        const refused = await carrier.waitFor(
          (d) => d.text.includes(call.callId) && cseqOf(d.text) === cseq && statusOf(d.text) !== 100,
          5000,
        );
        expect(refused && statusOf(refused.text), `the forged ${method}`).toBe(403);
      }
      const counted = async () => (await edge.counters()).foreignNextHops - (before.foreignNextHops ?? 0);
      const deadline = Date.now() + 5000;
      while ((await counted()) < forgeries.length && Date.now() < deadline) await sleep(100);
      expect(await counted()).toBe(forgeries.length);
      expect(
        edge
          .countedLogEvents(call.callId)
          .slice(loggedBefore)
          .map(({ events }) => events),
      ).toEqual(forgeries.map(() => ['foreignNextHops']));
      // Past tm's first retransmission (T1 = 500 ms): a relayed request would have arrived by now, twice.
      await sleep(1500);
      expect(victim.received.map((d) => d.text.split('\r\n')[0])).toEqual([]);
      expect(sameHost.received.map((d) => d.text.split('\r\n')[0])).toEqual([]);
      expect(node.received.filter((d) => d.text.includes(call.callId) && /^(BYE|INFO) /.test(d.text))).toEqual([]);
      // The call itself is untouched: its real BYE still goes through.
      await carrierHangsUp(call);
      expect(call.failures).toEqual([]);
    } finally {
      victim.close();
      sameHost.close();
    }
  });

  it("LiveKit's SDP reaches the carrier without its session name, origin user or tool, answer and re-INVITE", async () => {
    const call = await openCall({ answerSdp: revealingSdp(NODE.ip, 42010, 'LiveKit') });
    const answer = call.seen().carrier.find((m) => statusOf(m) === 200 && /1 INVITE/.test(cseqOf(m)));
    expectNeutralSdp(answer, 'the 200 at the carrier', 'LiveKit');
    await carrierAcks(call);
    // In-dialog offer from LiveKit (a re-INVITE with SDP, as on hold or a codec change).
    const contact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
    const offer = revealingSdp(NODE.ip, 42012, 'LiveKit', 2);
    await call.nodeSends(inDialog('INVITE', call.nodeSide, call.callId, nodeVia(), [contact], offer));
    const reinvite = await expectAt(call, carrier, 're-INVITE at the carrier', (t) => t.startsWith('INVITE '));
    expectNeutralSdp(reinvite?.text, 'the re-INVITE at the carrier', 'LiveKit');
    if (reinvite) {
      const carrierContact = `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`;
      const answer = revealingSdp(CARRIER_IP, 41012, 'AcmeSBC');
      await call.carrierSends(replyTo(reinvite.text, '200 OK', [carrierContact], answer));
    }
    const reanswer = await expectAt(call, node, 'the 200 for re-INVITE at LiveKit', (t) => statusOf(t) === 200);
    expectNeutralSdp(reanswer?.text, "the carrier's 200 for the re-INVITE at LiveKit", 'AcmeSBC');
    if (reanswer) await call.nodeSends(inDialog('ACK', call.nodeSide, call.callId, nodeVia()));
    await carrierHangsUp(call);
    expect(call.failures).toEqual([]);
  });

  it("the carrier's SDP reaches LiveKit without its SBC's session name, origin user or tool", async () => {
    const call = await openCall({ offer: revealingSdp(CARRIER_IP, 41020, 'AcmeSBC') });
    expectNeutralSdp(call.atNode.text, 'the INVITE at LiveKit', 'AcmeSBC');
    await carrierAcks(call);
    // The carrier's in-dialog offer is rewritten the same way.
    const contact = `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`;
    const offer = revealingSdp(CARRIER_IP, 41022, 'AcmeSBC', 2);
    await call.carrierSends(inDialog('INVITE', call.carrierSide, call.callId, carrierVia(), [contact], offer));
    const reinvite = await expectAt(call, node, 're-INVITE at LiveKit', (t) => /^CSeq: 2 INVITE/m.test(t));
    expectNeutralSdp(reinvite?.text, 'the re-INVITE at LiveKit', 'AcmeSBC');
    if (reinvite) {
      await call.nodeSends(
        replyTo(
          reinvite.text,
          '200 OK',
          [contact.replace(/<.*>/, `<sip:lk-node@${NODE.ip}:${NODE.port}>`)],
          sdp(NODE.ip, 42022),
        ),
      );
    }
    const reanswer = await expectAt(
      call,
      carrier,
      'the 200 for re-INVITE at the carrier',
      (t) => /2 INVITE/.test(cseqOf(t)) && statusOf(t) === 200,
    );
    if (reanswer) await call.carrierSends(inDialog('ACK', call.carrierSide, call.callId, carrierVia()));
    await nodeHangsUp(call);
    expect(call.failures).toEqual([]);
    // An offer with two s= lines: the call is refused (488), counted, and LiveKit never hears of it.
    const before = await snapshot();
    const twoNames = revealingSdp(CARRIER_IP, 41024, 'AcmeSBC').replace('s=AcmeSBC\r\n', 's=-\r\ns=AcmeSBC\r\n');
    const refused = await openCall({ offer: twoNames, answer: false }).catch((error: Error) => error);
    expect(String(refused)).toMatch(/never reached the LiveKit node/);
    const refusedCallId = /(leak-\S+):/.exec(String(refused))?.[1] ?? '';
    const answers = carrier.received.filter((d) => d.text.includes(refusedCallId) && statusOf(d.text) === 488);
    expect(answers.map((d) => d.text.split('\r\n')[0])).toEqual(['SIP/2.0 488 SDP Not Acceptable']);
    await expectSdpRefused(before, refusedCallId, 'carrier', 'two s= in a new call');
  });

  it('refuses and counts SDP from the carrier it cannot rewrite inside a call, its offer and its answer', async () => {
    const call = await openCall();
    await carrierAcks(call);
    const carrierContact = `Contact: <sip:carrier-contact@${CARRIER_IP}:${carrier.address.port}>`;
    // Its re-INVITE: no m= line (nothing to anchor), answered 488 by the edge, never at LiveKit.
    let before = await snapshot(call.callId);
    const noMedia = revealingSdp(CARRIER_IP, 41030, 'AcmeSBC', 2).replace(/^m=.*\r\n/m, '');
    await call.carrierSends(inDialog('INVITE', call.carrierSide, call.callId, carrierVia(), [carrierContact], noMedia));
    const refused = await expectAt(call, carrier, 'the refusal of the re-INVITE', (t) => statusOf(t) === 488);
    expect(refused?.text.split('\r\n')[0]).toBe('SIP/2.0 488 SDP Not Acceptable');
    await expectSdpRefused(before, call.callId, 'carrier', 'no m= in a re-INVITE');
    expect(call.seen().livekit.filter((m) => /^CSeq: 2 INVITE/m.test(m))).toEqual([]);
    // Its answer to LiveKit's re-INVITE, with an o= the rebuild does not take (IPv6): dropped, LiveKit never sees it.
    const nodeContact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
    await call.nodeSends(inDialog('INVITE', call.nodeSide, call.callId, nodeVia(), [nodeContact], sdp(NODE.ip, 42030)));
    const reinvite = await expectAt(call, carrier, 're-INVITE at the carrier', (t) => t.startsWith('INVITE '));
    before = await snapshot(call.callId);
    const badOrigin = revealingSdp(CARRIER_IP, 41032, 'AcmeSBC').replace(/^o=.*$/m, 'o=AcmeSBC 1 1 IN IP6 ::1');
    if (reinvite) await call.carrierSends(replyTo(reinvite.text, '200 OK', [carrierContact], badOrigin));
    await expectSdpRefused(before, call.callId, 'carrier', 'an IPv6 o= in the answer');
    await sleep(700);
    expect(call.seen().livekit.filter((m) => statusOf(m) === 200 && /INVITE/.test(cseqOf(m)))).toEqual([]);
    // The carrier gives up on it instead; LiveKit learns that, and only that.
    if (reinvite) await call.carrierSends(replyTo(reinvite.text, '488 Not Acceptable Here', [carrierContact]));
    await expectAt(call, node, '488 at LiveKit', (t) => statusOf(t) === 488);
    await carrierHangsUp(call);
    expect(call.failures).toEqual([]);
    expect(call.seen().livekit.join('\n')).not.toMatch(/AcmeSBC/);
  });

  it('drops and counts an SDP from LiveKit it cannot rewrite (each kind), under any label', async () => {
    const revealing = (port: number) => revealingSdp(NODE.ip, port, 'LiveKit');
    const hostile = [
      revealing(42030).replace('s=LiveKit\r\n', 's=-\r\ns=LiveKit\r\n'),
      revealing(42032).replace('s=LiveKit', `s=LiveKit${'x'.repeat(300)}`),
      revealing(42034).replace('c=IN IP4', `o=LiveKit 1 1 IN IP4 ${NODE.ip}\r\nc=IN IP4`),
      `${revealing(42036)}v=0\r\n`,
      revealing(42038).replace(/^o=LiveKit 4242 1 /m, 'o=LiveKit session 1 '),
      `${revealing(42040)}${'a=ptime:20\r\n'.repeat(50)}`,
      revealing(42042).replace(/^m=.*\r\n/m, ''),
    ];
    for (const body of hostile) {
      const call = await openCall({ answer: false });
      const before = await snapshot(call.callId);
      await call.nodeSends(call.reply('200 OK', body));
      await expectSdpRefused(before, call.callId, 'LiveKit', body);
      // Past a retransmission interval: a relayed answer would be there by now.
      await sleep(700);
      expect(
        call.seen().carrier.filter((m) => statusOf(m) === 200),
        body,
      ).toEqual([]);
      // The node gives up instead; the carrier learns that, and only that.
      await call.nodeSends(call.reply('486 Busy Here'));
      await expectAt(call, carrier, '486 at the carrier', (t) => statusOf(t) === 486);
      expect(call.failures, body).toEqual([]);
      expect(call.seen().carrier.join('\n')).not.toMatch(/LiveKit/);
    }
    // The same SDP under another label (no RTPEngine, no rebuild would touch it): dropped and counted just the same.
    // The label's parameters are the sender's free text: one spelling another event's phrase must not count as it.
    for (const label of ['text/plain', 'text/plain; note="pike flood from caller on the deny list"']) {
      const call = await openCall({ answer: false });
      const before = await snapshot(call.callId);
      const mislabelled = call
        .reply('200 OK', revealingSdp(NODE.ip, 42044, 'LiveKit'))
        .replace('Content-Type: application/sdp', `Content-Type: ${label}`);
      await call.nodeSends(mislabelled);
      await expectSdpRefused(before, call.callId, 'LiveKit', label);
      expect(edge.countedLogEvents(call.callId)[0].line, label).toContain('(content type text/plain)');
      await sleep(700);
      expect(
        call.seen().carrier.filter((m) => statusOf(m) === 200),
        label,
      ).toEqual([]);
      await call.nodeSends(call.reply('486 Busy Here'));
      await expectAt(call, carrier, '486 at the carrier', (t) => statusOf(t) === 486);
      expect(call.failures, label).toEqual([]);
      expect(call.seen().carrier.join('\n')).not.toMatch(/LiveKit|127\.0\.2\./);
    }
    // An in-dialog offer from LiveKit with two s= lines: refused back to LiveKit, nothing reaches the carrier.
    const call = await openCall();
    await carrierAcks(call);
    const before = await snapshot(call.callId);
    const contact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
    await call.nodeSends(inDialog('INVITE', call.nodeSide, call.callId, nodeVia(), [contact], hostile[0]));
    const refused = await expectAt(call, node, 'the refusal of the re-INVITE', (t) => statusOf(t) === 488);
    expect(refused, 'a 488 for the re-INVITE').toBeDefined();
    await expectSdpRefused(before, call.callId, 'LiveKit', 'two s= in a re-INVITE');
    expect(call.seen().carrier.filter((m) => m.startsWith('INVITE '))).toEqual([]);
    await carrierHangsUp(call);
    expect(call.failures).toEqual([]);
  });

  it('relays carrier in-dialog requests to a node whose Contact has no port (the transport default, 5060)', async () => {
    const hungUpByCarrier = await openCall({ nodeContact: `sip:lk-node@${NODE.ip}` });
    await carrierAcks(hungUpByCarrier);
    await carrierHangsUp(hungUpByCarrier);
    expect(hungUpByCarrier.failures).toEqual([]);
    const hungUpByNode = await openCall({ nodeContact: `sip:lk-node@${NODE.ip};transport=udp` });
    await carrierAcks(hungUpByNode);
    await nodeHangsUp(hungUpByNode);
    expect(hungUpByNode.failures).toEqual([]);
  });

  it('a draining node takes no new call, yet its calls hang up from either side', async () => {
    const nodeList = (...nodes: string[]) => {
      const run = spawnSync(join(dir, 'bin', 'edge-livekit-nodes.sh'), nodes, { encoding: 'utf8' });
      expect(run.status, run.stderr).toBe(0);
    };
    const nodeFlags = async (pattern: RegExp) => {
      const deadline = Date.now() + 30_000;
      while (!pattern.test(await edge.kamcmd('dispatcher.list'))) {
        if (Date.now() > deadline) throw new Error(`the node list never showed ${pattern}`);
        await sleep(200);
      }
    };
    const hungUpByCarrier = await openCall();
    await carrierAcks(hungUpByCarrier);
    const hungUpByNode = await openCall();
    await carrierAcks(hungUpByNode);
    try {
      // Not a valid argument: only a leading ~ marks a draining node.
      expect(spawnSync(join(dir, 'bin', 'edge-livekit-nodes.sh'), [`${NODE.ip}~:${NODE.port}`]).status).toBe(2);
      nodeList(`~${NODE.ip}:${NODE.port}`);
      // Disabled (D), not probed (X): pings cannot bring it back into the rotation.
      await nodeFlags(/FLAGS: DX/);
      await sleep(3000); // past a ping interval (2 s): still disabled
      expect(await edge.kamcmd('dispatcher.list')).toMatch(/FLAGS: DX/);

      const seen = carrier.received.length;
      const refused = await openCall({ answer: false }).catch((error: Error) => error);
      expect(String(refused)).toMatch(/never reached the LiveKit node/);
      const answers = carrier.received.slice(seen).filter((d) => / INVITE$/.test(cseqOf(d.text)));
      expect(answers.map((d) => d.text.split('\r\n')[0])).toContain('SIP/2.0 503 No LiveKit SIP node available');

      await carrierHangsUp(hungUpByCarrier);
      expect(hungUpByCarrier.failures).toEqual([]);
      await nodeHangsUp(hungUpByNode);
      expect(hungUpByNode.failures).toEqual([]);
    } finally {
      nodeList(`${NODE.ip}:${NODE.port}`);
      await nodeFlags(/FLAGS: AP/);
    }
  });
});
