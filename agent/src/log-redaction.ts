/**
 * PII in the LiveKit Agents framework's own logs. The framework marks every log field that may hold caller or model
 * text (tool-call arguments, transcripts, user input, room and participant names) with a `lk.pii.` key — the mark its
 * OpenTelemetry export drops when redaction is on — but its pino logger writes them to stdout as they are. With
 * PII_REDACTION the worker replaces the value of every such field with `PII_FIELD_WITHHELD`, in the main process and in
 * every job process.
 *
 * How: the framework keeps its one logger in a process-wide slot (`Symbol.for('@livekit/agents:logger')`: shared by
 * every copy of the package, set by `initializeLogger` — the CLI's in the main process, the job process's own when
 * its supervisor initialises it — and again per job with the job's bindings) and every module reads it through `log()`
 * when it logs. `withholdFrameworkPii()` turns that slot into an accessor: whatever logger is put there is replaced by
 * a child whose log formatter withholds the fields, and whose children withhold them in their bindings too.
 *
 * Errors are not marked: the framework logs them under `error` or `err`, and their messages can quote what the caller
 * or the model said (a tool's failure naming a case for a phone number, a provider echoing input). Their text is kept
 * for whoever debugs, with the PII masked as the agent's own records are (`redactPii`).
 */

import { redactPii } from '@voice-intake/contracts';
import pino, { type DestinationStream, type Logger } from 'pino';

const LOGGER_SLOT = Symbol.for('@livekit/agents:logger');

/** The framework's rule for a PII attribute name (`telemetry/redaction.js`): a `pii` segment in a dotted key. */
const PII_FIELD = /(^|\.)pii(\.|$)/i;

/** What a withheld field's value becomes: the field stays, so a reader sees something was there. */
export const PII_FIELD_WITHHELD = '[withheld: PII_REDACTION]';

/** The keys the framework logs errors under. */
const ERROR_FIELDS = new Set(['err', 'error']);

/**
 * An error as pino's serializer would write it (type, message, stack, its own fields), every string masked. Nested
 * values are left out rather than walked: a cause or a response body is where raw input would hide.
 */
export function maskedError(error: unknown, redact: (text: string) => string = redactPii): unknown {
  if (typeof error === 'string') return redact(error);
  if (error === null || typeof error !== 'object') return error;
  // Same prototype, so pino's error serializer (on `err`) still names the error's class.
  const fields: Record<string, unknown> = Object.create(Object.getPrototypeOf(error));
  if (error instanceof Error) fields.type = error.name;
  for (const [key, value] of Object.entries(error)) {
    if (typeof value === 'string') fields[key] = redact(value);
    else if (typeof value === 'number' || typeof value === 'boolean') fields[key] = value;
  }
  for (const key of ['message', 'stack'] as const) {
    const value = (error as Record<string, unknown>)[key];
    if (typeof value === 'string') fields[key] = redact(value);
  }
  return fields;
}

/**
 * A log object (or a child's bindings) with every PII-marked field's value withheld and the PII in its errors
 * (`err`, `error`) masked. The input is left alone.
 */
export function withoutPiiFields<T extends Record<string, unknown>>(fields: T): T {
  if (fields === null || typeof fields !== 'object') return fields;
  let masked: Record<string, unknown> | undefined;
  for (const key of Object.keys(fields)) {
    if (PII_FIELD.test(key)) {
      masked ??= { ...fields };
      masked[key] = PII_FIELD_WITHHELD;
    } else if (ERROR_FIELDS.has(key) && fields[key] !== undefined) {
      masked ??= { ...fields };
      masked[key] = maskedError(fields[key]);
    }
  }
  return (masked ?? fields) as T;
}

/** What the framework's logger is to us (its own pino): something to make children of. */
interface ChildMaker {
  child(bindings: Record<string, unknown>, options?: Record<string, unknown>): ChildMaker;
}

const withholding = new WeakSet<object>();

function withholdingChildOf(logger: unknown): unknown {
  if (logger === null || typeof logger !== 'object' || withholding.has(logger)) return logger;
  const parent = logger as ChildMaker;
  if (typeof parent.child !== 'function') return logger;
  const masked = parent.child({}, { formatters: { log: withoutPiiFields } });
  // pino makes a child by Object.create(parent): this own `child` is every descendant's, so their bindings are
  // withheld as they are bound; the log formatter is inherited with it.
  const makeChild = masked.child;
  masked.child = function (this: ChildMaker, bindings, options) {
    return makeChild.call(this, withoutPiiFields(bindings ?? {}), options);
  };
  withholding.add(masked);
  return masked;
}

/**
 * From now on in this process, the framework's logger withholds PII-marked fields: the logger already set (if any) and
 * every one set later. Idempotent.
 */
export function withholdFrameworkPii(): void {
  const globals = globalThis as unknown as Record<symbol, unknown>;
  const descriptor = Object.getOwnPropertyDescriptor(globals, LOGGER_SLOT);
  if (descriptor?.get && withholding.has(descriptor.get)) return;
  let current = withholdingChildOf(globals[LOGGER_SLOT]);
  const get = () => current;
  withholding.add(get);
  Object.defineProperty(globals, LOGGER_SLOT, {
    configurable: true,
    enumerable: false,
    get,
    set: (logger: unknown) => {
      current = withholdingChildOf(logger);
    },
  });
}

/** How deep `maskedLogFields` walks a log object's plain objects and arrays; deeper values are left out. */
const MASK_DEPTH = 8;

/**
 * A log object with every string masked (`redactPii`), however it is nested in plain objects and arrays; an error as
 * `maskedError`. Anything else (numbers, booleans, class instances other than errors) is kept as it is. The input is
 * left alone.
 */
export function maskedLogFields<T>(value: T, redact: (text: string) => string = redactPii, depth = 0): T {
  if (typeof value === 'string') return redact(value) as T;
  if (value === null || typeof value !== 'object') return value;
  if (value instanceof Error) return maskedError(value, redact) as T;
  if (depth >= MASK_DEPTH) return '[deeper than the log masking walks]' as T;
  if (Array.isArray(value)) return value.map((item) => maskedLogFields(item, redact, depth + 1)) as T;
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return value;
  const masked: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(value)) masked[key] = maskedLogFields(field, redact, depth + 1);
  return masked as T;
}

/**
 * The agent's own logger (pino, JSON lines to stdout). With `piiRedaction` every string it writes is masked as the
 * records are, in the fields of each line and in the bindings of the logger and of its children: a call's room is
 * named after the caller's number (`<prefix><caller>_<random>`, LiveKit's dispatch rule), so is the caller's
 * participant (`sip_<caller>`), and an error can quote anything. Messages are ours and constant; they are not masked.
 */
export function agentLogger(
  bindings: Record<string, unknown>,
  piiRedaction: boolean,
  destination?: DestinationStream,
): Logger {
  if (!piiRedaction) return pino({ base: bindings }, destination as DestinationStream);
  const logger = pino(
    { base: maskedLogFields(bindings), formatters: { log: (fields) => maskedLogFields(fields) } },
    destination as DestinationStream,
  );
  // A child's bindings do not pass the formatters: mask them as they are bound. pino makes a child by
  // Object.create(parent), so this own `child` is every descendant's.
  const makeChild = logger.child;
  logger.child = function (this: Logger, childBindings, options) {
    return makeChild.call(this, maskedLogFields(childBindings ?? {}), options);
  } as Logger['child'];
  return logger;
}
