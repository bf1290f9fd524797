/** How S3 answers, read from the SDK's errors by name and status (contracts do not depend on the SDK). */
type S3Failure = { name?: string; $metadata?: { httpStatusCode?: number } } | null | undefined;

/** S3's answer to a conditional write (`If-None-Match: *`) whose key exists: 412 PreconditionFailed. */
export function isRefusedAsExisting(error: unknown): boolean {
  const failure = error as S3Failure;
  return failure?.name === 'PreconditionFailed' || failure?.$metadata?.httpStatusCode === 412;
}

/**
 * S3's answer to reading a key that holds nothing: `NoSuchKey` from GetObject, or a bare 404 `NotFound` (HeadObject,
 * or GetObject when the caller may list the bucket but the SDK could not read the error body). A 403 is not absence.
 */
export function isNoSuchKey(error: unknown): boolean {
  const failure = error as S3Failure;
  return failure?.name === 'NoSuchKey' || (failure?.name === 'NotFound' && failure.$metadata?.httpStatusCode === 404);
}
