import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type IntakeCase, intakeCaseSchema, resolveUnder } from '@voice-intake/contracts';
import type { Logger } from 'pino';

export interface HttpForwarderOptions {
  url: string;
  token?: string;
  maxAttempts: number;
  retryBaseMs: number;
  /** Cases the backend would not take after every attempt wait here, one file each, for redrive. */
  deadLetterDir: string;
  timeoutMs?: number;
  logger?: Logger;
}

/** What is known of a submitted case's way to the backend: taken by it, waiting for redrive, or not known here. */
export type ForwardState = 'delivered' | 'queued' | 'unknown';

/** The most delivered case ids a forwarder remembers (for a repeated submit's answer). */
const REMEMBERED_DELIVERIES = 10_000;

export type ForwardResult =
  | { delivered: true; attempts: number }
  | { delivered: false; attempts: number; deadLetter: string; error: string };

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Forwards submitted cases to the enterprise's REST endpoint ("your backend"): `POST <url>` with the case as JSON and
 * an `Idempotency-Key` (the case id), retried with backoff on network errors, 429 and 5xx. A case that still cannot be
 * delivered becomes a dead-letter record on disk; `redrive()` sends those again.
 */
export class HttpCaseForwarder {
  /** Case ids this forwarder saw the backend take, oldest first (bounded). */
  private readonly delivered = new Set<string>();

  constructor(private readonly options: HttpForwarderOptions) {
    mkdirSync(options.deadLetterDir, { recursive: true });
  }

  private remember(caseId: string): void {
    this.delivered.add(caseId);
    if (this.delivered.size > REMEMBERED_DELIVERIES) this.delivered.delete(this.delivered.values().next().value!);
  }

  /**
   * Where a case submitted earlier stands: `queued` while it waits in the dead-letter folder, `delivered` when this
   * forwarder saw the backend take it, else `unknown` (e.g. another server task forwarded it, or this one restarted).
   */
  stateOf(caseId: string): ForwardState {
    if (existsSync(resolveUnder(this.options.deadLetterDir, `${caseId}.json`))) return 'queued';
    return this.delivered.has(caseId) ? 'delivered' : 'unknown';
  }

  private async postOnce(intakeCase: IntakeCase): Promise<{ ok: boolean; retryable: boolean; error: string }> {
    try {
      const response = await fetch(this.options.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          'idempotency-key': intakeCase.caseId,
          ...(this.options.token ? { authorization: `Bearer ${this.options.token}` } : {}),
        },
        body: JSON.stringify(intakeCase),
        signal: AbortSignal.timeout(this.options.timeoutMs ?? 5_000),
      });
      if (response.ok) return { ok: true, retryable: false, error: '' };
      const retryable = response.status === 429 || response.status >= 500;
      return { ok: false, retryable, error: `HTTP ${response.status}` };
    } catch (error) {
      return { ok: false, retryable: true, error: (error as Error).message };
    }
  }

  async forward(intakeCase: IntakeCase): Promise<ForwardResult> {
    let lastError = '';
    let attempt = 0;
    while (attempt < this.options.maxAttempts) {
      attempt += 1;
      const result = await this.postOnce(intakeCase);
      if (result.ok) {
        this.remember(intakeCase.caseId);
        return { delivered: true, attempts: attempt };
      }
      lastError = result.error;
      this.options.logger?.warn(
        { caseId: intakeCase.caseId, attempt, error: result.error },
        'backend did not take the case',
      );
      if (!result.retryable) break;
      if (attempt < this.options.maxAttempts) await sleep(this.options.retryBaseMs * 2 ** (attempt - 1));
    }
    const deadLetter = resolveUnder(this.options.deadLetterDir, `${intakeCase.caseId}.json`);
    writeFileSync(
      deadLetter,
      JSON.stringify(
        { failedAt: new Date().toISOString(), error: lastError, attempts: attempt, case: intakeCase },
        null,
        2,
      ),
    );
    this.options.logger?.error({ caseId: intakeCase.caseId, deadLetter, error: lastError }, 'case dead-lettered');
    return { delivered: false, attempts: attempt, deadLetter, error: lastError };
  }

  /** Cases waiting in the dead-letter folder. */
  pending(): string[] {
    return readdirSync(this.options.deadLetterDir).filter((name) => name.endsWith('.json'));
  }

  /** Sends every dead-lettered case again; removes those the backend takes. Returns how many were delivered. */
  async redrive(): Promise<number> {
    let delivered = 0;
    for (const name of this.pending()) {
      const path = resolveUnder(this.options.deadLetterDir, name);
      const record = JSON.parse(readFileSync(path, 'utf8')) as { case: unknown };
      const intakeCase = intakeCaseSchema.parse(record.case);
      const result = await this.postOnce(intakeCase);
      if (result.ok) {
        rmSync(path);
        this.remember(intakeCase.caseId);
        delivered += 1;
      }
    }
    return delivered;
  }
}
