import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { type AuditRecord, hashAuditRecord } from '@voice-intake/contracts';
import type { Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { escapeHtml, loadCallReport, renderCallReport } from '../src/call-report';
import { DirectorySource } from '../src/source';
import { type HeadlessChromium, launchChromium } from './support/chromium';
import { SAMPLE_CALL, sampleKey, writeSampleCall } from './support/sample-call';

const root = mkdtempSync(join(tmpdir(), 'call-report-'));

async function reportFile(folder: string, name: string): Promise<string> {
  const html = renderCallReport(await loadCallReport(new DirectorySource(folder), SAMPLE_CALL, sampleKey));
  const file = join(root, `${name}.html`);
  writeFileSync(file, html);
  return file;
}

/** Edits record `seq` of the first chain under `folder` and re-hashes everything after it. */
function rewriteAndRehash(folder: string, seq: number): void {
  let prevHash: string | undefined;
  for (const name of readdirSync(folder).sort()) {
    const lines = readFileSync(join(folder, name), 'utf8')
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line));
    for (const line of lines) {
      if (line.type === 'audit_seal') continue;
      const record = line as AuditRecord;
      if (record.seq === seq) record.payload = { outcome: 'ok', isError: false, result: null };
      if (record.seq >= seq) {
        if (prevHash) record.prevHash = prevHash;
        const { hash: _hash, ...content } = record;
        record.hash = hashAuditRecord(content);
      }
      prevHash = record.hash;
    }
    writeFileSync(join(folder, name), `${lines.map((line) => JSON.stringify(line)).join('\n')}\n`);
  }
}

describe('call report in headless Chromium', () => {
  let chromium: HeadlessChromium;
  let page: Page;
  const dialogs: string[] = [];
  const requests: string[] = [];

  beforeAll(async () => {
    await writeSampleCall(join(root, 'clean'));
    await writeSampleCall(join(root, 'tampered'));
    const serverFolder = join(root, 'tampered', 'audit', 'mcp-server', SAMPLE_CALL);
    rewriteAndRehash(join(serverFolder, readdirSync(serverFolder)[0]), 3);
    chromium = await launchChromium();
    page = await chromium.context.newPage();
    page.on('dialog', (dialog) => {
      dialogs.push(dialog.message());
      void dialog.dismiss();
    });
    page.on('request', (request) => {
      if (!request.url().startsWith('file:')) requests.push(request.url());
    });
  });

  afterAll(async () => {
    await chromium?.close();
    rmSync(root, { recursive: true, force: true });
  });

  it('renders transcript, tool calls, collapsed model exchanges, enrichment and latency; both chains verified', async () => {
    await page.goto(pathToFileURL(await reportFile(join(root, 'clean'), 'clean')).href);
    expect(await page.title()).toBe(`Call report ${SAMPLE_CALL}`);
    expect(await page.getAttribute('#verification-status', 'data-ok')).toBe('true');
    expect(await page.locator('#verification tbody tr[data-verified="true"]').count()).toBe(2);
    const banner = await page
      .locator('#verification-status')
      .evaluate((node) => getComputedStyle(node).backgroundColor);
    expect(banner).toBe('rgb(220, 252, 231)');

    const turns = page.locator('#transcript tr.turn');
    expect(await turns.count()).toBe(7);
    expect(await turns.nth(1).innerText()).toMatch(/14:02:16\s+\+0:05\.0\s+caller\s+Hi, a pipe burst/);
    expect(await turns.nth(2).innerText()).toMatch(/agent.*950 ms/s);

    const agentTools = page.locator('#tools table').first().locator('tbody tr');
    expect(await agentTools.count()).toBe(4);
    const rejected = page.locator('#tools table').first().locator('tr.outcome-rejected');
    expect(await rejected.innerText()).toMatch(/request_human_transfer[\s\S]*\+19005550199[\s\S]*rejected/);
    expect(await rejected.locator('.outcome').evaluate((node) => getComputedStyle(node).color)).toBe(
      'rgb(185, 28, 28)',
    );
    expect(await page.locator('#tools').innerText()).toContain("not in the tool's schema: target");

    const model = page.locator('details.model');
    expect(await model.count()).toBe(7);
    expect(await model.evaluateAll((nodes) => nodes.filter((node) => (node as HTMLDetailsElement).open).length)).toBe(
      0,
    );
    expect(await model.first().locator('pre').first().isVisible()).toBe(false);
    await model.first().locator('summary').click();
    expect(await model.first().locator('pre').first().isVisible()).toBe(true);

    expect(await page.locator('#enrichment').innerText()).toMatch(
      /burst kitchen pipe[\s\S]*Urgency\s+high[\s\S]*property_address/,
    );
    const recording = page.locator('#recording');
    expect(await recording.locator('tbody tr').count()).toBe(2);
    expect(await recording.innerText()).toMatch(
      new RegExp(
        `announced[\\s\\S]*caller left, agent right, 8000 Hz[\\s\\S]*recordings/${SAMPLE_CALL}/part-000002\\.wav`,
      ),
    );
    const failures = recording.locator('.fail-text');
    expect(await failures.nth(0).innerText()).toMatch(/write failed: .*part-000003\.wav$/);
    expect(await failures.nth(1).innerText()).toMatch(/not confirmed in the bucket: .*part-r1-000001\.wav$/);
    expect(await page.locator('#latency').innerText()).toMatch(
      /Median response latency: 1150 ms over 3 answered turns/,
    );

    const png = join(root, 'clean.png');
    await page.screenshot({ path: png, fullPage: true });
    expect(statSync(png).size).toBeGreaterThan(20_000);
  });

  it('shows recorded text as text: a script in the transcript neither runs nor loads anything', async () => {
    await page.goto(pathToFileURL(join(root, 'clean.html')).href);
    expect(await page.locator('#transcript').innerText()).toContain('<script>alert("x")</script>');
    expect(await page.locator('script').count()).toBe(0);
    expect(dialogs).toEqual([]);
    expect(requests).toEqual([]);
    expect(escapeHtml('<img src=x onerror="a()">')).toBe('&lt;img src=x onerror=&quot;a()&quot;&gt;');
  });

  it('shows a tampered chain in red, naming the record, while the intact chain stays verified', async () => {
    await page.goto(pathToFileURL(await reportFile(join(root, 'tampered'), 'tampered')).href);
    const status = page.locator('#verification-status');
    expect(await status.getAttribute('data-ok')).toBe('false');
    expect(await status.innerText()).toMatch(/Verification FAILED on 1 of 2 chains/);
    expect(await status.evaluate((node) => getComputedStyle(node).backgroundColor)).toBe('rgb(220, 38, 38)');
    const failed = page.locator('#verification tbody tr[data-verified="false"]');
    expect(await failed.count()).toBe(1);
    expect(await failed.innerText()).toMatch(
      /mcp-server\/.*verification failed.*record 3: record 3 differs from the sealed record/s,
    );
    expect(
      await failed
        .locator('td')
        .first()
        .evaluate((node) => getComputedStyle(node).backgroundColor),
    ).toBe('rgb(254, 226, 226)');
    expect(await page.locator('#verification tbody tr[data-verified="true"]').innerText()).toMatch(/^agent/);
    // The records from the bad one on are marked as not vouched for.
    expect(await page.locator('#tools table').nth(1).locator('tr.suspect').count()).toBeGreaterThan(0);
  });
});

describe('call report of a call taken over', () => {
  it('names the transcript parts whose turns are missing, and says how many turns only the parts hold', async () => {
    const folder = mkdtempSync(join(tmpdir(), 'call-report-missing-'));
    try {
      await writeSampleCall(folder);
      const data = await loadCallReport(new DirectorySource(folder), SAMPLE_CALL, sampleKey);
      expect(renderCallReport(data)).not.toContain('Turns not in this transcript');
      const missing = `transcript-parts/${SAMPLE_CALL}/000003.json`;
      data.transcript!.missingParts = [missing];
      expect(renderCallReport(data)).toContain(
        `<p class="fail-text">Turns not in this transcript (parts of an earlier worker never stored or not readable): ${missing}</p>`,
      );
      expect(renderCallReport(data)).not.toContain('later turn(s) not in this transcript');
      data.transcript!.omittedTurns = 12;
      expect(renderCallReport(data)).toContain(
        `<p class="warn">12 later turn(s) not in this transcript (more than it holds): they are in the call's transcript parts, transcript-parts/${SAMPLE_CALL}/</p>`,
      );
    } finally {
      rmSync(folder, { recursive: true, force: true });
    }
  });
});
