import { mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { IntakeCase } from '@voice-intake/contracts';
import { EmbeddedCaseStore } from '../src/stores/embedded-case-store';

/**
 * What one save costs the embedded case store as the store grows: it rewrites its whole JSON file (temp + rename)
 * on every change. Prints store size and the median and p95 time of a draft save, per store size.
 */
function sampleCase(index: number): IntakeCase {
  const at = new Date(Date.UTC(2026, 10, 1) + index * 60_000).toISOString();
  return {
    schemaVersion: 1,
    caseId: `C-${String(index).padStart(12, '0')}`,
    callId: `call-${index}`,
    callerNumber: `+1415555${String(index % 10_000).padStart(4, '0')}`,
    intakeType: 'property_damage',
    fields: {
      full_name: 'Ada Lovelace',
      property_address: `${index} Analytical Row, London`,
      description: 'A pipe burst under the kitchen sink overnight and soaked the floor.',
    },
    status: 'submitted',
    createdAt: at,
    updatedAt: at,
    source: 'voice',
  };
}

async function main(): Promise<void> {
  const sizes = (process.argv[2] ?? '100,1000,3000,10000').split(',').map(Number);
  const saves = 40;
  console.log('cases  file KB  save median ms  save p95 ms');
  for (const size of sizes) {
    const dir = mkdtempSync(join(tmpdir(), 'store-bench-'));
    try {
      const cases = Object.fromEntries(
        Array.from({ length: size }, (_, index) => [sampleCase(index).caseId, sampleCase(index)]),
      );
      writeFileSync(join(dir, 'cases.json'), JSON.stringify({ cases, callbacks: [], transfers: [] }, null, 2));
      const store = new EmbeddedCaseStore(dir);
      const times: number[] = [];
      for (let save = 0; save < saves; save += 1) {
        const draft = { ...sampleCase(size + save), status: 'draft' as const };
        const started = performance.now();
        await store.saveDraft(draft);
        times.push(performance.now() - started);
      }
      times.sort((a, b) => a - b);
      const kb = Math.round(statSync(join(dir, 'cases.json')).size / 1024);
      const median = times[Math.floor(times.length / 2)].toFixed(1);
      const p95 = times[Math.floor(times.length * 0.95)].toFixed(1);
      console.log(
        `${String(size).padStart(5)}  ${String(kb).padStart(7)}  ${median.padStart(14)}  ${p95.padStart(11)}`,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
}

void main();
