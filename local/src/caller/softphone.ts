/**
 * A real softphone as the caller: baresip (Debian `baresip-core`), driven over its ctrl_tcp interface (netstring
 * JSON commands and events). The microphone is a WAV file (module `aufile`), switched per utterance with
 * `/ausrc`; module `sndfile` records what the caller hears (`…-dec.wav`) and what it sent (`…-enc.wav`). It plays
 * nothing on a sound card: the player is an `aubridge` device nothing reads.
 */
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { join } from 'node:path';
import { ManagedProcess, waitFor } from '../stack/process';
import { writeSilence } from './audio';

/** Where a process's unbound UDP sockets send from on 127.0.0.0/8: the kernel picks lo's own address. */
export const LOOPBACK_MEDIA_SOURCE = '127.0.0.1';

export interface SoftphoneOptions {
  /** Config, recordings and log go here. */
  readonly dir: string;
  /** Its address: SIP and media (SDP) are at this address, which must be on the edge's allowlist. */
  readonly ip: string;
  readonly sipPort?: number;
  /** Its own RTP ports: baresip binds them on every address, so each softphone on a host needs its own range. */
  readonly rtpPorts: { readonly min: number; readonly max: number };
  /** ctrl_tcp, on 127.0.0.1. */
  readonly controlPort: number;
  /** The caller's number, the user part of From (E.164). */
  readonly number: string;
  /** The longest the microphone's silence lasts before baresip hangs up at its end (a stuck call's bound). */
  readonly maxCallSeconds?: number;
  readonly readyTimeoutMs?: number;
}

export interface SoftphoneEvent {
  readonly type: string;
  readonly param?: string;
  readonly peeruri?: string;
  readonly id?: string;
  readonly at: number;
  readonly [key: string]: unknown;
}

/** netstring: `<length>:<bytes>,` */
function netstring(text: string): Buffer {
  const body = Buffer.from(text, 'utf8');
  return Buffer.concat([Buffer.from(`${body.length}:`), body, Buffer.from(',')]);
}

export class Softphone {
  readonly process: ManagedProcess;
  readonly events: SoftphoneEvent[] = [];
  private socket?: Socket;
  private received = Buffer.alloc(0);
  private nextToken = 1;
  private readonly pending = new Map<string, (response: { ok: boolean; data?: string }) => void>();
  private readonly listeners = new Set<() => void>();
  readonly silencePath: string;
  readonly recordingsDir: string;

  constructor(readonly options: SoftphoneOptions) {
    this.recordingsDir = join(options.dir, 'recordings');
    this.silencePath = join(options.dir, 'silence.wav');
    this.process = new ManagedProcess({
      name: `baresip ${options.ip}`,
      command: 'baresip',
      args: ['-f', options.dir],
      logFile: join(options.dir, 'baresip.log'),
      cwd: options.dir,
    });
  }

  private writeConfig(): void {
    const sipPort = this.options.sipPort ?? 5062;
    mkdirSync(this.options.dir, { recursive: true });
    mkdirSync(this.recordingsDir, { recursive: true });
    writeFileSync(
      join(this.options.dir, 'config'),
      [
        'poll_method epoll',
        `sip_listen ${this.options.ip}:${sipPort}`,
        // The SDP's media address: 127.0.0.1, where baresip's RTP really leaves from on loopback (its sockets are not
        // bound to the caller's address). The edge takes media only from the address the SDP names (strict source).
        `net_interface ${LOOPBACK_MEDIA_SOURCE}`,
        'sip_transports udp',
        // A player that plays nowhere and keeps time: aubridge with no matching source (ALSA's null device would
        // spin a core). What is heard is recorded by sndfile before the player.
        'audio_player aubridge,nowhere',
        'audio_alert aubridge,nowhere-alert',
        `audio_source aufile,${this.silencePath}`,
        'ausrc_srate 8000',
        'auplay_srate 8000',
        'ausrc_channels 1',
        'auplay_channels 1',
        `rtp_ports ${this.options.rtpPorts.min}-${this.options.rtpPorts.max}`,
        `snd_path ${this.recordingsDir}`,
        'module_path /usr/lib/baresip/modules',
        'module g711.so',
        'module aufile.so',
        'module aubridge.so',
        'module sndfile.so',
        'module_app account.so',
        'module_app menu.so',
        'module_app ctrl_tcp.so',
        `ctrl_tcp_listen 127.0.0.1:${this.options.controlPort}`,
        '',
      ].join('\n'),
    );
    const account = `<sip:${this.options.number}@${this.options.ip}:${sipPort}>;regint=0\n`;
    writeFileSync(join(this.options.dir, 'accounts'), account);
  }

  /** Starts baresip and connects to its control port. */
  async start(): Promise<void> {
    this.writeConfig();
    // Silence while the caller listens; baresip ends a call when its microphone file ends, so this bounds a call.
    writeSilence(this.silencePath, this.options.maxCallSeconds ?? 180);
    this.process.start();
    this.socket = await this.process.waitReady('ctrl_tcp', this.options.readyTimeoutMs ?? 30_000, async () => {
      return await new Promise<Socket | undefined>((resolve) => {
        const socket = connect({ host: '127.0.0.1', port: this.options.controlPort });
        socket.once('connect', () => resolve(socket));
        socket.once('error', () => resolve(undefined));
      });
    });
    this.socket.on('data', (chunk) => this.onData(chunk));
    this.socket.on('error', () => undefined);
  }

  private onData(chunk: Buffer): void {
    this.received = Buffer.concat([this.received, chunk]);
    for (;;) {
      const colon = this.received.indexOf(':');
      if (colon < 0) return;
      const length = Number(this.received.subarray(0, colon).toString());
      if (this.received.length < colon + 1 + length + 1) return;
      const message = JSON.parse(this.received.subarray(colon + 1, colon + 1 + length).toString('utf8'));
      this.received = this.received.subarray(colon + 1 + length + 1);
      if (message.response) {
        this.pending.get(String(message.token))?.({ ok: !!message.ok, data: message.data });
        this.pending.delete(String(message.token));
      } else if (message.event) {
        this.events.push({ ...message, at: Date.now() });
        for (const listener of this.listeners) listener();
      }
    }
  }

  /** Sends a menu command (`dial`, `hangup`, `sndcode`, `ausrc`, …) and waits for baresip's answer. */
  async command(command: string, params?: string): Promise<string | undefined> {
    if (!this.socket) throw new Error('softphone not started');
    const token = String(this.nextToken++);
    const answer = new Promise<{ ok: boolean; data?: string }>((resolve, reject) => {
      this.pending.set(token, resolve);
      setTimeout(() => reject(new Error(`softphone: no answer to ${command}`)), 10_000).unref();
    });
    this.socket.write(netstring(JSON.stringify({ command, params, token })));
    const response = await answer;
    if (!response.ok) throw new Error(`softphone: ${command} ${params ?? ''} failed: ${response.data ?? ''}`);
    return response.data;
  }

  /** Waits for an event of `type` (from index `since` of `events`), e.g. CALL_ESTABLISHED, CALL_CLOSED. */
  async waitForEvent(type: string, timeoutMs: number, since = 0): Promise<SoftphoneEvent> {
    return await new Promise((resolve, reject) => {
      const check = () => {
        const found = this.events.slice(since).find((event) => event.type === type);
        if (!found) return;
        this.listeners.delete(check);
        clearTimeout(timer);
        resolve(found);
      };
      const timer = setTimeout(() => {
        this.listeners.delete(check);
        const seen = this.events.map((event) => event.type).join(', ') || 'none';
        reject(new Error(`softphone ${this.options.ip}: no ${type} within ${timeoutMs} ms (events: ${seen})`));
      }, timeoutMs);
      this.listeners.add(check);
      check();
    });
  }

  dial(uri: string): Promise<string | undefined> {
    return this.command('dial', uri);
  }

  /** An RFC 4733 telephone-event for `digit` (baresip's `/sndcode`). */
  sendDigit(digit: string): Promise<string | undefined> {
    return this.command('sndcode', digit);
  }

  /** Switches the microphone to another WAV file (it plays from its start). */
  speakFrom(wavPath: string): Promise<string | undefined> {
    return this.command('ausrc', `aufile,${wavPath}`);
  }

  hangup(): Promise<string | undefined> {
    return this.command('hangup');
  }

  /** Names of the recordings made so far (to tell a new call's recordings from earlier calls'). */
  recordingNames(): Set<string> {
    return new Set(readdirSync(this.recordingsDir));
  }

  /**
   * The recordings of the current (or last) call: what was heard and what was sent. `excluding`: recordings of
   * earlier calls, never returned (until a new call's files exist, there are none).
   */
  recordings(excluding: ReadonlySet<string> = new Set()): { heard?: string; sent?: string } {
    const files = readdirSync(this.recordingsDir)
      .filter((file) => !excluding.has(file))
      .sort();
    const last = (suffix: string) => files.filter((file) => file.endsWith(suffix)).pop();
    const heard = last('-dec.wav');
    const sent = last('-enc.wav');
    return {
      heard: heard ? join(this.recordingsDir, heard) : undefined,
      sent: sent ? join(this.recordingsDir, sent) : undefined,
    };
  }

  async stop(): Promise<void> {
    this.socket?.destroy();
    await this.process.stop(2000);
  }
}

/** Waits until `read()` yields true; polls. */
export const until = (what: string, timeoutMs: number, read: () => boolean | Promise<boolean>) =>
  waitFor(what, timeoutMs, async () => ((await read()) ? true : undefined), undefined, 50);
