/** A passage the agent may ground an answer on; `sourceId` lets the transcript cite it. */
export interface Passage {
  sourceId: string;
  title: string;
  text: string;
  score: number;
}

export interface KnowledgeSearch {
  search(query: string, limit: number): Promise<Passage[]>;
}
