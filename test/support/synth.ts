import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { App, type Stack } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { buildVoiceIntake, type VoiceIntakeStacks } from '../../lib/app';
import { applyCompliancePacks } from '../../lib/compliance';
import { CONFIG_CONTEXT_KEY, parseConfig, type VoiceIntakeConfig, type VoiceIntakeConfigInput } from '../../lib/config';

const ROOT = join(__dirname, '..', '..');

/** cdk.json's context: `new App()` in a test does not read cdk.json, so feature flags come from here. */
export function cdkJsonContext(): Record<string, unknown> {
  return JSON.parse(readFileSync(join(ROOT, 'cdk.json'), 'utf8')).context;
}

type Json = Record<string, unknown>;
type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;
/** A test's config: any part of it, laid over cdk.json's (which supplies what the schema requires). */
export type TestConfigInput = DeepPartial<VoiceIntakeConfigInput>;
const isObject = (value: unknown): value is Json =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

function deepMerge(base: Json, overrides: Json): Json {
  const merged: Json = { ...base };
  for (const [key, value] of Object.entries(overrides))
    merged[key] = isObject(value) && isObject(base[key]) ? deepMerge(base[key], value) : value;
  return merged;
}

/**
 * A test's config on top of the repository's own (cdk.json's `voiceIntake`), the way an operator's `-c` keys patch
 * cdk.json: keys the config requires (mcp.transferTargets) come from there unless the test sets them.
 */
export function repoConfigInput(overrides: TestConfigInput = {}): VoiceIntakeConfigInput {
  return deepMerge(cdkJsonContext()[CONFIG_CONTEXT_KEY] as Json, overrides as Json) as VoiceIntakeConfigInput;
}

/**
 * Builds the app without synthesizing it, so a test can add a stand-in stack (a client, an edge) next to the real
 * ones before taking templates.
 */
export function buildVoiceIntakeApp(input: TestConfigInput = {}): { app: App; stacks: VoiceIntakeStacks } {
  const app = new App({ context: cdkJsonContext() });
  return { app, stacks: buildVoiceIntake(app, parseConfig(repoConfigInput(input))) };
}

export interface SynthesizedApp {
  readonly app: App;
  readonly config: VoiceIntakeConfig;
  readonly stacks: VoiceIntakeStacks;
  /** One Template per stack, keyed like `stacks` (network, data, …). */
  readonly templates: Record<keyof VoiceIntakeStacks, Template>;
}

/**
 * Builds and synthesizes the whole app the way `bin/` does, with the three cdk-nag packs applied:
 * an unacknowledged finding throws (ValidationFailed). Synth is slow (seconds): call once per file, in beforeAll.
 */
export function synthVoiceIntake(
  input: TestConfigInput = cdkJsonContext()[CONFIG_CONTEXT_KEY] as VoiceIntakeConfigInput,
  options: { keepAssembly?: boolean; context?: Record<string, unknown> } = {},
): SynthesizedApp {
  const config = parseConfig(repoConfigInput(input));
  // `context`: lookups a deployment with account and region would have cached in cdk.context.json.
  const app = new App({ context: { ...cdkJsonContext(), ...options.context } });
  const stacks = buildVoiceIntake(app, config);
  applyCompliancePacks(app);
  app.synth();
  const templates = Object.fromEntries(
    Object.entries(stacks).map(([key, stack]) => [
      key,
      Template.fromStack(stack as Stack, { skipCyclicalDependenciesCheck: true }),
    ]),
  ) as Record<keyof VoiceIntakeStacks, Template>;
  // The templates are in memory now; the cloud assembly (staged assets: gigabytes over a test run) is not needed,
  // unless the test reads an asset (then it removes `app.outdir` itself).
  if (!options.keepAssembly) rmSync(app.outdir, { recursive: true, force: true });
  return { app, config, stacks, templates };
}
