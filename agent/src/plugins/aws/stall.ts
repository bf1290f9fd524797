import { APITimeoutError } from '@livekit/agents';

/**
 * The framework's `connOptions.timeoutMs`, applied as upstream plugins do: a request whose first event does not come
 * within the timeout, or that goes quiet for as long between events, is aborted (its SDK request too) and fails with
 * a retryable `APITimeoutError`, so the retry or fallback logic acts instead of the caller waiting in silence.
 */
export class StallWatch {
  readonly #controller = new AbortController();
  readonly #timeoutMs: number;
  readonly #what: string;
  readonly #parent?: AbortSignal;
  readonly #onParentAbort = () => this.#controller.abort(this.#parent?.reason);
  #timer: NodeJS.Timeout | undefined;
  #timedOut = false;
  #paused = false;

  readonly #owed?: () => boolean;

  /**
   * `owed`, when given, is asked as the timeout expires: whether the service owes an answer (e.g. audio was sent
   * since its last event). When it owes none the clock starts over instead.
   */
  constructor(timeoutMs: number, what: string, parent?: AbortSignal, owed?: () => boolean) {
    this.#timeoutMs = timeoutMs;
    this.#owed = owed;
    this.#what = what;
    this.#parent = parent;
    if (parent?.aborted) this.#controller.abort(parent.reason);
    else parent?.addEventListener('abort', this.#onParentAbort, { once: true });
    this.touch();
  }

  /** Aborts with the service's request: pass it to the SDK call. */
  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  /** Whether the request was aborted because it stalled (not because the stream was closed). */
  get timedOut(): boolean {
    return this.#timedOut;
  }

  /** Something arrived: the next must come within the timeout (unless paused). */
  touch(): void {
    clearTimeout(this.#timer);
    if (this.#controller.signal.aborted || this.#paused) return;
    this.#timer = setTimeout(() => {
      if (this.#owed && !this.#owed()) return this.touch();
      this.#timedOut = true;
      this.#controller.abort(this.error());
    }, this.#timeoutMs);
  }

  /** Nothing is owed by the service meanwhile (e.g. we have nothing to send): stop the clock until `resume`. */
  pause(): void {
    this.#paused = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** Something is owed again: the clock restarts if it was paused (a running clock keeps its deadline). */
  resume(): void {
    if (!this.#paused) return;
    this.#paused = false;
    this.touch();
  }

  /** The request is over: no timer, no listener left behind. */
  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#parent?.removeEventListener('abort', this.#onParentAbort);
  }

  /** Ends the request (not a stall): the session is over. */
  abort(): void {
    this.stop();
    this.#controller.abort();
  }

  error(): APITimeoutError {
    const message = `${this.#what}: no response for ${this.#timeoutMs} ms`;
    return new APITimeoutError({ message, options: { retryable: true } });
  }

  /**
   * `promise`, unless the request is aborted first (a stalled socket may never settle it). The abort listener goes
   * as soon as `promise` settles: a session-long watch races every event, and nothing may pile up per event.
   */
  race<T>(promise: Promise<T>): Promise<T> {
    const signal = this.#controller.signal;
    if (signal.aborted) {
      promise.catch(() => undefined);
      return Promise.reject(signal.reason);
    }
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(signal.reason);
      signal.addEventListener('abort', onAbort, { once: true });
      promise.then(
        (value) => {
          signal.removeEventListener('abort', onAbort);
          resolve(value);
        },
        (error: unknown) => {
          signal.removeEventListener('abort', onAbort);
          reject(error);
        },
      );
    });
  }

  /** Iterates `source`, each event touching the watch; ends by throwing when the request is aborted. */
  async *events<T>(source: AsyncIterable<T> | Iterable<T>): AsyncGenerator<T> {
    const iterator: AsyncIterator<T> | Iterator<T> =
      Symbol.asyncIterator in source ? source[Symbol.asyncIterator]() : source[Symbol.iterator]();
    try {
      for (;;) {
        const next = await this.race(Promise.resolve(iterator.next()));
        if (next.done) return;
        this.touch();
        yield next.value;
      }
    } finally {
      // Not awaited: a stalled source may never finish returning.
      void Promise.resolve(iterator.return?.()).catch(() => undefined);
    }
  }
}
