import {
  type AuditRecord,
  type AuditSealVerifier,
  type EnrichedRecord,
  enrichedKeyForTranscript,
  enrichedRecordSchema,
  enrichmentErrorKeyForTranscript,
  enrichmentErrorRecordSchema,
  type Transcript,
  type TranscriptTurn,
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
export async function loadCallReport(
  source: RecordSource,
  callId: string,
  verifier: AuditSealVerifier,
): Promise<CallReportData> {
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
  const generatedAt = new Date();
  return { callId, generatedAt, transcript, transcriptSource, enriched, enrichmentError, verification, unreadable };
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
    const open = [...exchanges]
      .reverse()
      .find((exchange) => exchange.call.subject === record.subject && !exchange.result);
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

/** A table: header labels, then rows of cell HTML (already escaped by the caller). */
function table(headers: string[], rows: string[], className = ''): string {
  const head = headers.map((header) => `<th>${header}</th>`).join('');
  return `<table${className ? ` class="${className}"` : ''}><thead><tr>${head}</tr></thead>
<tbody>${rows.join('\n')}</tbody></table>`;
}

const cells = (values: string[]) => values.map((value) => `<td>${value}</td>`).join('');
const ms = (value: number | undefined, otherwise = '') => (value !== undefined ? `${value} ms` : otherwise);

function whereFailed(verdict: Extract<ChainReport['verdict'], { ok: false }>): string {
  if (verdict.seq !== undefined) return `record ${verdict.seq}: `;
  if (verdict.segment !== undefined) return `segment ${verdict.segment}: `;
  return '';
}

function chainRow(chain: ChainReport): string {
  const verdict = chain.verdict;
  const detail = verdict.ok
    ? `${verdict.records.length} records in ${verdict.seals.length} sealed segments, closed with the final seal`
    : `${whereFailed(verdict)}${verdict.reason}`;
  const status = verdict.ok ? 'ok' : 'fail';
  const attributes = `class="${status}" data-chain="${escapeHtml(chain.name)}" data-verified="${verdict.ok}"`;
  return `<tr ${attributes}>${cells([escapeHtml(chain.name), verdictBadge(chain), escapeHtml(detail)])}</tr>`;
}

/** Records from the first bad one on are marked: what follows a break is not vouched for. */
function suspectFrom(chain: ChainReport): number {
  return chain.verdict.ok ? Number.POSITIVE_INFINITY : (chain.verdict.seq ?? 0);
}

function toolRow({ call, result, transfer }: ToolExchange, suspect: number): string {
  const callPayload = (call.payload ?? {}) as Record<string, unknown>;
  const resultPayload = (result?.payload ?? {}) as Record<string, unknown>;
  const unstated = resultPayload.isError ? 'tool_error' : result ? 'ok' : 'no result recorded';
  const outcome = String(resultPayload.outcome ?? unstated);
  const stripped = Array.isArray(callPayload.strippedArguments) ? callPayload.strippedArguments : [];
  // A request refused before it was parsed into arguments is recorded as the text received.
  const args = 'rawRequest' in callPayload ? callPayload.rawRequest : callPayload.arguments;
  const shown = resultPayload.result ?? resultPayload.text ?? resultPayload.error ?? null;
  const bad = call.seq >= suspect || (result?.seq ?? 0) >= suspect;
  const strippedNote = stripped.length
    ? `<div class="warn">not in the tool's schema: ${escapeHtml(stripped.join(', '))}</div>`
    : '';
  const code = resultPayload.code !== undefined ? ` <code>${escapeHtml(resultPayload.code)}</code>` : '';
  const transferNote = transfer ? `<div>transfer to <code>${escapeHtml(transfer.subject)}</code></div>` : '';
  return `<tr class="outcome-${escapeHtml(outcome)}${bad ? ' suspect' : ''}">${cells([
    escapeHtml(call.at.slice(11, 23)),
    `<code>${escapeHtml(call.subject)}</code>`,
    `${json(args)}${strippedNote}`,
    `<span class="outcome">${escapeHtml(outcome)}</span>${code}`,
    `${json(shown)}${transferNote}`,
  ])}</tr>`;
}

function toolTable(chain: ChainReport): string {
  const exchanges = toolExchanges(chain.records);
  if (exchanges.length === 0) return '<p class="muted">No tool calls on this chain.</p>';
  const suspect = suspectFrom(chain);
  const headers = ['At', 'Tool', 'Arguments (as received)', 'Outcome', 'Result'];
  return table(
    headers,
    exchanges.map((exchange) => toolRow(exchange, suspect)),
    'tools',
  );
}

function modelExchanges(chain: ChainReport | undefined): string {
  const records = chain?.records ?? [];
  const requests = records.filter((record) => record.kind === 'llm_request');
  if (requests.length === 0) return '<p class="muted">No model requests recorded.</p>';
  return requests
    .map((request, index) => {
      const response = records.find((record) => record.kind === 'llm_response' && record.seq > request.seq);
      const took = response ? Date.parse(response.at) - Date.parse(request.at) : undefined;
      const summary = `#${index + 1} at ${escapeHtml(request.at.slice(11, 23))} · ${escapeHtml(request.subject)}`;
      return `<details class="model"><summary>${summary}${took !== undefined ? ` · ${took} ms` : ''}</summary>
<h4>Request</h4>${json(request.payload)}<h4>Response</h4>${json(response?.payload ?? null)}</details>`;
    })
    .join('\n');
}

function transcriptSection(data: CallReportData, latencies: TurnLatency[]): string {
  const transcript = data.transcript;
  if (!transcript) return '<p class="fail-text">No transcript found for this call.</p>';
  const origin = Date.parse(transcript.startedAt);
  const byAgentTurn = new Map(
    latencies.flatMap((entry) => (entry.agentSeq === undefined ? [] : [[entry.agentSeq, entry] as const])),
  );
  const rows = transcript.turns.map((turn) => {
    const notes = [
      turn.confidence !== undefined ? `confidence ${turn.confidence.toFixed(2)}` : '',
      turn.interrupted ? 'interrupted' : '',
      turn.redacted ? 'redacted' : '',
    ].filter(Boolean);
    const noteHtml = notes.length ? `<div class="muted">${escapeHtml(notes.join(' · '))}</div>` : '';
    const text = `${escapeHtml(turn.text)}${noteHtml}`;
    const latency = `<td class="num">${ms(byAgentTurn.get(turn.seq)?.responseMs)}</td>`;
    const speaker = `<td class="speaker">${turn.speaker}</td>`;
    const time = `<td>${clock(turn.startedAt, origin)}</td>`;
    return `<tr class="turn ${turn.speaker}">${time}${speaker}<td>${text}</td>${latency}</tr>`;
  });
  const note =
    data.transcriptSource === 'parts'
      ? '<p class="warn">No final transcript: turns read from the in-call parts.</p>'
      : '';
  const missing = transcript.missingParts?.length
    ? `<p class="fail-text">Turns not in this transcript (parts of an earlier worker never stored or not readable): ${escapeHtml(
        transcript.missingParts.join(', '),
      )}</p>`
    : '';
  const omitted = transcript.omittedTurns
    ? `<p class="warn">${transcript.omittedTurns} later turn(s) not in this transcript (more than it holds): they are in the call's transcript parts, ${escapeHtml(
        `transcript-parts/${transcript.callId}/`,
      )}</p>`
    : '';
  return `${note}${missing}${omitted}${table(['Time', 'Speaker', 'Text', 'Response latency'], rows, 'transcript')}`;
}

function latencySection(latencies: TurnLatency[]): string {
  if (latencies.length === 0) return '<p class="muted">No caller turns.</p>';
  const rows = latencies.map((entry) => {
    const numbers = [ms(entry.responseMs, 'no reply'), ms(entry.modelMs), ms(entry.toolMs)];
    const said = `<td>${entry.callerSeq}</td><td>${escapeHtml(entry.callerText.slice(0, 80))}</td>`;
    return `<tr>${said}${numbers.map((value) => `<td class="num">${value}</td>`).join('')}</tr>`;
  });
  const answered = latencies.flatMap((entry) => (entry.responseMs === undefined ? [] : [entry.responseMs]));
  const sorted = [...answered].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : undefined;
  const headers = ['Caller turn', 'Said', 'Agent answered after', 'Model time', 'Tool time'];
  return `<p>Median response latency: <strong>${ms(median, 'n/a')}</strong> over ${answered.length} answered turns
(caller turn end → agent turn start, as recorded).</p>${table(headers, rows)}`;
}

/** The call's audio: where its parts are (the transcripts bucket), or why there are none. */
function recordingSection(transcript: Transcript | undefined): string {
  const recording = transcript?.recording;
  if (!recording) return '<p class="muted">Not recorded (recording off, or no final transcript).</p>';
  const consent =
    recording.mode === 'consent'
      ? recording.consent === true
        ? 'the caller agreed'
        : recording.consent === false
          ? 'the caller refused'
          : recording.parts.length
            ? 'the answer was not saved before a takeover'
            : 'the caller never answered'
      : 'announced';
  const about = `<p>${escapeHtml(
    `${recording.mode}: ${consent} · stereo WAV, caller left, agent right, ${recording.sampleRate} Hz · ` +
      `starts ${recording.startedAt} · ${recording.parts.length} parts`,
  )}</p>`;
  const failed = [
    recording.failedParts.length
      ? `<p class="fail-text">Parts whose write failed: ${escapeHtml(recording.failedParts.join(', '))}</p>`
      : '',
    recording.unverifiedParts?.length
      ? `<p class="fail-text">Parts an earlier worker counted, not confirmed in the bucket: ${escapeHtml(
          recording.unverifiedParts.join(', '),
        )}</p>`
      : '',
  ].join('');
  if (recording.parts.length === 0) return `${about}<p class="muted">No audio stored.</p>${failed}`;
  const rows = recording.parts.map((key, index) => `<tr>${cells([String(index + 1), escapeHtml(key)])}</tr>`);
  return `${about}${failed}${table(['Part', 'Object (transcripts bucket)'], rows, 'recording')}`;
}

function enrichmentSection(data: CallReportData): string {
  const failure = data.enrichmentError;
  if (failure) {
    return `<p class="fail-text">Enrichment failed (${escapeHtml(failure.reason)}): ${escapeHtml(failure.detail)}</p>`;
  }
  const enriched = data.enriched;
  if (!enriched) return '<p class="muted">No enriched record (yet).</p>';
  const { insights } = enriched;
  const attempts = `${enriched.modelAttempts} attempt${enriched.modelAttempts > 1 ? 's' : ''}`;
  const facts: [string, string, string?][] = [
    ['Summary', insights.summary],
    ['Intent', insights.intent],
    ['Urgency', insights.urgency, `urgency-${insights.urgency}`],
    ['Sentiment', insights.sentiment],
    ['Model', `${enriched.modelId} (${attempts}), ${enriched.enrichedAt}`],
  ];
  const list = facts
    .map(([term, value, className]) => {
      const attribute = className ? ` class="${className}"` : '';
      return `<dt>${term}</dt><dd${attribute}>${escapeHtml(value)}</dd>`;
    })
    .join('\n');
  const fields = insights.intakeFields.map(
    (field) =>
      `<tr>${cells([`<code>${escapeHtml(field.name)}</code>`, escapeHtml(field.value)])}` +
      `<td class="num">${field.confidence.toFixed(2)}</td></tr>`,
  );
  const followUps = insights.followUpActions.map((action) => `<li>${escapeHtml(action)}</li>`).join('');
  return `<dl class="enriched">${list}</dl>
${fields.length ? table(['Field', 'Value', 'Confidence'], fields) : ''}
${followUps ? `<h4>Follow-up</h4><ul>${followUps}</ul>` : ''}`;
}

const STYLE = `
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",sans-serif;margin:0;color:#1d2330;background:#f5f6f8}
header{background:#1d2330;color:#fff;padding:18px 28px}header h1{margin:0 0 4px;font-size:20px}
header .meta{color:#c5cad3}main{padding:8px 28px 40px;max-width:1200px}
section{background:#fff;border:1px solid #dde1e6;border-radius:8px;padding:14px 18px;margin:16px 0}
h2{font-size:16px;margin:0 0 10px}h4{margin:10px 0 4px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;vertical-align:top;padding:6px 8px;border-bottom:1px solid #eceef1}
th{font-weight:600;color:#4a5260;font-size:12px;text-transform:uppercase;letter-spacing:.03em}
pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px;background:#f7f8fa;padding:6px;border-radius:4px;
max-height:260px;overflow:auto}
.muted{color:#6b7280}.num{text-align:right;white-space:nowrap}.warn{color:#8a5a00;font-size:12px}
.badge{display:inline-block;padding:2px 8px;border-radius:10px;font-weight:600;font-size:12px}
.badge.ok{background:#dcfce7;color:#166534}.badge.fail{background:#dc2626;color:#fff}
tr.fail td{background:#fee2e2;color:#991b1b}.fail-text{color:#b91c1c;font-weight:600}
.banner{padding:10px 14px;border-radius:6px;font-weight:600;margin-top:10px}
.banner.ok{background:#dcfce7;color:#166534}.banner.fail{background:#dc2626;color:#fff}
tr.turn.caller .speaker{color:#1d4ed8;font-weight:600}tr.turn.agent .speaker{color:#047857;font-weight:600}
.outcome{font-weight:600}tr.outcome-rejected .outcome,tr.outcome-failed .outcome{color:#b91c1c}
tr.outcome-tool_error .outcome{color:#8a5a00}
tr.suspect td{background:#fff1f2}
details.model{border:1px solid #eceef1;border-radius:6px;padding:6px 10px;margin:6px 0}
details.model summary{cursor:pointer}dl.enriched{display:grid;grid-template-columns:120px 1fr;gap:4px 12px}
dt{font-weight:600;color:#4a5260}dd{margin:0}
.urgency-high,.urgency-emergency{color:#b91c1c;font-weight:600}
`;

/** The report as one HTML document: no script, no external resource, every recorded value escaped. */
export function renderCallReport(data: CallReportData): string {
  const chains = data.verification.chains;
  const agentChain = chains.find((chain) => chain.actor === 'agent');
  const serverChains = chains.filter((chain) => chain.actor === 'mcp-server');
  const transcript = data.transcript;
  const latencies = transcript ? turnLatencies(transcript.turns, agentChain?.records ?? []) : [];
  const failed = chains.filter((chain) => !chain.verdict.ok);
  const banner = failed.length
    ? `<div class="banner fail" id="verification-status" data-ok="false">Verification FAILED on ${failed.length} of ` +
      `${chains.length} chains: this record may have been altered or cut off.</div>`
    : `<div class="banner ok" id="verification-status" data-ok="true">All ${chains.length} audit chains verified and ` +
      'sealed closed.</div>';
  const meta = transcript
    ? [
        `caller ${transcript.callerNumber}`,
        transcript.calledNumber ? `dialled ${transcript.calledNumber}` : '',
        `${transcript.startedAt} → ${transcript.endedAt}`,
        `ended: ${transcript.endReason}`,
        transcript.caseId ? `case ${transcript.caseId}` : '',
      ]
        .filter(Boolean)
        .map(escapeHtml)
        .join(' · ')
    : 'no transcript';
  const unreadable = data.unreadable.length
    ? `<p class="fail-text">Unreadable records: ${escapeHtml(data.unreadable.join('; '))}</p>`
    : '';
  const agentTools = agentChain ? toolTable(agentChain) : '<p class="fail-text">No agent chain.</p>';
  const serverTools = serverChains
    .map((chain) => `<h2>Tool calls — ${escapeHtml(chain.name)} ${verdictBadge(chain)}</h2>${toolTable(chain)}`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Call report ${escapeHtml(data.callId)}</title><style>${STYLE}</style></head>
<body><header><h1>Call ${escapeHtml(data.callId)}</h1><div class="meta">${meta}</div></header><main>
<section id="verification"><h2>Audit chains</h2>${banner}
${table(['Chain', 'Status', 'Detail'], chains.map(chainRow))}
${unreadable}</section>
<section id="transcript"><h2>Transcript</h2>${transcriptSection(data, latencies)}</section>
<section id="recording"><h2>Recording</h2>${recordingSection(transcript)}</section>
<section id="latency"><h2>Turn latency</h2>${latencySection(latencies)}</section>
<section id="tools"><h2>Tool calls — agent</h2>${agentTools}
${serverTools}</section>
<section id="model"><h2>Model requests and responses</h2>${modelExchanges(agentChain)}</section>
<section id="enrichment"><h2>Enrichment</h2>${enrichmentSection(data)}</section>
<p class="muted">Generated ${escapeHtml(data.generatedAt.toISOString())} from the stored records.</p>
</main></body></html>
`;
}
