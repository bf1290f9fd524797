/**
 * The edge against the real LiveKit SIP: sipp as the carrier (RFC 3261 scenarios from edge-config/harness/scenarios)
 * → Kamailio + RTPEngine + topos (the loopback render) → two LiveKit SIP v1.11.0 nodes → LiveKit Server v1.13.5,
 * with the trunk and dispatch rule from our provisioning code. One suite, serial: it holds the loopback example's
 * addresses (127.0.0.1:5060, 127.0.2.x:5060) for its whole run and ends every process it started, pass or fail.
 */
import { join, resolve } from 'node:path';
import { dispose } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runSippCaller, type SippCallOptions } from '../../edge-config/harness/harness';
import { LiveKitStack } from '../src/stack/livekit';
import { type CallAnswerer, callAnswererFor } from '../src/stack/room-member';

const RUN_DIR = resolve(__dirname, '..', '.local', 'edge-livekit');
const CALLS_DIR = join(RUN_DIR, 'calls');

const stack = new LiveKitStack({ runDir: RUN_DIR });
let answerer: CallAnswerer | undefined;

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

beforeAll(async () => {
  await stack.start();
});

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
