/**
 * The agent's caller audio input against a real LiveKit Server: it hears the caller's microphone only (never another
 * participant publishing in the same room), in 40 ms frames, follows the caller's track when it is published again,
 * drops frames while detached, and ends its stream on close.
 */
import { resolve } from 'node:path';
import { initializeLogger } from '@livekit/agents';
import type { AudioFrame } from '@livekit/rtc-node';
import { Room } from '@livekit/rtc-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CALLER_AUDIO_FRAME_MS, CallerAudioInput } from '../../agent/src/caller-audio-input';
import { LiveKitStack } from '../src/stack/livekit';
import { sleep, waitFor } from '../src/stack/process';
import { AudioPublishingMember } from '../src/stack/room-member';

initializeLogger({ pretty: false, level: 'silent' });

const RUN_DIR = resolve(__dirname, '..', '.local', 'caller-audio-input');
const ROOM = 'call-audio-input';
const CALLER_HZ = 440;
const REPUBLISHED_HZ = 700;
const INTRUDER_HZ = 1500;

const stack = new LiveKitStack({
  runDir: RUN_DIR,
  redisPort: 16396,
  apiPort: 23990,
  rtcTcpPort: 23991,
  rtcUdpPortRange: { min: 21300, max: 21399 },
  serverPrometheusPort: 23999,
  edge: false,
  sipNodes: [],
});
const agentRoom = new Room();
const members: AudioPublishingMember[] = [];
let caller: AudioPublishingMember;
let input: CallerAudioInput | undefined;
/** Every frame the input delivered, with when it arrived. */
const heard: { at: number; frame: AudioFrame }[] = [];
let pump: Promise<void> | undefined;

/** Power of frequency `hz` in the frame (Goertzel): the members publish pure tones at different frequencies. */
function powerAt(frame: AudioFrame, hz: number): number {
  const coefficient = 2 * Math.cos((2 * Math.PI * hz) / frame.sampleRate);
  let [previous, beforePrevious] = [0, 0];
  for (const sample of frame.data) {
    const current = sample + coefficient * previous - beforePrevious;
    beforePrevious = previous;
    previous = current;
  }
  return previous * previous + beforePrevious * beforePrevious - coefficient * previous * beforePrevious;
}

/** The frame carries tone `hz` and nothing of tone `other` (not even mixed in, 30 dB below). */
const only = (frame: AudioFrame, hz: number, other: number) => powerAt(frame, other) < powerAt(frame, hz) / 1000;

const audible = (frame: AudioFrame) => frame.data.some((sample) => Math.abs(sample) > 1000);

function heardSince(since: number) {
  return heard.filter((entry) => entry.at >= since).map((entry) => entry.frame);
}

beforeAll(async () => {
  await stack.start();
  const join = async (identity: string, hz: number) => {
    const member = await AudioPublishingMember.join(stack.wsUrl, await stack.token(ROOM, identity), ROOM, {
      toneHz: hz,
    });
    members.push(member);
    return member;
  };
  const subscribed = (count: number) =>
    waitFor(`${count} tracks subscribed`, 30_000, async () =>
      [...agentRoom.remoteParticipants.values()].filter((p) => [...p.trackPublications.values()].some((t) => t.track))
        .length === count
        ? true
        : undefined,
    );
  // One intruder publishes before the input exists (it must not be picked up from the room's state), one after (it
  // must not be picked up from the room's events).
  caller = await join('sip_caller', CALLER_HZ);
  await join('intruder-early', INTRUDER_HZ);
  await agentRoom.connect(stack.wsUrl, await stack.token(ROOM, 'agent'), { autoSubscribe: true, dynacast: false });
  await subscribed(2);
  input = new CallerAudioInput({ room: agentRoom, participantIdentity: 'sip_caller' });
  await join('intruder-late', INTRUDER_HZ);
  await subscribed(3);
  const reader = input.stream.getReader();
  pump = (async () => {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      heard.push({ at: Date.now(), frame: value });
    }
  })();
}, 120_000);

afterAll(async () => {
  await input?.close();
  await Promise.all(members.map((member) => member.leave()));
  await agentRoom.disconnect().catch(() => undefined);
  await stack.stop();
});

describe('the caller audio input', () => {
  it('hears the caller only, in 40 ms frames', async () => {
    const since = Date.now();
    await waitFor('a second of the caller', 20_000, async () =>
      heardSince(since).filter(audible).length >= 25 ? true : undefined,
    );
    const frames = heardSince(since);
    for (const frame of frames) {
      expect(frame.sampleRate).toBe(24_000);
      expect(frame.channels).toBe(1);
      expect(frame.samplesPerChannel).toBe((24_000 * CALLER_AUDIO_FRAME_MS) / 1000);
    }
    // Every audible frame is the caller's tone; the intruder's never got in (alone or mixed in).
    for (const frame of frames.filter(audible)) expect(only(frame, CALLER_HZ, INTRUDER_HZ)).toBe(true);
  });

  it('follows the caller when its track is published again', async () => {
    await caller.republish(REPUBLISHED_HZ);
    const since = Date.now();
    await waitFor('the new track heard', 20_000, async () =>
      heardSince(since).filter((frame) => audible(frame) && only(frame, REPUBLISHED_HZ, CALLER_HZ)).length >= 10
        ? true
        : undefined,
    ).catch((error: Error) => {
      const recent = heardSince(since);
      throw new Error(
        `${error.message}: ${recent.length} frames since, ${recent.filter(audible).length} audible, ` +
          `first tones ${recent
            .slice(0, 5)
            .map((f) => [CALLER_HZ, REPUBLISHED_HZ, INTRUDER_HZ].map((hz) => powerAt(f, hz).toExponential(1)).join('/'))
            .join(' ')}`,
      );
    });
    const frames = heardSince(since).filter(audible);
    for (const frame of frames)
      expect(powerAt(frame, INTRUDER_HZ)).toBeLessThan(powerAt(frame, REPUBLISHED_HZ) + powerAt(frame, CALLER_HZ));
  });

  it('drops the caller while detached and hears it again when attached', async () => {
    input?.setAttached(false);
    // Frames already on their way may still arrive: count from a moment later.
    await sleep(200);
    const detachedSince = Date.now();
    await sleep(1000);
    expect(heardSince(detachedSince)).toHaveLength(0);
    input?.setAttached(true);
    const attachedSince = Date.now();
    await waitFor('frames after attaching', 20_000, async () =>
      heardSince(attachedSince).length >= 10 ? true : undefined,
    );
  });

  it('ends its stream on close', async () => {
    await input?.close();
    await pump;
    const after = heard.length;
    await sleep(300);
    expect(heard.length).toBe(after);
  });

  it('refuses options it cannot honour, naming the option', () => {
    expect(() => new CallerAudioInput({ room: agentRoom, participantIdentity: 'x', frameSizeMs: 5 })).toThrow(
      /options\.frameSizeMs: must be an integer from 10 to 100, got 5/,
    );
    expect(() => new CallerAudioInput({ room: agentRoom, participantIdentity: 'x', sampleRate: 44_100.5 })).toThrow(
      /options\.sampleRate/,
    );
    expect(() => new CallerAudioInput({ room: agentRoom, participantIdentity: '' })).toThrow(
      /options\.participantIdentity/,
    );
  });
});
