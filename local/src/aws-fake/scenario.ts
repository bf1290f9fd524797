import { describeIssues } from '@voice-intake/contracts';
import { z } from 'zod';

/** The modeled exceptions each service's response stream can carry (the union members of the SDK's model). */
export const STREAM_EXCEPTIONS = {
  transcribe: {
    BadRequestException: 400,
    LimitExceededException: 429,
    InternalFailureException: 500,
    ConflictException: 409,
    ServiceUnavailableException: 503,
  },
  bedrock: {
    internalServerException: 500,
    modelStreamErrorException: 424,
    validationException: 400,
    throttlingException: 429,
    serviceUnavailableException: 503,
  },
  polly: {
    ValidationException: 400,
    ServiceQuotaExceededException: 402,
    ServiceFailureException: 500,
    ThrottlingException: 400,
  },
} as const;

export type FakeService = keyof typeof STREAM_EXCEPTIONS;

/** Error-response names (HTTP status + `x-amzn-errortype`) are PascalCase everywhere. */
export function errorTypeName(name: string): string {
  return name[0].toUpperCase() + name.slice(1);
}

const faultSchema = z
  .object({
    service: z.enum(['transcribe', 'bedrock', 'polly']),
    /** Which operation: `converse` (Bedrock non-streaming), `speech` (Polly SynthesizeSpeech); default all. */
    operation: z.enum(['stream-transcription', 'converse-stream', 'converse', 'speech', 'synthesis-stream']).optional(),
    /** Modeled exception name as the service's stream union spells it (e.g. `throttlingException` for Bedrock). */
    exception: z.string().min(1).optional(),
    message: z.string().max(500).default('injected by the AWS fake'),
    /**
     * `response`: an HTTP error instead of a stream; `stream`: an exception event after the stream started;
     * `transport`: the connection drops with no answer at all (a network failure, no exception named).
     */
    at: z.enum(['response', 'stream', 'transport']).default('stream'),
    /** How many requests fail this way before the service behaves again. */
    times: z.number().int().min(1).max(1000).default(1),
  })
  .superRefine((fault, ctx) => {
    const known = Object.keys(STREAM_EXCEPTIONS[fault.service]);
    if (fault.at === 'transport') {
      if (fault.exception)
        ctx.addIssue({ code: 'custom', path: ['exception'], message: 'a transport fault names none' });
    } else if (!fault.exception || !known.includes(fault.exception)) {
      ctx.addIssue({
        code: 'custom',
        path: ['exception'],
        message:
          `${fault.service} has no modeled stream exception "${fault.exception ?? ''}" ` +
          `(known: ${known.join(', ')})`,
      });
    }
  });

const replyRuleSchema = z
  .object({
    /** Matches the caller's latest words (case-insensitive regular expression). */
    whenCallerSays: z.string().min(1).max(500).optional(),
    /** Matches when the latest message carries the result of this tool. */
    whenToolResult: z.string().min(1).max(64).optional(),
    /** Matches the first request of a conversation (no caller words yet): the greeting. */
    whenGreeting: z.boolean().optional(),
    say: z.string().max(3000).optional(),
    callTool: z
      .object({ name: z.string().min(1).max(64), input: z.record(z.string(), z.unknown()).default({}) })
      .optional(),
  })
  .superRefine((rule, ctx) => {
    if (!rule.whenCallerSays && !rule.whenToolResult && !rule.whenGreeting) {
      ctx.addIssue({ code: 'custom', path: ['whenCallerSays'], message: 'a reply rule needs a condition' });
    }
    if (rule.say === undefined && !rule.callTool) {
      ctx.addIssue({ code: 'custom', path: ['say'], message: 'a reply rule needs say and/or callTool' });
    }
    if (rule.whenCallerSays) {
      try {
        new RegExp(rule.whenCallerSays, 'i');
      } catch (error) {
        ctx.addIssue({ code: 'custom', path: ['whenCallerSays'], message: (error as Error).message });
      }
    }
  });

const callerLineSchema = z.union([
  z.string().min(1).max(2000),
  z.object({ final: z.string().min(1).max(2000), stable: z.string().min(1).max(2000) }).strict(),
]);

export const scenarioSchema = z
  .object({
    /**
     * What the caller says, utterance by utterance, as Transcribe hears speech in the audio. A line given as
     * `{ final, stable }` is one Transcribe revises: its stable partial (see `transcribeStableAfterMs`) says `stable`,
     * its final says `final`.
     */
    callerSays: z.array(callerLineSchema).max(500).default([]),
    /** Said for utterances beyond the script. */
    fallbackPhrase: z.string().min(1).max(2000).default('Okay.'),
    /** Bedrock replies tried in order before the built-in intake conversation. */
    replies: z.array(replyRuleSchema).max(200).default([]),
    /** false: only `replies` (and a plain fallback); true: the built-in intake conversation after them. */
    intakeScript: z.boolean().default(true),
    /** Fields the intake conversation saves; default: read from the caller's first words. */
    intake: z
      .object({ intakeType: z.string().min(1).max(64), fields: z.record(z.string(), z.string().max(2000)) })
      .optional(),
    /** What a forced `record_call_insights` call returns (enrichment); default: built from the transcript. */
    insights: z.record(z.string(), z.unknown()).optional(),
    /** Strings that select this scenario when they appear in a Bedrock or Polly request (e.g. the caller's number). */
    match: z.array(z.string().min(3).max(200)).max(20).default([]),
    faults: z.array(faultSchema).max(50).default([]),
  })
  .strict();

export type Scenario = z.infer<typeof scenarioSchema>;
export type ScenarioInput = z.input<typeof scenarioSchema>;
export type Fault = z.infer<typeof faultSchema>;
export type ReplyRule = z.infer<typeof replyRuleSchema>;
export type CallerLine = z.infer<typeof callerLineSchema>;

/** The words a caller line's final says. */
export const finalWords = (line: CallerLine): string => (typeof line === 'string' ? line : line.final);

export const latencySchema = z
  .object({
    /** Transcribe: end of the utterance's trailing silence → its final. */
    transcribeFinalDelayMs: z.number().min(0).max(60_000),
    /** Silence that ends an utterance: above espeak-ng's pause between sentences (~350 ms), near the agent's VAD. */
    transcribeEndSilenceMs: z.number().min(50).max(5_000),
    /**
     * Transcribe (with partial-results stabilisation asked for): end of speech → a partial whose every word is
     * Stable, once per utterance, before its final (a final due earlier waits for it); null: never.
     */
    transcribeStableAfterMs: z.number().min(0).max(60_000).nullable(),
    /** Bedrock: request → first token. */
    bedrockTtftMs: z.number().min(0).max(60_000),
    /** Bedrock: between tokens (a token is a word here). */
    bedrockTokenIntervalMs: z.number().min(0).max(5_000),
    /** Polly: request (or flushed text) → first audio byte. */
    pollyTtfbMs: z.number().min(0).max(60_000),
  })
  .strict();

export type Latency = z.infer<typeof latencySchema>;

export const DEFAULT_LATENCY: Latency = {
  transcribeFinalDelayMs: 0,
  transcribeEndSilenceMs: 500,
  transcribeStableAfterMs: null,
  bedrockTtftMs: 0,
  bedrockTokenIntervalMs: 0,
  pollyTtfbMs: 0,
};

export class ScenarioError extends Error {
  override readonly name = 'ScenarioError';
}

export function parseScenario(input: unknown): Scenario {
  const result = scenarioSchema.safeParse(input);
  if (!result.success) throw new ScenarioError(`invalid scenario: ${describeIssues(result.error.issues)}`);
  return result.data;
}

export function parseLatency(input: unknown, base: Latency): Latency {
  const result = latencySchema.partial().strict().safeParse(input);
  if (!result.success) throw new ScenarioError(`invalid latency: ${describeIssues(result.error.issues)}`);
  return { ...base, ...result.data };
}

/** The caller of the built-in intake conversation: introduces themselves and their request, then says goodbye. */
export const DEFAULT_SCENARIO: Scenario = parseScenario({
  callerSays: [
    'Hi, this is Jane Doe. I am calling about a billing question on my last invoice.',
    'No, that is all. Goodbye.',
  ],
});
