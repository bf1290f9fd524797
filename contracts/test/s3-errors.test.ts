import { describe, expect, it } from 'vitest';
import { isNoSuchKey, isRefusedAsExisting } from '../src';

/** Errors shaped as the AWS SDK v3 throws them: a name and the response's metadata. */
const s3Error = (name: string, httpStatusCode: number) =>
  Object.assign(new Error(name), { name, $metadata: { httpStatusCode } });

describe('S3 answers', () => {
  it('reads absence only from NoSuchKey or a 404 NotFound, never from a refusal', () => {
    expect(isNoSuchKey(s3Error('NoSuchKey', 404))).toBe(true);
    expect(isNoSuchKey(s3Error('NotFound', 404))).toBe(true);
    // Without s3:ListBucket S3 answers a missing key 403: that says nothing about whether it exists.
    expect(isNoSuchKey(s3Error('AccessDenied', 403))).toBe(false);
    expect(isNoSuchKey(s3Error('NotFound', 403))).toBe(false);
    expect(isNoSuchKey(s3Error('InternalError', 500))).toBe(false);
    expect(isNoSuchKey(undefined)).toBe(false);
    expect(isNoSuchKey(null)).toBe(false);
  });

  it('reads a conditional write refused because the key exists', () => {
    expect(isRefusedAsExisting(s3Error('PreconditionFailed', 412))).toBe(true);
    expect(isRefusedAsExisting(s3Error('Unknown', 412))).toBe(true);
    expect(isRefusedAsExisting(s3Error('ConditionalRequestConflict', 409))).toBe(false);
    expect(isRefusedAsExisting(undefined)).toBe(false);
  });
});
