import {
  type AuditRecord,
  type AuditSealVerifier,
  type EnrichedRecord,
  type Transcript,
  type TranscriptTurn,
  enrichedKeyForTranscript,
  enrichedRecordSchema,
  enrichmentErrorKeyForTranscript,
  enrichmentErrorRecordSchema,
  transcriptKey,
  transcriptPartKey,
  transcriptPartSchema,
  transcriptSchema,
} from '@voice-intake/contracts';
import type { z } from 'zod';
import type { RecordSource } from './source';
import { type CallVerification, type ChainReport, verifyCall } from './verify';

type EnrichmentError = z.infer<typeof enrichmentErrorRecordSchema>;

/** Everything the report shows about one call, as read from the records. */
export interface CallReportData {
  callId: string;
  generatedAt: Date;
  transcript?: Transcript;
  /** Where the turns came from: the final transcript, or the in-call parts when there is none. */
  transcriptSource: 'final' | 'parts' | 'none';
  enriched?: EnrichedRecord;
  enrichmentError?: EnrichmentError;
  verification: CallVerification;
  /** Records that were present but could not be read as their schema says (shown, not trusted). */
  unreadable: string[];
}

const DAY_MS = 86_400_000;

function parseJson(text: string | undefined): unknown {
  if (text === undefined) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/**
 * Reads a call's records: both chains (verified with the trusted key), the final transcript (found by the call's start
 * date, taken from the agent's first record), the enriched record or the reason enrichment failed.
 */
export async function loadCallReport(source: RecordSource, callId: string, verifier: AuditSealVerifier): Promise<CallReportData> {
  const verification = await verifyCall(source, callId, verifier);
  const unreadable: string[] = [];
  const firstAt = verification.chains.find((chain) => chain.actor === 'agent')?.records[0]?.at;
  const start = firstAt ? Date.parse(firstAt) : Number.NaN;
  let transcript: Transcript | undefined;
  let foundKey: string | undefined;
  if (!Number.isNaN(start)) {
    for (const offset of [0, -DAY_MS, DAY_MS]) {
      const key = transcriptKey(callId, new Date(start + offset));
      const raw = parseJson(await source.get(key));
      if (raw === undefined) continue;
      const parsed = transcriptSchema.safeParse(raw);
      if (parsed.success) {
        transcript = parsed.data;
        foundKey = key;
      } else unreadable.push(`${key}: ${parsed.error.issues[0]?.message}`);
      break;
    }
  }
  let transcriptSource: CallReportData['transcriptSource'] = transcript ? 'final' : 'none';
  if (!transcript) {
    const turns: TranscriptTurn[] = [];
    for (let part = 0; ; part += 1) {
      const raw = parseJson(await source.get(transcriptPartKey(callId, part)));
      if (raw === undefined) break;
      const parsed = transcriptPartSchema.safeParse(raw);
      if (parsed.success) turns.push(...parsed.data.turns);
      else unreadable.push(`${transcriptPartKey(callId, part)}: ${parsed.error.issues[0]?.message}`);
    }
    if (turns.length > 0) {
      transcriptSource = 'parts';
      transcript = {
        schemaVersion: 1,
        callId,
        roomName: '',
        callerNumber: 'anonymous',
        startedAt: turns[0].startedAt,
        endedAt: turns.at(-1)!.endedAt,
        endReason: 'error',
        turns,
      };
    }
  }
  let enriched: EnrichedRecord | undefined;
  let enrichmentError: EnrichmentError | undefined;
  if (foundKey) {
    const rawEnriched = parseJson(await source.get(enrichedKeyForTranscript(foundKey)));
    if (rawEnriched !== undefined) {
      const parsed = enrichedRecordSchema.safeParse(rawEnriched);
      if (parsed.success) enriched = parsed.data;
      else unreadable.push(`${enrichedKeyForTranscript(foundKey)}: ${parsed.error.issues[0]?.message}`);
    }
    const rawError = parseJson(await source.get(enrichmentErrorKeyForTranscript(foundKey)));
    const parsedError = enrichmentErrorRecordSchema.safeParse(rawError);
    if (parsedError.success) enrichmentError = parsedError.data;
  }
  return { callId, generatedAt: new Date(), transcript, transcriptSource, enriched, enrichmentError, verification, unreadable };
}

// ---------------------------------------------------------------------------------------------------------------
// Rendering: one self-contained page (inline CSS, no script, a CSP that forbids any), every value escaped.

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };

export function escapeHtml(value: unknown): string {
  return String(value ?? '').replace(/[&<>"']/g, (char) => ESCAPES[char]);
}

const json = (value: unknown) => `<pre>${escapeHtml(JSON.stringify(value, null, 2))}</pre>`;

function clock(iso: string | undefined, origin: number): string {
  if (!iso) return '';
  const at = Date.parse(iso);
  const offset = Math.max(0, at - origin);
  const minutes = Math.floor(offset / 60_000);
  const seconds = ((offset % 60_000) / 1000).toFixed(1).padStart(4, '0');
  return `${iso.slice(11, 19)} <span class="muted">+${minutes}:${seconds}</span>`;
}

/** One tool call: its call record and the result that followed it on the same chain. */
interface ToolExchange {
  call: AuditRecord;
  result?: AuditRecord;
  transfer?: AuditRecord;
}

function toolExchanges(records: AuditRecord[]): ToolExchange[] {
  const exchanges: ToolExchange[] = [];
  for (const record of records) {
    if (record.kind === 'tool_call') exchanges.push({ call: record });
    const open = [...exchanges].reverse().find((exchange) => exchange.call.subject === record.subject && !exchange.result);
    if (record.kind === 'transfer') {
      const last = exchanges.at(-1);
      if (last && !last.result) last.transfer = record;
    }
    if (record.kind === 'tool_result' && open) open.result = record;
  }
  return exchanges;
}

/** Per caller turn: when the agent answered and how long the model took in between. */
export interface TurnLatency {
  callerSeq: number;
  callerText: string;
  agentSeq?: number;
  responseMs?: number;
  modelMs?: number;
  toolMs?: number;
}

export function turnLatencies(turns: TranscriptTurn[], agentRecords: AuditRecord[]): TurnLatency[] {
  const latencies: TurnLatency[] = [];
  for (const [index, turn] of turns.entries()) {
    if (turn.speaker !== 'caller') continue;
    const reply = turns.slice(index + 1).find((next) => next.speaker === 'agent');
    const from = Date.parse(turn.endedAt);
    const to = reply ? Date.parse(reply.startedAt) : Number.POSITIVE_INFINITY;
    const within = agentRecords.filter((record) => Date.parse(record.at) >= from && Date.parse(record.at) <= to);
    let modelMs = 0;
    let toolMs = 0;
    for (const [position, record] of within.entries()) {
      if (record.kind === 'llm_request') {
        const response = within.slice(position + 1).find((next) => next.kind === 'llm_response');
        if (response) modelMs += Date.parse(response.at) - Date.parse(record.at);
      }
      if (record.kind === 'tool_result') {
        const duration = (record.payload as { durationMs?: unknown } | null)?.durationMs;
        if (typeof duration === 'number') toolMs += duration;
      }
    }
    latencies.push({
      callerSeq: turn.seq,
      callerText: turn.text,
      agentSeq: reply?.seq,
      responseMs: reply ? Math.max(0, to - from) : undefined,
      modelMs: within.some((record) => record.kind === 'llm_request') ? modelMs : undefined,
      toolMs: within.some((record) => record.kind === 'tool_result') ? toolMs : undefined,
    });
  }
  return latencies;
}

function verdictBadge(chain: ChainReport): string {
  return chain.verdict.ok
    ? `<span class="badge ok">verified</span>`
    : `<span class="badge fail">verification failed</span>`;
}

function chainRow(chain: ChainReport): string {
  const verdict = chain.verdict;
  const detail = verdict.ok
    ? `${verdict.records.length} records in ${verdict.seals.length} sealed segments, closed with the final seal`
    : `${verdict.seq !== undefined ? `record ${verdict.seq}: ` : verdict.segment !== undefined ? `segment ${verdict.segment}: ` : ''}${verdict.reason}`;
  return `<tr class="${verdict.ok ? 'ok' : 'fail'}" data-chain="${escapeHtml(chain.name)}" data-verified="${verdict.ok}">
<td>${escapeHtml(chain.name)}</td><td>${verdictBadge(chain)}</td><td>${escapeHtml(detail)}</td></tr>`;
}

/** Records from the first bad one on are marked: what follows a break is not vouched for. */
function suspectFrom(chain: ChainReport): number {
  return chain.verdict.ok ? Number.POSITIVE_INFINITY : (chain.verdict.seq ?? 0);
}

function toolTable(chain: ChainReport): string {
  const exchanges = toolExchanges(chain.records);
  if (exchanges.length === 0) return '<p class="muted">No tool calls on this chain.</p>';
  const suspect = suspectFrom(chain);
  const rows = exchanges.map(({ call, result, transfer }) => {
    const callPayload = (call.payload ?? {}) as Record<string, unknown>;
    const resultPayload = (result?.payload ?? {}) as Record<string, unknown>;
    const outcome = String(resultPayload.outcome ?? (resultPayload.isError ? 'tool_error' : result ? 'ok' : 'no result recorded'));
    const stripped = Array.isArray(callPayload.strippedArguments) ? callPayload.strippedArguments : [];
    const args = 'rawArguments' in callPayload ? callPayload.rawArguments : callPayload.arguments;
    const shown = resultPayload.result ?? resultPayload.text ?? resultPayload.error ?? null;
    const bad = call.seq >= suspect || (result?.seq ?? 0) >= suspect;
    return `<tr class="outcome-${escapeHtml(outcome)}${bad ? ' suspect' : ''}">
<td>${escapeHtml(call.at.slice(11, 23))}</td><td><code>${escapeHtml(call.subject)}</code></td>
<td>${json(args)}${stripped.length ? `<div class="warn">not in the tool's schema: ${escapeHtml(stripped.join(', '))}</div>` : ''}</td>
<td><span class="outcome">${escapeHtml(outcome)}</span>${resultPayload.code !== undefined ? ` <code>${escapeHtml(resultPayload.code)}</code>` : ''}</td>
<td>${json(shown)}${transfer ? `<div>transfer to <code>${escapeHtml(transfer.subject)}</code></div>` : ''}</td></tr>`;
  });
  return `<table class="tools"><thead><tr><th>At</th><th>Tool</th><th>Arguments (as received)</th><th>Outcome</th><th>Result</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

function modelExchanges(chain: ChainReport | undefined): string {
  const records = chain?.records ?? [];
  const requests = records.filter((record) => record.kind === 'llm_request');
  if (requests.length === 0) return '<p class="muted">No model requests recorded.</p>';
  return requests
    .map((request, index) => {
      const response = records.find((record) => record.kind === 'llm_response' && record.seq > request.seq);
      const ms = response ? Date.parse(response.at) - Date.parse(request.at) : undefined;
      return `<details class="model"><summary>#${index + 1} at ${escapeHtml(request.at.slice(11, 23))} · ${escapeHtml(request.subject)}
${ms !== undefined ? ` · ${ms} ms` : ''}</summary><h4>Request</h4>${json(request.payload)}<h4>Response</h4>${json(response?.payload ?? null)}</details>`;
    })
    .join('\n');
}

function transcriptSection(data: CallReportData, latencies: TurnLatency[]): string {
  const transcript = data.transcript;
  if (!transcript) return '<p class="fail-text">No transcript found for this call.</p>';
  const origin = Date.parse(transcript.startedAt);
  const latencyByAgentSeq = new Map(latencies.filter((entry) => entry.agentSeq !== undefined).map((entry) => [entry.agentSeq!, entry]));
  const rows = transcript.turns.map((turn) => {
    const latency = latencyByAgentSeq.get(turn.seq);
    const notes = [
      turn.confidence !== undefined ? `confidence ${turn.confidence.toFixed(2)}` : '',
      turn.interrupted ? 'interrupted' : '',
      turn.redacted ? 'redacted' : '',
    ].filter(Boolean);
    return `<tr class="turn ${turn.speaker}"><td>${clock(turn.startedAt, origin)}</td><td class="speaker">${turn.speaker}</td>
<td>${escapeHtml(turn.text)}${notes.length ? `<div class="muted">${escapeHtml(notes.join(' · '))}</div>` : ''}</td>
<td class="num">${latency?.responseMs !== undefined ? `${latency.responseMs} ms` : ''}</td></tr>`;
  });
  const note = data.transcriptSource === 'parts' ? '<p class="warn">No final transcript: turns read from the in-call parts.</p>' : '';
  return `${note}<table class="transcript"><thead><tr><th>Time</th><th>Speaker</th><th>Text</th><th>Response latency</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

function latencySection(latencies: TurnLatency[]): string {
  if (latencies.length === 0) return '<p class="muted">No caller turns.</p>';
  const rows = latencies.map(
    (entry) => `<tr><td>${entry.callerSeq}</td><td>${escapeHtml(entry.callerText.slice(0, 80))}</td>
<td class="num">${entry.responseMs !== undefined ? `${entry.responseMs} ms` : 'no reply'}</td>
<td class="num">${entry.modelMs !== undefined ? `${entry.modelMs} ms` : ''}</td><td class="num">${entry.toolMs !== undefined ? `${entry.toolMs} ms` : ''}</td></tr>`,
  );
  const answered = latencies.filter((entry) => entry.responseMs !== undefined).map((entry) => entry.responseMs!);
  const sorted = [...answered].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : undefined;
  return `<p>Median response latency: <strong>${median !== undefined ? `${median} ms` : 'n/a'}</strong> over ${answered.length} answered turns
(caller turn end → agent turn start, as recorded).</p>
<table><thead><tr><th>Caller turn</th><th>Said</th><th>Agent answered after</th><th>Model time</th><th>Tool time</th></tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

function enrichmentSection(data: CallReportData): string {
  if (data.enrichmentError) {
    return `<p class="fail-text">Enrichment failed (${escapeHtml(data.enrichmentError.reason)}): ${escapeHtml(data.enrichmentError.detail)}</p>`;
  }
  const enriched = data.enriched;
  if (!enriched) return '<p class="muted">No enriched record (yet).</p>';
  const { insights } = enriched;
  const fields = insights.intakeFields
    .map((field) => `<tr><td><code>${escapeHtml(field.name)}</code></td><td>${escapeHtml(field.value)}</td><td class="num">${field.confidence.toFixed(2)}</td></tr>`)
    .join('');
  return `<dl class="enriched"><dt>Summary</dt><dd>${escapeHtml(insights.summary)}</dd><dt>Intent</dt><dd>${escapeHtml(insights.intent)}</dd>
<dt>Urgency</dt><dd class="urgency-${escapeHtml(insights.urgency)}">${escapeHtml(insights.urgency)}</dd><dt>Sentiment</dt><dd>${escapeHtml(insights.sentiment)}</dd>
<dt>Model</dt><dd>${escapeHtml(enriched.modelId)} (${enriched.modelAttempts} attempt${enriched.modelAttempts > 1 ? 's' : ''}), ${escapeHtml(enriched.enrichedAt)}</dd></dl>
${fields ? `<table><thead><tr><th>Field</th><th>Value</th><th>Confidence</th></tr></thead><tbody>${fields}</tbody></table>` : ''}
${insights.followUpActions.length ? `<h4>Follow-up</h4><ul>${insights.followUpActions.map((action) => `<li>${escapeHtml(action)}</li>`).join('')}</ul>` : ''}`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:20px}
header .meta{color:#c5cad3}main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:16px;margin:0 0 10px}h4{margin:10px 0 4px}
table{border-collapse:collapse;width:100%}th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid #eceef1}
th{font-weight:600;color:#4a5260;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px;background:#f7f8fa;padding:6px;border-radius:4px;max-height:260px;overflow:auto}
.muted{color:#6b7280}.num{text-align:right;white-space:nowrap}.warn{color:#8a5a00;font-size:12px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.badge.ok{background:#dcfce7;color:#166534}.badge.fail{background:#dc2626;color:#fff}
tr.fail td{background:#fee2e2;color:#991b1b}.fail-text{color:#b91c1c;font-weight:600}
.banner{padding:10px 14px;border-radius:6px;font-weight:600;margin-top:10px}
.banner.ok{background:#dcfce7;color:#166534}.banner.fail{background:#dc2626;color:#fff}
tr.turn.caller .speaker{color:#1d4ed8;font-weight:600}tr.turn.agent .speaker{color:#047857;font-weight:600}
.outcome{font-weight:600}tr.outcome-rejected .outcome,tr.outcome-failed .outcome{color:#b91c1c}tr.outcome-tool_error .outcome{color:#8a5a00}
tr.suspect td{background:#fff1f2}details.model{border:1px solid #eceef1;border-radius:6px;padding:6px 10px;margin:6px 0}
details.model summary{cursor:pointer}dl.enriched{display:grid;grid-template-columns:120px 1fr;gap:4px 12px}dt{font-weight:600;color:#4a5260}dd{margin:0}
.urgency-high,.urgency-emergency{color:#b91c1c;font-weight:600}
`;

/** The report as one HTML document: no script, no external resource, every recorded value escaped. */
export function renderCallReport(data: CallReportData): string {
  const agentChain = data.verification.chains.find((chain) => chain.actor === 'agent');
  const serverChains = data.verification.chains.filter((chain) => chain.actor === 'mcp-server');
  const latencies = data.transcript ? turnLatencies(data.transcript.turns, agentChain?.records ?? []) : [];
  const transcript = data.transcript;
  const failed = data.verification.chains.filter((chain) => !chain.verdict.ok);
  const banner = failed.length
    ? `<div class="banner fail" id="verification-status" data-ok="false">Verification FAILED on ${failed.length} of ${data.verification.chains.length} chains: this record may have been altered or cut off.</div>`
    : `<div class="banner ok" id="verification-status" data-ok="true">All ${data.verification.chains.length} audit chains verified and sealed closed.</div>`;
  const meta = transcript
    ? [
        `caller ${escapeHtml(transcript.callerNumber)}`,
        transcript.calledNumber ? `dialled ${escapeHtml(transcript.calledNumber)}` : '',
        `${escapeHtml(transcript.startedAt)} → ${escapeHtml(transcript.endedAt)}`,
        `ended: ${escapeHtml(transcript.endReason)}`,
        transcript.caseId ? `case ${escapeHtml(transcript.caseId)}` : '',
      ]
        .filter(Boolean)
        .join(' · ')
    : 'no transcript';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Call report ${escapeHtml(data.callId)}</title><style>${STYLE}</style></head>
<body><header><h1>Call ${escapeHtml(data.callId)}</h1><div class="meta">${meta}</div></header><main>
<section id="verification"><h2>Audit chains</h2>${banner}
<table><thead><tr><th>Chain</th><th>Status</th><th>Detail</th></tr></thead><tbody>${data.verification.chains.map(chainRow).join('\n')}</tbody></table>
${data.unreadable.length ? `<p class="fail-text">Unreadable records: ${escapeHtml(data.unreadable.join('; '))}</p>` : ''}</section>
<section id="transcript"><h2>Transcript</h2>${transcriptSection(data, latencies)}</section>
<section id="latency"><h2>Turn latency</h2>${latencySection(latencies)}</section>
<section id="tools"><h2>Tool calls — agent</h2>${agentChain ? toolTable(agentChain) : '<p class="fail-text">No agent chain.</p>'}
${serverChains.map((chain) => `<h2>Tool calls — ${escapeHtml(chain.name)} ${verdictBadge(chain)}</h2>${toolTable(chain)}`).join('\n')}</section>
<section id="model"><h2>Model requests and responses</h2>${modelExchanges(agentChain)}</section>
<section id="enrichment"><h2>Enrichment</h2>${enrichmentSection(data)}</section>
<p class="muted">Generated ${escapeHtml(data.generatedAt.toISOString())} from the stored records.</p>
</main></body></html>
`;
}
