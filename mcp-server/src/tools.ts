import { randomUUID } from 'node:crypto';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { Protocol } from '@modelcontextprotocol/sdk/shared/protocol.js';
import {
  type CallToolRequestSchema,
  type CallToolResult,
  ErrorCode,
  McpError,
} from '@modelcontextprotocol/sdk/types.js';
import {
  attestationMeets,
  type CallerTrust,
  type CaseCallerTrust,
  caseVouchesForCaller,
  DEFAULT_CALLER_TRUST,
  describeIssues,
  e164Schema,
  type IntakeCase,
  MCP_SESSION_HEADER,
  type McpSession,
  type McpToolName,
  SCHEMA_VERSION,
  storedText,
  TOOL_OUTCOME_META_KEY,
  type ToolCallOutcome,
  verifySessionHeader,
} from '@voice-intake/contracts';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { AuditLog } from './audit';
import { type CaseOutbox, type ForwardState, forwardStateOf } from './backend/outbox';
import { CallerProofs } from './caller-proofs';
import { type FieldError, type FormCatalog, UnknownIntakeTypeError } from './forms';
import type { KnowledgeSearch } from './knowledge/knowledge';
import { CaseAlreadySubmittedError, type CaseStore, caseIdForCall } from './stores/case-store';

export interface ToolDeps {
  cases: CaseStore;
  forms: FormCatalog;
  knowledge: KnowledgeSearch;
  /** Forwards submitted cases to the enterprise backend through the case store's outbox; unset = no backend. */
  outbox?: CaseOutbox;
  audit: AuditLog;
  sessionSecret: string;
  transferTargets: Record<string, string>;
  defaultTransferQueue: string;
  /** What each attestation level may see and do; default DEFAULT_CALLER_TRUST. */
  callerTrust?: CallerTrust;
  /** How long a closing MCP session waits for its running tool calls before its closing seal; default 10 s. */
  closeWaitMs?: number;
  /** Identity proofs and failed attempts by call, shared by every MCP session of the process (create it once). */
  proofs: CallerProofs;
  logger: Logger;
  now?: () => Date;
}

type Headers = Record<string, string | string[] | undefined>;
type Extra = { requestInfo?: { headers?: Headers } };

/** The audit chain of requests that carry no call binding (forms, knowledge) while an operator tests the server. */
const UNBOUND_CALL = 'unbound';

const fieldValues = z
  .record(
    z.string().regex(/^[a-z][a-z0-9_]{0,63}$/, 'field names are snake_case'),
    storedText(z.string().max(2_000, 'at most 2000 characters')),
  )
  .refine((fields) => Object.keys(fields).length <= 50, 'at most 50 fields');
const intakeType = z
  .string()
  .regex(/^[a-z][a-z0-9_]{0,63}$/, 'an intake type from get_intake_form')
  .describe('Intake type, as get_intake_form lists');
const fieldErrorShape = z.object({ field: z.string(), message: z.string() });

class ToolFailure extends Error {
  constructor(
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
  }
}

function bindingOf(extra: Extra, secret: string) {
  const raw = extra.requestInfo?.headers?.[MCP_SESSION_HEADER];
  return verifySessionHeader(Array.isArray(raw) ? raw[0] : raw, secret);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

interface IntakeTool {
  input: z.ZodType;
  shape: z.ZodRawShape;
  needsSession: boolean;
  run: (args: unknown, session: McpSession | undefined) => Promise<CallToolResult>;
}

/** Any tools/call request: its params are checked by handleToolCall, which records what it refuses. */
const anyToolCallRequest = z.object({ method: z.literal('tools/call'), params: z.unknown().optional() });

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

  const scope = deps.audit.openScope();
  // Tool calls running now: a session that ends under one (DELETE, idle close) waits for it before the closing seal,
  // so the call's outcome is on the chain.
  let running = 0;
  let settled: (() => void)[] = [];
  const allSettled = (withinMs: number) =>
    running === 0
      ? Promise.resolve()
      : new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            deps.logger.warn({ running, withinMs }, 'MCP session closed with tool calls still running');
            resolve();
          }, withinMs);
          settled.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
  // The session's chains get their closing seal when the MCP session ends (DELETE, idle close, shutdown).
  server.server.onclose = () => {
    allSettled(deps.closeWaitMs ?? 10_000)
      .then(() => scope.close())
      .catch((error) => deps.logger.error({ err: error }, 'audit chains not sealed closed'));
  };
  const tools = new Map<string, IntakeTool>();

  // Identity proof (verify_caller) holds for the call (call id and number) in every MCP session of this process, and
  // so do its failed attempts: a new MCP session for the same call neither proves again nor gets fresh attempts.
  const trust = deps.callerTrust ?? DEFAULT_CALLER_TRUST;
  const isProven = (session: McpSession) => deps.proofs.isProven(CallerProofs.keyOf(session));
  /**
   * Whether the policy lets this caller use `tool` (its attestation, or a proven identity). Without a valid session
   * binding the caller is unknown: attestation none, never proven.
   */
  const trusted = (tool: string, session: McpSession | undefined) => {
    const required = trust.tools[tool];
    if (required === undefined) return true;
    if (!session) return attestationMeets('none', required);
    return attestationMeets(session.attestation, required) || isProven(session);
  };

  /** Registers a tool for tools/list; tools/call reaches it only through handleToolCall below. */
  function define<S extends z.ZodRawShape>(
    name: McpToolName,
    config: { title: string; description: string; inputSchema: S; outputSchema: z.ZodRawShape },
    needsSession: boolean,
    run: (args: z.output<z.ZodObject<S>>, session: McpSession | undefined) => Promise<CallToolResult>,
  ): void {
    const input = z.object(config.inputSchema);
    tools.set(name, { input, shape: config.inputSchema, needsSession, run: run as IntakeTool['run'] });
    const viaSdk = (args: unknown, extra: Extra) => handleToolCall({ params: { name, arguments: args } }, extra);
    server.registerTool(name, config, viaSdk as never);
  }

  /** Runs a validated call: ToolFailure → a tool error the model can speak about, never a crash. */
  async function execute(tool: IntakeTool, name: string, args: unknown, session: McpSession | undefined) {
    try {
      const result = await tool.run(args, session);
      return { result, outcome: (result.isError ? 'tool_error' : 'ok') as ToolCallOutcome };
    } catch (error) {
      const known = error instanceof ToolFailure || error instanceof UnknownIntakeTypeError;
      const message = known ? error.message : 'The system could not complete this right now. Please try again shortly.';
      if (!known) deps.logger.error({ err: error, tool: name }, 'tool failed');
      const details = error instanceof ToolFailure ? error.details : {};
      return { result: failure(message, details), outcome: (known ? 'tool_error' : 'failed') as ToolCallOutcome };
    }
  }

  /**
   * Every tools/call, before the SDK looks at it: the call is recorded with its arguments as received (the tool name
   * even if unknown, arguments the schema would strip named), then refused or run, then its outcome recorded. The
   * call record is sealed and stored before the tool acts; a call that cannot be recorded does not run.
   */
  async function handleToolCall(request: { params?: unknown }, extra: Extra): Promise<CallToolResult> {
    running += 1;
    try {
      return await auditedToolCall(request, extra);
    } finally {
      running -= 1;
      if (running === 0) {
        const waiting = settled;
        settled = [];
        for (const resolve of waiting) resolve();
      }
    }
  }

  async function auditedToolCall(request: { params?: unknown }, extra: Extra): Promise<CallToolResult> {
    const binding = bindingOf(extra, deps.sessionSecret);
    const session = binding.ok ? binding.session : undefined;
    const callId = session?.callId ?? UNBOUND_CALL;
    const params = request.params;
    const name = isPlainObject(params) && typeof params.name === 'string' ? params.name : undefined;
    const rawArguments = isPlainObject(params) ? params.arguments : undefined;
    const subject = name ?? '(no tool name)';
    const who = { callerNumber: session?.callerNumber ?? null, binding: binding.ok ? 'bound' : binding.reason };

    const malformed = !isPlainObject(params)
      ? 'params must be an object'
      : name === undefined || name.length === 0
        ? 'params.name must be a tool name'
        : rawArguments !== undefined && !isPlainObject(rawArguments)
          ? `params.arguments must be an object, not ${rawArguments === null ? 'null' : typeof rawArguments}`
          : undefined;
    if (malformed) {
      scope.record(callId, 'tool_call', subject, { tool: name ?? null, arguments: rawArguments ?? null, ...who });
      scope.record(callId, 'tool_result', subject, {
        outcome: 'rejected',
        isError: true,
        code: -32602,
        error: malformed,
      });
      await scope.flush(callId).catch((error) => deps.logger.error({ err: error }, 'audit segment not stored'));
      throw new McpError(ErrorCode.InvalidParams, `Invalid tools/call: ${malformed}`);
    }
    const toolName = name!;
    const args = (rawArguments ?? {}) as Record<string, unknown>;
    const tool = tools.get(toolName);
    const stripped = tool ? Object.keys(args).filter((key) => !Object.hasOwn(tool.shape, key)) : [];
    scope.record(callId, 'tool_call', toolName, {
      arguments: args,
      ...(stripped.length > 0 ? { strippedArguments: stripped } : {}),
      ...who,
    });

    let outcome: ToolCallOutcome = 'rejected';
    let result: CallToolResult;
    const parsed = tool?.input.safeParse(args);
    if (!tool) result = failure(`Tool ${toolName} not found`, {});
    else if (!parsed!.success) {
      result = failure(`Invalid arguments for ${toolName}: ${describeIssues(parsed!.error.issues)}`, {});
    } else if (tool.needsSession && !session) {
      const reason = binding.ok ? 'missing' : binding.reason;
      result = failure(
        `This tool needs the call's session binding (${MCP_SESSION_HEADER}: ${reason}); it cannot act for an unknown caller.`,
        {},
      );
    } else if (!trusted(toolName, session)) {
      const level = session ? session.attestation : `none: no valid session binding, ${who.binding}`;
      result = failure(
        `The caller's number is not verified enough for ${toolName} (attestation ${level}). ` +
          'Ask for their case number and the full name on the case, and call verify_caller first.',
        {},
      );
    } else {
      try {
        await scope.flush(callId);
      } catch (error) {
        deps.logger.error({ err: error, tool: toolName }, 'audit segment not stored: the tool does not run');
        // Both records stay pending and go out with the next segment that can be stored.
        const message =
          'The system could not record this request, so it was not carried out. Please try again shortly.';
        scope.record(callId, 'tool_result', toolName, {
          outcome: 'failed',
          isError: true,
          result: null,
          error: message,
        });
        return { ...failure(message, {}), _meta: { [TOOL_OUTCOME_META_KEY]: 'failed' } };
      }
      ({ result, outcome } = await execute(tool, toolName, parsed!.data, session));
    }
    scope.record(callId, 'tool_result', toolName, {
      outcome,
      isError: result.isError === true,
      result: result.structuredContent ?? null,
      ...(result.isError
        ? { error: result.content.map((block) => (block.type === 'text' ? block.text : '')).join('\n') }
        : {}),
    });
    await scope
      .flush(callId)
      .catch((error) => deps.logger.error({ err: error, tool: toolName }, 'audit segment not stored'));
    return { ...result, _meta: { ...result._meta, [TOOL_OUTCOME_META_KEY]: outcome } };
  }

  define(
    'lookup_caller',
    {
      title: 'Look up the caller',
      description:
        "Finds the caller on this call by their phone number: whether we know them, their name, and their open cases. Use it at the start of the call. It only works for this call's caller.",
      inputSchema: {
        phoneNumber: e164Schema.optional().describe("Leave empty to use the caller's own number (the usual case)."),
      },
      outputSchema: {
        phoneNumber: z.string(),
        known: z.boolean(),
        name: z.string().optional(),
        openCases: z.array(
          z.object({ caseId: z.string(), intakeType: z.string(), status: z.string(), updatedAt: z.string() }),
        ),
        /** False when the caller's attestation is below callerTrust.revealCasesAt and no identity proof was given. */
        verified: z.boolean(),
      },
    },
    true,
    async ({ phoneNumber }, session) => {
      const bound = session!.callerNumber;
      if (phoneNumber && phoneNumber !== bound) {
        throw new ToolFailure("For privacy I can only look up the number this call comes from, not another person's.");
      }
      if (bound === 'anonymous') {
        return ok(
          { phoneNumber: bound, known: false, openCases: [], verified: false },
          'The caller withheld their number, so there is no record to look up.',
        );
      }
      // This call's own case is not a record of who the caller is: anyone can file one from a spoofed number.
      const cases = (await deps.cases.listCasesByPhone(bound)).filter((stored) => stored.callId !== session!.callId);
      if (!attestationMeets(session!.attestation, trust.revealCasesAt) && !isProven(session!)) {
        // Only whether a record exists: the number may be spoofed. Details after verify_caller.
        const known = cases.length > 0;
        const summary = known
          ? 'There is a record for this number. Before discussing it, ask for the case number and the full name on ' +
            'the case and call verify_caller.'
          : 'No record for this number: a new caller.';
        return ok({ phoneNumber: bound, known, openCases: [], verified: false }, summary);
      }
      const openCases = cases
        .filter((stored) => stored.status !== 'closed')
        .map(({ caseId, intakeType: type, status, updatedAt }) => ({ caseId, intakeType: type, status, updatedAt }));
      // The name the caller is greeted with comes only from cases whose number was trusted when they were saved, so
      // a case planted from a spoofed number cannot change it.
      const name = cases.find((stored) => caseVouchesForCaller(stored) && stored.fields.full_name)?.fields.full_name;
      const known = cases.length > 0;
      const summary = known
        ? `Known caller${name ? ` ${name}` : ''} with ${openCases.length} open case(s)${openCases.length ? `: ${openCases.map((c) => `${c.caseId} (${c.intakeType}, ${c.status})`).join(', ')}` : ''}.`
        : 'No record for this number: a new caller.';
      return ok({ phoneNumber: bound, known, ...(name ? { name } : {}), openCases, verified: true }, summary);
    },
  );

  define(
    'verify_caller',
    {
      title: "Verify the caller's identity",
      description:
        "Checks the caller's identity when their number alone is not trusted enough: the case number of one of their " +
        'cases and the full name on it, as the caller says them. Only for the number this call comes from.',
      inputSchema: {
        caseId: z.string().min(1).max(64).describe('The case number the caller gives, e.g. C-1A2B3C4D5E6F'),
        fullName: z.string().min(1).max(200).describe('The full name on that case, as the caller says it'),
      },
      outputSchema: { verified: z.boolean(), attemptsLeft: z.number().int() },
    },
    true,
    async ({ caseId, fullName }, session) => {
      const bound = session!.callerNumber;
      const key = CallerProofs.keyOf(session!);
      if (bound === 'anonymous') {
        throw new ToolFailure('The caller withheld their number, so there is nothing to verify against.');
      }
      // The attempt is counted before the cases are read: concurrent attempts cannot all pass the limit while the
      // first is still being checked. A proof that succeeds, or cannot be checked, gives it back.
      if (!deps.proofs.reserveAttempt(key, trust.maxProofAttempts)) {
        throw new ToolFailure('Too many attempts to verify this caller on this call; offer a callback or a transfer.');
      }
      const release = () => deps.proofs.releaseAttempt(key);
      const normalize = (text: string) => text.normalize('NFKC').trim().replace(/\s+/g, ' ').toLowerCase();
      let cases: IntakeCase[];
      try {
        cases = await deps.cases.listCasesByPhone(bound);
      } catch (error) {
        release();
        throw error;
      }
      // Proof is a case of an earlier call that was itself made by a trusted caller: never this call's own case, never
      // a draft, never a case filed from an unattested, unproven number (a spoofer's own submission).
      const match = cases.some(
        (stored) =>
          stored.callId !== session!.callId &&
          stored.status !== 'draft' &&
          caseVouchesForCaller(stored) &&
          stored.caseId.toUpperCase() === caseId.trim().toUpperCase() &&
          typeof stored.fields.full_name === 'string' &&
          normalize(stored.fields.full_name) === normalize(fullName),
      );
      if (match) {
        deps.proofs.markProven(key);
        release();
        return ok(
          { verified: true, attemptsLeft: trust.maxProofAttempts - deps.proofs.attempts(key) },
          'The caller is verified.',
        );
      }
      const left = Math.max(0, trust.maxProofAttempts - deps.proofs.attempts(key));
      // Which of the two did not match is not said: that would help someone guessing.
      return ok({ verified: false, attemptsLeft: left }, `That does not match our records (${left} attempt(s) left).`);
    },
  );

  define(
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
    false,
    async ({ intakeType: type }) => {
      const chosen = type ?? deps.forms.defaultIntakeType;
      const form = deps.forms.get(chosen);
      if (!form) throw new UnknownIntakeTypeError(chosen, deps.forms.intakeTypes);
      const required = form.fields.filter((field) => field.required).map((field) => field.name);
      return ok(
        { ...form, availableTypes: deps.forms.intakeTypes },
        `${form.title}: collect ${form.fields.map((field) => field.name).join(', ')} (required: ${required.join(', ')}).`,
      );
    },
  );

  function draftFor(
    session: McpSession,
    type: string,
    fields: Record<string, string>,
    existing?: IntakeCase,
  ): IntakeCase {
    const at = now().toISOString();
    const callerTrust: CaseCallerTrust = attestationMeets(session.attestation, trust.revealCasesAt)
      ? 'attested'
      : isProven(session)
        ? 'verified'
        : 'unverified';
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
      callerTrust,
    };
  }

  define(
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
    true,
    async ({ intakeType: type, fields }, session) => {
      const errors = deps.forms.validatePartial(type, fields);
      const rejected = new Set(errors.map((error) => error.field));
      const accepted = Object.fromEntries(Object.entries(fields).filter(([name]) => !rejected.has(name)));
      const caseId = caseIdForCall(session!.callId);
      const existing = await deps.cases.getCase(caseId);
      if (existing && existing.status !== 'draft')
        throw new ToolFailure(`This call's intake was already submitted as case ${caseId}.`, { caseId });
      const merged = { ...(existing?.intakeType === type ? existing.fields : {}), ...accepted };
      try {
        await deps.cases.saveDraft(draftFor(session!, type, merged, existing));
      } catch (error) {
        if (error instanceof CaseAlreadySubmittedError)
          throw new ToolFailure(`This call's intake was already submitted as case ${caseId}.`, { caseId });
        throw error;
      }
      const missingRequired = deps.forms.missingRequired(type, merged);
      const text = [
        Object.keys(accepted).length ? `Saved ${Object.keys(accepted).join(', ')}.` : 'Nothing saved.',
        errors.length ? `Please ask again: ${describeErrors(errors)}.` : '',
        missingRequired.length
          ? `Still needed: ${missingRequired.join(', ')}.`
          : 'All required fields are collected: confirm them with the caller, then submit.',
      ]
        .filter(Boolean)
        .join(' ');
      return ok({ caseId, savedFields: Object.keys(accepted), fieldErrors: errors, missingRequired }, text);
    },
  );

  define(
    'submit_intake',
    {
      title: 'Submit the intake',
      description:
        "Submits this call's intake once the caller has confirmed the details. Fields given here are added to those already saved. Submitting twice returns the same case; it never creates a duplicate.",
      inputSchema: { intakeType, fields: fieldValues.optional() },
      outputSchema: {
        caseId: z.string(),
        status: z.string(),
        alreadySubmitted: z.boolean(),
        /** Where the case stands on its way to the backend, from the case store (also for a repeated submit). */
        forwarded: z.enum(['delivered', 'queued', 'failed', 'not_configured']),
      },
    },
    true,
    async ({ intakeType: type, fields = {} }, session) => {
      const caseId = caseIdForCall(session!.callId);
      const found = await deps.cases.getCaseForwarding(caseId);
      const existing = found?.case;
      if (found && existing && existing.status !== 'draft') {
        return ok(
          {
            caseId,
            status: existing.status,
            alreadySubmitted: true,
            forwarded: forwardStateOf(found.forwarding.state),
          },
          `Already submitted as case ${caseId}.`,
        );
      }
      const merged = { ...(existing?.intakeType === type ? existing.fields : {}), ...fields };
      const errors = deps.forms.validateComplete(type, merged);
      if (errors.length) {
        throw new ToolFailure(`The intake cannot be submitted yet: ${describeErrors(errors)}.`, {
          fieldErrors: errors,
        });
      }
      const submittedAt = now();
      const at = submittedAt.toISOString();
      // With a backend, the submit itself records the case as pending delivery (the outbox): whatever happens to this
      // task from here on, a redrive of any task finds the case and forwards it.
      const forwardDueAt = deps.outbox?.firstDueAt(submittedAt);
      const { case: stored, created } = await deps.cases.submit(
        { ...draftFor(session!, type, merged, existing), status: 'submitted', submittedAt: at },
        { forwardDueAt },
      );
      let forwarded: ForwardState = 'not_configured';
      let status = stored.status;
      if (created && deps.outbox && forwardDueAt) {
        forwarded = await deps.outbox.forwardSubmitted(stored, forwardDueAt);
        if (forwarded === 'delivered') status = 'forwarded';
      } else if (!created) {
        // Another session of this call submitted first: answer from the store, as a repeated submit does.
        const current = await deps.cases.getCaseForwarding(caseId);
        forwarded = current ? forwardStateOf(current.forwarding.state) : 'not_configured';
        status = current?.case.status ?? status;
      }
      return ok(
        { caseId: stored.caseId, status, alreadySubmitted: !created, forwarded },
        created
          ? `Submitted as case ${stored.caseId}. Read the case number to the caller.`
          : `Already submitted as case ${stored.caseId}.`,
      );
    },
  );

  define(
    'search_knowledge',
    {
      title: 'Search the knowledge base',
      description:
        "Finds passages from the organisation's documents that answer a caller's question. Answer only from what it returns and mention that you checked; if nothing relevant comes back, say you will have someone follow up.",
      inputSchema: {
        query: z.string().min(2, 'at least 2 characters').max(300, 'at most 300 characters'),
        limit: z.number().int().min(1).max(5).default(3),
      },
      outputSchema: {
        passages: z.array(z.object({ sourceId: z.string(), title: z.string(), text: z.string(), score: z.number() })),
      },
    },
    false,
    async ({ query, limit }) => {
      const passages = await deps.knowledge.search(query, limit);
      const text = passages.length
        ? passages.map((passage) => `[${passage.sourceId}] ${passage.title}: ${passage.text}`).join('\n')
        : 'No passage matches that question.';
      return ok({ passages }, text);
    },
  );

  define(
    'schedule_callback',
    {
      title: 'Schedule a callback',
      description:
        "Books a call back to this caller's number within a time window (ISO 8601 with time zone offset, e.g. 2026-11-25T14:00:00-05:00). The window must start in the future, last at least 15 minutes and start within 14 days.",
      inputSchema: {
        windowStart: z.iso.datetime({
          offset: true,
          message: 'must be an ISO 8601 date-time with offset, e.g. 2026-11-25T14:00:00-05:00',
        }),
        windowEnd: z.iso.datetime({
          offset: true,
          message: 'must be an ISO 8601 date-time with offset, e.g. 2026-11-25T16:00:00-05:00',
        }),
        reason: storedText(z.string().max(300, 'at most 300 characters')).optional(),
      },
      outputSchema: {
        callbackId: z.string(),
        callerNumber: z.string(),
        windowStart: z.string(),
        windowEnd: z.string(),
      },
    },
    true,
    async ({ windowStart, windowEnd, reason }, session) => {
      if (session!.callerNumber === 'anonymous')
        throw new ToolFailure(
          'The caller withheld their number: ask for a callback number and use an intake form instead.',
        );
      const start = Date.parse(windowStart);
      const end = Date.parse(windowEnd);
      const current = now().getTime();
      const errors: FieldError[] = [];
      if (start <= current) errors.push({ field: 'windowStart', message: 'must be in the future' });
      if (start > current + 14 * 24 * 3_600_000)
        errors.push({ field: 'windowStart', message: 'must be within the next 14 days' });
      if (end - start < 15 * 60_000)
        errors.push({ field: 'windowEnd', message: 'must be at least 15 minutes after windowStart' });
      if (errors.length)
        throw new ToolFailure(`That callback window does not work: ${describeErrors(errors)}.`, {
          fieldErrors: errors,
        });
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
        {
          callbackId: request.callbackId,
          callerNumber: request.callerNumber,
          windowStart: request.windowStart,
          windowEnd: request.windowEnd,
        },
        `Callback ${request.callbackId} booked to ${request.callerNumber} between ${windowStart} and ${windowEnd}.`,
      );
    },
  );

  const queues = Object.keys(deps.transferTargets) as [string, ...string[]];
  // No queue configured = transfer to a person is turned off: the model is not offered a tool it cannot use.
  if (queues.length > 0)
    define(
      'request_human_transfer',
      {
        title: 'Transfer to a person',
        description: `Hands the call to a person when the caller asks for one, is in distress, or the request is outside what you can do. Say why in a few words. Queues: ${queues.join(', ')}.`,
        inputSchema: {
          reason: storedText(z.string().min(3, 'say why in a few words').max(300, 'at most 300 characters')),
          queue: z.enum(queues).optional(),
        },
        outputSchema: { queue: z.string(), target: z.string(), reason: z.string() },
      },
      true,
      async ({ reason, queue }, session) => {
        const chosen = queue ?? deps.defaultTransferQueue;
        const target = deps.transferTargets[chosen];
        const at = now().toISOString();
        await deps.cases.saveTransfer({
          callId: session!.callId,
          callerNumber: session!.callerNumber,
          queue: chosen,
          target,
          reason,
          at,
        });
        scope.record(session!.callId, 'transfer', chosen, { target, reason });
        return ok(
          { queue: chosen, target, reason },
          `Transfer to ${chosen} (${target}). Tell the caller you are connecting them now.`,
        );
      },
    );

  // The SDK's own tools/call handling validates first and records nothing of a refused call (and answers a malformed
  // request with a zod dump): every call goes through handleToolCall instead. Server.setRequestHandler would wrap it
  // in that same validation, so the handler is set with the base Protocol method.
  server.server.removeRequestHandler('tools/call');
  Protocol.prototype.setRequestHandler.call(
    server.server,
    anyToolCallRequest as unknown as typeof CallToolRequestSchema,
    (request: { params?: unknown }, extra: unknown) => handleToolCall(request, extra as Extra),
  );
  return server;
}

/** The most of a refused request's body a record keeps. */
const MAX_RECORDED_BODY = 16_384;
/** The most tool names of a refused batch a record lists (the count is always kept). */
const MAX_RECORDED_NAMES = 50;

/**
 * Audits a request body refused before it reached an MCP session (a `__proto__` key, nesting too deep, a batch too
 * large) that held tools/call messages: the body as received, as text (as an object a `__proto__` key would not
 * survive) and bounded, and the refusal, in one chain of its own however many calls the body held. A batch's record
 * also counts its tools/call messages and lists their names (bounded).
 */
export async function auditRefusedToolCall(
  deps: Pick<ToolDeps, 'audit' | 'sessionSecret'>,
  refused: {
    messages: Record<string, unknown>[];
    rawBody: string;
    reason: string;
    code: number;
    headers: Headers;
  },
): Promise<void> {
  const { messages, rawBody, reason, code, headers } = refused;
  const calls = messages.filter((message) => message.method === 'tools/call');
  if (calls.length === 0) return;
  const names = calls.map((message) =>
    isPlainObject(message.params) && typeof message.params.name === 'string'
      ? message.params.name.slice(0, 64)
      : '(no tool name)',
  );
  const binding = bindingOf({ requestInfo: { headers } }, deps.sessionSecret);
  const subject = calls.length === 1 ? names[0] : `(batch of ${calls.length} tools/call)`;
  const callerNumber = binding.ok ? binding.session.callerNumber : null;
  const received = {
    rawRequest: rawBody.slice(0, MAX_RECORDED_BODY),
    ...(rawBody.length > MAX_RECORDED_BODY ? { rawRequestLength: rawBody.length } : {}),
    ...(calls.length > 1
      ? { toolCalls: calls.length, toolNames: names.slice(0, MAX_RECORDED_NAMES), messages: messages.length }
      : {}),
    callerNumber,
    binding: binding.ok ? 'bound' : binding.reason,
  };
  await deps.audit.recordClosed(binding.ok ? binding.session.callId : UNBOUND_CALL, [
    { kind: 'tool_call', subject, payload: received },
    {
      kind: 'tool_result',
      subject,
      payload: { outcome: 'rejected', isError: true, code, error: reason },
    },
  ]);
}
