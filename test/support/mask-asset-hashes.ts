import type { SnapshotSerializer } from 'vitest';

const ASSET_HASH = /[0-9a-f]{64}/g;

/**
 * Snapshot serializer: asset hashes (64 hex chars, in S3 keys, image tags and Lambda code locations) change with
 * every handler or Dockerfile edit and differ between machines; mask them so snapshots track what matters.
 */
const serializer: SnapshotSerializer = {
  test: (value: unknown) => {
    if (typeof value !== 'string') return false;
    ASSET_HASH.lastIndex = 0; // a global pattern remembers where it stopped
    return ASSET_HASH.test(value);
  },
  serialize: (value: string, config, indentation, depth, refs, printer) =>
    printer(value.replace(ASSET_HASH, '[ASSET_HASH]'), config, indentation, depth, refs),
};

export default serializer;
