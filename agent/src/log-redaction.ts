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
 */

const LOGGER_SLOT = Symbol.for('@livekit/agents:logger');

/** The framework's rule for a PII attribute name (`telemetry/redaction.js`): a `pii` segment in a dotted key. */
const PII_FIELD = /(^|\.)pii(\.|$)/i;

/** What a withheld field's value becomes: the field stays, so a reader sees something was there. */
export const PII_FIELD_WITHHELD = '[withheld: PII_REDACTION]';

/** A log object (or a child's bindings) with every PII-marked field's value withheld. */
export function withoutPiiFields<T extends Record<string, unknown>>(fields: T): T {
  if (fields === null || typeof fields !== 'object') return fields;
  let masked: Record<string, unknown> | undefined;
  for (const key of Object.keys(fields)) {
    if (!PII_FIELD.test(key)) continue;
    masked ??= { ...fields };
    masked[key] = PII_FIELD_WITHHELD;
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
