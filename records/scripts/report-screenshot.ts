import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AuditRecord, hashAuditRecord } from '@voice-intake/contracts';
import { loadCallReport, renderCallReport } from '../src/call-report';
import { DirectorySource } from '../src/source';
import { launchChromium } from '../test/support/chromium';
import { SAMPLE_CALL, sampleKey, writeSampleCall } from '../test/support/sample-call';

/** What a writer covering its tracks would do: change the rejected transfer to "ok" and re-hash the rest. */
function rewriteRejectedTransfer(chainFolder: string): void {
  let prevHash: string | undefined;
  let rewritten = false;
  for (const name of readdirSync(chainFolder).sort()) {
    const path = join(chainFolder, name);
    const lines = readFileSync(path, 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    for (const line of lines) {
      if (line.type === 'audit_seal') continue;
      const record = line as AuditRecord & { payload: Record<string, unknown> };
      if (!rewritten && record.kind === 'tool_result' && record.payload.outcome === 'rejected') {
        record.payload = { outcome: 'ok', isError: false, result: { queue: 'billing' } };
        rewritten = true;
      }
      if (rewritten) {
        if (prevHash) record.prevHash = prevHash;
        const { hash: _hash, ...content } = record;
        record.hash = hashAuditRecord(content);
      }
      prevHash = record.hash;
    }
    writeFileSync(path, `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
  }
}

/**
 * Renders the sample call's report and screenshots it into docs/ (the images the README shows): the whole report,
 * and the verification section of the same call after its MCP server chain was rewritten and re-hashed.
 */
async function main(): Promise<void> {
  const docs = process.argv[2] ?? join(__dirname, '..', '..', 'docs');
  const out = join(docs, 'call-report.png');
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

    const serverChains = join(folder, 'audit', 'mcp-server', SAMPLE_CALL);
    rewriteRejectedTransfer(join(serverChains, readdirSync(serverChains)[0]));
    writeFileSync(file, renderCallReport(await loadCallReport(new DirectorySource(folder), SAMPLE_CALL, sampleKey)));
    await page.goto(pathToFileURL(file).href);
    const tampered = join(docs, 'call-report-tampered.png');
    await page.locator('#verification').screenshot({ path: tampered });
    console.log(tampered);
  } finally {
    await chromium.close();
    rmSync(folder, { recursive: true, force: true });
  }
}

void main();
