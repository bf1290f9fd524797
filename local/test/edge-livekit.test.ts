/**
 * The edge against the real LiveKit SIP: sipp as the carrier (RFC 3261 scenarios from edge-config/harness/scenarios)
 * → Kamailio + RTPEngine + topos (the loopback render) → two LiveKit SIP v1.11.0 nodes → LiveKit Server v1.13.5,
 * with the trunk and dispatch rule from our provisioning code. One suite, serial: it holds the loopback example's
 * addresses (127.0.0.1:5060, 127.0.2.x:5060) for its whole run and ends every process it started, pass or fail.
 */
import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { dispose } from '@livekit/rtc-node';
import { CALLER_ATTRIBUTES, callerFromAttributes } from '@voice-intake/contracts';
import { EDGE_LOG_EVENTS } from '@voice-intake/edge-config';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSippCaller, type SippCallOptions, sendUdp } from '../../edge-config/harness/harness';
import { inDialogRequest, inviteRequest, sdp, statusOf, UdpPeer } from '../../edge-config/harness/raw-peer';
import { LiveKitStack, loopbackEdgeExample } from '../src/stack/livekit';
import { type CallAnswerer, callAnswererFor } from '../src/stack/room-member';
import { callTimelines } from '../src/stack/sip-trace';

const RUN_DIR = resolve(__dirname, '..', '.local', 'edge-livekit');
const CALLS_DIR = join(RUN_DIR, 'calls');

const EXAMPLE_EDGE = loopbackEdgeExample().edge as { ringTimeoutSeconds: number; livekitPingIntervalSeconds: number };
/** A number no trunk holds: LiveKit SIP rings and never answers (it logs "Rejecting inbound flood"). */
const UNPROVISIONED_NUMBER = '+15550100999';

const stack = new LiveKitStack({ runDir: RUN_DIR });
let answerer: CallAnswerer | undefined;

function kamailioLogLines(): string[] {
  return stack.edge ? readFileSync(stack.edge.kamailioLog, 'utf8').split('\n') : [];
}

/** The Call-IDs a LiveKit SIP node started processing (its own log: "processing invite", sipCallID). */
function invitesProcessedBy(node: LiveKitStack['sipNodes'][number]): Set<string> {
  const ids = new Set<string>();
  for (const line of node.log().split('\n')) {
    if (!line.includes('"processing invite"')) continue;
    const id = /"sipCallID":"([^"]+)"/.exec(line)?.[1];
    if (id) ids.add(id);
  }
  return ids;
}

function call(options: Partial<SippCallOptions> & Pick<SippCallOptions, 'scenario'>) {
  const edge = stack.edge;
  if (!edge) throw new Error('the suite runs with the edge');
  return runSippCaller(
    {
      from: stack.carrierAddress,
      to: edge.layout.carrierSip,
      service: stack.numbers[0],
      timeoutSeconds: 60,
      ...options,
    },
    CALLS_DIR,
  );
}

async function rtpengineSessions(): Promise<number> {
  return (await stack.edge?.rtpengineTotals())?.['Owned sessions'] ?? Number.NaN;
}

async function waitForNoMediaSessions(timeoutMs = 20_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  let sessions = await rtpengineSessions();
  while (sessions !== 0 && Date.now() < deadline) {
    await new Promise((done) => setTimeout(done, 200));
    sessions = await rtpengineSessions();
  }
  return sessions;
}

// Waits while another test file holds the loopback addresses, then starts everything (a minute or so).
beforeAll(async () => {
  await stack.start();
}, 25 * 60_000);

afterAll(async () => {
  await answerer?.stop().catch(() => undefined);
  await stack.stop();
  await dispose();
});

describe('edge → real LiveKit SIP on loopback', () => {
  it('a call is answered once a room member publishes audio, and media crosses the whole path', async () => {
    answerer = callAnswererFor(stack);
    answerer.start();
    try {
      const result = await call({ scenario: 'uac-call-rtp.xml', durationMs: 4000 });
      expect(result.exitCode, result.output).toBe(0);
      expect(result.successful).toBe(1);
      const members = [...answerer.members.values()];
      expect(members).toHaveLength(1);
      // The call's room comes from our dispatch rule: roomPrefix + caller.
      expect(members[0].roomName.startsWith(stack.livekit.roomPrefix)).toBe(true);
      // The caller's G.711 reached the room as audio (sipp plays a recorded voice).
      expect(members[0].heard.audibleFrames).toBeGreaterThan(50);
      // The answer went back through the edge: the carrier sees only the edge's carrier side.
      const answer = result.messages.slice(result.messages.indexOf('SIP/2.0 200 OK'));
      expect(answer).toMatch(/^c=IN IP4 127\.0\.0\.1$/m);
      expect(answer).not.toMatch(/127\.0\.2\.\d/);
      expect(await waitForNoMediaSessions()).toBe(0);
    } finally {
      await answerer.stop();
      answerer = undefined;
    }
  });
});

describe('the caller as the edge vouched for it', () => {
  it('reaches the room as SIP participant attributes, spoofed headers gone, refused calls never ringing', async () => {
    const edge = stack.edge;
    if (!edge) throw new Error('the suite runs with the edge');
    answerer = callAnswererFor(stack);
    answerer.start();
    const peer = await UdpPeer.open(stack.carrierAddress);
    try {
      const caller = '+15550123456';
      const call = inviteRequest({
        from: peer.address,
        to: edge.layout.carrierSip,
        number: stack.numbers[0],
        fromUser: caller,
        body: sdp(stack.carrierAddress, 36400),
        // What a caller could have smuggled past the carrier: our own headers, claiming full attestation.
        extraHeaders: [
          'X-Twilio-VerStat: TN-Validation-Passed-B',
          'X-Voice-Intake-Attestation: A',
          'X-Voice-Intake-Caller: +15550100001',
        ],
      });
      await peer.send(call.invite, edge.layout.carrierSip);
      const answer = await peer.waitFor((d) => statusOf(d.text) === 200 && d.text.includes(call.callId), 60_000);
      expect(answer, 'the call was answered').toBeDefined();
      await peer.send(inDialogRequest('ACK', call, answer!.text, peer.address, 1), edge.layout.carrierSip);

      // The SIP participant of this call (LiveKit SIP keeps the carrier's Call-ID in sip.callIDFull).
      const rooms = [...answerer.members.keys()];
      const participants = (await Promise.all(rooms.map((room) => stack.roomService.listParticipants(room)))).flat();
      const sipParticipant = participants.find((p) => p.attributes['sip.callIDFull'] === call.callId);
      expect(sipParticipant, JSON.stringify(participants.map((p) => p.attributes))).toBeDefined();
      expect(sipParticipant!.attributes[CALLER_ATTRIBUTES.attestation]).toBe('B');
      expect(sipParticipant!.attributes[CALLER_ATTRIBUTES.caller]).toBe(caller);
      expect(callerFromAttributes(sipParticipant!.attributes)).toEqual({ attestation: 'B', number: caller });

      await peer.send(inDialogRequest('BYE', call, answer!.text, peer.address, 2), edge.layout.carrierSip);
      await peer.waitFor((d) => statusOf(d.text) === 200 && /CSeq: 2 BYE/.test(d.text), 10_000);

      // A failed attestation never reaches LiveKit: no node processes it.
      const refused = inviteRequest({
        from: peer.address,
        to: edge.layout.carrierSip,
        number: stack.numbers[0],
        fromUser: caller,
        body: sdp(stack.carrierAddress, 36402),
        extraHeaders: ['X-Twilio-VerStat: TN-Validation-Failed-A'],
      });
      await peer.send(refused.invite, edge.layout.carrierSip);
      const isFinal = (d: { text: string }) => (statusOf(d.text) ?? 0) >= 200 && d.text.includes(refused.callId);
      const declined = await peer.waitFor(isFinal, 10_000);
      expect(declined && statusOf(declined.text)).toBe(603);
      for (const node of stack.sipNodes) expect(invitesProcessedBy(node).has(refused.callId)).toBe(false);
    } finally {
      peer.close();
      await answerer.stop();
      answerer = undefined;
    }
  });
});

describe('the trunk admits only the edge', () => {
  it('an INVITE straight to a LiveKit SIP node from a carrier address is not answered, makes no room', async () => {
    // Rooms of earlier calls linger until LiveKit's departure timeout: only new ones count.
    const earlierRooms = new Set((await stack.roomService.listRooms()).map((room) => room.name));
    const isNew = (name: string) => name.startsWith(stack.livekit.roomPrefix) && !earlierRooms.has(name);
    answerer = callAnswererFor(stack);
    answerer.start();
    try {
      const node = stack.sipNodes[0].spec;
      const callId = `bypass-${Date.now()}@${stack.carrierAddress}`;
      const sdp = [
        'v=0',
        `o=carrier 1 1 IN IP4 ${stack.carrierAddress}`,
        's=-',
        `c=IN IP4 ${stack.carrierAddress}`,
        't=0 0',
        'm=audio 36300 RTP/AVP 8',
        'a=rtpmap:8 PCMA/8000',
        '',
      ].join('\r\n');
      const invite = [
        `INVITE sip:${stack.numbers[0]}@${node.ip}:${node.port} SIP/2.0`,
        `Via: SIP/2.0/UDP ${stack.carrierAddress}:{{LOCAL_PORT}};branch=z9hG4bK${Date.now()}`,
        'Max-Forwards: 70',
        `From: <sip:+15550100777@${stack.carrierAddress}>;tag=bypass`,
        `To: <sip:${stack.numbers[0]}@${node.ip}>`,
        `Call-ID: ${callId}`,
        'CSeq: 1 INVITE',
        `Contact: <sip:carrier@${stack.carrierAddress}:{{LOCAL_PORT}}>`,
        'Content-Type: application/sdp',
        `Content-Length: ${Buffer.byteLength(sdp)}`,
        '',
        sdp,
      ].join('\r\n');
      const to = { ip: node.ip, port: node.port };
      const replies = await sendUdp(invite, { from: stack.carrierAddress, to, waitMs: 5000, collect: true });
      // The number is provisioned and a member would answer at once: only the source address is wrong.
      expect(replies.filter((reply) => /^SIP\/2\.0 2\d\d/.test(reply))).toEqual([]);
      expect([...answerer.members.keys()].filter(isNew)).toEqual([]);
      const rooms = await stack.roomService.listRooms();
      expect(rooms.map((room) => room.name).filter(isNew)).toEqual([]);
      const seen = stack.sipNodes[0]
        .log()
        .split('\n')
        .filter((line) => line.includes(callId));
      expect(seen.some((line) => line.includes('"status":486') || line.includes('"reason":"flood"'))).toBe(true);
    } finally {
      await answerer.stop();
      answerer = undefined;
    }
  });
});

describe('no call rings forever', () => {
  it('an unprovisioned number and an unanswered one ring edge.ringTimeoutSeconds, then 480, media freed', async () => {
    const ringTimeoutMs = EXAMPLE_EDGE.ringTimeoutSeconds * 1000;
    const countedBefore = kamailioLogLines().filter((line) => line.includes(EDGE_LOG_EVENTS.unansweredCalls)).length;
    // No room member publishes audio: the provisioned number rings as long as the unprovisioned one.
    const [unprovisioned, unanswered] = await Promise.all([
      call({ scenario: 'uac-expect-unanswered.xml', service: UNPROVISIONED_NUMBER, localPort: 5071, mediaPort: 36100 }),
      call({ scenario: 'uac-expect-unanswered.xml', localPort: 5072, mediaPort: 36200 }),
    ]);
    for (const result of [unprovisioned, unanswered]) {
      expect(result.exitCode, result.output).toBe(0);
      const [timeline] = callTimelines(result.messages);
      // LiveKit SIP took the call (it rang) …
      expect(timeline.ringingAfterMs).toBeDefined();
      // … and the carrier got the edge's final answer once the bound was reached, not minutes later.
      expect(timeline.final?.status).toBe(480);
      // Kamailio's timers tick every 1/16 s and may fire within a tick of the deadline.
      expect(timeline.final?.afterMs).toBeGreaterThanOrEqual(ringTimeoutMs - 250);
      expect(timeline.final?.afterMs).toBeLessThan(ringTimeoutMs + 5000);
      // Counted once per call, by the phrase the edge stack's metric filter matches.
      const event = kamailioLogLines().filter((line) => line.includes(EDGE_LOG_EVENTS.unansweredCalls));
      expect(event.filter((line) => line.includes(result.callIds[0]))).toHaveLength(1);
    }
    const counted = kamailioLogLines().filter((line) => line.includes(EDGE_LOG_EVENTS.unansweredCalls)).length;
    expect(counted - countedBefore).toBe(2);
    expect(await waitForNoMediaSessions()).toBe(0);
    // The node let the call go too (the edge's CANCEL), instead of holding its room for its own 3-minute timeout.
    const cancelled = (line: string) => line.includes(unanswered.callIds[0]) && line.includes('"reason":"cancelled"');
    const cancelledAtNode = () => stack.sipNodes.some((node) => node.log().split('\n').some(cancelled));
    const deadline = Date.now() + 10_000;
    while (!cancelledAtNode() && Date.now() < deadline) await new Promise((done) => setTimeout(done, 200));
    expect(cancelledAtNode()).toBe(true);
  });
});

describe('a dead LiveKit SIP node leaves the rotation', () => {
  it('is taken out after the probing threshold, stays out while it is down, and is used again once back', async () => {
    const [live, dead] = stack.sipNodes;
    const pingIntervalMs = EXAMPLE_EDGE.livekitPingIntervalSeconds * 1000;
    answerer = callAnswererFor(stack);
    answerer.start();
    try {
      await dead.kill();
      // An unanswered ping ends in a 408 Kamailio makes itself: that must not count as the node answering.
      await stack.waitForDispatcher([dead.spec], 'I', 30_000);
      const holdUntil = Date.now() + 3 * pingIntervalMs;
      while (Date.now() < holdUntil) {
        const states = await stack.dispatcherStates();
        const state = states[`${dead.spec.ip}:${dead.spec.port}`];
        expect(state, 'the dead node came back without answering').toMatch(/^I/);
        await new Promise((done) => setTimeout(done, 250));
      }

      const whileDown = await call({ scenario: 'uac-call.xml', calls: 4, rate: 2, durationMs: 500, localPort: 5073 });
      expect(whileDown.exitCode, whileDown.output).toBe(0);
      expect(whileDown.successful).toBe(4);
      // Every call went straight to the live node: none waited for the dead one and failed over.
      const onLive = invitesProcessedBy(live);
      for (const callId of whileDown.callIds) {
        expect(onLive.has(callId), `${callId} reached ${live.spec.ip}`).toBe(true);
        const detours = kamailioLogLines().filter(
          (line) => line.includes(callId) && (line.includes('failing over') || line.includes('did not answer')),
        );
        expect(detours).toEqual([]);
      }

      await dead.start();
      await stack.waitForDispatcher([dead.spec], 'A', 30_000);
      const afterRestart = await call({
        scenario: 'uac-call.xml',
        calls: 4,
        rate: 2,
        durationMs: 500,
        localPort: 5074,
      });
      expect(afterRestart.exitCode, afterRestart.output).toBe(0);
      expect(afterRestart.successful).toBe(4);
      const onRestarted = invitesProcessedBy(dead);
      expect(afterRestart.callIds.filter((callId) => onRestarted.has(callId)).length).toBeGreaterThan(0);
    } finally {
      await answerer.stop();
      answerer = undefined;
    }
  });
});
