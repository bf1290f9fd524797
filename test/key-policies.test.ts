import { beforeAll, describe, expect, it } from 'vitest';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

interface PolicyStatement {
  Effect: string;
  Principal?: { Service?: unknown };
  Condition?: Record<string, Record<string, unknown>>;
}

/** Every key policy statement whose principal is CloudWatch Logs, with the stack it is in. */
function logsStatements(synthesized: SynthesizedApp): { stack: string; statement: PolicyStatement }[] {
  const found: { stack: string; statement: PolicyStatement }[] = [];
  for (const [stack, template] of Object.entries(synthesized.templates)) {
    for (const key of Object.values(template.findResources('AWS::KMS::Key'))) {
      for (const statement of key.Properties.KeyPolicy.Statement as PolicyStatement[]) {
        if (JSON.stringify(statement.Principal?.Service ?? '').includes('logs.')) found.push({ stack, statement });
      }
    }
  }
  return found;
}

describe('KMS key policies', () => {
  let synthesized: SynthesizedApp;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
  });

  it("let CloudWatch Logs use a key only for this account's log groups in this region", () => {
    const statements = logsStatements(synthesized);
    // The network (flow logs), app, edge and enrichment tiers each encrypt their log groups with their own key.
    expect(new Set(statements.map(({ stack }) => stack))).toEqual(new Set(['network', 'app', 'edge', 'enrichment']));
    for (const { stack, statement } of statements) {
      expect(statement.Effect, stack).toBe('Allow');
      const scope = JSON.stringify(statement.Condition?.ArnLike?.['kms:EncryptionContext:aws:logs:arn']);
      expect(scope, stack).toMatch(/arn:.*:logs:.*AWS::Region.*AWS::AccountId.*:log-group:\*/);
    }
  });
});
