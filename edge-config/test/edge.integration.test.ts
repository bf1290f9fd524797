/**
 * The rendered loopback edge against real processes: RTPEngine (userspace), Kamailio, sipp stand-ins for two
 * LiveKit SIP nodes and sipp carrier calls. Every process-backed edge test lives in this one file: they share
 * 127.0.0.1:5060 and must never run concurrently. Carrier calls come from 127.0.3.x (allowlisted), hostile traffic
 * from 127.0.4.x, a later-added carrier from 127.0.5.x.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EdgeHarness, receivedInTrace, runSippCaller, sendUdp, sipRequest, StandIn } from '../harness/harness';
import { renderAddressRows } from '../src/render';

const EXAMPLE = JSON.parse(readFileSync(resolve(__dirname, '..', 'examples', 'loopback.json'), 'utf8'));
const DIR = resolve(__dirname, '..', '.local', 'test');
const CARRIER = '127.0.3.1';

const edge = new EdgeHarness({ dir: DIR, input: EXAMPLE, probeFrom: CARRIER });
const standIns = EXAMPLE.livekitSip.destinations.map(
  (d: { host: string; port: number }, index: number) => new StandIn({ ip: d.host, port: d.port, mediaPort: 40000 + index * 100, runDir: join(DIR, 'run') }),
) as StandIn[];
const callsDir = join(DIR, 'run', 'calls');
const carrierSip = () => edge.layout.carrierSip;

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
    const call = await runSippCaller({ scenario: 'uac-call-rtp.xml', from: CARRIER, to: carrierSip(), durationMs: 2500 }, callsDir);
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
    const withoutIdentity = (message: string) => message.split('\n').filter((line) => !/^\s*(From|To|Call-ID|f|t|i)\s*:/i.test(line)).join('\n');
    const routingHeaders = (message: string) => message.split('\n').filter((line) => /^\s*(Via|v|Contact|m|Route|Record-Route)\s*:/i.test(line)).join('\n');
    for (const [scenario, service] of [['uac-call.xml', 'intake'], ['uac-call-hung-up.xml', 'livekit-hangs-up']] as const) {
      const call = await runSippCaller({ scenario, service, from: '127.0.3.8', to: carrierSip() }, callsDir);
      expect(call.exitCode, `${scenario}: ${call.output}`).toBe(0);
      const [callId] = call.callIds;

      const atCarrier = receivedInTrace(call.messages);
      expect(atCarrier.some((m) => /^\s*SIP\/2\.0 200 /m.test(m))).toBe(true);
      for (const message of atCarrier) expect(message, scenario).not.toMatch(/127\.0\.[12]\./);
      expect(atCarrier.find((m) => /^\s*SIP\/2\.0 200 /m.test(m) && /^CSeq: 1 INVITE/m.test(m))).toMatch(/^Contact: <sip:[^@>]+@127\.0\.0\.1[:;>]/m);

      const atLiveKit = standIns.flatMap((standIn) => standIn.receivedMessages()).filter((m) => m.includes(callId));
      expect(atLiveKit.some((m) => /^\s*INVITE sip:[^@]+@127\.0\.2\.[12]:5060/m.test(m)), 'the Request-URI names the node').toBe(true);
      for (const message of atLiveKit) {
        expect(withoutIdentity(message), scenario).not.toContain('127.0.0.1'); // the EIP
        expect(routingHeaders(message), scenario).not.toContain('127.0.3.'); // the carrier's own hosts
      }
      expect(atLiveKit.find((m) => /^\s*INVITE /m.test(m))).toMatch(/^Contact: <sip:[^@>]+@127\.0\.1\.1[:;>]/m);

      if (service === 'intake') expect(atLiveKit.some((m) => /^\s*BYE /m.test(m)), 'the carrier\'s BYE reached LiveKit').toBe(true);
      else expect(atCarrier.some((m) => /^\s*BYE sip:carrier@127\.0\.3\.8/m.test(m)), 'LiveKit\'s BYE reached the carrier').toBe(true);
    }
  });

  it('refuses calls rather than show the private side while its topology store is down, and takes them again once it is back', async () => {
    const pid = edge.kamailioPid;
    const from = '127.0.3.11';
    await edge.killToposStore();
    const refused = await runSippCaller({ scenario: 'uac-expect-503.xml', from, to: carrierSip(), timeoutSeconds: 10 }, callsDir);
    expect(refused.exitCode, refused.output).toBe(0);
    expect(invitesWithCallId(refused.callIds[0])).toEqual([]);
    expect(readFileSync(edge.kamailioLog, 'utf8')).toContain(`topology store unreachable, ${refused.callIds[0]} refused`);

    await edge.startToposStore();
    const call = await runSippCaller({ scenario: 'uac-call.xml', from, to: carrierSip() }, callsDir);
    expect(call.exitCode, call.output).toBe(0);
    expect(receivedInTrace(call.messages).join('\n')).not.toMatch(/127\.0\.[12]\./);
    expect(edge.kamailioPid).toBe(pid);
  });

  it('never forwards anything from a source outside the allowlist (silent drop)', async () => {
    const hostile = '127.0.4.1';
    expect(await options(hostile)).toEqual([]);
    const call = await runSippCaller({ scenario: 'uac-call.xml', from: hostile, to: carrierSip(), timeoutSeconds: 4 }, callsDir);
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
    const calls = await runSippCaller({ scenario: 'uac-call.xml', from: '127.0.3.3', to: carrierSip(), calls: 3, rate: 5 }, callsDir);
    expect(calls.exitCode, calls.output).toBe(0);
    expect(calls.successful).toBe(3);
    for (const callId of calls.callIds) expect(second.receivedInvites().some((invite) => invite.includes(callId))).toBe(true);

    await second.stop();
    const refused = await runSippCaller({ scenario: 'uac-expect-503.xml', from: '127.0.3.3', to: carrierSip(), timeoutSeconds: 20 }, callsDir);
    expect(refused.exitCode, refused.output).toBe(0);
    expect(refused.messages).toMatch(/^SIP\/2\.0 503 No LiveKit SIP node available/m);

    await first.start();
    await second.start();
    await waitForDispatcherActive(2);
    const recovered = await runSippCaller({ scenario: 'uac-call.xml', from: '127.0.3.3', to: carrierSip(), calls: 2, rate: 5 }, callsDir);
    expect(recovered.exitCode, recovered.output).toBe(0);
  });

  it('bans a flooding allowlisted source while another allowlisted carrier keeps calling', async () => {
    const flooder = '127.0.3.9';
    const flood = Array.from({ length: 800 }, () => sendUdp(sipRequest('OPTIONS', flooder, carrierSip()), { from: flooder, to: carrierSip(), waitMs: 1500 }));
    const answered = (await Promise.all(flood)).filter((replies) => replies.length > 0).length;
    expect(answered).toBeLessThan(800);
    expect(await options(flooder)).toEqual([]); // banned

    const call = await runSippCaller({ scenario: 'uac-call.xml', from: CARRIER, to: carrierSip(), calls: 3, rate: 5 }, callsDir);
    expect(call.exitCode, call.output).toBe(0);
    expect(readFileSync(edge.kamailioLog, 'utf8')).toContain(`pike flood from ${flooder}`);
  });

  it('reloads the allowlist at runtime: same Kamailio, call in progress unaffected', async () => {
    const pid = edge.kamailioPid;
    const newCarrier = '127.0.5.1';
    expect(await options(newCarrier)).toEqual([]);

    const inProgress = runSippCaller({ scenario: 'uac-call-rtp.xml', from: '127.0.3.4', to: carrierSip(), durationMs: 6000 }, callsDir);
    await new Promise((done) => setTimeout(done, 1500));

    // What the SSM association does: rewrite the address table, then run the reload script.
    writeFileSync(
      edge.layout.addressFile,
      `${readFileSync(edge.layout.addressFile, 'utf8').split('\n')[0]}\n${renderAddressRows(['127.0.3.0/24', '127.0.5.0/24'])}\n`,
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
    const inProgress = runSippCaller({ scenario: 'uac-call-rtp.xml', from: '127.0.3.7', to: carrierSip(), durationMs: 6000 }, callsDir);
    await new Promise((done) => setTimeout(done, 1500));

    expect(setNodes('127.0.2.2').status).toBe(0);
    const list = await edge.kamcmd('dispatcher.list');
    expect(list).toContain('sip:127.0.2.2:5060;transport=udp');
    expect(list).not.toContain('127.0.2.1');
    const firstBefore = first.receivedInvites().length;
    const calls = await runSippCaller({ scenario: 'uac-call.xml', from: '127.0.3.6', to: carrierSip(), calls: 3, rate: 5 }, callsDir);
    expect(calls.exitCode, calls.output).toBe(0);
    for (const callId of calls.callIds) expect(second.receivedInvites().some((invite) => invite.includes(callId))).toBe(true);
    expect(first.receivedInvites().length).toBe(firstBefore);

    // Anything but an address is refused before the list is touched.
    const injected = setNodes('127.0.2.2:5060;transport=tcp');
    expect(injected.status).toBe(2);
    expect(injected.stderr).toContain('not an IPv4 address');
    expect(await edge.kamcmd('dispatcher.list')).toContain('sip:127.0.2.2:5060;transport=udp');

    expect(setNodes().status).toBe(0);
    const refused = await runSippCaller({ scenario: 'uac-expect-503.xml', from: '127.0.3.6', to: carrierSip(), timeoutSeconds: 20 }, callsDir);
    expect(refused.exitCode, refused.output).toBe(0);

    expect(setNodes('127.0.2.1:5060', '127.0.2.2').status).toBe(0);
    await waitForDispatcherActive(2);
    const old = await inProgress;
    expect(old.exitCode, old.output).toBe(0);
    expect(edge.kamailioPid).toBe(pid);
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
