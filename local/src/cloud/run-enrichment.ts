/**
 * Runs the enrichment function's handler once, as Lambda would on an S3 "Object Created" event from EventBridge:
 * `tsx run-enrichment.ts <bucket> <key> <size> <etag>` with the function's environment (from its template) and the
 * AWS endpoints set. Prints the outcome as one JSON line. A process of its own: the handler reads its environment
 * when loaded, as in Lambda.
 */
import type { Context } from 'aws-lambda';
import { handler } from '../../../lambda/src/enrichment/handler';

const [bucket, key, size, etag] = process.argv.slice(2);
const startedAt = Date.now();
const context = {
  functionName: 'enrichment',
  awsRequestId: `local-${startedAt}`,
  getRemainingTimeInMillis: () => Math.max(0, 60_000 - (Date.now() - startedAt)),
} as unknown as Context;
const event = {
  version: '0',
  source: 'aws.s3',
  'detail-type': 'Object Created',
  detail: { bucket: { name: bucket }, object: { key, size: Number(size), etag } },
};
handler(event, context).then(
  (outcome) => process.stdout.write(`${JSON.stringify({ outcome })}\n`),
  (error: Error) => {
    process.stdout.write(`${JSON.stringify({ error: error.message })}\n`);
    process.exitCode = 1;
  },
);
