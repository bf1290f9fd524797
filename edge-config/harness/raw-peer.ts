/**
 * Raw UDP peers for hostile tests: a SIP endpoint that sends exactly the bytes a test writes and keeps every datagram
 * it receives (what reached it, nothing filtered), and RTP senders/receivers that tag their payloads so a test can
 * tell whose packets arrived where.
 */
import { createSocket, type Socket } from 'node:dgram';

const sleep = (ms: number) => new Promise((done) => setTimeout(done, ms));

export interface Address {
  readonly ip: string;
  readonly port: number;
}

export interface Datagram {
  readonly from: Address;
  readonly data: Buffer;
  readonly text: string;
}

/** One bound UDP socket that records everything it receives. */
export class UdpPeer {
  readonly received: Datagram[] = [];

  private constructor(
    private readonly socket: Socket,
    readonly address: Address,
  ) {
    socket.on('message', (data, rinfo) => {
      this.received.push({ from: { ip: rinfo.address, port: rinfo.port }, data, text: data.toString('latin1') });
    });
  }

  /** Calls `handler` for every datagram from now on (after it is recorded). */
  onDatagram(handler: (datagram: Datagram) => void): void {
    this.socket.on('message', () => handler(this.received[this.received.length - 1]));
  }

  static open(ip: string, port = 0): Promise<UdpPeer> {
    return new Promise((done, fail) => {
      const socket = createSocket('udp4');
      socket.once('error', fail);
      socket.bind(port, ip, () => {
        socket.off('error', fail);
        done(new UdpPeer(socket, { ip, port: socket.address().port }));
      });
    });
  }

  send(payload: string | Buffer, to: Address): Promise<void> {
    return new Promise((done, fail) => {
      this.socket.send(payload, to.port, to.ip, (error) => (error ? fail(error) : done()));
    });
  }

  /** The first datagram (already received or arriving within timeoutMs) that satisfies `match`. */
  async waitFor(match: (datagram: Datagram) => boolean, timeoutMs: number): Promise<Datagram | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.received.find(match);
      if (found || Date.now() > deadline) return found;
      await sleep(20);
    }
  }

  close(): void {
    try {
      this.socket.close();
    } catch {
      // already closed
    }
  }
}

const token = () => Math.random().toString(36).slice(2, 12);

/** An SDP offer or answer for G.711 A-law at ip:port. */
export function sdp(ip: string, port: number, connectionLine = `c=IN IP4 ${ip}`): string {
  const lines = ['v=0', `o=carrier 1 1 IN IP4 ${ip}`, 's=-', connectionLine, 't=0 0', `m=audio ${port} RTP/AVP 8`];
  return [...lines, 'a=rtpmap:8 PCMA/8000', 'a=sendrecv', ''].join('\r\n');
}

export interface InviteOptions {
  readonly from: Address;
  readonly to: Address;
  /** Request-URI; default sip:<number>@<to>. */
  readonly requestUri?: string;
  readonly number?: string;
  /** SDP body; none when undefined. */
  readonly body?: string;
  readonly extraHeaders?: readonly string[];
  /** Via headers below the sender's own, as proxies on the way would have added them (hostile tests). */
  readonly extraVias?: readonly string[];
  readonly callId?: string;
  /** The caller (From user); default +15550199000. */
  readonly fromUser?: string;
}

/** A dialog the raw caller opened: what it needs to ACK and hang up along the edge's Contact. */
export interface RawCall {
  readonly callId: string;
  readonly fromTag: string;
  readonly invite: string;
}

export function inviteRequest(options: InviteOptions): RawCall {
  const callId = options.callId ?? `raw-${token()}`;
  const fromTag = token();
  const { from, to } = options;
  const requestUri = options.requestUri ?? `sip:${options.number ?? '+15550100100'}@${to.ip}:${to.port}`;
  const body = options.body ?? '';
  const invite = [
    `INVITE ${requestUri} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.ip}:${from.port};branch=z9hG4bK${token()};rport`,
    ...(options.extraVias ?? []),
    'Max-Forwards: 70',
    `From: "carrier" <sip:${options.fromUser ?? '+15550199000'}@${from.ip}>;tag=${fromTag}`,
    `To: <${requestUri}>`,
    `Call-ID: ${callId}`,
    'CSeq: 1 INVITE',
    `Contact: <sip:carrier@${from.ip}:${from.port}>`,
    'User-Agent: carrier-test',
    ...(options.extraHeaders ?? []),
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
  return { callId, fromTag, invite };
}

/** An in-dialog request (ACK, BYE) to the Contact of `answer` (the edge's, with topology hiding). */
export function inDialogRequest(
  method: 'ACK' | 'BYE',
  call: RawCall,
  answer: string,
  from: Address,
  cseq: number,
): string {
  const contact = /^Contact:\s*<([^>]+)>/im.exec(answer)?.[1];
  const to = /^To:\s*(.+)$/im.exec(answer)?.[1].trim();
  if (!contact || !to) throw new Error(`no Contact or To in the answer:\n${answer}`);
  return [
    `${method} ${contact} SIP/2.0`,
    `Via: SIP/2.0/UDP ${from.ip}:${from.port};branch=z9hG4bK${token()};rport`,
    'Max-Forwards: 70',
    `From: "carrier" <sip:+15550199000@${from.ip}>;tag=${call.fromTag}`,
    `To: ${to}`,
    `Call-ID: ${call.callId}`,
    `CSeq: ${cseq} ${method}`,
    'Content-Length: 0',
    '',
    '',
  ].join('\r\n');
}

/**
 * Every value of a header in a message's head, in order: repeated headers and comma-joined name-addr lists (`<…>,
 * <…>`) alike. Names match case-insensitively, with or without blanks before the colon.
 */
export function headerValues(message: string, name: string): string[] {
  const head = message.split('\r\n\r\n')[0];
  return [...head.matchAll(new RegExp(`^${name}[ \\t]*:[ \\t]*(.*)$`, 'gim'))].flatMap((match) =>
    match[1].split(/,(?=\s*<)/).map((value) => value.trim()),
  );
}

/** The first value of a header ('' when absent). */
export function headerOf(message: string, name: string): string {
  return headerValues(message, name)[0] ?? '';
}

/** The URI of a name-addr (`"x" <sip:…>;tag=…` → `sip:…`), or of a bare addr-spec without its parameters. */
export function uriOf(nameAddr: string): string {
  return /<([^>]+)>/.exec(nameAddr)?.[1] ?? nameAddr.split(';')[0];
}

/** Status line code of a SIP reply, undefined for a request. */
export function statusOf(message: string): number | undefined {
  const match = /^SIP\/2\.0 (\d{3}) /.exec(message);
  return match ? Number(match[1]) : undefined;
}

/** The media address and port an SDP body names (first c= and m=audio lines). */
export function mediaOf(message: string): Address | undefined {
  const ip = /^c=IN IP4 ([\d.]+)\s*$/m.exec(message)?.[1];
  const port = /^m=audio (\d+) /m.exec(message)?.[1];
  return ip && port ? { ip, port: Number(port) } : undefined;
}

/** An RTP packet (PCMA, 20 ms) whose payload starts with `tag`, so receivers can tell whose packet it is. */
export function rtpPacket(tag: string, sequence: number, ssrc: number): Buffer {
  const header = Buffer.alloc(12);
  header[0] = 0x80;
  header[1] = 8;
  header.writeUInt16BE(sequence & 0xffff, 2);
  header.writeUInt32BE((sequence * 160) >>> 0, 4);
  header.writeUInt32BE(ssrc >>> 0, 8);
  const payload = Buffer.alloc(160, 0xd5);
  payload.write(tag, 'latin1');
  return Buffer.concat([header, payload]);
}

/** Sends `count` tagged RTP packets 20 ms apart from `peer` to `to`. */
export async function sendRtp(peer: UdpPeer, to: Address, tag: string, count: number): Promise<void> {
  const ssrc = Math.floor(Math.random() * 0xffffffff);
  for (let sequence = 1; sequence <= count; sequence++) {
    await peer.send(rtpPacket(tag, sequence, ssrc), to);
    await sleep(20);
  }
}

/** Datagrams `peer` received whose RTP payload carries `tag`. */
export function rtpTagged(peer: UdpPeer, tag: string): Datagram[] {
  return peer.received.filter(
    (datagram) => datagram.data.length > 12 && datagram.data.subarray(12).toString('latin1').startsWith(tag),
  );
}

/**
 * A reply to `request` (status line, Via, From, To with a tag, Call-ID, CSeq, Record-Route copied from it), as a UAS
 * would send it; `headers` and `body` are added.
 */
export function replyTo(request: string, status: string, headers: readonly string[] = [], body = ''): string {
  const copied = request
    .split('\r\n\r\n')[0]
    .split('\r\n')
    .slice(1)
    .filter((line) => /^(Via|v|From|f|Call-ID|i|CSeq|Record-Route)\s*:/i.test(line));
  const to = /^(?:To|t)\s*:\s*(.+)$/im.exec(request)?.[1].trim() ?? '';
  return [
    `SIP/2.0 ${status}`,
    ...copied,
    `To: ${/;tag=/.test(to) ? to : `${to};tag=${token()}`}`,
    ...headers,
    ...(body ? ['Content-Type: application/sdp'] : []),
    `Content-Length: ${Buffer.byteLength(body)}`,
    '',
    body,
  ].join('\r\n');
}

/** Makes `peer` answer every OPTIONS it receives with 200 (as a LiveKit node answers the edge's probes). */
export function answerOptions(peer: UdpPeer): void {
  peer.onDatagram((datagram) => {
    if (datagram.text.startsWith('OPTIONS ')) void peer.send(replyTo(datagram.text, '200 OK'), datagram.from);
  });
}
