import { beforeAll, describe, expect, it } from 'vitest';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Statement = { Effect: string; Action: string | string[]; Resource: unknown };
type Template = SynthesizedApp['templates']['data'];

/** Every identity-policy statement in a template, with the role(s) it is attached to. */
function statements(template: Template): { roles: string; statement: Statement }[] {
  return Object.values(template.findResources('AWS::IAM::Policy')).flatMap((policy) =>
    (policy.Properties.PolicyDocument.Statement as Statement[]).map((statement) => ({
      roles: JSON.stringify(policy.Properties.Roles),
      statement,
    })),
  );
}

const actionsOf = (statement: Statement) => [statement.Action].flat();

describe('audit seal key (KMS HMAC) and who may use it', () => {
  let synthesized: SynthesizedApp;
  let sealKeyId: string;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
    const keys = Object.entries(synthesized.templates.data.findResources('AWS::KMS::Key'));
    [sealKeyId] = keys.find(([id]) => id.startsWith('AuditSealKey'))!;
  });

  /** Statements in any stack whose resource is the seal key (by reference or by cross-stack import). */
  function sealKeyStatements() {
    return Object.values(synthesized.templates)
      .flatMap((template) => statements(template))
      .filter(({ statement }) => JSON.stringify(statement.Resource).includes(sealKeyId));
  }

  it('is an HMAC_256 key for GenerateMac/VerifyMac only, retained', () => {
    const key = synthesized.templates.data.findResources('AWS::KMS::Key')[sealKeyId];
    expect(key.Properties).toMatchObject({ KeySpec: 'HMAC_256', KeyUsage: 'GENERATE_VERIFY_MAC' });
    expect(key.DeletionPolicy).toBe('Retain');
  });

  it('lets the two writers (MCP server and agent tasks) GenerateMac and nothing else with it', () => {
    const writers = sealKeyStatements().filter(({ roles }) => /McpServerTaskRole|AgentTaskRole/.test(roles));
    expect(writers.map(({ roles }) => (/McpServer/.test(roles) ? 'mcp' : 'agent')).sort()).toEqual(['agent', 'mcp']);
    for (const { statement } of writers) expect(actionsOf(statement)).toEqual(['kms:GenerateMac']);
  });

  it('lets the verifier role VerifyMac and read audit records, but not write them or make seals', () => {
    const verifier = statements(synthesized.templates.data).filter(({ roles }) => roles.includes('AuditVerifierRole'));
    const actions = verifier.flatMap(({ statement }) => actionsOf(statement)).sort();
    expect(actions).toEqual(['kms:Decrypt', 'kms:VerifyMac', 's3:GetObject', 's3:ListBucket']);
    const verifyMac = verifier.find(({ statement }) => actionsOf(statement).includes('kms:VerifyMac'))!;
    expect(JSON.stringify(verifyMac.statement.Resource)).toContain(sealKeyId);
  });

  it('refuses GenerateMac in its key policy to any principal without the writer tag, which only the writers carry', () => {
    const key = synthesized.templates.data.findResources('AWS::KMS::Key')[sealKeyId];
    const deny = (key.Properties.KeyPolicy.Statement as Record<string, any>[]).find(
      (statement) => statement.Effect === 'Deny',
    );
    expect(deny).toMatchObject({
      Action: 'kms:GenerateMac',
      Principal: { AWS: '*' },
      Condition: { StringNotEquals: { 'aws:PrincipalTag/voice-intake:audit-writer': 'voice-intake' } },
    });
    const tagged = Object.entries(synthesized.templates.app.findResources('AWS::IAM::Role'))
      .filter(([, role]) =>
        (role.Properties.Tags ?? []).some(
          (tag: { Key: string; Value: string }) => tag.Key === 'voice-intake:audit-writer',
        ),
      )
      .map(([id]) => id.replace(/[0-9A-F]{8}$/, ''));
    expect(tagged.sort()).toEqual(['AgentTaskRole', 'McpServerTaskRole']);
    const verifier = synthesized.templates.data.findResources('AWS::IAM::Role');
    expect(JSON.stringify(verifier)).not.toContain('voice-intake:audit-writer');
  });

  it('gives no other role any use of the seal key, and no role a wildcard KMS action on it', () => {
    const others = sealKeyStatements().filter(
      ({ roles }) => !/McpServerTaskRole|AgentTaskRole|AuditVerifierRole/.test(roles),
    );
    expect(others).toEqual([]);
    for (const { statement } of sealKeyStatements())
      expect(actionsOf(statement).some((action) => action.includes('*'))).toBe(false);
  });

  it('tells both writers which key to seal with, and to mask PII in audit payloads alike', () => {
    const containers = Object.values(synthesized.templates.app.findResources('AWS::ECS::TaskDefinition')).flatMap(
      (task) =>
        task.Properties.ContainerDefinitions as { Name: string; Environment: { Name: string; Value: unknown }[] }[],
    );
    for (const name of ['mcp-server', 'agent']) {
      const container = containers.find((candidate) => candidate.Name === name)!;
      const sealKey = container.Environment.find((entry) => entry.Name === 'AUDIT_SEAL_KMS_KEY_ID');
      expect(JSON.stringify(sealKey?.Value), name).toContain('AuditSealKey');
      expect(container.Environment.find((entry) => entry.Name === 'PII_REDACTION')?.Value, name).toBe('false');
    }
    const redacting = synthVoiceIntake({ agentService: { piiRedaction: true } }).templates.app;
    const mcp = Object.values(redacting.findResources('AWS::ECS::TaskDefinition'))
      .flatMap(
        (task) =>
          task.Properties.ContainerDefinitions as { Name: string; Environment: { Name: string; Value: unknown }[] }[],
      )
      .find((container) => container.Name === 'mcp-server')!;
    expect(mcp.Environment.find((entry) => entry.Name === 'PII_REDACTION')?.Value).toBe('true');
  });
});
