import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type IntakeCase, intakeCaseSchema } from '@voice-intake/contracts';
import {
  type CallbackRequest,
  CaseAlreadySubmittedError,
  type CaseStore,
  type Forwarding,
  type ForwardRefusal,
  type PendingForward,
  type SubmitResult,
  type TransferRecord,
} from './case-store';

/** Outbox bookkeeping of one case (as the DynamoDB store keeps it on the item). */
interface ForwardRecord {
  pending?: { dueAt: string; attempts: number; lastError?: string };
  refused?: ForwardRefusal;
}

interface StoreFile {
  cases: Record<string, IntakeCase>;
  callbacks: CallbackRequest[];
  transfers: TransferRecord[];
  /** By case id; absent in files written before the outbox (nothing pending then). */
  forwarding?: Record<string, ForwardRecord>;
}

/**
 * The laptop case store: everything in one JSON file, rewritten atomically (temp file + rename) on every change,
 * so a restart finds what was saved. One process only. Keeps the same outbox as the DynamoDB store (`forwarding`:
 * pending entries with their due time and attempts, refusals), so a restart still delivers what was pending.
 */
export class EmbeddedCaseStore implements CaseStore {
  private readonly file: string;
  private readonly state: StoreFile;
  private writing: Promise<void> = Promise.resolve();

  constructor(dataDir: string) {
    this.file = join(dataDir, 'cases.json');
    mkdirSync(dirname(this.file), { recursive: true });
    this.state = this.load();
  }

  private load(): StoreFile {
    let raw: string;
    try {
      raw = readFileSync(this.file, 'utf8');
    } catch {
      return { cases: {}, callbacks: [], transfers: [], forwarding: {} };
    }
    const parsed = JSON.parse(raw) as StoreFile;
    for (const stored of Object.values(parsed.cases)) intakeCaseSchema.parse(stored);
    parsed.forwarding ??= {};
    return parsed;
  }

  private persist(): Promise<void> {
    // Serialise writes so two tool calls never interleave their temp files.
    this.writing = this.writing.then(() => {
      const temp = `${this.file}.${process.pid}.tmp`;
      writeFileSync(temp, JSON.stringify(this.state, null, 2));
      renameSync(temp, this.file);
    });
    return this.writing;
  }

  async getCase(caseId: string): Promise<IntakeCase | undefined> {
    return this.state.cases[caseId];
  }

  private get forwarding(): Record<string, ForwardRecord> {
    return this.state.forwarding!;
  }

  async getCaseForwarding(caseId: string): Promise<{ case: IntakeCase; forwarding: Forwarding } | undefined> {
    const stored = this.state.cases[caseId];
    if (!stored) return undefined;
    const record = this.forwarding[caseId];
    let forwarding: Forwarding = { state: 'none' };
    if (stored.status === 'forwarded') forwarding = { state: 'forwarded', at: stored.forwardedAt ?? stored.updatedAt };
    else if (record?.refused) forwarding = { state: 'refused', ...record.refused };
    else if (record?.pending) forwarding = { state: 'pending', ...record.pending };
    return { case: stored, forwarding };
  }

  async saveDraft(draft: IntakeCase): Promise<IntakeCase> {
    const existing = this.state.cases[draft.caseId];
    if (existing && existing.status !== 'draft') throw new CaseAlreadySubmittedError(existing);
    const saved = { ...draft, createdAt: existing?.createdAt ?? draft.createdAt };
    this.state.cases[draft.caseId] = saved;
    await this.persist();
    return saved;
  }

  async submit(submitted: IntakeCase, options: { forwardDueAt?: string } = {}): Promise<SubmitResult> {
    const existing = this.state.cases[submitted.caseId];
    if (existing && existing.status !== 'draft') return { case: existing, created: false };
    const saved = { ...submitted, createdAt: existing?.createdAt ?? submitted.createdAt };
    this.state.cases[submitted.caseId] = saved;
    if (options.forwardDueAt)
      this.forwarding[submitted.caseId] = { pending: { dueAt: options.forwardDueAt, attempts: 0 } };
    await this.persist();
    return { case: saved, created: true };
  }

  async listDueForwards(now: string, limit: number): Promise<PendingForward[]> {
    return Object.entries(this.forwarding)
      .flatMap(([caseId, record]) =>
        record.pending && record.pending.dueAt <= now
          ? [{ case: this.state.cases[caseId], dueAt: record.pending.dueAt, attempts: record.pending.attempts }]
          : [],
      )
      .sort((a, b) => a.dueAt.localeCompare(b.dueAt))
      .slice(0, limit);
  }

  /** The pending entry of a case still submitted (not forwarded), if any. */
  private pendingOf(caseId: string): ForwardRecord['pending'] {
    return this.state.cases[caseId]?.status === 'submitted' ? this.forwarding[caseId]?.pending : undefined;
  }

  async claimForward(
    caseId: string,
    claim: { seenDueAt: string; attempts: number; nextDueAt: string },
  ): Promise<boolean> {
    const pending = this.pendingOf(caseId);
    if (!pending || pending.dueAt !== claim.seenDueAt) return false;
    pending.dueAt = claim.nextDueAt;
    pending.attempts = claim.attempts;
    await this.persist();
    return true;
  }

  async noteForwardError(caseId: string, error: string): Promise<void> {
    const pending = this.forwarding[caseId]?.pending;
    if (!pending) return;
    pending.lastError = error;
    await this.persist();
  }

  async markForwarded(caseId: string, at: string): Promise<boolean> {
    const stored = this.state.cases[caseId];
    if (stored?.status !== 'submitted') return false;
    this.state.cases[caseId] = { ...stored, status: 'forwarded', forwardedAt: at };
    delete this.forwarding[caseId];
    await this.persist();
    return true;
  }

  async markForwardRefused(caseId: string, refusal: ForwardRefusal): Promise<boolean> {
    if (this.state.cases[caseId]?.status !== 'submitted') return false;
    this.forwarding[caseId] = { refused: refusal };
    await this.persist();
    return true;
  }

  async listCasesByPhone(callerNumber: string): Promise<IntakeCase[]> {
    return Object.values(this.state.cases)
      .filter((stored) => stored.callerNumber === callerNumber)
      .sort((a, b) => b.updatedAt.localeCompare(a.updatedAt));
  }

  async saveCallback(request: CallbackRequest): Promise<void> {
    this.state.callbacks.push(request);
    await this.persist();
  }

  async saveTransfer(record: TransferRecord): Promise<void> {
    this.state.transfers.push(record);
    await this.persist();
  }
}
