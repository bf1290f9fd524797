/**
 * A room member that publishes audio, so a call can be answered without the agent: LiveKit SIP answers 200 only once
 * its participant has subscribed to audio someone else in the room publishes. It also counts the audio it hears from
 * the caller, so a test can tell media crossed the whole path.
 */
import {
  AudioFrame,
  AudioSource,
  AudioStream,
  LocalAudioTrack,
  type RemoteTrack,
  Room,
  RoomEvent,
  TrackKind,
  TrackPublishOptions,
  TrackSource,
} from '@livekit/rtc-node';
import type { RoomServiceClient } from 'livekit-server-sdk';
import { sleep } from './process';

const SAMPLE_RATE = 48_000;
const FRAME_MS = 20;
const SAMPLES_PER_FRAME = (SAMPLE_RATE * FRAME_MS) / 1000;

/** Frames of a 440 Hz tone at a modest level: audible on the caller's side, never clipped. */
function toneFrame(frameIndex: number, hz = 440, amplitude = 6000): AudioFrame {
  const samples = new Int16Array(SAMPLES_PER_FRAME);
  const offset = frameIndex * SAMPLES_PER_FRAME;
  for (let i = 0; i < samples.length; i += 1) {
    samples[i] = Math.round(amplitude * Math.sin((2 * Math.PI * hz * (offset + i)) / SAMPLE_RATE));
  }
  return new AudioFrame(samples, SAMPLE_RATE, 1, SAMPLES_PER_FRAME);
}

/** What one member heard from others (normally the caller's SIP participant) so far. */
export interface HeardAudio {
  frames: number;
  /** Frames with any sample above the noise floor. */
  audibleFrames: number;
}

/** One member in one room: joins, publishes a tone until left, counts what it hears. */
export class AudioPublishingMember {
  readonly room = new Room();
  readonly heard: HeardAudio = { frames: 0, audibleFrames: 0 };
  readonly joinedAt = Date.now();
  publishedAt?: number;
  private source = new AudioSource(SAMPLE_RATE, 1);
  private playing = true;
  private player?: Promise<void>;
  private trackSid?: string;

  private constructor(
    readonly roomName: string,
    private toneHz: number,
  ) {}

  /** Joins and publishes a microphone track playing a `toneHz` tone (default 440 Hz). */
  static async join(
    url: string,
    token: string,
    roomName: string,
    options: { toneHz?: number } = {},
  ): Promise<AudioPublishingMember> {
    const member = new AudioPublishingMember(roomName, options.toneHz ?? 440);
    member.room.on(RoomEvent.TrackSubscribed, (track: RemoteTrack) => {
      if (track.kind === TrackKind.KIND_AUDIO) void member.listen(track);
    });
    await member.room.connect(url, token, { autoSubscribe: true, dynacast: false });
    await member.publish();
    member.publishedAt = Date.now();
    member.player = member.play();
    return member;
  }

  private async publish(): Promise<void> {
    const track = LocalAudioTrack.createAudioTrack('answer-tone', this.source);
    const options = new TrackPublishOptions();
    options.source = TrackSource.SOURCE_MICROPHONE;
    const publication = await this.room.localParticipant?.publishTrack(track, options);
    this.trackSid = publication?.sid;
  }

  /** Unpublishes the microphone track and publishes a new one (a new track id) playing `toneHz` from then on. */
  async republish(toneHz = this.toneHz): Promise<void> {
    if (this.trackSid) await this.room.localParticipant?.unpublishTrack(this.trackSid);
    // A new source too: the old one's queue still holds the previous tone.
    const previous = this.source;
    this.source = new AudioSource(SAMPLE_RATE, 1);
    this.toneHz = toneHz;
    await previous.close().catch(() => undefined);
    await this.publish();
  }

  /** captureFrame waits while the source's queue is full, so this loop runs at real time. */
  private async play(): Promise<void> {
    for (let index = 0; this.playing; index += 1) {
      try {
        await this.source.captureFrame(toneFrame(index, this.toneHz));
      } catch {
        // The source was closed: by leave(), or replaced by republish() (then go on with the new one).
        if (!this.playing) return;
      }
    }
  }

  private async listen(track: RemoteTrack): Promise<void> {
    const stream = new AudioStream(track, { sampleRate: SAMPLE_RATE, numChannels: 1 });
    for await (const frame of stream) {
      this.heard.frames += 1;
      if (frame.data.some((sample) => Math.abs(sample) > 300)) this.heard.audibleFrames += 1;
    }
  }

  async leave(): Promise<void> {
    this.playing = false;
    await this.source.close().catch(() => undefined);
    await this.player;
    await this.room.disconnect().catch(() => undefined);
  }
}

export interface CallAnswererOptions {
  readonly url: string;
  readonly roomService: RoomServiceClient;
  /** Rooms whose name starts with this are calls (the dispatch rule's roomPrefix). */
  readonly roomPrefix: string;
  readonly token: (room: string, identity: string) => Promise<string>;
  readonly pollMs?: number;
}

/**
 * Joins every new call room (found by polling the room API) with an AudioPublishingMember, which makes LiveKit SIP
 * answer the call. Stands in for the agent where a test is about signalling and media, not conversation.
 */
export class CallAnswerer {
  readonly members = new Map<string, AudioPublishingMember>();
  readonly errors: unknown[] = [];
  private running = false;
  private loop?: Promise<void>;

  constructor(private readonly options: CallAnswererOptions) {}

  start(): void {
    if (this.running) return;
    this.running = true;
    this.loop = this.poll();
  }

  private async poll(): Promise<void> {
    while (this.running) {
      try {
        const rooms = await this.options.roomService.listRooms();
        for (const room of rooms) {
          if (!room.name.startsWith(this.options.roomPrefix) || this.members.has(room.name)) continue;
          const token = await this.options.token(room.name, `answerer-${room.name}`);
          this.members.set(room.name, await AudioPublishingMember.join(this.options.url, token, room.name));
        }
      } catch (error) {
        this.errors.push(error);
      }
      await sleep(this.options.pollMs ?? 100);
    }
  }

  /** Stops joining new rooms and leaves every room it joined. */
  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    await Promise.all([...this.members.values()].map((member) => member.leave()));
    this.members.clear();
  }
}

/** The stack's answerer: joins the rooms its dispatch rule creates. */
export function callAnswererFor(stack: {
  readonly wsUrl: string;
  readonly roomService: RoomServiceClient;
  readonly livekit: { readonly roomPrefix: string };
  token(room: string, identity: string): Promise<string>;
}): CallAnswerer {
  return new CallAnswerer({
    url: stack.wsUrl,
    roomService: stack.roomService,
    roomPrefix: stack.livekit.roomPrefix,
    token: (room, identity) => stack.token(room, identity),
  });
}
