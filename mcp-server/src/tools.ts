import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import type { CallToolResult } from '@modelcontextprotocol/sdk/types.js';
import { type IntakeCase, MCP_SESSION_HEADER, type McpSession, SCHEMA_VERSION, e164Schema, verifySessionHeader } from '@voice-intake/contracts';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditLog } from './audit';
import type { HttpCaseForwarder } from './backend/http-forwarder';
import { type FieldError, type FormCatalog, UnknownIntakeTypeError } from './forms';
import type { KnowledgeSearch } from './knowledge/knowledge';
import { CaseAlreadySubmittedError, type CaseStore, caseIdForCall } from './stores/case-store';

export interface ToolDeps {
  cases: CaseStore;
  forms: FormCatalog;
  knowledge: KnowledgeSearch;
  forwarder?: HttpCaseForwarder;
  audit: AuditLog;
  sessionSecret: string;
  transferTargets: Record<string, string>;
  defaultTransferQueue: string;
  logger: Logger;
  now?: () => Date;
}

type Headers = Record<string, string | string[] | undefined>;
type Extra = { requestInfo?: { headers?: Headers } };

/** The audit chain of requests that carry no call binding (forms, knowledge) while an operator tests the server. */
const UNBOUND_CALL = 'unbound';

const fieldValues = z
  .record(z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'field names are snake_case'), z.string().max(2_000, 'at most 2000 characters'))
  .refine((fields) => Object.keys(fields).length <= 50, 'at most 50 fields');
const intakeType = z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'an intake type from get_intake_form').describe('Intake type, as get_intake_form lists');
const fieldErrorShape = z.object({ field: z.string(), message: z.string() });

class ToolFailure extends Error {
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function sessionOf(extra: Extra, secret: string): McpSession {
  const raw = extra.requestInfo?.headers?.[MCP_SESSION_HEADER];
  const verdict = verifySessionHeader(Array.isArray(raw) ? raw[0] : raw, secret);
  if (!verdict.ok) {
    throw new ToolFailure(`This tool needs the call's session binding (${MCP_SESSION_HEADER}: ${verdict.reason}); it cannot act for an unknown caller.`);
  }
  return verdict.session;
}

function ok(structured: Record<string, unknown>, text: string): CallToolResult {
  return { content: [{ type: 'text', text }], structuredContent: structured };
}

/**
 * A tool error the model can speak about. Details (such as field errors) ride as a second, JSON text block: clients
 * check `structuredContent` against the success schema, so an error carries none.
 */
function failure(message: string, details: Record<string, unknown>): CallToolResult {
  const content: CallToolResult['content'] = [{ type: 'text', text: message }];
  if (Object.keys(details).length) content.push({ type: 'text', text: JSON.stringify(details) });
  return { isError: true, content };
}

function describeErrors(errors: FieldError[]): string {
  return errors.map((error) => `${error.field} ${error.message}`).join('; ');
}

/**
 * Registers the intake tools on one MCP server. Every input is validated (zod, then the form), every tool that
 * touches a caller's data takes the caller from the signed session header, and every call and result is audited.
 */
export function createIntakeServer(deps: ToolDeps): McpServer {
  const server = new McpServer({ name: 'voice-intake', version: '0.1.0' }, { capabilities: { logging: {} } });
  const now = () => deps.now?.() ?? new Date();

  /** Wraps a handler: audit in and out, ToolFailure → a tool error the model can speak about, never a crash. */
  function guarded<A>(name: string, needsSession: boolean, run: (args: A, session: McpSession | undefined) => Promise<CallToolResult>) {
    return async (args: A, extra: Extra): Promise<CallToolResult> => {
      let session: McpSession | undefined;
      let callId = UNBOUND_CALL;
      try {
        if (needsSession) session = sessionOf(extra, deps.sessionSecret);
        else {
          const raw = extra.requestInfo?.headers?.[MCP_SESSION_HEADER];
          const verdict = verifySessionHeader(Array.isArray(raw) ? raw[0] : raw, deps.sessionSecret);
          if (verdict.ok) session = verdict.session;
        }
        callId = session?.callId ?? UNBOUND_CALL;
        await deps.audit.record(callId, 'tool_call', name, { arguments: args, callerNumber: session?.callerNumber ?? null });
        const result = await run(args, session);
        await deps.audit.record(callId, 'tool_result', name, { isError: result.isError ?? false, result: result.structuredContent ?? null });
        return result;
      } catch (error) {
        const message = error instanceof ToolFailure || error instanceof UnknownIntakeTypeError ? error.message : 'The system could not complete this right now. Please try again shortly.';
        if (!(error instanceof ToolFailure || error instanceof UnknownIntakeTypeError)) deps.logger.error({ err: error, tool: name }, 'tool failed');
        const details = error instanceof ToolFailure ? error.details : {};
        await deps.audit.record(callId, 'tool_result', name, { isError: true, error: message, ...details }).catch(() => undefined);
        return failure(message, details);
      }
    };
  }

  server.registerTool(
    'lookup_caller',
    {
      title: 'Look up the caller',
      description:
        "Finds the caller on this call by their phone number: whether we know them, their name, and their open cases. Use it at the start of the call. It only works for this call's caller.",
      inputSchema: { phoneNumber: e164Schema.optional().describe("Leave empty to use the caller's own number (the usual case).") },
      outputSchema: {
        phoneNumber: z.string(),
        known: z.boolean(),
        name: z.string().optional(),
        openCases: z.array(z.object({ caseId: z.string(), intakeType: z.string(), status: z.string(), updatedAt: z.string() })),
      },
    },
    guarded<{ phoneNumber?: string }>('lookup_caller', true, async ({ phoneNumber }, session) => {
      const bound = session!.callerNumber;
      if (phoneNumber && phoneNumber !== bound) {
        throw new ToolFailure("For privacy I can only look up the number this call comes from, not another person's.");
      }
      if (bound === 'anonymous') {
        return ok({ phoneNumber: bound, known: false, openCases: [] }, 'The caller withheld their number, so there is no record to look up.');
      }
      const cases = await deps.cases.listCasesByPhone(bound);
      const openCases = cases
        .filter((stored) => stored.status !== 'closed')
        .map(({ caseId, intakeType: type, status, updatedAt }) => ({ caseId, intakeType: type, status, updatedAt }));
      const name = cases.find((stored) => stored.fields.full_name)?.fields.full_name;
      const known = cases.length > 0;
      const summary = known
        ? `Known caller${name ? ` ${name}` : ''} with ${openCases.length} open case(s)${openCases.length ? `: ${openCases.map((c) => `${c.caseId} (${c.intakeType}, ${c.status})`).join(', ')}` : ''}.`
        : 'No record for this number: a new caller.';
      return ok({ phoneNumber: bound, known, ...(name ? { name } : {}), openCases }, summary);
    }),
  );

  server.registerTool(
    'get_intake_form',
    {
      title: 'Get the intake form',
      description:
        'Lists the fields to collect for an intake type, with how to ask for each and which are required. Call it before collecting details; without an intake type it returns the default form and the list of types.',
      inputSchema: { intakeType: intakeType.optional() },
      outputSchema: {
        intakeType: z.string(),
        title: z.string(),
        description: z.string(),
        availableTypes: z.array(z.string()),
        fields: z.array(
          z.object({
            name: z.string(),
            label: z.string(),
            required: z.boolean(),
            type: z.string(),
            prompt: z.string().optional(),
            allowedValues: z.array(z.string()).optional(),
            format: z.string().optional(),
            maxLength: z.number().optional(),
          }),
        ),
      },
    },
    guarded<{ intakeType?: string }>('get_intake_form', false, async ({ intakeType: type }) => {
      const chosen = type ?? deps.forms.defaultIntakeType;
      const form = deps.forms.get(chosen);
      if (!form) throw new UnknownIntakeTypeError(chosen, deps.forms.intakeTypes);
      const required = form.fields.filter((field) => field.required).map((field) => field.name);
      return ok(
        { ...form, availableTypes: deps.forms.intakeTypes },
        `${form.title}: collect ${form.fields.map((field) => field.name).join(', ')} (required: ${required.join(', ')}).`,
      );
    }),
  );

  function draftFor(session: McpSession, type: string, fields: Record<string, string>, existing?: IntakeCase): IntakeCase {
    const at = now().toISOString();
    return {
      schemaVersion: SCHEMA_VERSION,
      caseId: caseIdForCall(session.callId),
      callId: session.callId,
      callerNumber: session.callerNumber,
      intakeType: type,
      fields,
      status: 'draft',
      createdAt: existing?.createdAt ?? at,
      updatedAt: at,
      source: 'voice',
    };
  }

  server.registerTool(
    'save_intake_progress',
    {
      title: 'Save intake progress',
      description:
        'Saves the fields collected so far for this call (valid ones are kept; invalid ones come back with the reason to read to the caller). Call it whenever the caller gives a field.',
      inputSchema: { intakeType, fields: fieldValues.describe('Field name → value as the caller gave it') },
      outputSchema: {
        caseId: z.string(),
        savedFields: z.array(z.string()),
        fieldErrors: z.array(fieldErrorShape),
        missingRequired: z.array(z.string()),
      },
    },
    guarded<{ intakeType: string; fields: Record<string, string> }>('save_intake_progress', true, async ({ intakeType: type, fields }, session) => {
      const errors = deps.forms.validatePartial(type, fields);
      const rejected = new Set(errors.map((error) => error.field));
      const accepted = Object.fromEntries(Object.entries(fields).filter(([name]) => !rejected.has(name)));
      const caseId = caseIdForCall(session!.callId);
      const existing = await deps.cases.getCase(caseId);
      if (existing && existing.status !== 'draft') throw new ToolFailure(`This call's intake was already submitted as case ${caseId}.`, { caseId });
      const merged = { ...(existing?.intakeType === type ? existing.fields : {}), ...accepted };
      try {
        await deps.cases.saveDraft(draftFor(session!, type, merged, existing));
      } catch (error) {
        if (error instanceof CaseAlreadySubmittedError) throw new ToolFailure(`This call's intake was already submitted as case ${caseId}.`, { caseId });
        throw error;
      }
      const missingRequired = deps.forms.missingRequired(type, merged);
      const text = [
        Object.keys(accepted).length ? `Saved ${Object.keys(accepted).join(', ')}.` : 'Nothing saved.',
        errors.length ? `Please ask again: ${describeErrors(errors)}.` : '',
        missingRequired.length ? `Still needed: ${missingRequired.join(', ')}.` : 'All required fields are collected: confirm them with the caller, then submit.',
      ]
        .filter(Boolean)
        .join(' ');
      return ok({ caseId, savedFields: Object.keys(accepted), fieldErrors: errors, missingRequired }, text);
    }),
  );

  server.registerTool(
    'submit_intake',
    {
      title: 'Submit the intake',
      description:
        'Submits this call\'s intake once the caller has confirmed the details. Fields given here are added to those already saved. Submitting twice returns the same case; it never creates a duplicate.',
      inputSchema: { intakeType, fields: fieldValues.optional() },
      outputSchema: {
        caseId: z.string(),
        status: z.string(),
        alreadySubmitted: z.boolean(),
        forwarded: z.enum(['delivered', 'queued', 'not_configured']),
      },
    },
    guarded<{ intakeType: string; fields?: Record<string, string> }>('submit_intake', true, async ({ intakeType: type, fields = {} }, session) => {
      const caseId = caseIdForCall(session!.callId);
      const existing = await deps.cases.getCase(caseId);
      if (existing && existing.status !== 'draft') {
        return ok(
          { caseId, status: existing.status, alreadySubmitted: true, forwarded: deps.forwarder ? 'delivered' : 'not_configured' },
          `Already submitted as case ${caseId}.`,
        );
      }
      const merged = { ...(existing?.intakeType === type ? existing.fields : {}), ...fields };
      const errors = deps.forms.validateComplete(type, merged);
      if (errors.length) {
        throw new ToolFailure(`The intake cannot be submitted yet: ${describeErrors(errors)}.`, { fieldErrors: errors });
      }
      const at = now().toISOString();
      const { case: stored, created } = await deps.cases.submit({ ...draftFor(session!, type, merged, existing), status: 'submitted', submittedAt: at });
      let forwarded: 'delivered' | 'queued' | 'not_configured' = 'not_configured';
      if (deps.forwarder && created) forwarded = (await deps.forwarder.forward(stored)).delivered ? 'delivered' : 'queued';
      else if (deps.forwarder) forwarded = 'delivered';
      return ok(
        { caseId: stored.caseId, status: stored.status, alreadySubmitted: !created, forwarded },
        created ? `Submitted as case ${stored.caseId}. Read the case number to the caller.` : `Already submitted as case ${stored.caseId}.`,
      );
    }),
  );

  server.registerTool(
    'search_knowledge',
    {
      title: 'Search the knowledge base',
      description:
        "Finds passages from the organisation's documents that answer a caller's question. Answer only from what it returns and mention that you checked; if nothing relevant comes back, say you will have someone follow up.",
      inputSchema: {
        query: z.string().min(2, 'at least 2 characters').max(300, 'at most 300 characters'),
        limit: z.number().int().min(1).max(5).default(3),
      },
      outputSchema: { passages: z.array(z.object({ sourceId: z.string(), title: z.string(), text: z.string(), score: z.number() })) },
    },
    guarded<{ query: string; limit: number }>('search_knowledge', false, async ({ query, limit }) => {
      const passages = await deps.knowledge.search(query, limit);
      const text = passages.length
        ? passages.map((passage) => `[${passage.sourceId}] ${passage.title}: ${passage.text}`).join('\n')
        : 'No passage matches that question.';
      return ok({ passages }, text);
    }),
  );

  server.registerTool(
    'schedule_callback',
    {
      title: 'Schedule a callback',
      description:
        "Books a call back to this caller's number within a time window (ISO 8601 with time zone offset, e.g. 2026-11-25T14:00:00-05:00). The window must start in the future, last at least 15 minutes and start within 14 days.",
      inputSchema: {
        windowStart: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with offset, e.g. 2026-11-25T14:00:00-05:00' }),
        windowEnd: z.iso.datetime({ offset: true, message: 'must be an ISO 8601 date-time with offset, e.g. 2026-11-25T16:00:00-05:00' }),
        reason: z.string().max(300, 'at most 300 characters').optional(),
      },
      outputSchema: { callbackId: z.string(), callerNumber: z.string(), windowStart: z.string(), windowEnd: z.string() },
    },
    guarded<{ windowStart: string; windowEnd: string; reason?: string }>('schedule_callback', true, async ({ windowStart, windowEnd, reason }, session) => {
      if (session!.callerNumber === 'anonymous') throw new ToolFailure('The caller withheld their number: ask for a callback number and use an intake form instead.');
      const start = Date.parse(windowStart);
      const end = Date.parse(windowEnd);
      const current = now().getTime();
      const errors: FieldError[] = [];
      if (start <= current) errors.push({ field: 'windowStart', message: 'must be in the future' });
      if (start > current + 14 * 24 * 3_600_000) errors.push({ field: 'windowStart', message: 'must be within the next 14 days' });
      if (end - start < 15 * 60_000) errors.push({ field: 'windowEnd', message: 'must be at least 15 minutes after windowStart' });
      if (errors.length) throw new ToolFailure(`That callback window does not work: ${describeErrors(errors)}.`, { fieldErrors: errors });
      const request = {
        callbackId: `CB-${randomUUID().slice(0, 8).toUpperCase()}`,
        callId: session!.callId,
        callerNumber: session!.callerNumber,
        windowStart: new Date(start).toISOString(),
        windowEnd: new Date(end).toISOString(),
        reason,
        createdAt: now().toISOString(),
      };
      await deps.cases.saveCallback(request);
      return ok(
        { callbackId: request.callbackId, callerNumber: request.callerNumber, windowStart: request.windowStart, windowEnd: request.windowEnd },
        `Callback ${request.callbackId} booked to ${request.callerNumber} between ${windowStart} and ${windowEnd}.`,
      );
    }),
  );

  const queues = Object.keys(deps.transferTargets) as [string, ...string[]];
  // No queue configured = transfer to a person is turned off: the model is not offered a tool it cannot use.
  if (queues.length > 0) server.registerTool(
    'request_human_transfer',
    {
      title: 'Transfer to a person',
      description: `Hands the call to a person when the caller asks for one, is in distress, or the request is outside what you can do. Say why in a few words. Queues: ${queues.join(', ')}.`,
      inputSchema: {
        reason: z.string().min(3, 'say why in a few words').max(300, 'at most 300 characters'),
        queue: z.enum(queues).optional(),
      },
      outputSchema: { queue: z.string(), target: z.string(), reason: z.string() },
    },
    guarded<{ reason: string; queue?: string }>('request_human_transfer', true, async ({ reason, queue }, session) => {
      const chosen = queue ?? deps.defaultTransferQueue;
      const target = deps.transferTargets[chosen];
      const at = now().toISOString();
      await deps.cases.saveTransfer({ callId: session!.callId, callerNumber: session!.callerNumber, queue: chosen, target, reason, at });
      await deps.audit.record(session!.callId, 'transfer', chosen, { target, reason });
      return ok({ queue: chosen, target, reason }, `Transfer to ${chosen} (${target}). Tell the caller you are connecting them now.`);
    }),
  );

  return server;
}
