import { initializeLogger, log } from '@livekit/agents';
import { afterAll, describe, expect, it } from 'vitest';
import {
  agentLogger,
  maskedLogFields,
  PII_FIELD_WITHHELD,
  withholdFrameworkPii,
  withoutPiiFields,
} from '../src/log-redaction';

const CARD = '4111111111111111';
const PHONE = '+1 415 555 0123';

// The framework's logger writes JSON lines to stdout (production: `start`, not pretty).
const written: string[] = [];
const write = process.stdout.write.bind(process.stdout);
process.stdout.write = ((chunk: unknown, ...rest: unknown[]) => {
  if (String(chunk).includes('"msg"')) {
    written.push(String(chunk));
    return true;
  }
  return (write as (...args: unknown[]) => boolean)(chunk, ...rest);
}) as typeof process.stdout.write;
afterAll(() => {
  process.stdout.write = write;
});

/** The lines logged while `run` ran, parsed. */
async function logged(run: () => void): Promise<Record<string, unknown>[]> {
  written.length = 0;
  run();
  await new Promise((resolve) => setTimeout(resolve, 20));
  return written
    .join('')
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line));
}

const slot = Symbol.for('@livekit/agents:logger');

describe('the framework logger', () => {
  it('writes PII-marked fields as they are when nothing withholds them', async () => {
    initializeLogger({ pretty: false, level: 'info' });
    const [line] = await logged(() => log().info({ 'lk.pii.arguments': { card: CARD } }, 'Executing LLM tool call'));
    expect(JSON.stringify(line)).toContain(CARD);
  });

  it('withholds them once PII redaction is set up, from the logger already there', async () => {
    withholdFrameworkPii();
    const [line] = await logged(() =>
      log().info({ function: 'save_intake_progress', 'lk.pii.arguments': { card: CARD } }, 'Executing LLM tool call'),
    );
    expect(line).toMatchObject({
      msg: 'Executing LLM tool call',
      function: 'save_intake_progress',
      'lk.pii.arguments': PII_FIELD_WITHHELD,
    });
    expect(JSON.stringify(line)).not.toContain(CARD);
  });

  it('and from every logger set later: a job process initialising its own, then the job bound to it', async () => {
    withholdFrameworkPii(); // idempotent
    initializeLogger({ pretty: false, level: 'info' });
    // What the job process does per job (setLoggerState with a child carrying the job's bindings).
    (globalThis as Record<symbol, unknown>)[slot] = log().child({ pid: 1 }).child({ jobID: 'job-1' });
    const lines = await logged(() => {
      log().info({ 'lk.pii.user_input': `my card is ${CARD}`, speech_id: 's1' }, 'generating reply');
      log().child({ 'lk.pii.response': CARD }).warn('received unexpected inference response');
      log()
        .child({ component: 'x' })
        .error({ 'lk.pii.error': CARD, err: new Error(`no case for ${PHONE}`) }, 'tool failed');
      log().warn({ error: Object.assign(new Error(`card ${CARD} refused`), { code: 'E_TOOL', status: 400 }) }, 'x');
    });
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatchObject({ jobID: 'job-1', speech_id: 's1', 'lk.pii.user_input': PII_FIELD_WITHHELD });
    expect(lines[1]).toMatchObject({ 'lk.pii.response': PII_FIELD_WITHHELD });
    // An error keeps its text for debugging, with the PII in it masked.
    expect(lines[2]).toMatchObject({
      component: 'x',
      'lk.pii.error': PII_FIELD_WITHHELD,
      err: { type: 'Error', message: 'no case for [PHONE]' },
    });
    expect(lines[2].err).toHaveProperty('stack', expect.stringMatching(/^Error: no case for \[PHONE\]\n\s+at /));
    expect(lines[3]).toMatchObject({ error: { message: 'card [CARD] refused', code: 'E_TOOL', status: 400 } });
    expect(JSON.stringify(lines)).not.toContain(CARD);
    expect(JSON.stringify(lines)).not.toContain('415 555');
  });
});

describe('withoutPiiFields', () => {
  it('withholds every key with a pii segment and leaves the rest and the input alone', () => {
    const fields = { 'lk.pii.arguments': CARD, 'x.PII': CARD, pii: CARD, piiEntities: 2, function: 'f', n: 1 };
    expect(withoutPiiFields(fields)).toEqual({
      'lk.pii.arguments': PII_FIELD_WITHHELD,
      'x.PII': PII_FIELD_WITHHELD,
      pii: PII_FIELD_WITHHELD,
      piiEntities: 2,
      function: 'f',
      n: 1,
    });
    expect(fields['lk.pii.arguments']).toBe(CARD);
  });

  it('masks PII in errors, keeps what a reader needs, and drops nested values where raw input would hide', () => {
    const cause = new Error(`caller ${PHONE}`);
    const error = Object.assign(new Error(`tool failed for ${PHONE}`, { cause }), {
      code: 'E_TOOL',
      retryable: false,
      request: { body: CARD },
    });
    const masked = withoutPiiFields({ error, err: `timeout calling ${PHONE}`, other: { card: CARD } });
    expect({ ...(masked.error as object) }).toEqual({
      type: 'Error',
      message: 'tool failed for [PHONE]',
      stack: expect.stringContaining('tool failed for [PHONE]'),
      code: 'E_TOOL',
      retryable: false,
    });
    expect(masked.err).toBe('timeout calling [PHONE]');
    // Only the error fields are the framework's unmarked PII carriers; other fields are left as logged.
    expect(masked.other).toEqual({ card: CARD });
    expect(error.message).toContain(PHONE);
  });
});

describe('agentLogger', () => {
  /** A logger's lines, parsed, written to memory. */
  function capture(piiRedaction: boolean) {
    const lines: Record<string, unknown>[] = [];
    const destination = { write: (line: string) => void lines.push(JSON.parse(line)) };
    return { lines, logger: agentLogger({ service: 'agent', workerId: 'worker-1a2b3c4d' }, piiRedaction, destination) };
  }
  const ROOM = 'call-_+14155550123_Xk3q';

  it("masks every string of a line and of its children's bindings under PII_REDACTION", () => {
    const { lines, logger } = capture(true);
    const call = logger.child({ callId: 'SCL_4bf1c2a9e7d3', room: ROOM });
    call.child({ caller: 'sip_+14155550123' }).error(
      {
        err: new Error(`no case for ${PHONE}`),
        attempt: 2,
        participants: [{ identity: 'sip_+14155550123', kind: 3 }],
        details: { said: `my card is ${CARD}` },
      },
      'call left without an agent',
    );
    expect(lines).toHaveLength(1);
    const [line] = lines;
    expect(line).toMatchObject({
      service: 'agent',
      workerId: 'worker-1a2b3c4d',
      callId: 'SCL_4bf1c2a9e7d3',
      room: 'call-_[PHONE]_Xk3q',
      caller: 'sip_[PHONE]',
      attempt: 2,
      participants: [{ identity: 'sip_[PHONE]', kind: 3 }],
      details: { said: 'my card is [CARD]' },
      err: { type: 'Error', message: 'no case for [PHONE]' },
      msg: 'call left without an agent',
    });
    expect(JSON.stringify(line)).not.toMatch(/4155550123|415 555|4111111111111111/);
  });

  it('writes what it is given without PII_REDACTION', () => {
    const { lines, logger } = capture(false);
    logger.child({ room: ROOM }).info({ caller: 'sip_+14155550123' }, 'job ended');
    expect(lines[0]).toMatchObject({ room: ROOM, caller: 'sip_+14155550123' });
  });

  it('leaves a value deeper than it walks out instead of writing it unmasked', () => {
    let deep: Record<string, unknown> = { phone: PHONE };
    for (let level = 0; level < 12; level += 1) deep = { deeper: deep };
    expect(JSON.stringify(maskedLogFields({ deep }))).not.toContain('415 555');
  });
});
