import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

type Resource = { Type: string; Properties: Record<string, any> };
const resourcesOf = (template: Template, type: string) =>
  Object.entries(template.toJSON().Resources as Record<string, Resource>).filter(
    ([, resource]) => resource.Type === type,
  );

describe('knowledge loader: a one-off task inside the VPC', () => {
  let synthesized: SynthesizedApp;
  let app: Template;

  beforeAll(() => {
    synthesized = synthVoiceIntake();
    app = synthesized.templates.app;
  });

  it("runs the MCP server image's bundled loader on its knowledge folder, against the private collection", () => {
    const definitions = resourcesOf(app, 'AWS::ECS::TaskDefinition').map(([, definition]) => definition.Properties);
    const loader = definitions.find((definition) => definition.ContainerDefinitions[0].Name === 'loader')!;
    const server = definitions.find((definition) => definition.ContainerDefinitions[0].Name === 'mcp-server')!;
    const container = loader.ContainerDefinitions[0];
    expect(container.Command).toEqual(['node', 'dist/load-knowledge.js', 'knowledge', 'aoss']);
    expect(container.Image).toEqual(server.ContainerDefinitions[0].Image); // the same image: no second build
    expect(JSON.stringify(container.Environment)).toMatch(/OPENSEARCH_ENDPOINT.*KnowledgeCollection/);
    expect(loader.RuntimePlatform).toEqual({ CpuArchitecture: 'ARM64', OperatingSystemFamily: 'LINUX' });
    // The image builds the loader next to the server.
    expect(JSON.parse(readFileSync(join(__dirname, '..', 'mcp-server', 'package.json'), 'utf8')).scripts.build).toMatch(
      /src\/main\.ts scripts\/load-knowledge\.ts .*--outdir=dist/,
    );
  });

  it('may write the knowledge index only, and reaches only HTTPS', () => {
    const [[, access]] = resourcesOf(app, 'AWS::OpenSearchServerless::AccessPolicy').filter(([id]) =>
      id.includes('Write'),
    );
    const policy = JSON.stringify(access.Properties.Policy);
    expect(access.Properties.Type).toBe('data');
    expect(policy).toMatch(/aoss:WriteDocument/);
    expect(policy).toMatch(/aoss:CreateIndex/);
    expect(policy).toMatch(/KnowledgeLoaderTaskRole/);
    expect(policy).not.toMatch(/aoss:DeleteIndex|aoss:\*/);
    const statements = resourcesOf(app, 'AWS::IAM::Policy')
      .filter(([, p]) => JSON.stringify(p.Properties.Roles).includes('KnowledgeLoaderTaskRole'))
      .flatMap(([, p]) => p.Properties.PolicyDocument.Statement as { Action: string | string[] }[]);
    expect(statements.flatMap((statement) => [statement.Action].flat())).toEqual(['aoss:APIAccessAll']);
    const [, group] = resourcesOf(app, 'AWS::EC2::SecurityGroup').find(([, candidate]) =>
      /Knowledge loader task/.test(candidate.Properties.GroupDescription),
    )!;
    expect(group.Properties.SecurityGroupEgress).toEqual([
      expect.objectContaining({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 }),
    ]);
    expect(group.Properties.SecurityGroupIngress ?? []).toEqual([]);
    const intoCollection = resourcesOf(app, 'AWS::EC2::SecurityGroupIngress').filter(
      ([, rule]) => rule.Properties.Description === 'knowledge loader writes the index',
    );
    expect(intoCollection).toHaveLength(1);
    expect(intoCollection[0][1].Properties).toMatchObject({ IpProtocol: 'tcp', FromPort: 443, ToPort: 443 });
    expect(JSON.stringify(intoCollection[0][1].Properties.GroupId)).toMatch(
      /KnowledgeEndpointSecurityGroup|EndpointSecurityGroup/,
    );
  });

  it('outputs the command that starts it in the private subnets, without a public IP', () => {
    const command = JSON.stringify(app.toJSON().Outputs.LoadKnowledgeCommand.Value);
    expect(command).toMatch(/aws ecs run-task --launch-type FARGATE --cluster /);
    expect(command).toContain(
      "$(aws cloudformation describe-stacks --stack-name voice-intake-network --query 'Stacks[0].Outputs[?OutputKey==`PrivateSubnetIds`].OutputValue' --output text)",
    );
    expect(JSON.stringify(synthesized.templates.network.toJSON().Outputs.PrivateSubnetIds.Value)).toMatch(
      /privateSubnet1Subnet.*privateSubnet2Subnet/,
    );
    expect(command).toMatch(/assignPublicIp=DISABLED/);
  });

  it('is not there with the embedded knowledge index', () => {
    const { templates } = synthVoiceIntake({ mcp: { knowledgeBackend: 'embedded' } });
    expect(templates.app.toJSON().Outputs.LoadKnowledgeCommand).toBeUndefined();
  });
});
