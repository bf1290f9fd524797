import { createServer, type IncomingHttpHeaders } from 'node:http';
import { join } from 'node:path';
import { ConditionalCheckFailedException } from '@aws-sdk/client-dynamodb';
import { DynamoDBDocumentClient, GetCommand, QueryCommand, UpdateCommand } from '@aws-sdk/lib-dynamodb';
import { type IntakeCase, intakeCaseSchema } from '@voice-intake/contracts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterEach, describe, expect, it } from 'vitest';
import { HttpCaseForwarder } from '../src/backend/http-forwarder';
import { EmbeddedKnowledge, readMarkdownPassages } from '../src/knowledge/embedded';
import { caseIdForCall } from '../src/stores/case-store';
import { BY_PHONE_INDEX, DynamoDbCaseStore } from '../src/stores/dynamodb-case-store';
import { closeServer, listenOnLoopback, openSearchAt } from './support/local-http';

function intakeCase(overrides: Partial<IntakeCase> = {}): IntakeCase {
  return intakeCaseSchema.parse({
    schemaVersion: 1,
    caseId: caseIdForCall('call-9'),
    callId: 'call-9',
    callerNumber: '+14155550123',
    intakeType: 'general_inquiry',
    fields: { full_name: 'Ada Lovelace', topic: 'billing', details: 'double charge' },
    status: 'submitted',
    createdAt: '2026-11-24T10:00:00.000Z',
    updatedAt: '2026-11-24T10:05:00.000Z',
    submittedAt: '2026-11-24T10:05:00.000Z',
    source: 'voice',
    ...overrides,
  });
}

describe('DynamoDB case store', () => {
  const ddb = mockClient(DynamoDBDocumentClient);
  afterEach(() => ddb.reset());
  const store = () => new DynamoDbCaseStore('cases');

  it('submits with a condition that only a missing or draft case passes, indexed by phone', async () => {
    const submitted = intakeCase();
    ddb.on(UpdateCommand).resolves({ Attributes: { pk: `CASE#${submitted.caseId}`, sk: 'CASE', ...submitted } });
    const result = await store().submit(submitted);
    expect(result).toEqual({ case: submitted, created: true });
    const input = ddb.commandCalls(UpdateCommand)[0].args[0].input;
    expect(input.Key).toEqual({ pk: `CASE#${submitted.caseId}`, sk: 'CASE' });
    expect(input.ConditionExpression).toBe('attribute_not_exists(#pk) OR #status = :draft');
    expect(input.ExpressionAttributeValues![':draft']).toBe('draft');
    expect(Object.values(input.ExpressionAttributeValues!)).toContain('PHONE#+14155550123');
    expect(input.UpdateExpression).toContain('#createdAt = if_not_exists(#createdAt, :createdAt)');
  });

  it('marks the case pending delivery in the same conditional write as its submit (the outbox entry)', async () => {
    const submitted = intakeCase();
    ddb.on(UpdateCommand).resolves({
      Attributes: { pk: `CASE#${submitted.caseId}`, sk: 'CASE', ...submitted, awaitingForward: 'PENDING' },
    });
    const result = await store().submit(submitted, { forwardDueAt: '2026-11-24T10:06:00.000Z' });
    expect(result).toEqual({ case: submitted, created: true });
    const calls = ddb.commandCalls(UpdateCommand);
    expect(calls).toHaveLength(1);
    const { input } = calls[0].args[0];
    expect(input.ConditionExpression).toBe('attribute_not_exists(#pk) OR #status = :draft');
    const set = Object.fromEntries(
      Object.entries(input.ExpressionAttributeNames!).map(([alias, name]) => [
        name,
        input.ExpressionAttributeValues![`:${alias.slice(1)}`],
      ]),
    );
    expect(set).toMatchObject({
      status: 'submitted',
      awaitingForward: 'PENDING',
      forwardDueAt: '2026-11-24T10:06:00.000Z',
      forwardAttempts: 0,
    });
  });

  it('returns the existing case, not a duplicate, when the conditional write fails', async () => {
    const first = intakeCase({ fields: { full_name: 'Ada Lovelace', topic: 'billing', details: 'first submit' } });
    ddb
      .on(UpdateCommand)
      .rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    ddb.on(GetCommand).resolves({ Item: { pk: `CASE#${first.caseId}`, sk: 'CASE', ...first } });
    const result = await store().submit(
      intakeCase({ fields: { full_name: 'Ada Lovelace', topic: 'billing', details: 'second submit' } }),
    );
    expect(result.created).toBe(false);
    expect(result.case.fields.details).toBe('first submit');
    expect(ddb.commandCalls(GetCommand)[0].args[0].input).toMatchObject({
      ConsistentRead: true,
      Key: { pk: `CASE#${first.caseId}`, sk: 'CASE' },
    });
  });

  it('refuses to overwrite a submitted case with a draft', async () => {
    ddb
      .on(UpdateCommand)
      .rejects(new ConditionalCheckFailedException({ message: 'The conditional request failed', $metadata: {} }));
    ddb.on(GetCommand).resolves({ Item: intakeCase() });
    await expect(store().saveDraft(intakeCase({ status: 'draft', submittedAt: undefined }))).rejects.toThrow(
      /already submitted/,
    );
  });

  it("lists a caller's cases newest first through the by-phone index", async () => {
    ddb
      .on(QueryCommand)
      .resolves({ Items: [{ pk: 'CASE#x', sk: 'CASE', gsi1pk: 'PHONE#+14155550123', ...intakeCase() }] });
    const cases = await store().listCasesByPhone('+14155550123');
    expect(cases).toEqual([intakeCase()]);
    expect(ddb.commandCalls(QueryCommand)[0].args[0].input).toMatchObject({
      IndexName: BY_PHONE_INDEX,
      KeyConditionExpression: 'gsi1pk = :phone',
      ExpressionAttributeValues: { ':phone': 'PHONE#+14155550123' },
      ScanIndexForward: false,
    });
  });
});

describe('OpenSearch knowledge search', () => {
  it('sends a signed BM25 multi_match query and maps the hits', async () => {
    const seen: { url?: string; headers?: IncomingHttpHeaders; body?: any } = {};
    const server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      Object.assign(seen, { url: req.url, headers: req.headers, body: JSON.parse(body) });
      res.writeHead(200, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          hits: {
            hits: [
              {
                _id: 'd1',
                _score: 7.5,
                _source: {
                  source_id: 'claims#2',
                  title: 'Timelines',
                  text: 'Most water damage claims are settled within 30 days.',
                },
              },
            ],
          },
        }),
      );
    });
    const baseUrl = await listenOnLoopback(server);
    try {
      const search = openSearchAt(baseUrl, 'es');
      const passages = await search.search('water claim timeline', 2);
      expect(passages).toEqual([
        {
          sourceId: 'claims#2',
          title: 'Timelines',
          text: 'Most water damage claims are settled within 30 days.',
          score: 7.5,
        },
      ]);
      expect(seen.url).toBe('/knowledge/_search');
      expect(seen.headers!.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE\/\d{8}\/us-east-1\/es\/aws4_request/,
      );
      expect(seen.body).toMatchObject({
        size: 2,
        query: { multi_match: { query: 'water claim timeline', fields: ['title^2', 'text'] } },
      });
    } finally {
      await closeServer(server);
    }
  });

  it('reports an OpenSearch error status', async () => {
    const server = createServer((_req, res) => res.writeHead(403).end('{"message":"no permissions"}'));
    const baseUrl = await listenOnLoopback(server);
    try {
      const search = openSearchAt(baseUrl, 'aoss');
      await expect(search.search('hours', 3)).rejects.toThrow(/HTTP 403/);
    } finally {
      await closeServer(server);
    }
  });
});

describe('OpenSearch knowledge loading', () => {
  it('creates the index with BM25 fields and an optional vector field, then bulk-loads passages by source id', async () => {
    const requests: { method?: string; url?: string; body: string }[] = [];
    let indexExists = false;
    const server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      requests.push({ method: req.method, url: req.url, body });
      if (req.method === 'PUT') {
        if (indexExists) {
          res.writeHead(400).end('{"error":{"type":"resource_already_exists_exception"}}');
          return;
        }
        indexExists = true;
        res.writeHead(200).end('{"acknowledged":true}');
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"errors":false,"items":[]}');
    });
    const baseUrl = await listenOnLoopback(server);
    try {
      const search = openSearchAt(baseUrl, 'aoss');
      expect(await search.ensureIndex(384)).toBe('created');
      expect(await search.ensureIndex(384)).toBe('exists');
      const create = JSON.parse(requests[0].body);
      expect(create.mappings.properties).toEqual({
        source_id: { type: 'keyword' },
        title: { type: 'text' },
        text: { type: 'text' },
        embedding: { type: 'knn_vector', dimension: 384 },
      });
      const passages = readMarkdownPassages(join(__dirname, '..', 'knowledge'));
      expect(await search.indexPassages(passages)).toBe(passages.length);
      const bulk = requests.at(-1)!;
      expect(bulk.url).toBe('/_bulk');
      const lines = bulk.body
        .trim()
        .split('\n')
        .map((line) => JSON.parse(line));
      expect(lines).toHaveLength(passages.length * 2);
      expect(lines[0]).toEqual({ index: { _index: 'knowledge', _id: passages[0].sourceId } });
      expect(lines[1]).toEqual({ source_id: passages[0].sourceId, title: passages[0].title, text: passages[0].text });
    } finally {
      await closeServer(server);
    }
  });
});

describe('embedded knowledge', () => {
  it('ranks the passage that matches the question first', async () => {
    const knowledge = new EmbeddedKnowledge(join(__dirname, '..', 'knowledge'));
    expect(knowledge.size).toBeGreaterThan(3);
    const [best] = await knowledge.search('when are you open on saturday', 3);
    expect(best.sourceId).toMatch(/^office-hours#/);
    expect(best.text).toContain('Saturday');
    expect(await knowledge.search('zzzz qqqq', 3)).toEqual([]);
  });
});

describe('HTTP backend forwarder', () => {
  it('retries a case the backend keeps failing with the same idempotency key, then leaves it for later', async () => {
    const keys: string[] = [];
    const server = createServer(async (req, res) => {
      for await (const _ of req);
      keys.push(String(req.headers['idempotency-key']));
      res.writeHead(502).end();
    });
    const baseUrl = await listenOnLoopback(server);
    try {
      const forwarder = new HttpCaseForwarder({ url: `${baseUrl}/cases`, maxAttempts: 3, retryBaseMs: 1 });
      expect(await forwarder.forward(intakeCase())).toEqual({ outcome: 'retry_later', attempts: 3, error: 'HTTP 502' });
      expect(keys).toEqual([intakeCase().caseId, intakeCase().caseId, intakeCase().caseId]);
    } finally {
      await closeServer(server);
    }
  });

  it('does not retry a case the backend rejects as invalid', async () => {
    let requests = 0;
    const server = createServer(async (req, res) => {
      for await (const _ of req);
      requests += 1;
      res.writeHead(422).end();
    });
    const baseUrl = await listenOnLoopback(server);
    try {
      const forwarder = new HttpCaseForwarder({ url: baseUrl, maxAttempts: 4, retryBaseMs: 1 });
      expect(await forwarder.forward(intakeCase())).toEqual({
        outcome: 'refused',
        attempts: 1,
        status: 422,
        error: 'HTTP 422',
      });
      expect(requests).toBe(1);
    } finally {
      await closeServer(server);
    }
  });
});
