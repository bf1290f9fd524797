/**
 * When things happened in a call, read from sipp's message trace (-trace_msg): each block starts with a dashed line
 * carrying the wall-clock time, then "UDP message sent" or "UDP message received", then the message.
 */

export interface TracedMessage {
  readonly at: number;
  readonly direction: 'sent' | 'received';
  /** Request method or reply status code, e.g. "INVITE" or "180". */
  readonly kind: string;
  readonly callId: string;
  readonly text: string;
}

export function parseSippTrace(trace: string): TracedMessage[] {
  const messages: TracedMessage[] = [];
  const blocks = trace.split(/^-{10,} (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+)\s*$/m);
  // split with a capture group: [before, time1, block1, time2, block2, …]
  for (let index = 1; index + 1 < blocks.length; index += 2) {
    const at = Date.parse(`${blocks[index].replace(' ', 'T').slice(0, 23)}Z`);
    const body = blocks[index + 1];
    const direction = /message sent/.exec(body) ? 'sent' : /message received/.exec(body) ? 'received' : undefined;
    const firstLine = /^(?:SIP\/2\.0 (\d{3})|([A-Z]+) \S+ SIP\/2\.0)/m.exec(body);
    const callId = /^Call-ID:\s*(\S+)/im.exec(body)?.[1];
    if (!direction || !firstLine || !callId) continue;
    messages.push({ at, direction, kind: firstLine[1] ?? firstLine[2], callId, text: body });
  }
  return messages;
}

export interface CallTimeline {
  readonly callId: string;
  readonly inviteSentAt: number;
  /** First 180/183 received, ms after the INVITE. */
  readonly ringingAfterMs?: number;
  /** First final response received (status, ms after the INVITE). */
  readonly final?: { readonly status: number; readonly afterMs: number };
}

/** Per call: INVITE sent → first ringing → first final response, as the caller saw them. */
export function callTimelines(trace: string): CallTimeline[] {
  const byCall = new Map<string, TracedMessage[]>();
  for (const message of parseSippTrace(trace)) {
    byCall.set(message.callId, [...(byCall.get(message.callId) ?? []), message]);
  }
  const timelines: CallTimeline[] = [];
  for (const [callId, messages] of byCall) {
    const invite = messages.find((m) => m.direction === 'sent' && m.kind === 'INVITE');
    if (!invite) continue;
    const received = messages.filter((m) => m.direction === 'received' && /^\d{3}$/.test(m.kind));
    const ringing = received.find((m) => m.kind === '180' || m.kind === '183');
    const final = received.find((m) => Number(m.kind) >= 200);
    timelines.push({
      callId,
      inviteSentAt: invite.at,
      ringingAfterMs: ringing ? ringing.at - invite.at : undefined,
      final: final ? { status: Number(final.kind), afterMs: final.at - invite.at } : undefined,
    });
  }
  return timelines;
}
