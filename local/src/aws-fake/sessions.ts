import type { Http2Session } from 'node:http2';
import {
  type CallerLine,
  DEFAULT_SCENARIO,
  type FakeService,
  type Fault,
  parseScenario,
  type Scenario,
  ScenarioError,
} from './scenario';

/** What one session's services received and answered, for a test's assertions. */
export interface SessionRecord {
  key: string;
  /** How the session was recognised first: explicit key, match, provenance, connection. */
  via: string;
  /** Connection sessions found to be this one's (their text was this session's) and folded into it. */
  mergedFrom: string[];
  transcribe: {
    streams: number;
    audioSeconds: number;
    sampleRates: number[];
    /** Utterances heard in the audio (stream seconds), the words of each final and of its stable partial if sent. */
    utterances: { start: number; end: number; text: string; stable?: string }[];
    partials: number;
    /** Events with no results, sent while no words were (the service answers silence too). */
    emptyEvents: number;
  };
  bedrock: {
    requests: {
      operation: string;
      modelId: string;
      callerWords?: string;
      toolResults: string[];
      reply: { text?: string; tool?: string };
    }[];
  };
  polly: {
    requests: number;
    /** Texts synthesized, in order (stream segments as flushed). */
    texts: string[];
    audioSeconds: number;
  };
  /** Modeled exceptions sent, by service and name. */
  exceptions: { service: FakeService; exception: string; at: 'response' | 'stream' | 'transport' }[];
  /** Requests refused as malformed (fail closed): what was wrong. */
  rejected: string[];
}

/** One session: its scenario, its record, its place in the caller's script and the faults it has left. */
export class FakeSession {
  readonly #record: SessionRecord;
  #line = 0;
  readonly #faults: (Fault & { left: number })[];
  /** The session this one was folded into: a stream still holding this one keeps writing where the call's are. */
  #into: FakeSession | undefined;

  constructor(
    readonly key: string,
    readonly scenario: Scenario,
    via: string,
  ) {
    this.#faults = scenario.faults.map((fault) => ({ ...fault, left: fault.times }));
    this.#record = {
      key,
      via,
      mergedFrom: [],
      transcribe: { streams: 0, audioSeconds: 0, sampleRates: [], utterances: [], partials: 0, emptyEvents: 0 },
      bedrock: { requests: [] },
      polly: { requests: 0, texts: [], audioSeconds: 0 },
      exceptions: [],
      rejected: [],
    };
  }

  get record(): SessionRecord {
    return this.#into ? this.#into.record : this.#record;
  }

  /** Next line of `callerSays` (per session: a reconnecting Transcribe stream continues the script). */
  nextCallerLine(): CallerLine {
    if (this.#into) return this.#into.nextCallerLine();
    return this.scenario.callerSays[this.#line++] ?? this.scenario.fallbackPhrase;
  }

  /** Takes a fault registered for this request, if any is left. */
  takeFault(service: FakeService, operation: string, at: 'response' | 'stream'): Fault | undefined {
    if (this.#into) return this.#into.takeFault(service, operation, at);
    const fault = this.#faults.find(
      (candidate) =>
        candidate.left > 0 &&
        candidate.service === service &&
        // A dropped connection stands in for whatever answer was due.
        (candidate.at === at || candidate.at === 'transport') &&
        (!candidate.operation || candidate.operation === operation),
    );
    if (!fault) return undefined;
    fault.left -= 1;
    this.record.exceptions.push({ service, exception: fault.exception ?? '(connection dropped)', at: fault.at });
    return fault;
  }

  /** Takes in what another session of the same call saw (its connection turned out to be this call's). */
  absorb(other: FakeSession): void {
    if (other === this || other.#into) return;
    const mine = this.record;
    const theirs = other.#record;
    mine.mergedFrom.push(theirs.key, ...theirs.mergedFrom);
    mine.transcribe.streams += theirs.transcribe.streams;
    mine.transcribe.audioSeconds += theirs.transcribe.audioSeconds;
    mine.transcribe.sampleRates.push(...theirs.transcribe.sampleRates);
    mine.transcribe.utterances.push(...theirs.transcribe.utterances);
    mine.transcribe.partials += theirs.transcribe.partials;
    mine.transcribe.emptyEvents += theirs.transcribe.emptyEvents;
    mine.bedrock.requests.unshift(...theirs.bedrock.requests);
    mine.polly.requests += theirs.polly.requests;
    mine.polly.texts.unshift(...theirs.polly.texts);
    mine.polly.audioSeconds += theirs.polly.audioSeconds;
    mine.exceptions.push(...theirs.exceptions);
    mine.rejected.push(...theirs.rejected);
    this.#line = Math.max(this.#line, other.#line);
    other.#into = this;
  }
}

/** Sessions the fake made for a connection without any key: the only ones it folds into another. */
const ANONYMOUS = /^connection-\d+$/;

/** Header a client may add (SDK middleware) when nothing in the service's own request can carry a session key. */
export const SESSION_HEADER = 'x-voice-intake-fake-session';

export interface SessionClues {
  /** Keys the request itself names: Transcribe's session id, Bedrock's requestMetadata values, the header. */
  explicit: string[];
  /** Text of the request a scenario's `match` or an earlier answer of the fake may be found in. */
  texts: string[];
  /** The raw request, searched for scenarios' `match` strings only. */
  matchText?: string;
  /** The request's HTTP/2 connection; gone when the client dropped it while the request was being read. */
  connection: Http2Session | undefined;
}

/**
 * Which session a request belongs to. In order: a key the request names that has a scenario; a scenario whose
 * `match` string is in the request; text this fake produced for a session (Bedrock's reply reaching Polly, a
 * transcript reaching Bedrock); the session last seen on the same HTTP/2 connection (a Transcribe stream's
 * reconnects; the SDK's Bedrock and Polly clients open a connection per request); else a new session of the
 * connection with the default scenario. Never a global counter.
 */
export class SessionDirectory {
  readonly #scenarios = new Map<string, Scenario>();
  readonly #sessions = new Map<string, FakeSession>();
  readonly #byConnection = new WeakMap<Http2Session, string>();
  readonly #connectionIds = new WeakMap<Http2Session, number>();
  /** Sentences this fake said or heard, and whose session they belong to (null: more than one). */
  readonly #provenance = new Map<string, string | null>();
  /** Sessions folded into another: their key → the key they became. */
  readonly #aliases = new Map<string, string>();
  #nextConnection = 1;
  #defaultScenario: Scenario = DEFAULT_SCENARIO;

  register(key: string, input: unknown): Scenario {
    if (!/^[A-Za-z0-9._:+@-]{1,128}$/.test(key))
      throw new ScenarioError(`scenario key "${key}": use 1-128 of A-Z a-z 0-9 . _ : + @ -`);
    const scenario = parseScenario(input);
    if (key === 'default') this.#defaultScenario = scenario;
    else this.#scenarios.set(key, scenario);
    return scenario;
  }

  get scenarioKeys(): string[] {
    return [...this.#scenarios.keys()];
  }

  get records(): SessionRecord[] {
    return [...this.#sessions.values()].map((session) => session.record);
  }

  record(key: string): SessionRecord | undefined {
    return this.#sessions.get(this.#canonical(key))?.record;
  }

  reset(): void {
    this.#scenarios.clear();
    this.#sessions.clear();
    this.#provenance.clear();
    this.#aliases.clear();
    this.#defaultScenario = DEFAULT_SCENARIO;
  }

  resolve(clues: SessionClues): FakeSession {
    const found = this.#find(clues);
    const key = this.#canonical(found.key);
    const session = this.#session(key, found.via);
    if (found.via === 'provenance') {
      // Sessions of their own (a keyless call's requests, each on its own connection) whose sentences meet in one
      // request are one call seen from several services: fold them in, so a call has one record.
      const bound = clues.connection && this.#byConnection.get(clues.connection);
      for (const other of new Set(
        [...found.related, ...(bound ? [bound] : [])].map((candidate) => this.#canonical(candidate)),
      )) {
        if (other !== key && ANONYMOUS.test(other)) this.#merge(other, session);
      }
    }
    if (clues.connection) this.#byConnection.set(clues.connection, key);
    return session;
  }

  #merge(key: string, into: FakeSession): void {
    const other = this.#sessions.get(key);
    if (!other) return;
    into.absorb(other);
    this.#sessions.delete(key);
    this.#aliases.set(key, into.key);
  }

  #canonical(key: string): string {
    let current = key;
    for (let hops = 0; hops < 100 && this.#aliases.has(current); hops += 1) current = this.#aliases.get(current)!;
    return current;
  }

  /** Remembers that `text` was produced for (or heard in) session `key`. */
  remember(text: string, key: string): void {
    for (const sentence of sentencesOf(text)) {
      const owner = this.#provenance.get(sentence);
      // Calls of one scenario say the same sentences: such a sentence tells no session from another.
      this.#provenance.set(sentence, owner === undefined || owner === key ? key : null);
    }
    if (this.#provenance.size > 20_000) this.#provenance.delete(this.#provenance.keys().next().value!);
  }

  #find(clues: SessionClues): { key: string; via: string; related: string[] } {
    for (const key of clues.explicit)
      if (this.#scenarios.has(key) || this.#sessions.has(this.#canonical(key)))
        return { key, via: 'explicit', related: [] };
    const haystack = [...clues.texts, clues.matchText ?? ''].join('\n');
    for (const [key, scenario] of this.#scenarios) {
      if (scenario.match.some((needle) => haystack.includes(needle))) return { key, via: 'match', related: [] };
    }
    // The latest sentence wins: a conversation's newest words are the ones this request is about.
    const owners = clues.texts
      .flatMap(sentencesOf)
      .reverse()
      .map((sentence) => this.#provenance.get(sentence))
      .filter((owner): owner is string => !!owner)
      .map((owner) => this.#canonical(owner));
    if (owners.length > 0) return { key: owners[0], via: 'provenance', related: owners.slice(1) };
    if (clues.explicit.length > 0) return { key: clues.explicit[0], via: 'explicit', related: [] };
    const bound = clues.connection && this.#byConnection.get(clues.connection);
    if (bound) return { key: bound, via: 'connection', related: [] };
    let id = clues.connection && this.#connectionIds.get(clues.connection);
    if (id === undefined) {
      id = this.#nextConnection++;
      if (clues.connection) this.#connectionIds.set(clues.connection, id);
    }
    return { key: `connection-${id}`, via: 'connection', related: [] };
  }

  #session(key: string, via: string): FakeSession {
    let session = this.#sessions.get(key);
    if (!session) {
      session = new FakeSession(key, this.#scenarios.get(key) ?? this.#defaultScenario, via);
      this.#sessions.set(key, session);
    }
    return session;
  }
}

/** Normalised sentences of a text, long enough to tell one call's words from another's. */
export function sentencesOf(text: string): string[] {
  return text
    .split(/(?<=[.!?])\s+/)
    .map((sentence) => sentence.trim().toLowerCase().replace(/\s+/g, ' '))
    .filter((sentence) => sentence.length >= 12);
}
