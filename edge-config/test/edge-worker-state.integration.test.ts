/**
 * One Kamailio worker per socket, so every message meets whatever the previous one on that socket left in the process.
 * A reply the edge drops after matching it to its transaction (here: one whose Vias topos cannot restore) must not
 * leave that transaction set in the worker: tm would take the worker's next request as part of it — a new call failed
 * with 500 ("transaction already in process"), an ACK was swallowed ("negative or local ACK caught") and the caller's
 * call never confirmed.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeHarness } from '../harness/harness';
import {
  type Address,
  answerOptions,
  headerOf,
  headerValues,
  inDialogRequest,
  inviteRequest,
  replyTo,
  sdp,
  statusOf,
  UdpPeer,
  uriOf,
} from '../harness/raw-peer';

const LOOPBACK = JSON.parse(readFileSync(resolve(__dirname, '..', 'examples', 'loopback.json'), 'utf8'));
const CARRIER_IP = '127.0.3.41';
const NODE: Address = { ip: '127.0.2.1', port: 5060 };

describe('one Kamailio worker per socket: a dropped reply leaves nothing behind for the next request', () => {
  const input = {
    ...LOOPBACK,
    edge: {
      ...LOOPBACK.edge,
      kamailio: { ...LOOPBACK.edge.kamailio, workers: 1 },
      // No probe reply in between: the next message the worker sees is the test's.
      livekitPingIntervalSeconds: 300,
    },
    livekitSip: { destinations: [{ host: NODE.ip, port: NODE.port, transport: 'udp' }] },
  };
  const edge = new EdgeHarness({
    dir: resolve(__dirname, '..', '.local', 'test-worker-state'),
    input,
    probeFrom: CARRIER_IP,
  });
  let carrier: UdpPeer;
  let node: UdpPeer;

  beforeAll(async () => {
    await edge.start();
    node = await UdpPeer.open(NODE.ip, NODE.port);
    answerOptions(node);
    carrier = await UdpPeer.open(CARRIER_IP);
  }, 25 * 60_000);

  afterAll(async () => {
    carrier?.close();
    node?.close();
    await edge.stop();
  });

  /** Sends a new call from the carrier: the INVITE as the node got it, and any refusal the carrier got. */
  async function newCall() {
    const call = inviteRequest({ from: carrier.address, to: edge.layout.carrierSip, body: sdp(CARRIER_IP, 41000) });
    await carrier.send(call.invite, edge.layout.carrierSip);
    const atNode = await node.waitFor((d) => d.text.startsWith('INVITE ') && d.text.includes(call.callId), 5000);
    const refused = carrier.received.find((d) => d.text.includes(call.callId) && (statusOf(d.text) ?? 0) >= 300);
    return { call, atNode, refused };
  }

  /** A call the node answered and the carrier got the answer of (not yet ACKed). */
  async function answeredCall(tag: string) {
    const { call, atNode } = await newCall();
    if (!atNode) throw new Error(`${call.callId} never reached the node`);
    const nodeTo = `${headerOf(atNode.text, 'To')};tag=${tag}`;
    const contact = `Contact: <sip:lk-node@${NODE.ip}:${NODE.port}>`;
    const answer = replyTo(atNode.text, '200 OK', [contact], sdp(NODE.ip, 42000)).replace(/^To: .*$/m, `To: ${nodeTo}`);
    await node.send(answer, atNode.from);
    const atCarrier = await carrier.waitFor((d) => d.text.includes(call.callId) && statusOf(d.text) === 200, 5000);
    if (!atCarrier) throw new Error(`${call.callId}: the carrier never got the answer`);
    return { call, atNode, nodeTo, answer: atCarrier.text };
  }

  it('a carrier reply topos cannot restore is dropped; the worker then relays an ACK and takes a new call', async () => {
    const hungUp = await answeredCall('lknode1');
    // Answered, its ACK still to come: the first request the carrier-side worker gets after the drop.
    const confirming = await answeredCall('lknode2');

    // LiveKit hangs up the first: its BYE follows the route set the edge recorded, to the edge's Contact.
    const invite = hungUp.atNode.text;
    const bye = [
      `BYE ${uriOf(headerOf(invite, 'Contact'))} SIP/2.0`,
      `Via: SIP/2.0/UDP ${NODE.ip}:${NODE.port};branch=z9hG4bKlkbye1;rport`,
      ...headerValues(invite, 'Record-Route').map((route) => `Route: ${route}`),
      'Max-Forwards: 70',
      `From: ${hungUp.nodeTo}`,
      `To: ${headerOf(invite, 'From')}`,
      `Call-ID: ${hungUp.call.callId}`,
      'CSeq: 1 BYE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    await node.send(bye, hungUp.atNode.from);
    const atCarrier = await carrier.waitFor(
      (d) => d.text.startsWith('BYE ') && d.text.includes(hungUp.call.callId),
      5000,
    );
    expect(atCarrier, 'the BYE reached the carrier').toBeDefined();

    // The BYE's branch record is lost from the topology store (the other dialog's records stay): the carrier's 200
    // matches its transaction, but topos cannot restore LiveKit's Vias, so the edge drops it.
    const branch = /branch=([^;\s]+)/.exec(atCarrier!.text)![1];
    const deleted = execFileSync('redis-cli', ['-s', edge.layout.toposRedisSocket, 'DEL', `b:x:${branch}`], {
      encoding: 'utf8',
    });
    expect(deleted.trim(), 'the branch record existed').toBe('1');
    const before = await edge.counters();
    await carrier.send(replyTo(atCarrier!.text, '200 OK'), atCarrier!.from);
    const after = await edge.countersAfter(before, { topologyHidingFailures: 1 });
    expect(after.topologyHidingFailures - before.topologyHidingFailures).toBe(1);
    expect(after.strayReplies - before.strayReplies).toBe(0);
    expect(node.received.filter((d) => d.text.includes(hungUp.call.callId) && /^CSeq: 1 BYE/m.test(d.text))).toEqual(
      [],
    );

    // The same worker relays the other call's ACK to the node…
    const ack = inDialogRequest('ACK', confirming.call, confirming.answer, carrier.address, 1);
    await carrier.send(ack, edge.layout.carrierSip);
    const acked = await node.waitFor((d) => d.text.startsWith('ACK ') && d.text.includes(confirming.call.callId), 3000);
    expect(acked, 'the ACK reached the node').toBeDefined();
    // …and takes the carrier's next call.
    const next = await newCall();
    expect(next.refused?.text.split('\r\n')[0], 'the edge refused the next call').toBeUndefined();
    expect(next.atNode, 'the next call reached the node').toBeDefined();
  });
});
