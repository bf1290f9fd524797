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
  private readonly url: URL;

  constructor(private readonly options: OpenSearchKnowledgeOptions) {
    this.url = new URL(`/${encodeURIComponent(options.index)}/_search`, options.endpoint);
    this.signer = new SignatureV4({
      service: options.service,
      region: options.region,
      credentials: options.credentials ?? defaultProvider(),
      sha256: Sha256,
    });
  }

  async search(query: string, limit: number): Promise<Passage[]> {
    const body = JSON.stringify({
      size: limit,
      _source: ['source_id', 'title', 'text'],
      query: { multi_match: { query, fields: ['title^2', 'text'], type: 'best_fields' } },
    });
    const request = new HttpRequest({
      method: 'POST',
      protocol: this.url.protocol,
      hostname: this.url.hostname,
      port: this.url.port ? Number(this.url.port) : undefined,
      path: this.url.pathname,
      headers: { 'content-type': 'application/json', host: this.url.host },
      body,
    });
    const signed = await this.signer.sign(request);
    const response = await fetch(this.url, {
      method: 'POST',
      headers: signed.headers,
      body,
      signal: AbortSignal.timeout(this.options.timeoutMs ?? 3_000),
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
