import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthVoiceIntake } from './support/synth';

type Statement = { Action: string | string[]; Resource: unknown; Condition?: Record<string, Record<string, unknown>> };

const PROFILE = 'arn:aws:bedrock:us-east-1:123456789012:application-inference-profile/a1b2c3d4e5f6';

function invokeStatements(template: Template, rolePrefix: string): Statement[] {
  return Object.values(template.findResources('AWS::IAM::Policy'))
    .filter((policy) => JSON.stringify(policy.Properties.Roles).includes(rolePrefix))
    .flatMap((policy) => policy.Properties.PolicyDocument.Statement as Statement[])
    .filter((statement) => [statement.Action].flat().includes('bedrock:InvokeModel'));
}

// Synthesized with the three cdk-nag packs: the wildcards below pass only because each is acknowledged with a reason.
describe('an application inference profile as the model', () => {
  let templates: ReturnType<typeof synthVoiceIntake>['templates'];
  beforeAll(() => {
    templates = synthVoiceIntake({ agent: { bedrockModelId: PROFILE } }).templates;
  });

  for (const [tier, rolePrefix] of [
    ['app', 'AgentTaskRole'],
    ['enrichment', 'EnrichFunction'],
  ] as const) {
    it(`grants the ${tier} role the profile and, only through that profile, the models behind it`, () => {
      const statements = invokeStatements(templates[tier], rolePrefix);
      const onProfile = statements.filter((statement) => statement.Condition === undefined);
      expect(onProfile.map((statement) => statement.Resource)).toEqual([PROFILE]);
      const routed = statements.filter((statement) => statement.Condition !== undefined);
      expect(routed).toHaveLength(1);
      expect(routed[0].Condition).toEqual({ StringEquals: { 'bedrock:InferenceProfileArn': PROFILE } });
      expect([routed[0].Resource].flat().sort()).toEqual([
        'arn:aws:bedrock:*:123456789012:inference-profile/*',
        'arn:aws:bedrock:*::foundation-model/*',
      ]);
    });
  }
});
