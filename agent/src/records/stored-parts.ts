import { ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { parseRecordingPartKey, recordingPartKey, recordingPrefix } from '@voice-intake/contracts';

/**
 * What is in the bucket of a call's recording, as a worker that took the call over finds it. The session state's
 * counts are saved after each flush, so a part stored after the last save (a worker killed before its first save, or
 * between storing a part and saving) is in the bucket but not counted; a part counted may also be missing (its write
 * failed). The listing decides what the transcript names as stored.
 */

/** What a listing of a call's recording prefix found. */
export interface StoredParts {
  /** Part numbers found, per segment. */
  readonly bySegment: ReadonlyMap<number, ReadonlySet<number>>;
  /** Keys under the prefix that are not exactly a part key of this call: never listed, only counted. */
  readonly foreign: number;
}

/** Every key under a prefix (all pages). */
export type ListKeys = (prefix: string) => Promise<string[]>;

/** A call's recording can hold at most this many keys worth reading: more and the listing is refused, not truncated. */
const MAX_LISTED_KEYS = 200_000;

/** Lists keys with ListObjectsV2, page after page (`pageSize` at most 1000, S3's own cap). */
export function s3KeyLister(s3: S3Client, bucket: string, pageSize = 1_000): ListKeys {
  return async (prefix) => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await s3.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: pageSize, ContinuationToken: token }),
      );
      for (const object of page.Contents ?? []) if (object.Key !== undefined) keys.push(object.Key);
      if (keys.length > MAX_LISTED_KEYS) throw new Error(`more than ${MAX_LISTED_KEYS} keys under ${prefix}`);
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
      // A truncated page without a token cannot be continued: what was listed would be short, silently.
      if (page.IsTruncated && !token) throw new Error(`listing of ${prefix} truncated without a continuation token`);
    } while (token);
    return keys;
  };
}

/** Lists the call's recording prefix and sorts its keys into parts per segment, and keys that are none. */
export async function storedParts(callId: string, list: ListKeys): Promise<StoredParts> {
  const prefix = recordingPrefix(callId);
  const bySegment = new Map<number, Set<number>>();
  let foreign = 0;
  for (const key of await list(prefix)) {
    const named = parseRecordingPartKey(callId, key);
    if (!named) {
      foreign += 1;
      continue;
    }
    const parts = bySegment.get(named.segment) ?? new Set<number>();
    parts.add(named.part);
    bySegment.set(named.segment, parts);
  }
  return { bySegment, foreign };
}

/** The highest segment with a part in the bucket (undefined: none). */
export function highestStoredSegment(stored: StoredParts): number | undefined {
  const segments = [...stored.bySegment.keys()];
  return segments.length ? Math.max(...segments) : undefined;
}

/** The highest part number `segment` has in the bucket (0: none). */
export function highestStoredPart(stored: StoredParts, segment: number): number {
  let highest = 0;
  for (const part of stored.bySegment.get(segment) ?? []) highest = Math.max(highest, part);
  return highest;
}

/** The earlier segments' parts, told apart by what the bucket holds. */
export interface EarlierParts {
  /** In the bucket, in call order. */
  readonly parts: readonly string[];
  /** Counted (or below a stored part of their segment) but not in the bucket: a write that failed. */
  readonly missing: readonly string[];
  /** Counted by the session state, but the bucket could not be listed to confirm them. */
  readonly unverified: readonly string[];
}

export const NO_EARLIER_PARTS: EarlierParts = { parts: [], missing: [], unverified: [] };

/**
 * Segments 0..counts.length-1 against a listing: every part stored is named, counted or not (a part stored after the
 * last save is in the bucket and belongs in the record), and every number up to the highest of the count and the
 * highest stored part is either stored or missing. Without a listing nothing is claimed to exist: the counted parts
 * are unverified.
 */
export function earlierParts(callId: string, counts: readonly number[], stored?: StoredParts): EarlierParts {
  const parts: string[] = [];
  const missing: string[] = [];
  const unverified: string[] = [];
  counts.forEach((count, segment) => {
    if (!stored) {
      for (let part = 1; part <= count; part += 1) unverified.push(recordingPartKey(callId, part, segment));
      return;
    }
    const found = stored.bySegment.get(segment);
    const last = Math.max(count, highestStoredPart(stored, segment));
    for (let part = 1; part <= last; part += 1) {
      (found?.has(part) ? parts : missing).push(recordingPartKey(callId, part, segment));
    }
  });
  return { parts, missing, unverified };
}
