import { isAbsolute, relative, resolve } from 'node:path';
import { callIdSchema } from './common';

/**
 * Where each record lives in S3. Writers and readers (agent, Lambda, IAM policies in CDK) use these,
 * so a prefix is named once.
 */
export const S3_PREFIXES = {
  /** Final transcripts: `transcripts/YYYY/MM/DD/<callId>.json`; creation triggers enrichment. */
  transcripts: 'transcripts/',
  /** In-call transcript slices: `transcript-parts/<callId>/<part>.json`. */
  transcriptParts: 'transcript-parts/',
  /** Enriched records written by the Lambda: `enriched/YYYY/MM/DD/<callId>.json`. */
  enriched: 'enriched/',
  /** Why a transcript could not be enriched: `enrichment-errors/YYYY/MM/DD/<callId>.json`. */
  enrichmentErrors: 'enrichment-errors/',
  /** Audit chain segments: `audit/<actor>/<callId>/[<chainId>/]<firstSeq>.jsonl` in the audit bucket. */
  audit: 'audit/',
  /** Call audio in the transcripts bucket: `recordings/<callId>/part-[r<segment>-]<n>.wav`, its own lifecycle rule. */
  recordings: 'recordings/',
} as const;

function datePath(at: Date): string {
  const y = at.getUTCFullYear();
  const m = String(at.getUTCMonth() + 1).padStart(2, '0');
  const d = String(at.getUTCDate()).padStart(2, '0');
  return `${y}/${m}/${d}`;
}

export function transcriptKey(callId: string, startedAt: Date): string {
  return `${S3_PREFIXES.transcripts}${datePath(startedAt)}/${callId}.json`;
}

const TRANSCRIPT_KEY = /^transcripts\/(\d{4})\/(\d{2})\/(\d{2})\/([^/]+)\.json$/;

/**
 * The call id and UTC day a key names, only when it is exactly what `transcriptKey(callId, day)` builds (a valid call
 * id, a real date, nothing else under the prefix); undefined otherwise.
 */
export function parseTranscriptKey(key: string): { callId: string; day: Date } | undefined {
  const match = TRANSCRIPT_KEY.exec(key);
  if (!match) return undefined;
  const [, year, month, date, callId] = match;
  if (!callIdSchema.safeParse(callId).success) return undefined;
  const day = new Date(Date.UTC(Number(year), Number(month) - 1, Number(date)));
  return transcriptKey(callId, day) === key ? { callId, day } : undefined;
}

/** Takeovers of one call a recording may continue through (`segment` of recordingPartKey). */
export const MAX_RECORDING_SEGMENT = 999;

/**
 * One part of a call's stereo recording (numbered from 1, in call order). `segment` counts the workers that took the
 * call over and went on recording (0: the first): each numbers its parts afresh under its own name, so a part the
 * previous worker wrote after it last saved its state is never overwritten.
 */
export function recordingPartKey(callId: string, part: number, segment = 0): string {
  if (!Number.isInteger(segment) || segment < 0 || segment > MAX_RECORDING_SEGMENT) {
    throw new Error(`recordingPartKey segment: must be an integer from 0 to ${MAX_RECORDING_SEGMENT}, got ${segment}`);
  }
  const name = segment === 0 ? '' : `r${segment}-`;
  return `${recordingPrefix(callId)}part-${name}${String(part).padStart(6, '0')}.wav`;
}

/** Where every part of a call's recording lives (listed by a worker that takes the call over). */
export function recordingPrefix(callId: string): string {
  return `${S3_PREFIXES.recordings}${callId}/`;
}

/** Parts one segment may write (the session state's count of them has this bound too). */
export const MAX_RECORDING_PARTS_PER_SEGMENT = 100_000;

const PART_KEY_NAME = /^part-(?:r(\d{1,3})-)?(\d{6})\.wav$/;

/**
 * The segment and part a key names, only when it is exactly what `recordingPartKey(callId, part, segment)` builds (so
 * `part-r0-…`, `part-r01-…`, part 0, a part past the per-segment bound or another call's key are not parts of this
 * call); undefined otherwise.
 */
export function parseRecordingPartKey(callId: string, key: string): { segment: number; part: number } | undefined {
  const prefix = recordingPrefix(callId);
  if (!key.startsWith(prefix)) return undefined;
  const match = PART_KEY_NAME.exec(key.slice(prefix.length));
  if (!match) return undefined;
  const segment = match[1] === undefined ? 0 : Number(match[1]);
  const part = Number(match[2]);
  if (part < 1 || part > MAX_RECORDING_PARTS_PER_SEGMENT || segment > MAX_RECORDING_SEGMENT) return undefined;
  return recordingPartKey(callId, part, segment) === key ? { segment, part } : undefined;
}

/** Every part key of a recording from how many parts each segment wrote, in call order. */
export function recordingPartKeys(callId: string, partsPerSegment: readonly number[]): string[] {
  return partsPerSegment.flatMap((count, segment) =>
    Array.from({ length: count }, (_, index) => recordingPartKey(callId, index + 1, segment)),
  );
}

export function transcriptPartKey(callId: string, part: number): string {
  return `${S3_PREFIXES.transcriptParts}${callId}/${String(part).padStart(6, '0')}.json`;
}

/** The enriched record sits beside its transcript: same date path and call id, `enriched/` prefix. */
export function enrichedKeyForTranscript(transcriptObjectKey: string): string {
  if (!transcriptObjectKey.startsWith(S3_PREFIXES.transcripts)) {
    throw new Error(`not a transcript key: ${transcriptObjectKey}`);
  }
  return S3_PREFIXES.enriched + transcriptObjectKey.slice(S3_PREFIXES.transcripts.length);
}

/** Where the error record for a transcript that could not be enriched goes. */
export function enrichmentErrorKeyForTranscript(transcriptObjectKey: string): string {
  return (
    S3_PREFIXES.enrichmentErrors + enrichedKeyForTranscript(transcriptObjectKey).slice(S3_PREFIXES.enriched.length)
  );
}

/** One object per chain segment; a chain id (an actor writing several chains for one call) gets its own folder. */
export function auditSegmentKey(actor: string, callId: string, firstSeq: number, chainId?: string): string {
  return `${auditChainPrefix(actor, callId, chainId)}${String(firstSeq).padStart(8, '0')}.jsonl`;
}

/** The folder of one chain's segments; their zero-padded names list in chain order. */
export function auditChainPrefix(actor: string, callId: string, chainId?: string): string {
  return `${S3_PREFIXES.audit}${actor}/${callId}/${chainId === undefined ? '' : `${chainId}/`}`;
}

/**
 * `root/relativePath`, refused unless it stays strictly under `root`: an id or key that climbs out ("..", an
 * absolute path) never names a file elsewhere.
 */
export function resolveUnder(root: string, relativePath: string): string {
  const base = resolve(root);
  const target = resolve(base, relativePath);
  const inside = relative(base, target);
  if (inside === '' || inside.startsWith('..') || isAbsolute(inside)) {
    throw new Error(`path ${JSON.stringify(relativePath)} leaves its folder ${base}`);
  }
  return target;
}
