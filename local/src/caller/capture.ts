/**
 * What crosses the carrier side of the edge, captured with tshark on loopback (a capture filter on the caller's own
 * SIP port and RTP range: everything the caller and the edge exchange, nothing else on the host). Read back as SIP
 * messages and RTP packets with their audio decoded (G.711), for assertions and for latency at the caller.
 */
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { existsSync, statSync } from 'node:fs';
import { promisify } from 'node:util';
import { ManagedProcess } from '../stack/process';

const execFileAsync = promisify(execFile);

export interface CapturedSip {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly text: string;
  /** `INVITE`, `BYE`, `REFER`, … or `SIP/2.0 200` for a response. */
  readonly firstLine: string;
}

export interface CapturedRtp {
  readonly at: number;
  readonly from: string;
  readonly to: string;
  readonly payloadType: number;
  readonly sequence: number;
  /** Decoded 16-bit samples (G.711 PCMU/PCMA); empty for other payload types (telephone-event). */
  readonly samples: Int16Array;
  readonly payload: Buffer;
}

function decodeAlaw(byte: number): number {
  const value = byte ^ 0x55;
  const exponent = (value & 0x70) >> 4;
  let magnitude = (value & 0x0f) << 4;
  magnitude += exponent === 0 ? 8 : 0x108;
  if (exponent > 1) magnitude <<= exponent - 1;
  return value & 0x80 ? magnitude : -magnitude;
}

function decodeUlaw(byte: number): number {
  const value = ~byte & 0xff;
  const exponent = (value >> 4) & 0x07;
  const magnitude = (((value & 0x0f) << 3) + 0x84) << exponent;
  return value & 0x80 ? 0x84 - magnitude : magnitude - 0x84;
}

export function decodeG711(payload: Buffer, payloadType: number): Int16Array {
  if (payloadType !== 0 && payloadType !== 8) return new Int16Array(0);
  const decode = payloadType === 8 ? decodeAlaw : decodeUlaw;
  const samples = new Int16Array(payload.length);
  for (let index = 0; index < payload.length; index++) samples[index] = decode(payload[index]);
  return samples;
}

export interface CaptureOptions {
  readonly pcapPath: string;
  readonly logFile: string;
  /** A BPF capture filter, e.g. `udp port 5062 or udp portrange 40000-40099`. */
  readonly filter: string;
  readonly interface?: string;
}

export class CarrierCapture {
  readonly process: ManagedProcess;

  constructor(readonly options: CaptureOptions) {
    this.process = new ManagedProcess({
      name: 'tshark',
      command: 'tshark',
      args: ['-i', options.interface ?? 'lo', '-f', options.filter, '-w', options.pcapPath, '-q'],
      logFile: options.logFile,
    });
  }

  /**
   * Starts capturing; resolves once a probe sent to `probe` (an address the filter covers) is in the file. tshark
   * says "Capturing on" a moment before packets really land in the file; a call started then loses its INVITE.
   */
  async start(probe: { ip: string; port: number }, timeoutMs = 30_000): Promise<void> {
    this.probe = probe;
    this.process.start();
    await this.probed(timeoutMs);
  }

  private probe?: { ip: string; port: number };

  /** Sends probes until the file grows: everything captured before the probe is then in the file. */
  private async probed(timeoutMs: number): Promise<void> {
    const probe = this.probe!;
    const socket = createSocket('udp4');
    try {
      let initialSize: number | undefined;
      await this.process.waitReady('capturing a probe', timeoutMs, async () => {
        if (!existsSync(this.options.pcapPath)) return undefined;
        const size = statSync(this.options.pcapPath).size;
        initialSize ??= size;
        if (size > initialSize) return true;
        await new Promise<void>((done) => socket.send('probe', probe.port, probe.ip, () => done()));
        return undefined;
      });
    } finally {
      socket.close();
    }
  }

  /**
   * Stops once what was captured is in the file (tshark may still hold the last packets when told to stop: a
   * REFER the softphone had already seen was missing), then ends tshark.
   */
  async stop(): Promise<void> {
    if (this.process.running && this.probe) await this.probed(10_000).catch(() => undefined);
    await this.process.stop(5000);
  }

  /** Every UDP packet of the capture, split into SIP and RTP. */
  async read(): Promise<{ sip: CapturedSip[]; rtp: CapturedRtp[] }> {
    const { stdout } = await execFileAsync(
      'tshark',
      [
        '-r',
        this.options.pcapPath,
        '-T',
        'fields',
        '-E',
        'separator=|',
        '-e',
        'frame.time_epoch',
        '-e',
        'ip.src',
        '-e',
        'udp.srcport',
        '-e',
        'ip.dst',
        '-e',
        'udp.dstport',
        '-e',
        'udp.payload',
      ],
      { maxBuffer: 512 * 1024 * 1024 },
    );
    const sip: CapturedSip[] = [];
    const rtp: CapturedRtp[] = [];
    for (const line of stdout.split('\n')) {
      const [time, srcIp, srcPort, dstIp, dstPort, hex] = line.split('|');
      if (!hex) continue;
      const payload = Buffer.from(hex.replace(/:/g, ''), 'hex');
      const at = Math.round(Number(time) * 1000);
      const from = `${srcIp}:${srcPort}`;
      const to = `${dstIp}:${dstPort}`;
      const text = payload.toString('latin1');
      if (/^(SIP\/2\.0 \d{3}|[A-Z]+ sip:)/.test(text)) {
        const firstLine = text.slice(0, text.indexOf('\r\n'));
        const kind = firstLine.startsWith('SIP/2.0') ? firstLine.slice(0, 11) : firstLine.split(' ')[0];
        sip.push({ at, from, to, text, firstLine: kind });
      } else if (payload.length >= 12 && payload[0] >> 6 === 2) {
        const csrcCount = payload[0] & 0x0f;
        const payloadType = payload[1] & 0x7f;
        // RTCP shares the version bits; its packet types 200–204 are payload types 72–76 with the marker bit.
        if (payloadType >= 72 && payloadType <= 76) continue;
        const body = payload.subarray(12 + csrcCount * 4);
        const samples = decodeG711(body, payloadType);
        rtp.push({ at, from, to, payloadType, sequence: payload.readUInt16BE(2), payload: body, samples });
      }
    }
    return { sip, rtp };
  }
}
