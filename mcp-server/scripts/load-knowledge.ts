// Loads the markdown passages of a folder into the OpenSearch knowledge index (creating it if missing):
//   OPENSEARCH_ENDPOINT=https://… AWS_REGION=us-east-1 npm run load-knowledge -w mcp-server -- ./knowledge [aoss|es]
// Uses the default AWS credential chain; the caller needs write access in the collection's data access policy.
import { readMarkdownPassages } from '../src/knowledge/embedded';
import { OpenSearchKnowledge } from '../src/knowledge/opensearch';

async function main(): Promise<void> {
  const [directory = 'knowledge', service = 'aoss'] = process.argv.slice(2);
  const endpoint = process.env.OPENSEARCH_ENDPOINT;
  if (!endpoint) throw new Error('OPENSEARCH_ENDPOINT is required');
  if (service !== 'aoss' && service !== 'es') throw new Error('service must be aoss or es');
  const search = new OpenSearchKnowledge({
    endpoint,
    index: process.env.OPENSEARCH_INDEX ?? 'knowledge',
    region: process.env.AWS_REGION ?? 'us-east-1',
    service,
    timeoutMs: 30_000,
  });
  const passages = readMarkdownPassages(directory);
  console.log(
    `index ${await search.ensureIndex()}; ${await search.indexPassages(passages)} passages loaded from ${directory}`,
  );
}

main().catch((error) => {
  console.error((error as Error).message);
  process.exit(1);
});
