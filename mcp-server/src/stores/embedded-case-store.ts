import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { type IntakeCase, intakeCaseSchema } from '@voice-intake/contracts';
import {
  type CallbackRequest,
  CaseAlreadySubmittedError,
  type CaseStore,
  type SubmitResult,
  type TransferRecord,
} from './case-store';

interface StoreFile {
  cases: Record<string, IntakeCase>;
  callbacks: CallbackRequest[];
  transfers: TransferRecord[];
}

/**
 * The laptop case store: everything in one JSON file, rewritten atomically (temp file + rename) on every change,
 * so a restart finds what was saved. One process only.
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
      return { cases: {}, callbacks: [], transfers: [] };
    }
    const parsed = JSON.parse(raw) as StoreFile;
    for (const stored of Object.values(parsed.cases)) intakeCaseSchema.parse(stored);
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

  async saveDraft(draft: IntakeCase): Promise<IntakeCase> {
    const existing = this.state.cases[draft.caseId];
    if (existing && existing.status !== 'draft') throw new CaseAlreadySubmittedError(existing);
    const saved = { ...draft, createdAt: existing?.createdAt ?? draft.createdAt };
    this.state.cases[draft.caseId] = saved;
    await this.persist();
    return saved;
  }

  async submit(submitted: IntakeCase): Promise<SubmitResult> {
    const existing = this.state.cases[submitted.caseId];
    if (existing && existing.status !== 'draft') return { case: existing, created: false };
    const saved = { ...submitted, createdAt: existing?.createdAt ?? submitted.createdAt };
    this.state.cases[submitted.caseId] = saved;
    await this.persist();
    return { case: saved, created: true };
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
