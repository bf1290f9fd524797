import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { loadCallReport, renderCallReport } from '../src/call-report';
import { DirectorySource } from '../src/source';
import { launchChromium } from '../test/support/chromium';
import { SAMPLE_CALL, sampleKey, writeSampleCall } from '../test/support/sample-call';

/** Renders the sample call's report and screenshots it into docs/ (the image the README shows). */
async function main(): Promise<void> {
  const out = process.argv[2] ?? join(__dirname, '..', '..', 'docs', 'call-report.png');
  const folder = mkdtempSync(join(tmpdir(), 'report-shot-'));
  const chromium = await launchChromium();
  try {
    await writeSampleCall(folder);
    const file = join(folder, 'report.html');
    writeFileSync(file, renderCallReport(await loadCallReport(new DirectorySource(folder), SAMPLE_CALL, sampleKey)));
    const page = await chromium.context.newPage();
    await page.goto(pathToFileURL(file).href);
    // One model exchange open, to show what a collapsed one holds.
    await page.locator('details.model summary').nth(4).click();
    await page.screenshot({ path: out, fullPage: true });
    console.log(out);
  } finally {
    await chromium.close();
    rmSync(folder, { recursive: true, force: true });
  }
}

void main();
