/**
 * Forwarding submitted cases through the case store's outbox, against DynamoDB in moto (server mode, the real SDK
 * client) and the embedded store, with a real HTTP backend stand-in on loopback: what is not delivered stays pending
 * in the store, where a new server task (new store client, new forwarder, no memory of the old one) delivers it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CreateTableCommand, DynamoDBClient } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand } from '@aws-sdk/lib-dynamodb';
import type { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { type IntakeCase, intakeCaseSchema } from '@voice-intake/contracts';
import pino from 'pino';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type MotoServer, startMoto } from '../../test/support/moto';
import { HttpCaseForwarder } from '../src/backend/http-forwarder';
import { CaseOutbox } from '../src/backend/outbox';
import { type CaseStore, caseIdForCall } from '../src/stores/case-store';
import { AWAITING_FORWARD_INDEX, BY_PHONE_INDEX, DynamoDbCaseStore } from '../src/stores/dynamodb-case-store';
import { EmbeddedCaseStore } from '../src/stores/embedded-case-store';
import { type InProcessServer, startInProcess } from './support/in-process';
import { closeServer, listenOnLoopback } from './support/local-http';
import { connectClient } from './support/server-process';

type ToolResult = { isError?: boolean; structuredContent?: Record<string, any> };

const FIELDS = { full_name: 'Ada Lovelace', topic: 'billing', details: 'Charged twice this month.' };
const MINUTE = 60_000;

/** The enterprise backend: answers `status` (a number, or a function of the request count), records each request. */
function backendStandIn() {
  const received: { idempotencyKey: string; caseId: string }[] = [];
  const stand = { status: 503, delayMs: 0 };
  const server: Server = createServer(async (req, res) => {
    let body = '';
    for await (const chunk of req) body += chunk;
    received.push({ idempotencyKey: String(req.headers['idempotency-key']), caseId: JSON.parse(body).caseId });
    if (stand.delayMs) await new Promise((resolve) => setTimeout(resolve, stand.delayMs));
    res.writeHead(stand.status).end();
  });
  return {
    received,
    stand,
    start: async () => `${await listenOnLoopback(server)}/cases`,
    stop: () => closeServer(server),
  };
}

/** A clock the test moves; every outbox and server of a test reads it. */
function testClock() {
  let now = Date.parse('2026-11-24T10:00:00.000Z');
  return { now: () => new Date(now), advance: (ms: number) => (now += ms) };
}

type Clock = ReturnType<typeof testClock>;

/** Log lines (parsed) a pino logger wrote. */
function capturedLogger() {
  const lines: Record<string, any>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line)) });
  return { logger, lines };
}

interface Backend {
  /** A case store as one server task opens it (a new client each time: a new task). */
  open(): CaseStore;
  /**
   * The store of another task running beside the one that opened `running`: a new client for DynamoDB; for the
   * embedded store (one process only) that same instance.
   */
  beside(running: CaseStore): CaseStore;
  /** The raw stored case item (DynamoDB) or undefined (embedded). */
  rawItem(caseId: string): Promise<Record<string, unknown> | undefined>;
}

let moto: MotoServer;
const rawClient = () =>
  DynamoDBDocumentClient.from(new DynamoDBClient(moto.clientConfig), {
    marshallOptions: { removeUndefinedValues: true },
  });

beforeAll(async () => {
  moto = await startMoto();
}, 90_000);

afterAll(async () => {
  await moto?.stop();
});

const dataDirs: string[] = [];
afterAll(() => {
  for (const dir of dataDirs) rmSync(dir, { recursive: true, force: true });
});

let tables = 0;

/** A table of its own for each test (a redrive sees every pending case of its table), as data-stack.ts defines it. */
async function dynamoBackend(): Promise<Backend> {
  tables += 1;
  const table = `cases-${tables}`;
  await new DynamoDBClient(moto.clientConfig).send(
    new CreateTableCommand({
      TableName: table,
      BillingMode: 'PAY_PER_REQUEST',
      KeySchema: [
        { AttributeName: 'pk', KeyType: 'HASH' },
        { AttributeName: 'sk', KeyType: 'RANGE' },
      ],
      AttributeDefinitions: ['pk', 'sk', 'gsi1pk', 'gsi1sk', 'awaitingForward', 'forwardDueAt'].map((name) => ({
        AttributeName: name,
        AttributeType: 'S',
      })),
      GlobalSecondaryIndexes: [
        {
          IndexName: BY_PHONE_INDEX,
          KeySchema: [
            { AttributeName: 'gsi1pk', KeyType: 'HASH' },
            { AttributeName: 'gsi1sk', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
        {
          IndexName: AWAITING_FORWARD_INDEX,
          KeySchema: [
            { AttributeName: 'awaitingForward', KeyType: 'HASH' },
            { AttributeName: 'forwardDueAt', KeyType: 'RANGE' },
          ],
          Projection: { ProjectionType: 'ALL' },
        },
      ],
    }),
  );
  return {
    open: () => new DynamoDbCaseStore(table, rawClient()),
    beside: () => new DynamoDbCaseStore(table, rawClient()),
    rawItem: async (caseId) =>
      (await rawClient().send(new GetCommand({ TableName: table, Key: { pk: `CASE#${caseId}`, sk: 'CASE' } }))).Item,
  };
}

async function embeddedBackend(): Promise<Backend> {
  const dir = mkdtempSync(join(tmpdir(), 'outbox-embedded-'));
  dataDirs.push(dir);
  // One process only: a new instance reads what the last one persisted (a restart).
  return {
    open: () => new EmbeddedCaseStore(dir),
    beside: (running) => running,
    rawItem: async () => undefined,
  };
}

/** A server task: its own case store client, forwarder and outbox (nothing shared with another task). */
function task(store: CaseStore, backendUrl: string, clock: Clock, logger = pino({ level: 'silent' })) {
  const forwarder = new HttpCaseForwarder({ url: backendUrl, maxAttempts: 2, retryBaseMs: 1, timeoutMs: 2_000 });
  return new CaseOutbox({ store, forwarder, logger, now: clock.now });
}

let counter = 0;
function nextCallId(): string {
  counter += 1;
  return `call-outbox-${counter}`;
}

async function submitThrough(server: InProcessServer, callId: string): Promise<ToolResult> {
  const client: Client = await connectClient(server.url, {
    session: { callId, callerNumber: '+14155550123', attestation: 'A' },
  });
  try {
    return (await client.callTool({
      name: 'submit_intake',
      arguments: { intakeType: 'general_inquiry', fields: FIELDS },
    })) as ToolResult;
  } finally {
    await client.close();
  }
}

function serverWith(store: CaseStore, outbox: CaseOutbox, clock: Clock) {
  return startInProcess({ cases: () => store, deps: { outbox, now: clock.now } });
}

describe.each([
  { store: 'DynamoDB', makeBackend: dynamoBackend },
  { store: 'embedded', makeBackend: embeddedBackend },
])('case outbox ($store store)', ({ makeBackend }) => {
  const backend = backendStandIn();
  let backendUrl: string;
  const servers: InProcessServer[] = [];

  beforeAll(async () => {
    backendUrl = await backend.start();
  });
  afterAll(() => backend.stop());
  afterEach(async () => {
    for (const server of servers.splice(0)) await server.stop();
    backend.received.length = 0;
    backend.stand.status = 503;
    backend.stand.delayMs = 0;
  });

  it('keeps a case the backend did not take pending in the store; a new task delivers it on redrive', async () => {
    const store = await makeBackend();
    const clock = testClock();
    const callId = nextCallId();
    const caseId = caseIdForCall(callId);

    const firstStore = store.open();
    const first = await serverWith(firstStore, task(firstStore, backendUrl, clock), clock);
    servers.push(first);
    const submitted = await submitThrough(first, callId);
    expect(submitted.structuredContent).toMatchObject({
      caseId,
      status: 'submitted',
      alreadySubmitted: false,
      forwarded: 'queued',
    });
    expect(backend.received).toHaveLength(2);
    const pending = await firstStore.getCaseForwarding(caseId);
    expect(pending?.forwarding).toMatchObject({ state: 'pending', attempts: 1, lastError: 'HTTP 503' });
    // The bookkeeping stays out of the case the contract describes (and the backend receives).
    expect(Object.keys(pending!.case).sort()).toEqual(Object.keys(intakeCaseSchema.parse(pending!.case)).sort());
    expect(pending?.case).not.toHaveProperty('awaitingForward');
    // The task is replaced: it and its memory are gone.
    await first.stop();
    servers.splice(0);

    backend.stand.status = 201;
    const secondStore = store.open();
    const replacement = task(secondStore, backendUrl, clock);
    // Not yet due: the first redrive backoff has not passed.
    expect(await replacement.redrive()).toMatchObject({ due: 0, delivered: 0 });
    clock.advance(2 * MINUTE);
    expect(await replacement.redrive()).toMatchObject({ due: 1, delivered: 1 });
    expect(backend.received.map((request) => request.idempotencyKey)).toEqual([caseId, caseId, caseId]);

    const delivered = await secondStore.getCaseForwarding(caseId);
    expect(delivered?.case).toMatchObject({ status: 'forwarded', forwardedAt: clock.now().toISOString() });
    expect(delivered?.forwarding.state).toBe('forwarded');
    const item = await store.rawItem(caseId);
    if (item) {
      expect(item).not.toHaveProperty('awaitingForward');
      expect(item).not.toHaveProperty('forwardDueAt');
    }
    // Nothing left to deliver, however late.
    clock.advance(24 * 60 * MINUTE);
    expect(await replacement.redrive()).toMatchObject({ due: 0 });

    // A repeated submit on a new task answers from the store: delivered, by whichever task delivered it.
    const second = await serverWith(secondStore, replacement, clock);
    servers.push(second);
    expect((await submitThrough(second, callId)).structuredContent).toMatchObject({
      caseId,
      status: 'forwarded',
      alreadySubmitted: true,
      forwarded: 'delivered',
    });
    expect(backend.received).toHaveLength(3);
  });

  it('delivers a case whose task died between submit and forward', async () => {
    const store = await makeBackend();
    const clock = testClock();
    const callId = nextCallId();
    const caseId = caseIdForCall(callId);
    const dying = task(store.open(), backendUrl, clock);
    // The submit's one write records the case as pending; the task dies before it forwards anything.
    const intakeCase: IntakeCase = intakeCaseSchema.parse({
      schemaVersion: 1,
      caseId,
      callId,
      callerNumber: '+14155550123',
      intakeType: 'general_inquiry',
      fields: FIELDS,
      status: 'submitted',
      createdAt: clock.now().toISOString(),
      updatedAt: clock.now().toISOString(),
      submittedAt: clock.now().toISOString(),
      source: 'voice',
    });
    await store.open().submit(intakeCase, { forwardDueAt: dying.firstDueAt(clock.now()) });

    backend.stand.status = 200;
    const survivor = task(store.open(), backendUrl, clock);
    expect(await survivor.redrive()).toMatchObject({ due: 0 });
    clock.advance(2 * MINUTE);
    expect(await survivor.redrive()).toMatchObject({ due: 1, delivered: 1 });
    expect(backend.received).toEqual([{ idempotencyKey: caseId, caseId }]);
    expect(await survivor.stateOf(caseId)).toBe('delivered');
  });

  it('marks a case the backend refuses for good as failed, out of the pending index, and never retries it', async () => {
    const store = await makeBackend();
    const clock = testClock();
    const { logger, lines } = capturedLogger();

    // Refused right at submit.
    backend.stand.status = 422;
    const refusedCall = nextCallId();
    const cases = store.open();
    const server = await serverWith(cases, task(cases, backendUrl, clock, logger), clock);
    servers.push(server);
    expect((await submitThrough(server, refusedCall)).structuredContent).toMatchObject({
      forwarded: 'failed',
      status: 'submitted',
    });
    expect(backend.received).toHaveLength(1);
    expect((await cases.getCaseForwarding(caseIdForCall(refusedCall)))?.forwarding).toMatchObject({
      state: 'refused',
      status: 422,
      error: 'HTTP 422',
    });
    expect(lines).toContainEqual(
      expect.objectContaining({ event: 'case_forward_refused', caseId: caseIdForCall(refusedCall), status: 422 }),
    );

    // Pending after a 503 at submit, refused at its redrive.
    backend.stand.status = 503;
    const laterCall = nextCallId();
    expect((await submitThrough(server, laterCall)).structuredContent).toMatchObject({ forwarded: 'queued' });
    backend.stand.status = 400;
    const other = task(store.beside(cases), backendUrl, clock, logger);
    clock.advance(2 * MINUTE);
    expect(await other.redrive()).toMatchObject({ due: 1, refused: 1 });
    expect(await other.stateOf(caseIdForCall(laterCall))).toBe('failed');
    const item = await store.rawItem(caseIdForCall(laterCall));
    if (item) {
      expect(item).not.toHaveProperty('awaitingForward');
      expect(item.forwardFailed).toMatchObject({ status: 400, error: 'HTTP 400' });
    }

    const requests = backend.received.length;
    backend.stand.status = 201;
    clock.advance(48 * 60 * MINUTE);
    expect(await other.redrive()).toMatchObject({ due: 0 });
    expect(backend.received).toHaveLength(requests);
    // The repeated submit says so too.
    expect((await submitThrough(server, refusedCall)).structuredContent).toMatchObject({
      alreadySubmitted: true,
      forwarded: 'failed',
    });
  });

  it('backs off per case and logs a case pending longer than the overdue limit', async () => {
    const store = await makeBackend();
    const clock = testClock();
    const { logger, lines } = capturedLogger();
    const callId = nextCallId();
    const caseId = caseIdForCall(callId);
    const cases = store.open();
    const server = await serverWith(cases, task(cases, backendUrl, clock), clock);
    servers.push(server);
    expect((await submitThrough(server, callId)).structuredContent).toMatchObject({ forwarded: 'queued' });

    const outbox = task(store.beside(cases), backendUrl, clock, logger);
    // Redrive attempts 2, 3, 4 wait 1, 2, 4 minutes after the one before.
    for (const [wait, attempts] of [
      [1, 2],
      [2, 3],
      [4, 4],
    ]) {
      clock.advance(wait * MINUTE);
      expect(await outbox.redrive()).toMatchObject({ due: 1, deferred: 1 });
      expect(await outbox.redrive()).toMatchObject({ due: 0 });
      expect((await cases.getCaseForwarding(caseId))?.forwarding).toMatchObject({ state: 'pending', attempts });
    }
    expect(lines.filter((line) => line.event === 'case_forward_overdue')).toEqual([]);
    clock.advance(9 * MINUTE);
    expect(await outbox.redrive()).toMatchObject({ due: 1, deferred: 1, overdue: 1 });
    expect(lines).toContainEqual(
      expect.objectContaining({ event: 'case_forward_overdue', caseId, pendingMinutes: 16, attempts: 4 }),
    );
    expect(await outbox.stateOf(caseId)).toBe('queued');
  });

  it('lets two tasks redrive at once: the case is posted once, with the case id as idempotency key', async () => {
    const store = await makeBackend();
    const clock = testClock();
    const callIds = [nextCallId(), nextCallId(), nextCallId()];
    const cases = store.open();
    const server = await serverWith(cases, task(cases, backendUrl, clock), clock);
    servers.push(server);
    for (const callId of callIds)
      expect((await submitThrough(server, callId)).structuredContent).toMatchObject({ forwarded: 'queued' });
    backend.received.length = 0;

    backend.stand.status = 201;
    backend.stand.delayMs = 100;
    clock.advance(2 * MINUTE);
    const [a, b] = [store.beside(cases), store.beside(cases)].map((opened) => task(opened, backendUrl, clock));
    const [ra, rb] = await Promise.all([a.redrive(), b.redrive()]);
    expect(ra.delivered + rb.delivered).toBe(3);
    expect(backend.received).toHaveLength(3);
    expect(backend.received.map((request) => request.idempotencyKey).sort()).toEqual(
      callIds.map((callId) => caseIdForCall(callId)).sort(),
    );
    for (const request of backend.received) expect(request.idempotencyKey).toBe(request.caseId);
    for (const callId of callIds) expect(await a.stateOf(caseIdForCall(callId))).toBe('delivered');
  });
});
