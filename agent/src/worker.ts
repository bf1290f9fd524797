import { randomUUID } from 'node:crypto';
import { S3Client } from '@aws-sdk/client-s3';
import { defineAgent, type JobContext, type JobProcess } from '@livekit/agents';
import * as silero from '@livekit/agents-plugin-silero';
import { RoomEvent } from '@livekit/rtc-node';
import type { CallEndReason } from '@voice-intake/contracts';
import { Redis } from 'ioredis';
import { RoomServiceClient, SipClient } from 'livekit-server-sdk';
import { type IntakeCall, prepareIntakeCall } from './call-session';
import { setUpCall } from './call-setup';
import { callerOf } from './caller';
import { CallerAudioInput } from './caller-audio-input';
import { piiRedactionOf, readAgentEnv, redisConnection } from './config';
import { callerKeyPresses } from './keypad';
import { agentLogger, withholdFrameworkPii } from './log-redaction';
import { MetricsEmitter } from './metrics';

// A job process loads this module before the framework sets up its logger here: with PII_REDACTION, every logger it
// sets (its own, then the job's) withholds the fields it marks as PII.
if (piiRedactionOf()) withholdFrameworkPii();

const WORKER_ID = `${process.env.HOSTNAME ?? 'worker'}-${randomUUID().slice(0, 8)}`;
// With PII_REDACTION, every string it logs is masked: room names and the caller's identity carry the number.
const logger = agentLogger({ service: 'voice-intake-agent', workerId: WORKER_ID }, piiRedactionOf());
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
    const callId = (participant.attributes['sip.callID'] || ctx.room.name || randomUUID()).replace(
      /[^A-Za-z0-9._:-]/g,
      '-',
    );
    const roomName = ctx.room.name ?? callId;
    const caller = callerOf(participant.attributes);

    const connection = redisConnection(env);
    const redis =
      typeof connection === 'string'
        ? new Redis(connection, { maxRetriesPerRequest: 3 })
        : new Redis({ ...connection, maxRetriesPerRequest: 3 });
    // Without a listener ioredis prints every failed reconnect as an unhandled error event, outside our logs and
    // unmasked; a structured line each instead (commands still fail on their own and are handled where they are made).
    redis.on('error', (error) => logger.warn({ err: error, callId }, 'session Redis connection error'));
    const apiUrl = env.LIVEKIT_URL.replace(/^ws/, 'http');
    const sip = new SipClient(apiUrl, env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);
    const rooms = new RoomServiceClient(apiUrl, env.LIVEKIT_API_KEY, env.LIVEKIT_API_SECRET);
    const transferCaller = (target: string) =>
      sip.transferSipParticipant(roomName, participant.identity, target, { playDialtone: false });
    // Leaving the room is not hanging up: LiveKit SIP keeps the caller's leg while its participant is in a room.
    // Removing that participant makes LiveKit SIP send the BYE; then the job ends (and the room with it).
    const removeCaller = () => rooms.removeParticipant(roomName, participant.identity);

    let prepared: IntakeCall | undefined;
    let closed: Promise<void> | undefined;
    /** The call's final records (once it was prepared), then Redis closed: once, however the job ends. */
    const closeCall = (endReason?: CallEndReason) =>
      (closed ??= (async () => {
        await prepared?.finish(endReason);
        redis.disconnect();
      })());
    ctx.addShutdownCallback(() => closeCall());

    // The setup runs up to the session's start: until then nothing has been said to the caller, so a failure hands
    // them to a person without a word (src/call-setup.ts). The greeting is not in it: once the session runs, its own
    // failure handling speaks to the caller (src/service-failures.ts), and a job that dies then is dispatched again
    // and resumes the call from its state (src/recovery.ts).
    const intake = await setUpCall(
      async () => {
        prepared = await prepareIntakeCall({
          env,
          call: {
            callId,
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
          transfer: transferCaller,
          hangUp: (reason) =>
            void removeCaller()
              .catch((error) => logger.error({ err: error, callId, room: roomName }, 'caller not removed on hang-up'))
              .finally(() => ctx.shutdown(reason)),
          // Another job claimed the call: this one goes, the caller stays in the room with it.
          leave: (reason) => ctx.shutdown(reason),
        });
        const call = prepared;
        // Key presses count only from the SIP caller's participant.
        ctx.room.on(RoomEvent.DtmfReceived, callerKeyPresses(participant.identity, call));
        // The caller is read through our input (40 ms frames, the caller only) instead of the room IO's own (10 ms).
        const callerAudio = new CallerAudioInput({ room: ctx.room, participantIdentity: participant.identity });
        ctx.addShutdownCallback(() => callerAudio.close());
        call.session.input.audio = callerAudio;
        await call.session.start({ agent: call.agent, room: ctx.room, inputOptions: { audioEnabled: false } });
        return call;
      },
      {
        callId,
        logger,
        metrics,
        transferTarget: env.DEFAULT_TRANSFER_TARGET,
        transfer: transferCaller,
        removeCaller,
        // A call prepared but not started ends as an error in its records; its state is this worker's own.
        release: () => closeCall('error'),
        shutdown: (reason) => ctx.shutdown(reason),
      },
    );
    // Not set up: the caller was handed over (or hung up on) and the job is ending.
    if (!intake) return;
    await intake.greet();
  },
});
