import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { defineAgent, type JobContext, type JobProcess } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { RoomEvent } from '@livekit/rtc-node';
import { Redis } from 'ioredis';
import { RoomServiceClient, SipClient } from 'livekit-server-sdk';
import pino from 'pino';
import { prepareIntakeCall } from './call-session';
import { callerOf } from './caller';
import { CallerAudioInput } from './caller-audio-input';
import { piiRedactionOf, readAgentEnv, redisConnection } from './config';
import { callerKeyPresses } from './keypad';
import { withholdFrameworkPii } from './log-redaction';
import { MetricsEmitter } from './metrics';

// A job process loads this module before the framework sets up its logger here: with PII_REDACTION, every logger it
// sets (its own, then the job's) withholds the fields it marks as PII.
if (piiRedactionOf()) withholdFrameworkPii();

const WORKER_ID = `${process.env.HOSTNAME ?? 'worker'}-${randomUUID().slice(0, 8)}`;
const logger = pino({ base: { service: 'voice-intake-agent', workerId: WORKER_ID } });
// Made when the job process loads this module, before its call arrives (agents 1.9 runs a process per job).
const s3 = new S3Client({});

export default defineAgent({
  // One Silero model per process, loaded before any call arrives.
  prewarm: async (proc: JobProcess) => {
    proc.userData.vad = await silero.VAD.load({ minSilenceDuration: 0.45 });
  },

  entry: async (ctx: JobContext) => {
    const env = readAgentEnv();
    const metrics = new MetricsEmitter({ namespace: env.METRICS_NAMESPACE });
    await ctx.connect();
    const participant = await ctx.waitForParticipant();
    const callId = participant.attributes['sip.callID'] || ctx.room.name || randomUUID();
    const roomName = ctx.room.name ?? callId;
    const caller = callerOf(participant.attributes);

    const connection = redisConnection(env);
    const redis =
      typeof connection === 'string'
        ? new Redis(connection, { maxRetriesPerRequest: 3 })
        : new Redis({ ...connection, maxRetriesPerRequest: 3 });
    const apiUrl = env.LIVEKIT_URL.replace(/^ws/, 'http');
    const sip = new SipClient(apiUrl, env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);
    const rooms = new RoomServiceClient(apiUrl, env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);

    const intake = await prepareIntakeCall({
      env,
      call: {
        callId: callId.replace(/[^A-Za-z0-9._:-]/g, '-'),
        roomName,
        callerNumber: caller.number,
        attestation: caller.attestation,
        calledNumber: participant.attributes['sip.trunkPhoneNumber'],
        startedAt: new Date(),
      },
      workerId: WORKER_ID,
      vad: ctx.proc.userData.vad as silero.VAD,
      redis,
      s3,
      metrics,
      logger,
      transfer: (target) => sip.transferSipParticipant(roomName, participant.identity, target, { playDialtone: false }),
      // Leaving the room is not hanging up: LiveKit SIP keeps the caller's leg while its participant is in a room.
      // Removing that participant makes LiveKit SIP send the BYE; then the job ends (and the room with it).
      hangUp: (reason) =>
        void rooms
          .removeParticipant(roomName, participant.identity)
          .catch((error) => logger.error({ err: error, callId, room: roomName }, 'caller not removed on hang-up'))
          .finally(() => ctx.shutdown(reason)),
      // Another job claimed the call: this one goes, the caller stays in the room with it.
      leave: (reason) => ctx.shutdown(reason),
    });
    ctx.addShutdownCallback(async () => {
      await intake.finish();
      redis.disconnect();
    });

    // Key presses count only from the SIP caller's participant.
    ctx.room.on(RoomEvent.DtmfReceived, callerKeyPresses(participant.identity, intake));
    // The caller is read through our input (40 ms frames, the caller only) instead of the room IO's own (10 ms).
    const callerAudio = new CallerAudioInput({ room: ctx.room, participantIdentity: participant.identity });
    ctx.addShutdownCallback(() => callerAudio.close());
    intake.session.input.audio = callerAudio;
    await intake.session.start({ agent: intake.agent, room: ctx.room, inputOptions: { audioEnabled: false } });
    await intake.greet();
  },
});
