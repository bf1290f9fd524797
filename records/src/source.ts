import { existsSync, lstatSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { GetObjectCommand, ListObjectsV2Command, type S3Client } from '@aws-sdk/client-s3';
import { isNoSuchKey, resolveUnder } from '@voice-intake/contracts';

/**
 * Where a call's records are read from: the buckets (by key), or a folder holding the same key layout (a copy made
 * with `aws s3 sync`, or an embedded MCP server's DATA_DIR).
 */
export interface RecordSource {
  /** Keys under a prefix, in key order. */
  list(prefix: string): Promise<string[]>;
  /** An object's text, or undefined when it does not exist. */
  get(key: string): Promise<string | undefined>;
}

/** A folder with the buckets' key layout. Every key is resolved under the folder; one that climbs out is refused. */
export class DirectorySource implements RecordSource {
  constructor(private readonly root: string) {}

  async list(prefix: string): Promise<string[]> {
    const folder = resolveUnder(this.root, prefix.replace(/\/$/, '') || '.');
    if (!existsSync(folder) || !statSync(folder).isDirectory()) return [];
    const keys: string[] = [];
    const walk = (directory: string) => {
      for (const entry of readdirSync(directory, { withFileTypes: true })) {
        const path = join(directory, entry.name);
        if (entry.isDirectory()) walk(path);
        else if (entry.isFile()) keys.push(relative(this.root, path).split(sep).join('/'));
      }
    };
    walk(folder);
    return keys.filter((key) => key.startsWith(prefix)).sort();
  }

  async get(key: string): Promise<string | undefined> {
    const path = resolveUnder(this.root, key);
    if (!existsSync(path)) return undefined;
    // A link could point anywhere: only plain files under the folder are records.
    if (!lstatSync(path).isFile()) throw new Error(`${key} is not a plain file under ${this.root}`);
    return readFileSync(path, 'utf8');
  }
}

/** The S3 buckets: audit keys from the audit bucket, everything else from the transcripts bucket. */
export class S3Source implements RecordSource {
  constructor(
    private readonly client: S3Client,
    private readonly buckets: { audit: string; transcripts?: string },
  ) {}

  private bucketFor(key: string): string | undefined {
    return key.startsWith('audit/') ? this.buckets.audit : this.buckets.transcripts;
  }

  async list(prefix: string): Promise<string[]> {
    const bucket = this.bucketFor(prefix);
    if (!bucket) return [];
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await this.client.send(
        new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ContinuationToken: token }),
      );
      keys.push(...(page.Contents ?? []).map((object) => object.Key!).filter(Boolean));
      token = page.IsTruncated ? page.NextContinuationToken : undefined;
    } while (token);
    return keys.sort();
  }

  async get(key: string): Promise<string | undefined> {
    const bucket = this.bucketFor(key);
    if (!bucket) return undefined;
    try {
      const object = await this.client.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
      return await object.Body?.transformToString('utf8');
    } catch (error) {
      if (isNoSuchKey(error)) return undefined;
      throw error;
    }
  }
}
