import { readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import type { KnowledgeSearch, Passage } from './knowledge';

/** A markdown passage before indexing: each `#`/`##` section of a file, id `<file>#<n>`. */
export interface SourcePassage {
  sourceId: string;
  title: string;
  text: string;
}

/** Splits every markdown file of a folder into passages; shared by the embedded index and the OpenSearch loader. */
export function readMarkdownPassages(directory: string): SourcePassage[] {
  const passages: SourcePassage[] = [];
  for (const file of readdirSync(directory)
    .filter((name) => name.endsWith('.md'))
    .sort()) {
    const source = basename(file, '.md');
    const sections = readFileSync(join(directory, file), 'utf8').split(/^(?=#{1,2} )/m);
    sections.forEach((section, index) => {
      const [heading, ...body] = section.trim().split('\n');
      const text = body.join(' ').replace(/\s+/g, ' ').trim();
      if (text) passages.push({ sourceId: `${source}#${index}`, title: heading.replace(/^#+\s*/, ''), text });
    });
  }
  return passages;
}

interface IndexedPassage {
  sourceId: string;
  title: string;
  text: string;
  termCounts: Map<string, number>;
  length: number;
}

const STOP_WORDS = new Set([
  'a',
  'an',
  'and',
  'are',
  'as',
  'at',
  'be',
  'by',
  'do',
  'for',
  'from',
  'how',
  'i',
  'in',
  'is',
  'it',
  'my',
  'of',
  'on',
  'or',
  'the',
  'to',
  'what',
  'when',
  'with',
  'you',
  'your',
]);

export function tokenize(text: string): string[] {
  return (
    text
      .toLowerCase()
      .normalize('NFKD')
      .match(/[a-z0-9]+/g) ?? []
  ).filter((term) => !STOP_WORDS.has(term));
}

/**
 * A small BM25 index over markdown files: each `#`/`##` section is a passage with id `<file>#<n>`. Built once at
 * start; enough for a laptop or a demo, with OpenSearch behind the same interface in AWS.
 */
export class EmbeddedKnowledge implements KnowledgeSearch {
  private readonly passages: IndexedPassage[] = [];
  private readonly documentFrequency = new Map<string, number>();
  private readonly averageLength: number;

  constructor(directory: string) {
    for (const { sourceId, title, text } of readMarkdownPassages(directory)) {
      const terms = tokenize(`${title} ${text}`);
      const termCounts = new Map<string, number>();
      for (const term of terms) termCounts.set(term, (termCounts.get(term) ?? 0) + 1);
      for (const term of termCounts.keys())
        this.documentFrequency.set(term, (this.documentFrequency.get(term) ?? 0) + 1);
      this.passages.push({ sourceId, title, text, termCounts, length: terms.length });
    }
    this.averageLength =
      this.passages.reduce((sum, passage) => sum + passage.length, 0) / Math.max(1, this.passages.length);
  }

  get size(): number {
    return this.passages.length;
  }

  async search(query: string, limit: number): Promise<Passage[]> {
    const k1 = 1.2;
    const b = 0.75;
    const count = this.passages.length;
    const terms = [...new Set(tokenize(query))];
    return this.passages
      .map((passage) => {
        let score = 0;
        for (const term of terms) {
          const frequency = passage.termCounts.get(term) ?? 0;
          if (frequency === 0) continue;
          const df = this.documentFrequency.get(term) ?? 0;
          const idf = Math.log(1 + (count - df + 0.5) / (df + 0.5));
          score +=
            (idf * frequency * (k1 + 1)) / (frequency + k1 * (1 - b + (b * passage.length) / this.averageLength));
        }
        return {
          sourceId: passage.sourceId,
          title: passage.title,
          text: passage.text,
          score: Number(score.toFixed(4)),
        };
      })
      .filter((passage) => passage.score > 0)
      .sort((a, b2) => b2.score - a.score)
      .slice(0, limit);
  }
}
