/**
 * The caller's audio as the session hears it, read from LiveKit in larger frames than the framework's own room input.
 *
 * LiveKit Agents' room input reads the linked participant's microphone in 10 ms frames: every frame is one FFI event
 * (a protobuf message and a buffer handed from `@livekit/rtc-node`'s native side) and one pass through the
 * framework's web streams. In a job process that per-frame cost is most of the JavaScript thread's work, so reading
 * 40 ms frames cuts a call's CPU by about a third (see agent/README.md, "Production density"), at the price of up to
 * 30 ms more before the VAD and Transcribe see the last words: Silero reads 32 ms windows, Transcribe is sent
 * 100 ms chunks, and the caller's packets arrive every 20 ms.
 *
 * Only the caller is heard: audio from any other participant in the room (a second SIP leg, a stray client that got
 * a token) never reaches the VAD, the STT or the recording.
 */

import { TransformStream } from 'node:stream/web';
import { voice } from '@livekit/agents';
import {
  type AudioFrame,
  AudioStream,
  type RemoteParticipant,
  type RemoteTrack,
  type RemoteTrackPublication,
  type Room,
  RoomEvent,
  TrackSource,
} from '@livekit/rtc-node';

/** What LiveKit Agents' room input uses by default; the session resamples for Silero and Transcribe itself. */
export const CALLER_AUDIO_SAMPLE_RATE = 24_000;
/** Frame length read from LiveKit (the framework's own input reads 10 ms). */
export const CALLER_AUDIO_FRAME_MS = 40;

export interface CallerAudioInputOptions {
  room: Room;
  /** The caller's participant identity (LiveKit SIP's participant for the call). */
  participantIdentity: string;
  /** Default CALLER_AUDIO_SAMPLE_RATE. */
  sampleRate?: number;
  /** Frame length in ms, 10–100. Default CALLER_AUDIO_FRAME_MS. */
  frameSizeMs?: number;
}

interface OpenStream {
  id: string;
  gated: ReadableStream<AudioFrame>;
  pipe: Promise<void>;
}

export class CallerAudioInput extends voice.AudioInput {
  readonly #room: Room;
  readonly #identity: string;
  readonly #sampleRate: number;
  readonly #frameSizeMs: number;
  #attached = true;
  #closed = false;
  #current: OpenStream | undefined;
  /** The publication read (or about to be): set at once, while the stream itself opens in turn. */
  #publicationSid: string | undefined;
  /** Stream changes run one after another: a re-published track must not race the old one's removal. */
  #transition: Promise<void> = Promise.resolve();

  constructor(options: CallerAudioInputOptions) {
    super();
    const { room, participantIdentity } = options;
    const sampleRate = options.sampleRate ?? CALLER_AUDIO_SAMPLE_RATE;
    const frameSizeMs = options.frameSizeMs ?? CALLER_AUDIO_FRAME_MS;
    if (!participantIdentity) throw new Error('CallerAudioInput options.participantIdentity: must not be empty');
    if (!Number.isInteger(sampleRate) || sampleRate < 8000 || sampleRate > 48_000) {
      throw new Error(`CallerAudioInput options.sampleRate: must be an integer from 8000 to 48000, got ${sampleRate}`);
    }
    if (!Number.isInteger(frameSizeMs) || frameSizeMs < 10 || frameSizeMs > 100) {
      throw new Error(`CallerAudioInput options.frameSizeMs: must be an integer from 10 to 100, got ${frameSizeMs}`);
    }
    this.#room = room;
    this.#identity = participantIdentity;
    this.#sampleRate = sampleRate;
    this.#frameSizeMs = frameSizeMs;
    room.on(RoomEvent.TrackSubscribed, this.#onTrackSubscribed);
    room.on(RoomEvent.TrackUnsubscribed, this.#onTrackGone);
    room.on(RoomEvent.TrackUnpublished, this.#onPublicationGone);
    // The caller is usually in the room with its track subscribed before the session starts.
    const caller = room.remoteParticipants.get(participantIdentity);
    for (const publication of caller?.trackPublications.values() ?? []) {
      if (publication.track && this.#isCallerMicrophone(publication, caller)) {
        this.#open(publication.track, publication);
        break;
      }
    }
  }

  /** Frames read from LiveKit in each call (samples per channel = sampleRate × frameSizeMs / 1000). */
  get frameSizeMs(): number {
    return this.#frameSizeMs;
  }

  override setAttached(attached: boolean): void {
    this.#attached = attached;
  }

  override async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#room.off(RoomEvent.TrackSubscribed, this.#onTrackSubscribed);
    this.#room.off(RoomEvent.TrackUnsubscribed, this.#onTrackGone);
    this.#room.off(RoomEvent.TrackUnpublished, this.#onPublicationGone);
    this.#enqueue(() => this.#closeCurrent());
    await this.#transition;
    await super.close();
  }

  #isCallerMicrophone(publication: RemoteTrackPublication, participant: RemoteParticipant | undefined): boolean {
    return participant?.identity === this.#identity && publication.source === TrackSource.SOURCE_MICROPHONE;
  }

  #onTrackSubscribed = (track: RemoteTrack, publication: RemoteTrackPublication, participant: RemoteParticipant) => {
    if (this.#closed || !this.#isCallerMicrophone(publication, participant)) return;
    if (this.#publicationSid === publication.sid) return;
    this.#open(track, publication);
  };

  #onTrackGone = (_track: RemoteTrack, publication: RemoteTrackPublication, participant: RemoteParticipant) => {
    this.#onPublicationGone(publication, participant);
  };

  #onPublicationGone = (publication: RemoteTrackPublication, participant: RemoteParticipant) => {
    if (participant.identity !== this.#identity || this.#publicationSid !== publication.sid) return;
    this.#publicationSid = undefined;
    this.#enqueue(() => this.#closeCurrent());
  };

  #open(track: RemoteTrack, publication: RemoteTrackPublication): void {
    const publicationSid = publication.sid ?? '';
    this.#publicationSid = publicationSid;
    this.#enqueue(async () => {
      await this.#closeCurrent();
      if (this.#closed || this.#publicationSid !== publicationSid) return;
      const source = new AudioStream(track, {
        sampleRate: this.#sampleRate,
        numChannels: 1,
        frameSizeMs: this.#frameSizeMs,
      });
      // Muting (the framework's setAudioEnabled) drops frames rather than pausing the stream, so nothing queues up.
      const gate = new TransformStream<AudioFrame, AudioFrame>({
        transform: (frame, controller) => {
          if (this.#attached) controller.enqueue(frame);
        },
      });
      const pipe = source.pipeTo(gate.writable).catch(() => {
        // Cancelled on close or a track change; a broken native stream ends this input stream only.
      });
      this.#current = {
        id: this.multiStream.addInputStream(gate.readable),
        gated: gate.readable,
        pipe,
      };
    });
  }

  async #closeCurrent(): Promise<void> {
    const current = this.#current;
    this.#current = undefined;
    if (!current) return;
    await this.multiStream.removeInputStream(current.id).catch(() => undefined);
    await Promise.allSettled([current.gated.cancel(), current.pipe]);
  }

  #enqueue(step: () => Promise<void>): void {
    this.#transition = this.#transition.then(step).catch(() => undefined);
  }
}
