// Prints the vitest run's totals as one plain line ("vitest: N passed, N failed, N skipped") for CI logs. A test
// file that failed to load or whose hooks failed counts as a failure of its own, even when none of its tests ran.
import { existsSync, readFileSync } from 'node:fs';

const file = 'test-results/vitest.json';
if (!existsSync(file)) {
  console.error(`${file} not found: did vitest run?`);
  process.exit(1);
}
const report = JSON.parse(readFileSync(file, 'utf8'));
const brokenFiles = report.testResults.filter(
  (result) => result.status === 'failed' && !result.assertionResults.some((test) => test.status === 'failed'),
);
for (const result of brokenFiles) {
  console.error(`failed without a failing test: ${result.name}: ${(result.message || '').split('\n')[0]}`);
}
const failed = report.numFailedTests + brokenFiles.length;
const skipped = report.numPendingTests + report.numTodoTests;
console.log(`vitest: ${report.numPassedTests} passed, ${failed} failed, ${skipped} skipped`);
process.exit(failed === 0 && report.numPassedTests > 0 ? 0 : 1);
