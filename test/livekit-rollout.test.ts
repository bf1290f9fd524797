import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import type { Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { daemonMinHealthyPercent } from '../lib/constructs/livekit-cluster';
import { synthVoiceIntake } from './support/synth';

type Resource = { Type: string; Properties: Record<string, any> };
const resourcesOf = (template: Template, type: string) =>
  Object.entries(template.toJSON().Resources as Record<string, Resource>).filter(
    ([, resource]) => resource.Type === type,
  );

describe('LiveKit upgrades: one host at a time, drained', () => {
  let app: Template;
  let edge: Template;

  beforeAll(() => {
    const { templates } = synthVoiceIntake({ livekit: { minHosts: 3, drainSeconds: 600 } });
    app = templates.app;
    edge = templates.edge;
  });

  it('stops the LiveKit task of one host at a time (minHosts 3: 66 %, so 2 of 3 stay)', () => {
    const [[, service]] = resourcesOf(app, 'AWS::ECS::Service').filter(
      ([, resource]) => resource.Properties.SchedulingStrategy === 'DAEMON',
    );
    expect(service.Properties.DeploymentConfiguration).toMatchObject({
      MinimumHealthyPercent: 66,
      MaximumPercent: 100,
    });
    for (const minHosts of [2, 3, 4, 6, 7, 50]) {
      const healthy = Math.ceil((minHosts * daemonMinHealthyPercent(minHosts)) / 100);
      expect(minHosts - healthy, `${minHosts} hosts`).toBe(1);
    }
    expect(daemonMinHealthyPercent(1)).toBe(0);
  });

  it('lets a stopping LiveKit task drain for livekit.drainSeconds before ECS kills it', () => {
    const templates = resourcesOf(app, 'AWS::EC2::LaunchTemplate').map(([, resource]) =>
      JSON.stringify(resource.Properties.LaunchTemplateData.UserData),
    );
    expect(
      templates.some((userData) => userData.includes("ECS_CONTAINER_STOP_TIMEOUT=600s' >> /etc/ecs/ecs.config")),
    ).toBe(true);
  });

  it('takes a host whose LiveKit task is stopping off the edge list, on the task state change', () => {
    const sync = resourcesOf(edge, 'AWS::Lambda::Function').find(
      ([, fn]) => fn.Properties.Environment?.Variables?.NODE_SCRIPT,
    )![1];
    expect(JSON.stringify(sync.Properties.Environment.Variables.LIVEKIT_ECS_CLUSTER)).toMatch(/Cluster/);
    expect(JSON.stringify(sync.Properties.Environment.Variables.LIVEKIT_ECS_SERVICE)).toMatch(/LiveKitService/);
    const rule = resourcesOf(edge, 'AWS::Events::Rule').find(
      ([, candidate]) => candidate.Properties.EventPattern?.['detail-type']?.[0] === 'ECS Task State Change',
    )![1];
    expect(rule.Properties.EventPattern.source).toEqual(['aws.ecs']);
    expect(JSON.stringify(rule.Properties.EventPattern.detail.group)).toMatch(/service:/);
    const statements = resourcesOf(edge, 'AWS::IAM::Policy')
      .filter(([, policy]) => JSON.stringify(policy.Properties.Roles).includes('LiveKitNodeSync'))
      .flatMap(
        ([, policy]) => policy.Properties.PolicyDocument.Statement as { Action: string[]; Condition?: unknown }[],
      );
    const ecsStatement = statements.find((statement) => [statement.Action].flat().includes('ecs:ListTasks'))!;
    expect([ecsStatement.Action].flat().sort()).toEqual([
      'ecs:DescribeContainerInstances',
      'ecs:DescribeTasks',
      'ecs:ListTasks',
    ]);
    expect(JSON.stringify(ecsStatement.Condition)).toMatch(/"ArnEquals":\{"ecs:cluster":/);
  });
});

describe('LiveKit images from ECR, not Docker Hub', () => {
  it("copies each pinned image into the account ECR at deploy, for the hosts' architecture", () => {
    const synthesized = synthVoiceIntake(
      { livekit: { serverImage: 'livekit/livekit-server:v1.13.7', sipImage: 'livekit/sip:v1.17.0' } },
      { keepAssembly: true },
    );
    try {
      const task = resourcesOf(synthesized.templates.app, 'AWS::ECS::TaskDefinition').find(
        ([, definition]) => definition.Properties.NetworkMode === 'host',
      )![1];
      const images = (task.Properties.ContainerDefinitions as { Name: string; Image: unknown }[]).map((container) =>
        JSON.stringify(container.Image),
      );
      for (const image of images) {
        expect(image).toMatch(/dkr\.ecr\..*container-assets/);
        expect(image).not.toMatch(/livekit\/|docker\.io|public\.ecr\.aws/);
      }
      const manifest = JSON.parse(
        readFileSync(join(synthesized.app.outdir, 'voice-intake-app.assets.json'), 'utf8'),
      ) as {
        dockerImages: Record<
          string,
          { source: { directory: string; dockerBuildArgs?: Record<string, string>; platform?: string } }
        >;
      };
      const copies = Object.values(manifest.dockerImages).filter((image) => image.source.dockerBuildArgs?.SOURCE_IMAGE);
      expect(copies.map((image) => image.source.dockerBuildArgs!.SOURCE_IMAGE).sort()).toEqual([
        'livekit/livekit-server:v1.13.7',
        'livekit/sip:v1.17.0',
        'public.ecr.aws/amazonlinux/amazonlinux:2023-minimal',
      ]);
      for (const copy of copies) expect(copy.source.platform).toBe('linux/amd64'); // c7i hosts
    } finally {
      rmSync(synthesized.app.outdir, { recursive: true, force: true });
    }
  });
});
