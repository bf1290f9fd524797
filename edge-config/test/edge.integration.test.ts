/**
 * The rendered loopback edge against real processes: RTPEngine (userspace), Kamailio, sipp stand-ins for two
 * LiveKit SIP nodes and sipp carrier calls. Every process-backed edge test lives in this one file: they share
 * 127.0.0.1:5060 and must never run concurrently. Carrier calls come from 127.0.3.x (allowlisted), hostile traffic
 * from 127.0.4.x, a later-added carrier from 127.0.5.x.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  EdgeHarness,
  HANGS_UP_NUMBER,
  INTAKE_NUMBER,
  receivedInTrace,
  runSippCaller,
  StandIn,
  sendUdp,
  sipRequest,
} from '../harness/harness';
import {
  type Address,
  answerOptions,
  inDialogRequest,
  inviteRequest,
  mediaOf,
  replyTo,
  rtpTagged,
  sdp,
  sendRtp,
  statusOf,
  UdpPeer,
} from '../harness/raw-peer';
import { ackWaitSeconds, LIVEKIT_PROBING_THRESHOLD, renderAddressRows, renderCallerRows } from '../src/render';

const LOOPBACK = JSON.parse(readFileSync(resolve(__dirname, '..', 'examples', 'loopback.json'), 'utf8'));
/** Caller lists that none of the other tests' callers (+15550100…, +15550188…, +15550199…) are on. */
const CALLER_POLICY = { rejectAttestation: ['failed'], anonymous: 'allow', deny: ['+1555017*', '+15550166001'] };
const EXAMPLE = { ...LOOPBACK, edge: { ...LOOPBACK.edge, callerPolicy: CALLER_POLICY } };
const DIR = resolve(__dirname, '..', '.local', 'test');
const CARRIER = '127.0.3.1';

const edge = new EdgeHarness({ dir: DIR, input: EXAMPLE, probeFrom: CARRIER });
const standIns = EXAMPLE.livekitSip.destinations.map(
  (d: { host: string; port: number }, index: number) =>
    new StandIn({ ip: d.host, port: d.port, mediaPort: 40000 + index * 100, runDir: join(DIR, 'run') }),
) as StandIn[];
const callsDir = join(DIR, 'run', 'calls');
const carrierSip = () => edge.layout.carrierSip;
const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

/** The node sync's script on the host: replaces the LiveKit node list. */
const setLiveKitNodes = (...nodes: string[]) =>
  spawnSync(join(DIR, 'bin', 'edge-livekit-nodes.sh'), nodes, { encoding: 'utf8' });

/** An out-of-dialog OPTIONS from `peer` (its own address and port in Via and Contact). */
const optionsFrom = (peer: UdpPeer, to: Address) =>
  sipRequest('OPTIONS', peer.address.ip, to).replaceAll('{{LOCAL_PORT}}', String(peer.address.port));

/** Raw UDP peers a test opened; closed after each test. */
const peers: UdpPeer[] = [];
async function openPeer(ip: string): Promise<UdpPeer> {
  const peer = await UdpPeer.open(ip);
  peers.push(peer);
  return peer;
}
afterEach(() => {
  for (const peer of peers.splice(0)) peer.close();
});

async function options(from: string, headers: string[] = [], waitMs = 1000): Promise<string[]> {
  return sendUdp(sipRequest('OPTIONS', from, carrierSip(), headers), { from, to: carrierSip(), waitMs });
}

function invitesWithCallId(callId: string): string[] {
  return standIns.flatMap((standIn) => standIn.receivedInvites().filter((invite) => invite.includes(callId)));
}

async function waitForDispatcherActive(count: number): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const list = await edge.kamcmd('dispatcher.list');
    if ((list.match(/FLAGS: AP/g) ?? []).length >= count) return;
    if (Date.now() > deadline) throw new Error(`dispatcher never showed ${count} active nodes:\n${list}`);
    await new Promise((done) => setTimeout(done, 200));
  }
}

/** The dispatcher's flags for one node (AP active, TP trying, IP inactive; P: probed). */
async function dispatcherFlags(uri: string): Promise<string> {
  const list = await edge.kamcmd('dispatcher.list');
  const at = list.indexOf(`URI: ${uri}`);
  const flags = at < 0 ? undefined : /FLAGS: (\w+)/.exec(list.slice(at))?.[1];
  if (!flags) throw new Error(`${uri} is not in the dispatcher list:\n${list}`);
  return flags;
}

// Waits while another test file holds the loopback addresses (edge-config/harness/loopback-lock.ts).
beforeAll(async () => {
  await edge.start();
  for (const standIn of standIns) await standIn.start();
  await waitForDispatcherActive(2);
}, 25 * 60_000);

afterAll(async () => {
  for (const standIn of standIns) await standIn.stop().catch(() => undefined);
  await edge.stop();
});

describe('SIP edge on loopback (real kamailio, rtpengine, sipp)', () => {
  it('completes an allowlisted call with RTP anchored by RTPEngine on both sides', async () => {
    const before = (await edge.rtpengineTotals())['Total relayed packets'] ?? 0;
    const call = await runSippCaller(
      { scenario: 'uac-call-rtp.xml', from: CARRIER, to: carrierSip(), durationMs: 2500 },
      callsDir,
    );
    expect(call.exitCode, call.output).toBe(0);
    expect(call.successful).toBe(1);

    const [invite] = invitesWithCallId(call.callIds[0]);
    expect(invite, 'a stand-in received the INVITE').toBeDefined();
    const sdp = invite.slice(invite.indexOf('v=0'));
    expect(sdp).toMatch(/^c=IN IP4 127\.0\.1\.1$/m); // RTPEngine's LiveKit-side address
    expect(sdp).not.toContain('127.0.3.1'); // the carrier's media address never reaches LiveKit
    expect(sdp).not.toContain('127.0.0.1'); // nor the carrier-side (EIP) address

    const answer = call.messages.slice(call.messages.indexOf('SIP/2.0 200 OK'));
    expect(answer).toMatch(/^c=IN IP4 127\.0\.0\.1$/m); // the carrier is told RTPEngine's carrier-side address
    expect(answer.slice(0, answer.indexOf('m=audio'))).not.toMatch(/c=IN IP4 127\.0\.(1|2)\./);

    const after = (await edge.rtpengineTotals())['Total relayed packets'] ?? 0;
    expect(after - before).toBeGreaterThan(50);
  });

  it('hides each side from the other (topology hiding), whichever side hangs up', async () => {
    // Carrier side: edge 127.0.0.1 (the EIP on AWS), carrier 127.0.3.x. LiveKit side: edge 127.0.1.1, nodes 127.0.2.x.
    // From, To and Call-ID are the carrier's end-to-end identity (RFC 3261 §16.6: a proxy leaves them alone); what
    // routes and carries media (Request-URI, Via, Contact, Route, Record-Route, SDP) shows only the edge's side.
    const withoutIdentity = (message: string) =>
      message
        .split('\n')
        .filter((line) => !/^\s*(From|To|Call-ID|f|t|i)\s*:/i.test(line))
        .join('\n');
    const routingHeaders = (message: string) =>
      message
        .split('\n')
        .filter((line) => /^\s*(Via|v|Contact|m|Route|Record-Route)\s*:/i.test(line))
        .join('\n');
    const calls = [
      ['uac-call.xml', INTAKE_NUMBER],
      ['uac-call-hung-up.xml', HANGS_UP_NUMBER],
    ] as const;
    for (const [scenario, service] of calls) {
      const call = await runSippCaller({ scenario, service, from: '127.0.3.8', to: carrierSip() }, callsDir);
      expect(call.exitCode, `${scenario}: ${call.output}`).toBe(0);
      const [callId] = call.callIds;

      const atCarrier = receivedInTrace(call.messages);
      expect(atCarrier.some((m) => /^\s*SIP\/2\.0 200 /m.test(m))).toBe(true);
      for (const message of atCarrier) expect(message, scenario).not.toMatch(/127\.0\.[12]\./);
      expect(atCarrier.find((m) => /^\s*SIP\/2\.0 200 /m.test(m) && /^CSeq: 1 INVITE/m.test(m))).toMatch(
        /^Contact: <sip:[^@>]+@127\.0\.0\.1[:;>]/m,
      );

      const atLiveKit = standIns.flatMap((standIn) => standIn.receivedMessages()).filter((m) => m.includes(callId));
      expect(
        atLiveKit.some((m) => /^\s*INVITE sip:[^@]+@127\.0\.2\.[12]:5060/m.test(m)),
        'the Request-URI names the node',
      ).toBe(true);
      for (const message of atLiveKit) {
        expect(withoutIdentity(message), scenario).not.toContain('127.0.0.1'); // the EIP
        expect(routingHeaders(message), scenario).not.toContain('127.0.3.'); // the carrier's own hosts
      }
      expect(atLiveKit.find((m) => /^\s*INVITE /m.test(m))).toMatch(/^Contact: <sip:[^@>]+@127\.0\.1\.1[:;>]/m);
      // The ACK skips topos (no store work): the edge strips it itself to its own Via, without Contact or marker.
      const ack = atLiveKit.find((m) => /^\s*ACK /m.test(m));
      expect(ack, 'the ACK reached LiveKit').toBeDefined();
      expect(routingHeaders(ack!).split('\n').filter(Boolean), scenario).toEqual([
        expect.stringMatching(/^Via: SIP\/2\.0\/UDP 127\.0\.1\.1[:;]/),
      ]);
      expect(ack, scenario).not.toMatch(/^P-SR-/im);

      const carrierHungUp = service === INTAKE_NUMBER;
      const byeAtLiveKit = atLiveKit.some((m) => /^\s*BYE /m.test(m));
      if (carrierHungUp) expect(byeAtLiveKit, "the carrier's BYE reached LiveKit").toBe(true);
      else
        expect(
          atCarrier.some((m) => /^\s*BYE sip:carrier@127\.0\.3\.8/m.test(m)),
          "LiveKit's BYE reached the carrier",
        ).toBe(true);
    }
  });

  it('refuses calls rather than show the private side while its topology store is down, and takes them again once it is back', async () => {
    const pid = edge.kamailioPid;
    const from = '127.0.3.11';
    await edge.killToposStore();
    const refused = await runSippCaller(
      { scenario: 'uac-expect-503.xml', from, to: carrierSip(), timeoutSeconds: 10 },
      callsDir,
    );
    expect(refused.exitCode, refused.output).toBe(0);
    expect(invitesWithCallId(refused.callIds[0])).toEqual([]);
    expect(readFileSync(edge.kamailioLog, 'utf8')).toContain(
      `topology store unreachable, ${refused.callIds[0]} refused`,
    );

    await edge.startToposStore();
    const call = await runSippCaller({ scenario: 'uac-call.xml', from, to: carrierSip() }, callsDir);
    expect(call.exitCode, call.output).toBe(0);
    expect(receivedInTrace(call.messages).join('\n')).not.toMatch(/127\.0\.[12]\./);
    expect(edge.kamailioPid).toBe(pid);
  });

  it('never forwards anything from a source outside the allowlist (silent drop)', async () => {
    const hostile = '127.0.4.1';
    expect(await options(hostile)).toEqual([]);
    const call = await runSippCaller(
      { scenario: 'uac-call.xml', from: hostile, to: carrierSip(), timeoutSeconds: 4 },
      callsDir,
    );
    expect(call.exitCode).not.toBe(0);
    expect(call.successful).toBe(0);
    for (const standIn of standIns) expect(standIn.receivedMessages().join('\n')).not.toContain(hostile);
  });

  it('refuses REGISTER, drops scanners, and survives malformed messages', async () => {
    const pid = edge.kamailioPid;
    const from = '127.0.3.2';
    const register = await sendUdp(sipRequest('REGISTER', from, carrierSip()), { from, to: carrierSip() });
    expect(register[0]).toMatch(/^SIP\/2\.0 405 /);
    expect(register[0]).toMatch(/^Allow: .*INVITE/m);

    expect(await options(from, ['User-Agent: friendly-scanner'])).toEqual([]);
    expect(await options(from, ['User-Agent: sipvicious 0.3'])).toEqual([]);
    expect((await options(from, ['User-Agent: carrier-test']))[0]).toMatch(/^SIP\/2\.0 200 /);

    const valid = sipRequest('OPTIONS', from, carrierSip());
    const malformed = [
      Buffer.from([0x00, 0xff, 0x13, 0x37, 0x80, 0x0d, 0x0a, 0x0d, 0x0a]),
      'GARBAGE \x01\x02 not sip at all\r\n\r\n',
      valid.replace('Content-Length: 0', 'Content-Length: 4096'),
      valid.replace('Content-Length: 0', 'Content-Length: -5'),
      valid.replace(/^Via: .*\r\n/m, ''),
      valid.replace(/^CSeq: .*\r\n/m, ''),
      valid.replace(/^From: .*\r\n/m, ''),
      `INVITE sip:x@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP ${from}:9;branch=z9hG4bKx\r\nContent-Length: 10\r\n\r\nv=0`,
    ];
    for (const message of malformed) {
      const replies = await sendUdp(message, { from, to: carrierSip(), waitMs: 300 });
      expect(replies.filter((reply) => /^SIP\/2\.0 2/.test(reply))).toEqual([]);
    }

    const call = await runSippCaller({ scenario: 'uac-call.xml', from, to: carrierSip() }, callsDir);
    expect(call.exitCode, call.output).toBe(0);
    expect(edge.kamailioPid).toBe(pid);
    expect(() => process.kill(pid!, 0)).not.toThrow();
  });

  it('fails over to the second LiveKit node and answers 503 when none is up', async () => {
    const [first, second] = standIns;
    await first.stop();
    const calls = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.3.3', to: carrierSip(), calls: 3, rate: 5 },
      callsDir,
    );
    expect(calls.exitCode, calls.output).toBe(0);
    expect(calls.successful).toBe(3);
    for (const callId of calls.callIds)
      expect(second.receivedInvites().some((invite) => invite.includes(callId))).toBe(true);

    await second.stop();
    const refused = await runSippCaller(
      { scenario: 'uac-expect-503.xml', from: '127.0.3.3', to: carrierSip(), timeoutSeconds: 20 },
      callsDir,
    );
    expect(refused.exitCode, refused.output).toBe(0);
    expect(refused.messages).toMatch(/^SIP\/2\.0 503 No LiveKit SIP node available/m);

    await first.start();
    await second.start();
    await waitForDispatcherActive(2);
    const recovered = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.3.3', to: carrierSip(), calls: 2, rate: 5 },
      callsDir,
    );
    expect(recovered.exitCode, recovered.output).toBe(0);
  });

  it('keeps a node that missed a ping (a blip) in rotation; a dead one costs a call one timeout at most', async () => {
    const [first, second] = standIns;
    const firstUri = `sip:${first.options.ip}:${first.options.port}`;
    // Blip: the node stalls past one ping's timeout, then answers again. One missed ping used to make it inactive.
    const seen = new Set<string>();
    first.pause();
    try {
      const deadline = Date.now() + 30_000;
      while (!(seen.has('TP') || seen.has('IP')) && Date.now() < deadline) seen.add(await dispatcherFlags(firstUri));
    } finally {
      first.resume();
    }
    expect([...seen], 'a missed ping shows as trying').toContain('TP');
    for (let flags = ''; flags !== 'AP'; ) {
      flags = await dispatcherFlags(firstUri);
      seen.add(flags);
      await sleep(100);
    }
    expect(
      [...seen].filter((flags) => flags.startsWith('I')),
      'never inactive over a blip',
    ).toEqual([]);
    const calls = (count: number, rate: number) =>
      runSippCaller({ scenario: 'uac-call.xml', from: '127.0.3.3', to: carrierSip(), calls: count, rate }, callsDir);
    const afterBlip = await calls(4, 4);
    expect(afterBlip.exitCode, afterBlip.output).toBe(0);
    const reachedFirst = afterBlip.callIds.filter((callId) => first.receivedInvites().some((i) => i.includes(callId)));
    expect(reachedFirst.length).toBeGreaterThan(0);

    // Dead: every call still completes on the live node, none waits for the dead one more than once, and after
    // LIVEKIT_PROBING_THRESHOLD failures (calls or pings) calls go straight to the live node.
    await first.stop();
    const detours = (callId: string) =>
      readFileSync(edge.kamailioLog, 'utf8')
        .split('\n')
        .filter((line) => line.includes(`did not answer ${callId}`));
    const whileDying = await calls(6, 2);
    expect(whileDying.exitCode, whileDying.output).toBe(0);
    expect(whileDying.successful).toBe(6);
    for (const callId of whileDying.callIds) {
      expect(
        second.receivedInvites().some((invite) => invite.includes(callId)),
        callId,
      ).toBe(true);
      expect(detours(callId).length, callId).toBeLessThanOrEqual(1);
    }
    expect(whileDying.callIds.flatMap(detours).length).toBeLessThanOrEqual(LIVEKIT_PROBING_THRESHOLD);
    for (let flags = ''; !flags.startsWith('I'); await sleep(200)) flags = await dispatcherFlags(firstUri);
    const afterDeath = await calls(4, 4);
    expect(afterDeath.exitCode, afterDeath.output).toBe(0);
    expect(afterDeath.callIds.flatMap(detours)).toEqual([]);

    await first.start();
    await waitForDispatcherActive(2);
  });

  it('bans a flooding allowlisted source while another allowlisted carrier keeps calling', async () => {
    const flooder = '127.0.3.9';
    const flood = Array.from({ length: 800 }, () =>
      sendUdp(sipRequest('OPTIONS', flooder, carrierSip()), { from: flooder, to: carrierSip(), waitMs: 1500 }),
    );
    const answered = (await Promise.all(flood)).filter((replies) => replies.length > 0).length;
    expect(answered).toBeLessThan(800);
    const banned = (await edge.counters()).bannedDrops;
    expect(await options(flooder)).toEqual([]); // banned
    expect((await edge.counters()).bannedDrops).toBe(banned + 1);

    const call = await runSippCaller(
      { scenario: 'uac-call.xml', from: CARRIER, to: carrierSip(), calls: 3, rate: 5 },
      callsDir,
    );
    expect(call.exitCode, call.output).toBe(0);
    // The ban's length as a number (the config once printed the name of its define).
    expect(readFileSync(edge.kamailioLog, 'utf8')).toContain(`pike flood from ${flooder}`);
    const banLine = new RegExp(`pike flood from ${flooder}:\\d+, banned for ${EXAMPLE.edge.pike.banSeconds} s`);
    expect(readFileSync(edge.kamailioLog, 'utf8')).toMatch(banLine);
  });

  it('reloads the allowlist at runtime: same Kamailio, call in progress unaffected', async () => {
    const pid = edge.kamailioPid;
    const newCarrier = '127.0.5.1';
    expect(await options(newCarrier)).toEqual([]);

    const inProgress = runSippCaller(
      { scenario: 'uac-call-rtp.xml', from: '127.0.3.4', to: carrierSip(), durationMs: 6000 },
      callsDir,
    );
    await new Promise((done) => setTimeout(done, 1500));

    // What the SSM association does: rewrite the address table, then run the reload script.
    const carriers = ['127.0.3.0/24', '127.0.5.0/24'];
    writeFileSync(
      edge.layout.addressFile,
      `${readFileSync(edge.layout.addressFile, 'utf8').split('\n')[0]}\n${renderAddressRows(carriers, carriers)}\n`,
    );
    // The host's own reload script (what the SSM association runs), retries included.
    const reload = spawnSync(join(DIR, 'bin', 'edge-reload.sh'), { encoding: 'utf8' });
    expect(reload.status, reload.stderr).toBe(0);
    expect(await edge.kamcmd('permissions.subnetDump')).toContain('127.0.5.0');
    expect((await options(newCarrier))[0]).toMatch(/^SIP\/2\.0 200 /);
    const newCall = await runSippCaller({ scenario: 'uac-call.xml', from: newCarrier, to: carrierSip() }, callsDir);
    expect(newCall.exitCode, newCall.output).toBe(0);

    const old = await inProgress;
    expect(old.exitCode, old.output).toBe(0);
    expect(edge.kamailioPid).toBe(pid);
    expect(Number(readFileSync(edge.layout.kamailioPidFile, 'utf8'))).toBe(pid);
  });

  it('takes a new LiveKit node list at runtime (the node sync script): same Kamailio, calls in progress unaffected', async () => {
    const [first, second] = standIns;
    const pid = edge.kamailioPid;
    const script = join(DIR, 'bin', 'edge-livekit-nodes.sh');
    const setNodes = (...nodes: string[]) => spawnSync(script, nodes, { encoding: 'utf8' });
    const inProgress = runSippCaller(
      { scenario: 'uac-call-rtp.xml', from: '127.0.3.7', to: carrierSip(), durationMs: 6000 },
      callsDir,
    );
    await new Promise((done) => setTimeout(done, 1500));

    // The node sync lists a node that is going away as draining (~), never drops it while it may hold calls:
    // the call in progress may be on it, and its BYE must still find its next hop however slow this host is.
    expect(setNodes('~127.0.2.1', '127.0.2.2').status).toBe(0);
    const list = await edge.kamcmd('dispatcher.list');
    expect(list).toContain('sip:127.0.2.2:5060;transport=udp');
    expect(await dispatcherFlags('sip:127.0.2.1:5060;transport=udp')).toMatch(/^D/);
    const firstBefore = first.receivedInvites().length;
    const calls = await runSippCaller(
      { scenario: 'uac-call.xml', from: '127.0.3.6', to: carrierSip(), calls: 3, rate: 5 },
      callsDir,
    );
    expect(calls.exitCode, calls.output).toBe(0);
    for (const callId of calls.callIds)
      expect(second.receivedInvites().some((invite) => invite.includes(callId))).toBe(true);
    expect(first.receivedInvites().length).toBe(firstBefore);

    // Anything but an address is refused before the list is touched.
    const injected = setNodes('127.0.2.2:5060;transport=tcp');
    expect(injected.status).toBe(2);
    expect(injected.stderr).toContain('not an IPv4 address');
    expect(await edge.kamcmd('dispatcher.list')).toContain('sip:127.0.2.2:5060;transport=udp');

    const old = await inProgress;
    expect(old.exitCode, old.output).toBe(0);

    expect(setNodes().status).toBe(0);
    const emptied = await edge.kamcmd('dispatcher.list');
    expect(emptied).not.toContain('127.0.2.1');
    expect(emptied).not.toContain('127.0.2.2');
    const refused = await runSippCaller(
      { scenario: 'uac-expect-503.xml', from: '127.0.3.6', to: carrierSip(), timeoutSeconds: 20 },
      callsDir,
    );
    expect(refused.exitCode, refused.output).toBe(0);

    expect(setNodes('127.0.2.1:5060', '127.0.2.2').status).toBe(0);
    await waitForDispatcherActive(2);
    expect(edge.kamailioPid).toBe(pid);
  });

  // ----- fails closed: what the edge cannot check or rewrite is refused or dropped, and counted -----

  it('refuses what topos or LiveKit could not take, once, from its own address, before any media is held', async () => {
    const from = '127.0.3.20';
    const peer = await openPeer(from);
    const farVias = (count: number) =>
      Array.from({ length: count }, (_, i) => `Via: SIP/2.0/UDP 10.9.${i}.1:5060;branch=z9hG4bKfar${i}`);
    const pad = (bytes: number) => `X-Pad: ${'a'.repeat(bytes)}`;
    const headers = (count: number) => Array.from({ length: count }, (_, i) => `X-Header-${i}: ${i}`);
    const oversized = 'oversizedRefusals';
    const implausible = 'implausibleNumbers';
    const foreignMedia = 'foreignMediaAddresses';
    const offer = sdp(from, 41000);
    type Case = { name: string; invite: Partial<Parameters<typeof inviteRequest>[0]>; status: number; counter: string };
    const cases: Case[] = [
      { name: '40 Via headers', invite: { extraVias: farVias(40) }, status: 400, counter: oversized },
      { name: 'a 9 KB message', invite: { extraHeaders: [pad(9000)] }, status: 513, counter: oversized },
      { name: '80 headers', invite: { extraHeaders: headers(80) }, status: 400, counter: oversized },
      {
        name: '3.6 KB of Record-Route',
        invite: { extraHeaders: [1, 2, 3].map((i) => `Record-Route: <sip:${'r'.repeat(1200)}${i}@10.9.9.${i};lr>`) },
        status: 400,
        counter: oversized,
      },
      { name: 'no SDP offer', invite: { body: '' }, status: 488, counter: 'invitesWithoutOffer' },
      { name: 'escaped NULs as the number', invite: { number: '%00%00' }, status: 400, counter: implausible },
      { name: 'a word as the number', invite: { number: 'intake' }, status: 404, counter: implausible },
      { name: 'a tel: Request-URI', invite: { requestUri: 'tel:+15550100100' }, status: 416, counter: implausible },
      { name: 'a sips: URI', invite: { requestUri: `sips:${INTAKE_NUMBER}@edge` }, status: 416, counter: implausible },
      { name: 'foreign media', invite: { body: sdp('127.0.4.9', 41000) }, status: 488, counter: foreignMedia },
      { name: 'a 2nd c=', invite: { body: `${offer}c=IN IP4 127.0.4.9\r\n` }, status: 488, counter: foreignMedia },
      { name: 'IPv6 media', invite: { body: sdp(from, 41000, 'c=IN IP6 ::1') }, status: 488, counter: foreignMedia },
      // Free text in the c= line: the log line names no other event (each phrase is a CloudWatch metric).
      {
        name: 'a c= line spelling other events',
        invite: { body: sdp(from, 41000, 'c=IN IP4 127.0.3.20 pike flood from caller on the deny list') },
        status: 488,
        counter: foreignMedia,
      },
      // SDP the edge cannot rebuild as one session: its own count, never RTPEngine's (checked for every case below).
      ...[
        { name: 'a second s=', body: offer.replace('s=-\r\n', 's=-\r\ns=AcmeSBC\r\n') },
        { name: 'a second v=', body: `${offer}v=0\r\n` },
        { name: 'a second o=', body: offer.replace('t=0 0', `o=AcmeSBC 2 2 IN IP4 ${from}\r\nt=0 0`) },
        { name: 'an IPv6 o=', body: offer.replace(/^o=.*$/m, 'o=carrier 1 1 IN IP6 ::1') },
        { name: 'a 300-byte line', body: `${offer}a=label:${'x'.repeat(300)}\r\n` },
        // Over 64 lines, though every address in it is allowed.
        { name: '68 lines', body: `${offer}${'a=ptime:20\r\n'.repeat(60)}` },
        { name: 'no m=', body: offer.replace(/^m=.*\r\n/m, '') },
      ].map(({ name, body }) => ({ name, invite: { body }, status: 488, counter: 'sdpRefusals' })),
    ];
    for (const { name, invite, status, counter } of cases) {
      const before = await edge.counters();
      const call = inviteRequest({ from: peer.address, to: carrierSip(), body: offer, ...invite });
      await peer.send(call.invite, carrierSip());
      await peer.waitFor((d) => d.text.includes(call.callId) && (statusOf(d.text) ?? 0) >= 200, 3000);
      await sleep(1000); // anything else the edge would send for this request
      const replies = peer.received.filter((d) => d.text.includes(`Call-ID: ${call.callId}`));
      const statusLine = expect.stringMatching(new RegExp(`^SIP/2\\.0 ${status} `));
      expect(
        replies.map((d) => d.text.split('\r\n')[0]),
        name,
      ).toEqual([statusLine]);
      expect(replies[0].from, name).toEqual(carrierSip());
      expect(replies[0].text, name).not.toMatch(/127\.0\.[12]\./);
      expect(invitesWithCallId(call.callId), name).toEqual([]);
      expect(await edge.rtpengineStreams(call.callId), name).toEqual([]);
      const after = await edge.counters();
      expect(after[counter] - (before[counter] ?? 0), name).toBe(1);
      // Refused before RTPEngine saw it: no media anchor failed.
      expect(after.mediaAnchorFailures - (before.mediaAnchorFailures ?? 0), name).toBe(0);
      // Logged once, as this class alone: the metric filters count nothing else for it.
      expect(
        edge.countedLogEvents(call.callId).map(({ events }) => events),
        name,
      ).toEqual([[counter]]);
      if (counter === 'sdpRefusals')
        expect(edge.countedLogEvents(call.callId)[0].line, name).toContain(' from carrier ');
    }
    // topos never had to give up (it would have sent the message on unchanged).
    expect(readFileSync(edge.kamailioLog, 'utf8')).not.toMatch(/no more space to pack|failed to extract and pack/);
  });

  // ----- callers: attestation, spoofed caller headers, caller-number lists -----

  /** One call from `peer`: its final status and the INVITE LiveKit got (ACKed and hung up when answered). */
  async function placeCall(peer: UdpPeer, invite: Partial<Parameters<typeof inviteRequest>[0]>) {
    const call = inviteRequest({ from: peer.address, to: carrierSip(), body: sdp(peer.address.ip, 41000), ...invite });
    await peer.send(call.invite, carrierSip());
    const final = await peer.waitFor((d) => d.text.includes(call.callId) && (statusOf(d.text) ?? 0) >= 200, 5000);
    const status = final ? statusOf(final.text) : undefined;
    if (final && status === 200) {
      await peer.send(inDialogRequest('ACK', call, final.text, peer.address, 1), carrierSip());
      await peer.send(inDialogRequest('BYE', call, final.text, peer.address, 2), carrierSip());
      const byeAnswer = (d: { text: string }) => statusOf(d.text) === 200 && d.text.includes(call.callId);
      await peer.waitFor((d) => byeAnswer(d) && /CSeq: 2 BYE/.test(d.text), 5000);
    }
    const [atLiveKit] = invitesWithCallId(call.callId);
    const callerHeaders = (atLiveKit ?? '').split(/\r?\n/).filter((line) => /^\s*x-voice-intake-/i.test(line));
    return { call, status, atLiveKit, callerHeaders };
  }

  it('maps X-Twilio-VerStat to one level, refuses failed ones, never passes on spoofed headers', async () => {
    const peer = await openPeer('127.0.3.30');
    const caller = '+15550199000';
    const verstat = (value: string) => [`X-Twilio-VerStat: ${value}`];
    const passing: [string, string[], string][] = [
      ['A', verstat('TN-Validation-Passed-A'), 'A'],
      ['B', verstat('TN-Validation-Passed-B'), 'B'],
      ['C', verstat('TN-Validation-Passed-C'), 'C'],
      ['no validation', verstat('No-TN-Validation'), 'none'],
      ['no header', [], 'none'],
      ['an unknown letter', verstat('TN-Validation-Passed-D'), 'none'],
      ['a level with a tail', verstat('TN-Validation-Passed-A;x=1'), 'none'],
      // The carrier's caller may have put our headers in; each of ours arrives once, with the edge's value.
      ['spoofed (none)', ['X-Voice-Intake-Attestation: A', 'x-voice-intake-caller: +15550100001'], 'none'],
      [
        'spoofed (C)',
        [...verstat('TN-Validation-Passed-C'), 'X-VOICE-INTAKE-ATTESTATION:A', 'X-Voice-Intake-X: 1'],
        'C',
      ],
    ];
    for (const [name, extraHeaders, level] of passing) {
      const { status, callerHeaders } = await placeCall(peer, { extraHeaders, fromUser: caller });
      expect(status, name).toBe(200);
      const expected = [`X-Voice-Intake-Attestation: ${level}`, `X-Voice-Intake-Caller: ${caller}`];
      expect(callerHeaders.sort(), name).toEqual(expected);
    }
    const refused: [string, string[]][] = [
      ['failed', verstat('TN-Validation-Failed-A')],
      ['failed (any)', verstat('TN-Validation-Failed')],
      ['two verdicts', [...verstat('TN-Validation-Passed-A'), ...verstat('TN-Validation-Passed-A')]],
      ['failed, with our header forged', [...verstat('TN-Validation-Failed-B'), 'X-Voice-Intake-Attestation: A']],
    ];
    for (const [name, extraHeaders] of refused) {
      const before = await edge.counters();
      const { status, atLiveKit, call } = await placeCall(peer, { extraHeaders, fromUser: caller });
      expect(status, name).toBe(603);
      expect(atLiveKit, name).toBeUndefined();
      expect(await edge.rtpengineStreams(call.callId), name).toEqual([]);
      expect((await edge.counters()).attestationRefusals - (before.attestationRefusals ?? 0), name).toBe(1);
    }
    expect(readFileSync(edge.kamailioLog, 'utf8')).toContain('caller attestation refused (failed)');
  });

  it('refuses denied and unlisted callers (603), withheld ones by policy, lists reloaded at runtime', async () => {
    const peer = await openPeer('127.0.3.31');
    const pid = edge.kamailioPid;
    type Expectation = [string, Partial<Parameters<typeof inviteRequest>[0]>, number, string?];
    const check = async (cases: Expectation[]) => {
      for (const [name, invite, status, counterOrCaller] of cases) {
        const before = await edge.counters();
        const result = await placeCall(peer, invite);
        expect(result.status, name).toBe(status);
        if (status === 200) {
          expect(result.callerHeaders, name).toContain(`X-Voice-Intake-Caller: ${counterOrCaller}`);
        } else {
          expect(result.atLiveKit, name).toBeUndefined();
          const counter = counterOrCaller!;
          expect((await edge.counters())[counter] - (before[counter] ?? 0), name).toBe(1);
        }
      }
    };
    await check([
      ['a denied prefix', { fromUser: '+15550170123' }, 603, 'deniedCallers'],
      ['a denied number', { fromUser: '+15550166001' }, 603, 'deniedCallers'],
      ['a denied number, withheld', { fromUser: '+15550166001', extraHeaders: ['Privacy: id'] }, 603, 'deniedCallers'],
      ['a number next to a denied one', { fromUser: '+15550166002' }, 200, '+15550166002'],
      ['anonymous', { fromUser: 'anonymous' }, 200, 'anonymous'],
      ['withheld (Privacy: id)', { fromUser: '+15550166003', extraHeaders: ['Privacy: id'] }, 200, 'anonymous'],
      ['no + (not E.164)', { fromUser: '15550166003' }, 200, 'anonymous'],
    ]);

    // What the SSM association does: rewrite the caller table, then run the reload script. Here twice within one
    // second, each reloaded at once: db_text compares mtimes in whole seconds, so unless the reload script moves the
    // mtime on, the second list goes unseen and the first stays in force (the first reload must be the first script
    // run in 5 s: later ones wait out permissions' reload limit, and a late load sees the second list anyway).
    const original = readFileSync(edge.layout.callersFile, 'utf8');
    const reload = () => spawnSync(join(DIR, 'bin', 'edge-reload.sh'), { encoding: 'utf8' });
    try {
      while (Date.now() % 1000 > 100) await sleep(10);
      writeFileSync(edge.layout.callersFile, `${renderCallerRows({ deny: ['+15550199000'], anonymous: 'allow' })}\n`);
      expect(reload().status).toBe(0);
      const policy = { deny: ['+15550166002'], allow: ['+1555016*'], anonymous: 'reject' as const };
      writeFileSync(edge.layout.callersFile, `${renderCallerRows(policy)}\n`);
      const reloaded = reload();
      expect(reloaded.status, reloaded.stderr).toBe(0);
      expect(reloaded.stdout).toContain('caller lists reloaded');
      await check([
        ['newly denied, also allowed (deny wins)', { fromUser: '+15550166002' }, 603, 'deniedCallers'],
        ['allowed prefix', { fromUser: '+15550166004' }, 200, '+15550166004'],
        ['no longer denied, not allowed', { fromUser: '+15550170123' }, 603, 'unlistedCallers'],
        ['unlisted', { fromUser: '+15550199000' }, 603, 'unlistedCallers'],
        ['unlisted, withheld', { fromUser: '+15550199000', extraHeaders: ['Privacy: id'] }, 603, 'unlistedCallers'],
        ['anonymous', { fromUser: 'anonymous' }, 433, 'anonymousCallers'],
        ['allowed, withheld', { fromUser: '+15550166004', extraHeaders: ['Privacy: id'] }, 433, 'anonymousCallers'],
      ]);
    } finally {
      writeFileSync(edge.layout.callersFile, original);
      expect(reload().status).toBe(0);
    }
    expect(edge.kamailioPid).toBe(pid);
    await check([['the original lists again', { fromUser: '+15550199000' }, 200, '+15550199000']]);
  });

  it('answers a request it cannot relay with one final response only', async () => {
    // A tel: URI once got a 500 from the script and another final response from tm.
    const peer = await openPeer('127.0.3.24');
    for (const requestUri of ['tel:+15550100100', `tel:${INTAKE_NUMBER};phone-context=example.com`]) {
      const call = inviteRequest({ from: peer.address, to: carrierSip(), requestUri, body: sdp('127.0.3.24', 41000) });
      await peer.send(call.invite, carrierSip());
      await sleep(2500);
      const finals = peer.received.filter(
        (d) => d.text.includes(`Call-ID: ${call.callId}`) && (statusOf(d.text) ?? 0) >= 200,
      );
      expect(finals.length, requestUri).toBeGreaterThan(0);
      expect(new Set(finals.map((d) => d.text.split('\r\n')[0])).size, requestUri).toBe(1);
    }
  });

  it('frees the media of a call never ACKed, and drops 2xx retransmissions outliving their transaction', async () => {
    const from = '127.0.3.21';
    const peer = await openPeer(from);
    // Earlier tests' calls linger through RTPEngine's 5 s delete delay: start from no session at all.
    const idleBy = Date.now() + 15_000;
    while ((await edge.rtpengineSessions()) > 0 && Date.now() < idleBy) await sleep(200);
    expect(await edge.rtpengineSessions()).toBe(0);
    const before = await edge.counters();
    const call = inviteRequest({ from: peer.address, to: carrierSip(), body: sdp(from, 41000) });
    await peer.send(call.invite, carrierSip());
    const answered = await peer.waitFor((d) => statusOf(d.text) === 200 && d.text.includes(call.callId), 5000);
    expect(answered, 'the call was answered').toBeDefined();
    const answeredAt = Date.now();
    expect(await edge.rtpengineSessions()).toBe(1);
    expect((await edge.rtpengineStreams(call.callId)).length).toBeGreaterThan(0);

    // No ACK: the media must go within the failover timeout plus a few seconds (its ACK wait, the table's timer).
    const limitMs = EXAMPLE.edge.failoverTimeoutMs + 5000;
    let freedAfterMs: number | undefined;
    while (Date.now() - answeredAt < limitMs + 5000) {
      if ((await edge.rtpengineSessions()) === 0) {
        freedAfterMs = Date.now() - answeredAt;
        break;
      }
      await sleep(200);
    }
    expect(await edge.rtpengineStreams(call.callId)).toEqual([]);
    expect(freedAfterMs, 'RTPEngine still holds the call').toBeDefined();
    expect(freedAfterMs!).toBeLessThanOrEqual(limitMs);
    expect(ackWaitSeconds(EXAMPLE.edge.failoverTimeoutMs) * 1000).toBeLessThan(limitMs);

    // LiveKit keeps retransmitting its 2xx (the stand-in every 0.5, 1, 2, 4 s) long after the edge's transaction ended.
    await sleep(Math.max(0, answeredAt + 13_000 - Date.now()));
    const after = await edge.counters();
    expect(after.unconfirmedCalls - before.unconfirmedCalls).toBe(1);
    expect(after.strayReplies - before.strayReplies, 'late 2xx retransmissions were dropped').toBeGreaterThan(0);
    const atCarrier = peer.received.filter((d) => d.text.includes(call.callId));
    for (const datagram of atCarrier) {
      expect(datagram.from).toEqual(carrierSip());
      expect(datagram.text).not.toMatch(/127\.0\.[12]\./);
    }
    const answers = atCarrier.filter((d) => statusOf(d.text) === 200);
    for (const answer of answers) expect(mediaOf(answer.text)?.ip).toBe('127.0.0.1');
  });

  it('drops a reply that matches no transaction instead of relaying it statelessly (either side)', async () => {
    const from = '127.0.3.25';
    const peer = await openPeer(from);
    const livekitSide = await openPeer('127.0.2.1'); // where a stateless relay would send it
    const before = await edge.counters();
    const callId = `stray-${Date.now()}`;
    // Shaped like the carrier answering a request the edge sent it, with the next Via naming a LiveKit node.
    const stray = [
      'SIP/2.0 200 OK',
      'Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKstraystray1',
      `Via: SIP/2.0/UDP 127.0.2.1:${livekitSide.address.port};branch=z9hG4bKstraystray2`,
      `From: <sip:${INTAKE_NUMBER}@127.0.2.1>;tag=a1`,
      `To: <sip:carrier@${from}>;tag=b2`,
      `Call-ID: ${callId}`,
      'CSeq: 2 BYE',
      'Content-Length: 0',
      '',
      '',
    ].join('\r\n');
    await peer.send(stray, carrierSip());
    const after = await edge.countersAfter(before, { strayReplies: 1 });
    expect(livekitSide.received).toEqual([]);
    expect(after.strayReplies - before.strayReplies).toBe(1);
  });

  it('drops a reply over the bounds, or one topos could not restore (its store lost), never sends it on', async () => {
    // A LiveKit node played by a raw peer, so the test decides when it answers: after the topos store is gone.
    const node = await openPeer('127.0.2.5');
    answerOptions(node);
    const from = '127.0.3.27';
    const peer = await openPeer(from);
    try {
      expect(setLiveKitNodes(`127.0.2.5:${node.address.port}`).status).toBe(0);
      await waitForDispatcherActive(1);
      const before = await edge.counters();
      const call = inviteRequest({ from: peer.address, to: carrierSip(), body: sdp(from, 41000) });
      await peer.send(call.invite, carrierSip());
      const invite = await node.waitFor((d) => d.text.startsWith('INVITE ') && d.text.includes(call.callId), 5000);
      expect(invite, 'the node got the call').toBeDefined();
      // A 100 first: the call then waits for the node's answer (no failover while the test plays its replies).
      await node.send(replyTo(invite!.text, '100 Trying'), invite!.from);
      const contact = `Contact: <sip:livekit@127.0.2.5:${node.address.port}>`;
      const nodeSdp = sdp('127.0.2.5', 42000);
      const answer = (...extra: string[]) => replyTo(invite!.text, '200 OK', [contact, ...extra], nodeSdp);
      await node.send(answer(`X-Pad: ${'p'.repeat(9000)}`), invite!.from);
      const oversized = await edge.countersAfter(before, { oversizedRefusals: 1 });
      expect(oversized.oversizedRefusals - before.oversizedRefusals).toBe(1);

      await edge.killToposStore();
      await node.send(answer(), invite!.from);
      const unhidden = await edge.countersAfter(before, { topologyHidingFailures: 1 });
      expect(peer.received.filter((d) => statusOf(d.text) === 200)).toEqual([]);
      for (const datagram of peer.received) expect(datagram.text).not.toMatch(/127\.0\.[12]\./);
      expect(unhidden.topologyHidingFailures - before.topologyHidingFailures).toBe(1);
    } finally {
      await edge.startToposStore();
      expect(setLiveKitNodes('127.0.2.1', '127.0.2.2').status).toBe(0);
      await waitForDispatcherActive(2);
    }
  });

  it('takes media only from the negotiated peer, on both sides, whoever sends first', async () => {
    for (const carrierFirst of [true, false]) {
      const from = carrierFirst ? '127.0.3.22' : '127.0.3.26';
      const sip = await openPeer(from);
      const media = await openPeer(from);
      const hostile = await openPeer('127.0.4.22'); // outside mediaAllowlist
      const foreign = await openPeer('127.0.3.23'); // inside mediaAllowlist, but not this call's peer
      const strangerInside = await openPeer('127.0.2.9'); // on the LiveKit side, not the negotiated node
      const call = inviteRequest({ from: sip.address, to: carrierSip(), body: sdp(from, media.address.port) });
      await sip.send(call.invite, carrierSip());
      const answer = await sip.waitFor((d) => statusOf(d.text) === 200 && d.text.includes(call.callId), 5000);
      expect(answer).toBeDefined();
      await sip.send(inDialogRequest('ACK', call, answer!.text, sip.address, 1), carrierSip());
      const carrierAnchor = mediaOf(answer!.text)!;
      const [invite] = invitesWithCallId(call.callId);
      const internalAnchor: Address = { ip: '127.0.1.1', port: mediaOf(invite)!.port };
      expect(mediaOf(invite)!.ip).toBe('127.0.1.1');

      const attack = async () => {
        await sendRtp(hostile, carrierAnchor, 'HOSTILE', 25);
        await sendRtp(foreign, carrierAnchor, 'FOREIGN', 25);
        await sendRtp(hostile, internalAnchor, 'INJECTED', 25);
        await sendRtp(strangerInside, internalAnchor, 'INSIDER', 25);
      };
      if (!carrierFirst) await attack();
      await sendRtp(media, carrierAnchor, 'CARRIER-1', 25);
      if (carrierFirst) await attack();
      await sendRtp(media, carrierAnchor, 'CARRIER-2', 25);
      await sleep(500);

      const label = carrierFirst ? 'carrier sent first' : 'attacker sent first';
      // The stand-in echoes what reaches it: nothing of the attackers' comes back to anyone, the carrier's own
      // audio comes back to the carrier.
      for (const peer of [hostile, foreign, strangerInside]) expect(peer.received, label).toEqual([]);
      for (const tag of ['HOSTILE', 'FOREIGN', 'INJECTED', 'INSIDER']) {
        expect(rtpTagged(media, tag), `${label}: ${tag}`).toEqual([]);
      }
      expect(rtpTagged(media, 'CARRIER-1').length, label).toBeGreaterThan(15);
      expect(rtpTagged(media, 'CARRIER-2').length, label).toBeGreaterThan(15);
      // RTPEngine's own counters: every refused packet is an error on the stream it was aimed at.
      const streams = await edge.rtpengineStreams(call.callId);
      const carrierStream = streams.find((s) => s.local === `${carrierAnchor.ip}:${carrierAnchor.port}`)!;
      const internalStream = streams.find((s) => s.local === `${internalAnchor.ip}:${internalAnchor.port}`)!;
      expect(carrierStream.remote, label).toBe(`${from}:${media.address.port}`);
      expect(carrierStream.errors, label).toBe(50);
      expect(internalStream.errors, label).toBe(50);

      await sip.send(inDialogRequest('BYE', call, answer!.text, sip.address, 2), carrierSip());
      const byeAnswered = await sip.waitFor((d) => statusOf(d.text) === 200 && /CSeq: 2 BYE/.test(d.text), 5000);
      expect(byeAnswered, label).toBeDefined();
    }
    expect(readFileSync(join(edge.runDir, 'rtpengine.log'), 'utf8')).toContain('Drop due to strict-source attribute');
  });

  it('answers on the LiveKit side only the nodes of the current dispatcher set', async () => {
    const internal = edge.layout.internalSip;
    const stranger = await openPeer('127.0.2.9');
    const node = await openPeer('127.0.2.1'); // a node's address (another port: the node itself holds 5060)
    const before = await edge.counters();
    await stranger.send(optionsFrom(stranger, internal), internal);
    const invite = inviteRequest({ from: stranger.address, to: internal, body: sdp('127.0.2.9', 41000) });
    await stranger.send(invite.invite, internal);
    await node.send(optionsFrom(node, internal), internal);
    expect(await node.waitFor((d) => statusOf(d.text) === 200, 2000), 'a node is answered').toBeDefined();
    const strangers = await edge.countersAfter(before, { unknownLiveKitPeers: 2 });
    expect(stranger.received).toEqual([]);
    expect(strangers.unknownLiveKitPeers - before.unknownLiveKitPeers).toBe(2);

    // The set, not a fixed list: once the node sync drops 127.0.2.1, it is a stranger too.
    const setNodes = setLiveKitNodes;
    try {
      expect(setNodes('127.0.2.2').status).toBe(0);
      const answered = node.received.length;
      await node.send(optionsFrom(node, internal), internal);
      const dropped = await edge.countersAfter(before, { unknownLiveKitPeers: 3 });
      expect(node.received.length).toBe(answered);
      expect(dropped.unknownLiveKitPeers - before.unknownLiveKitPeers).toBe(3);
    } finally {
      expect(setNodes('127.0.2.1', '127.0.2.2').status).toBe(0);
      await waitForDispatcherActive(2);
    }
  });

  it('starts again cleanly over a crashed run (stale pid files, ports still held)', async () => {
    const crashed = edge.kamailioPid!;
    // A second harness on the same directory, as after a crash of the first runner: it must take over.
    const again = new EdgeHarness({ dir: DIR, input: EXAMPLE, probeFrom: CARRIER });
    await again.start();
    expect(again.kamailioPid).not.toBe(crashed);
    expect(() => process.kill(crashed, 0)).toThrow();
    expect((await options(CARRIER))[0]).toMatch(/^SIP\/2\.0 200 /);
    await again.stop();
  });
});
