import type { IntakeCase } from '@voice-intake/contracts';
import type { Logger } from 'pino';

export interface HttpForwarderOptions {
  url: string;
  token?: string;
  maxAttempts: number;
  retryBaseMs: number;
  timeoutMs?: number;
  logger?: Logger;
}

/** One request's answer: taken, or not (retryable: network error, timeout, 429 or 5xx; else refused for good). */
export type PostResult = { ok: true } | { ok: false; retryable: boolean; status?: number; error: string };

/** What the attempts of one `forward()` came to. */
export type ForwardResult =
  | { outcome: 'delivered'; attempts: number }
  | { outcome: 'retry_later'; attempts: number; error: string }
  | { outcome: 'refused'; attempts: number; status: number; error: string };

const DEFAULT_TIMEOUT_MS = 5_000;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Posts submitted cases to the enterprise's REST endpoint ("your backend"): `POST <url>` with the case as JSON and an
 * `Idempotency-Key` (the case id), so a case posted twice (a retry, or two server tasks redriving it) is one case to
 * the backend. Keeps no state: where a case stands is the case store's (see CaseOutbox).
 */
export class HttpCaseForwarder {
  constructor(private readonly options: HttpForwarderOptions) {}

  private get timeoutMs(): number {
    return this.options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
  }

  /** The longest `forward()` can take: every attempt timing out, plus the waits between them. */
  get forwardBudgetMs(): number {
    const { maxAttempts, retryBaseMs } = this.options;
    return maxAttempts * this.timeoutMs + retryBaseMs * (2 ** (maxAttempts - 1) - 1);
  }

  /** One request, no retry. */
  async post(intakeCase: IntakeCase): Promise<PostResult> {
    try {
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': intakeCase.caseId,
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        },
        body: JSON.stringify(intakeCase),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
      await response.body?.cancel();
      if (response.ok) return { ok: true };
      const retryable = response.status === 429 || response.status >= 500;
      return { ok: false, retryable, status: response.status, error: `HTTP ${response.status}` };
    } catch (error) {
      return { ok: false, retryable: true, error: (error as Error).message };
    }
  }

  /** Posts the case, retried with backoff (`maxAttempts`, `retryBaseMs`) while the failure is retryable. */
  async forward(intakeCase: IntakeCase): Promise<ForwardResult> {
    let attempt = 0;
    for (;;) {
      attempt += 1;
      const result = await this.post(intakeCase);
      if (result.ok) return { outcome: 'delivered', attempts: attempt };
      this.options.logger?.warn(
        { caseId: intakeCase.caseId, attempt, error: result.error },
        'backend did not take the case',
      );
      if (!result.retryable)
        return { outcome: 'refused', attempts: attempt, status: result.status ?? 0, error: result.error };
      if (attempt >= this.options.maxAttempts)
        return { outcome: 'retry_later', attempts: attempt, error: result.error };
      await sleep(this.options.retryBaseMs * 2 ** (attempt - 1));
    }
  }
}
