/**
 * Media capacity of RTPEngine as the edge runs it (the rendered rtpengine.conf, userspace forwarding): N concurrent
 * G.711 calls, one 172-byte RTP packet every 20 ms each way, carrier side <-> LiveKit side. Each call is set up over
 * RTPEngine's control protocol with the edge's own flags (what Kamailio's rtpengine_manage sends: both interfaces,
 * strict-source). The generator is this one Node process (dgram sockets, packets spread over the 20 ms), not a sipp
 * per call. Per N it prints: RTPEngine's CPU per concurrent call (ms of CPU per second of call), packets lost, the
 * one-way transit p50/p99 through RTPEngine and, measured the same way straight from peer to peer, the generator's
 * own share; the difference is what RTPEngine adds. It stops at the first N where a packet is lost or the added p99
 * exceeds 5 ms. A script, not a test: figures depend on the machine and its load.
 *
 *   npx tsx bench/edge-media.ts [--calls 50,100,200,400,800] [--seconds 5] [--keep-going]
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { closeSync, mkdirSync, openSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { endProcessesMentioning, pingRtpengine } from '../harness/harness';
import { parseRenderInput, renderEdge, writeRendered } from '../src/render';

const ROOT = resolve(__dirname, '..');
const DIR = resolve(ROOT, '.local', 'bench-media');
const { values } = parseArgs({
  options: { calls: { type: 'string' }, seconds: { type: 'string' }, 'keep-going': { type: 'boolean' } },
});
/** Measure every N even past the limit (CPU and loss stay meaningful when a loaded machine inflates transit). */
const KEEP_GOING = values['keep-going'] ?? false;
const CALL_COUNTS = (values.calls ?? '50,100,200,300,400,600,800,1000').split(',').map(Number);
const SECONDS = Number(values.seconds ?? 5);
const WARMUP_MS = 1000;
const PACKET_MS = 20;
const PAYLOAD_BYTES = 160;
const LIMIT_P99_MS = 5;
/** Generator peers: the carrier's media address and a LiveKit SIP node's. */
const CARRIER_PEER = '127.0.3.1';
const LIVEKIT_PEER = '127.0.2.1';

const loopback = JSON.parse(readFileSync(join(ROOT, 'examples', 'loopback.json'), 'utf8'));
const input = parseRenderInput({
  ...loopback,
  edge: { ...loopback.edge, rtpPortRange: { min: 20000, max: 64999 } },
  host: { ...loopback.host, mediaForwarding: 'userspace' },
  paths: { configDir: DIR, runDir: join(DIR, 'run') },
});
const control = input.host.rtpengineControl;

// ----- bencode, as RTPEngine's ng control protocol speaks it -----
type Bencoded = string | number | Bencoded[] | { [key: string]: Bencoded };

function bencode(value: Bencoded): string {
  if (typeof value === 'number') return `i${value}e`;
  if (typeof value === 'string') return `${Buffer.byteLength(value)}:${value}`;
  if (Array.isArray(value)) return `l${value.map(bencode).join('')}e`;
  return `d${Object.keys(value)
    .sort()
    .map((key) => bencode(key) + bencode(value[key]))
    .join('')}e`;
}

function bdecode(text: Buffer, at = { i: 0 }): Bencoded {
  const c = String.fromCharCode(text[at.i]);
  if (c === 'i') {
    const end = text.indexOf(0x65, at.i);
    const n = Number(text.subarray(at.i + 1, end).toString());
    at.i = end + 1;
    return n;
  }
  if (c === 'l' || c === 'd') {
    at.i++;
    const items: Bencoded[] = [];
    while (text[at.i] !== 0x65) items.push(bdecode(text, at));
    at.i++;
    if (c === 'l') return items;
    const dict: Record<string, Bencoded> = {};
    for (let k = 0; k < items.length; k += 2) dict[items[k] as string] = items[k + 1];
    return dict;
  }
  const colon = text.indexOf(0x3a, at.i);
  const length = Number(text.subarray(at.i, colon).toString());
  const value = text.subarray(colon + 1, colon + 1 + length).toString();
  at.i = colon + 1 + length;
  return value;
}

/** One ng command over UDP; resolves with RTPEngine's answer dict. */
function ng(command: Record<string, Bencoded>): Promise<Record<string, Bencoded>> {
  return new Promise((done, fail) => {
    const socket = createSocket('udp4');
    const cookie = Math.random().toString(36).slice(2, 12);
    const timer = setTimeout(() => {
      socket.close();
      fail(new Error(`rtpengine did not answer ${command.command}`));
    }, 5000);
    socket.on('message', (message) => {
      const space = message.indexOf(0x20);
      if (message.subarray(0, space).toString() !== cookie) return;
      clearTimeout(timer);
      socket.close();
      const answer = bdecode(message.subarray(space + 1)) as Record<string, Bencoded>;
      if (answer.result !== 'ok') fail(new Error(`rtpengine ${command.command}: ${JSON.stringify(answer)}`));
      else done(answer);
    });
    socket.send(`${cookie} ${bencode(command)}`, control.port, control.ip);
  });
}

// ----- the edge's flags (render.ts rtpFlags) in ng form -----
const edgeFlags = (from: 'carrier' | 'internal') => ({
  direction: from === 'carrier' ? ['carrier', 'internal'] : ['internal', 'carrier'],
  replace: ['origin', 'session-connection'],
  ICE: 'remove',
  'transport-protocol': 'RTP/AVP',
  flags: ['strict-source'],
});

function sdp(ip: string, port: number): string {
  return [
    'v=0',
    `o=peer 1 1 IN IP4 ${ip}`,
    's=-',
    `c=IN IP4 ${ip}`,
    't=0 0',
    `m=audio ${port} RTP/AVP 8`,
    'a=rtpmap:8 PCMA/8000',
    'a=ptime:20',
    '',
  ].join('\r\n');
}

function mediaOf(answerSdp: string): { ip: string; port: number } {
  const ip = /^c=IN IP4 ([\d.]+)/m.exec(answerSdp)?.[1];
  const port = Number(/^m=audio (\d+)/m.exec(answerSdp)?.[1]);
  if (!ip || !port) throw new Error(`no media address in ${answerSdp}`);
  return { ip, port };
}

// ----- generator -----
interface Stream {
  socket: Socket;
  to: { ip: string; port: number };
  /** 0: carrier -> LiveKit, 1: LiveKit -> carrier */
  direction: number;
  call: number;
  seq: number;
  offsetMs: number;
}

interface Call {
  id: string;
  carrier: Socket;
  livekit: Socket;
}

function bindSocket(ip: string): Promise<Socket> {
  return new Promise((done) => {
    const socket = createSocket('udp4');
    socket.bind(0, ip, () => done(socket));
  });
}

async function openCalls(count: number, viaRtpengine: boolean): Promise<{ calls: Call[]; streams: Stream[] }> {
  const calls: Call[] = [];
  const streams: Stream[] = [];
  for (let index = 0; index < count; index++) {
    const carrier = await bindSocket(CARRIER_PEER);
    const livekit = await bindSocket(LIVEKIT_PEER);
    const id = `media-bench-${process.pid}-${count}-${index}`;
    let toLiveKit = { ip: LIVEKIT_PEER, port: livekit.address().port };
    let toCarrier = { ip: CARRIER_PEER, port: carrier.address().port };
    if (viaRtpengine) {
      const offerSdp = sdp(CARRIER_PEER, toCarrier.port);
      const offer = await ng({
        command: 'offer',
        'call-id': id,
        'from-tag': 'carrier',
        sdp: offerSdp,
        ...edgeFlags('carrier'),
      });
      toLiveKit = mediaOf(offer.sdp as string); // RTPEngine's LiveKit-side port: the carrier's packets go in there
      const answerSdp = sdp(LIVEKIT_PEER, livekit.address().port);
      const tags = { 'from-tag': 'carrier', 'to-tag': 'livekit' };
      const answer = await ng({ command: 'answer', 'call-id': id, ...tags, sdp: answerSdp, ...edgeFlags('internal') });
      toCarrier = mediaOf(answer.sdp as string); // RTPEngine's carrier-side port
      // The carrier sends to the carrier-side port RTPEngine told it; LiveKit to the LiveKit-side port.
      [toLiveKit, toCarrier] = [toCarrier, toLiveKit];
    }
    calls.push({ id, carrier, livekit });
    const offsetMs = (index * PACKET_MS) / count;
    streams.push({ socket: carrier, to: toLiveKit, direction: 0, call: index, seq: 0, offsetMs });
    const backOffsetMs = (offsetMs + PACKET_MS / 2) % PACKET_MS;
    streams.push({ socket: livekit, to: toCarrier, direction: 1, call: index, seq: 0, offsetMs: backOffsetMs });
  }
  return { calls, streams };
}

interface Measured {
  sent: number;
  received: number;
  transitsMs: number[];
  /** How far behind its schedule the generator sent, at worst (ms). */
  generatorLagMs: number;
  generatorCpuMs: number;
}

async function drive(calls: Call[], streams: Stream[]): Promise<Measured> {
  const start = process.hrtime.bigint();
  const msSince = (t: bigint) => Number(t - start) / 1e6;
  const measureFrom = WARMUP_MS;
  const measureTo = WARMUP_MS + SECONDS * 1000;
  const result: Measured = { sent: 0, received: 0, transitsMs: [], generatorLagMs: 0, generatorCpuMs: 0 };
  const onMessage = (message: Buffer) => {
    if (message.length < 12 + 8) return;
    const sentAt = Number(message.readBigUInt64BE(12)) / 1e6;
    if (sentAt < measureFrom || sentAt >= measureTo) return;
    result.received++;
    result.transitsMs.push(msSince(process.hrtime.bigint()) - sentAt);
  };
  for (const call of calls) {
    call.carrier.on('message', onMessage);
    call.livekit.on('message', onMessage);
  }
  // Streams by 1 ms slot of the 20 ms cycle; every slot due is sent, late ones at once (and counted as lag).
  const slots: Stream[][] = Array.from({ length: PACKET_MS }, () => []);
  for (const stream of streams) slots[Math.floor(stream.offsetMs)].push(stream);
  const packet = Buffer.alloc(12 + PAYLOAD_BYTES);
  packet[0] = 0x80;
  packet[1] = 8; // PCMA
  let nextSlot = 0;
  const cpuBefore = process.cpuUsage();
  await new Promise<void>((done) => {
    const timer = setInterval(() => {
      const now = msSince(process.hrtime.bigint());
      while (nextSlot <= now && nextSlot < measureTo) {
        result.generatorLagMs = Math.max(result.generatorLagMs, nextSlot >= measureFrom ? now - nextSlot : 0);
        for (const stream of slots[nextSlot % PACKET_MS]) {
          const buf = Buffer.from(packet);
          buf.writeUInt16BE(stream.seq & 0xffff, 2);
          buf.writeUInt32BE((stream.seq * 160) >>> 0, 4);
          buf.writeUInt32BE(stream.call * 2 + stream.direction, 8);
          const sentAt = process.hrtime.bigint() - start;
          buf.writeBigUInt64BE(sentAt, 12);
          stream.seq++;
          stream.socket.send(buf, stream.to.port, stream.to.ip);
          // Counted by when it left, as the receiver counts it.
          const sentMs = Number(sentAt) / 1e6;
          if (sentMs >= measureFrom && sentMs < measureTo) result.sent++;
        }
        nextSlot++;
      }
      if (nextSlot >= measureTo) {
        clearInterval(timer);
        setTimeout(done, 300); // packets still in flight
      }
    }, 1);
  });
  const cpu = process.cpuUsage(cpuBefore);
  result.generatorCpuMs = (cpu.user + cpu.system) / 1000;
  return result;
}

async function closeCalls(calls: Call[], viaRtpengine: boolean): Promise<void> {
  for (const call of calls) {
    if (viaRtpengine) {
      const command = { command: 'delete', 'call-id': call.id, 'from-tag': 'carrier', 'delete-delay': 0 };
      await ng(command).catch(() => undefined);
    }
    call.carrier.close();
    call.livekit.close();
  }
}

function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function cpuMsOf(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticks;
}

async function startRtpengine(): Promise<ChildProcess> {
  await endProcessesMentioning(`${DIR}/`);
  mkdirSync(input.paths.runDir, { recursive: true });
  writeRendered(DIR, { 'rtpengine/rtpengine.conf': renderEdge(input)['rtpengine/rtpengine.conf'] });
  const log = openSync(join(input.paths.runDir, 'rtpengine.log'), 'a');
  const conf = join(DIR, 'rtpengine', 'rtpengine.conf');
  const args = [`--config-file=${conf}`, '--foreground', '--log-stderr'];
  const child = spawn('rtpengine', args, { stdio: ['ignore', log, log] });
  closeSync(log);
  const deadline = Date.now() + 30_000;
  while (!(await pingRtpengine(control.ip, control.port))) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error('rtpengine did not start');
    await new Promise((done) => setTimeout(done, 100));
  }
  return child;
}

async function main(): Promise<void> {
  console.log(`edge-media: ${CALL_COUNTS.join(', ')} concurrent calls, G.711 20 ms both ways, ${SECONDS} s each`);
  const rtpengine = await startRtpengine();
  let limitAt: number | undefined;
  let capacity = 0;
  try {
    for (const count of CALL_COUNTS) {
      const direct = await openCalls(count, false);
      const baseline = await drive(direct.calls, direct.streams);
      await closeCalls(direct.calls, false);

      const relayed = await openCalls(count, true);
      const cpuBefore = cpuMsOf(rtpengine.pid!);
      const measured = await drive(relayed.calls, relayed.streams);
      const rtpengineCpuMs = cpuMsOf(rtpengine.pid!) - cpuBefore;
      await closeCalls(relayed.calls, true);

      const through = measured.transitsMs.sort((x, y) => x - y);
      const own = baseline.transitsMs.sort((x, y) => x - y);
      const lost = measured.sent - measured.received;
      const added = {
        p50: percentile(through, 50) - percentile(own, 50),
        p99: percentile(through, 99) - percentile(own, 99),
      };
      // The window CPU includes warm-up and drain; per second of the whole drive.
      const driveSeconds = (WARMUP_MS + SECONDS * 1000 + 300) / 1000;
      const cpuPerCall = rtpengineCpuMs / driveSeconds / count;
      const generatorPercent = (measured.generatorCpuMs / driveSeconds / 10).toFixed(0);
      console.log(
        `  ${count} calls: RTPEngine ${cpuPerCall.toFixed(2)} ms CPU per s per call; lost ${lost} of ${measured.sent}` +
          ` (direct: ${baseline.sent - baseline.received}); transit p50 ${percentile(through, 50).toFixed(2)} /` +
          ` p99 ${percentile(through, 99).toFixed(2)} ms, direct p50 ${percentile(own, 50).toFixed(2)} /` +
          ` p99 ${percentile(own, 99).toFixed(2)} ms, added p50 ${added.p50.toFixed(2)} /` +
          ` p99 ${added.p99.toFixed(2)} ms; generator ${generatorPercent}% CPU,` +
          ` lag ≤ ${measured.generatorLagMs.toFixed(1)} ms`,
      );
      if (measured.generatorLagMs > LIMIT_P99_MS || baseline.generatorLagMs > LIMIT_P99_MS) {
        const lag = Math.max(measured.generatorLagMs, baseline.generatorLagMs).toFixed(0);
        console.log(`    the generator fell ${lag} ms behind its schedule: this step measures the machine's load too`);
      }
      if (lost > 0 || added.p99 > LIMIT_P99_MS) {
        limitAt ??= count;
        if (!KEEP_GOING) break;
      }
      if (limitAt === undefined) capacity = count;
    }
  } finally {
    rtpengine.kill('SIGTERM');
    await endProcessesMentioning(`${DIR}/`);
  }
  console.log(`\ncapacity (no loss, added p99 ≤ ${LIMIT_P99_MS} ms): ${capacity} concurrent calls`);
  if (limitAt) console.log(`loss or added p99 > ${LIMIT_P99_MS} ms starts at ${limitAt} calls`);
  else console.log('no limit reached: extend --calls');
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
