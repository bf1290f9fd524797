import { Sha256 } from '@aws-crypto/sha256-js';
import { defaultProvider } from '@aws-sdk/credential-provider-node';
import { HttpRequest } from '@smithy/protocol-http';
import { SignatureV4 } from '@smithy/signature-v4';
import type { AwsCredentialIdentityProvider } from '@smithy/types';
import type { KnowledgeSearch, Passage } from './knowledge';

export interface OpenSearchKnowledgeOptions {
  endpoint: string;
  index: string;
  region: string;
  /** `es` (managed domain) or `aoss` (serverless collection): the SigV4 service name. */
  service: 'es' | 'aoss';
  credentials?: AwsCredentialIdentityProvider;
  timeoutMs?: number;
}

interface SearchHit {
  _id: string;
  _score: number;
  _source: { title?: string; text?: string; source_id?: string };
}

/**
 * Knowledge search on OpenSearch: BM25 `multi_match` over `title` (boosted) and `text`, requests signed with SigV4
 * (IAM, fine-grained access control maps the task role). Documents: `{ source_id, title, text, embedding? }`.
 */
export class OpenSearchKnowledge implements KnowledgeSearch {
  private readonly signer: SignatureV4;

  constructor(private readonly options: OpenSearchKnowledgeOptions) {
    this.signer = new SignatureV4({
      service: options.service,
      region: options.region,
      credentials: options.credentials ?? defaultProvider(),
      sha256: Sha256,
    });
  }

  /** One signed JSON request to the collection or domain. */
  private async request(
    method: string,
    path: string,
    payload: unknown,
    contentType = 'application/json',
  ): Promise<Response> {
    const url = new URL(path, this.options.endpoint);
    const body = typeof payload === 'string' ? payload : JSON.stringify(payload);
    const request = new HttpRequest({
      method,
      protocol: url.protocol,
      hostname: url.hostname,
      port: url.port ? Number(url.port) : undefined,
      path: url.pathname,
      headers: { 'content-type': contentType, host: url.host },
      body,
    });
    const signed = await this.signer.sign(request);
    return fetch(url, {
      method,
      headers: signed.headers,
      body,
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 3_000),
    });
  }

  /**
   * Creates the index if it is missing: BM25 text fields, the source id as a keyword, and (when `vectorDimension` is
   * given) a k-NN `embedding` field for semantic search later.
   */
  async ensureIndex(vectorDimension?: number): Promise<'created' | 'exists'> {
    const mappings = {
      properties: {
        source_id: { type: 'keyword' },
        title: { type: 'text' },
        text: { type: 'text' },
        ...(vectorDimension ? { embedding: { type: 'knn_vector', dimension: vectorDimension } } : {}),
      },
    };
    const response = await this.request('PUT', `/${encodeURIComponent(this.options.index)}`, {
      settings: vectorDimension ? { index: { knn: true } } : {},
      mappings,
    });
    if (response.ok) return 'created';
    const text = await response.text();
    if (response.status === 400 && text.includes('resource_already_exists_exception')) return 'exists';
    throw new Error(`OpenSearch create index failed: HTTP ${response.status} ${text.slice(0, 200)}`);
  }

  /** Indexes passages with the bulk API (document id = source id, so reloading replaces rather than duplicates). */
  async indexPassages(passages: readonly { sourceId: string; title: string; text: string }[]): Promise<number> {
    const lines = passages.flatMap((passage) => [
      JSON.stringify({ index: { _index: this.options.index, _id: passage.sourceId } }),
      JSON.stringify({ source_id: passage.sourceId, title: passage.title, text: passage.text }),
    ]);
    const response = await this.request('POST', '/_bulk', `${lines.join('\n')}\n`, 'application/x-ndjson');
    const result = (await response.json()) as { errors?: boolean; items?: { index?: { error?: unknown } }[] };
    if (!response.ok || result.errors) {
      const firstError = result.items?.find((item) => item.index?.error)?.index?.error;
      throw new Error(
        `OpenSearch bulk index failed: HTTP ${response.status} ${JSON.stringify(firstError ?? result).slice(0, 200)}`,
      );
    }
    return passages.length;
  }

  async search(query: string, limit: number): Promise<Passage[]> {
    const response = await this.request('POST', `/${encodeURIComponent(this.options.index)}/_search`, {
      size: limit,
      _source: ['source_id', 'title', 'text'],
      query: { multi_match: { query, fields: ['title^2', 'text'], type: 'best_fields' } },
    });
    if (!response.ok) {
      throw new Error(`OpenSearch search failed: HTTP ${response.status} ${(await response.text()).slice(0, 200)}`);
    }
    const result = (await response.json()) as { hits?: { hits?: SearchHit[] } };
    return (result.hits?.hits ?? []).map((hit) => ({
      sourceId: hit._source.source_id ?? hit._id,
      title: hit._source.title ?? '',
      text: hit._source.text ?? '',
      score: hit._score,
    }));
  }
}
