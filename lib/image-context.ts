import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { IgnoreMode } from 'aws-cdk-lib';
import * as ecrAssets from 'aws-cdk-lib/aws-ecr-assets';
import * as ecs from 'aws-cdk-lib/aws-ecs';

/** The repository root: the images build from it, but each sees only what its Dockerfile copies. */
export const REPO_ROOT = join(__dirname, '..');

/** Every workspace of the root package.json: `npm ci` in an image checks each manifest against the shared lockfile. */
export const WORKSPACES: readonly string[] = JSON.parse(
  readFileSync(join(REPO_ROOT, 'package.json'), 'utf8'),
).workspaces;

const WORKSPACE_MANIFESTS = WORKSPACES.map((workspace) => `${workspace}/package.json`);

export type ImageWorkspace = 'agent' | 'mcp-server';

/**
 * The build context of one image, as .dockerignore patterns over the repository root (last match wins): nothing but
 * the root manifests, every workspace manifest, the shared contracts and the image's own workspace, without tests,
 * benchmarks, READMEs or build output. An edit anywhere else (another workspace, the CDK app, docs, tests) leaves
 * the image's asset hash, and so its service, untouched (test/image-context.test.ts).
 */
export function imageContextExcludes(workspace: ImageWorkspace): string[] {
  return [
    '*',
    ...[
      'package.json',
      'package-lock.json',
      '.npmrc',
      'tsconfig.base.json',
      'contracts',
      workspace,
      ...WORKSPACE_MANIFESTS,
    ].map((path) => `!${path}`),
    '**/node_modules',
    '**/dist',
    '**/.local',
    '**/.data',
    'contracts/test',
    'contracts/bench',
    `${workspace}/test`,
    `${workspace}/bench`,
    `${workspace}/README.md`,
  ];
}

/** The image of `workspace` (its Dockerfile, arm64), built from its own minimal context at deploy time. */
export function workspaceImage(workspace: ImageWorkspace): ecs.ContainerImage {
  return ecs.ContainerImage.fromAsset(REPO_ROOT, {
    file: `${workspace}/Dockerfile`,
    platform: ecrAssets.Platform.LINUX_ARM64,
    ignoreMode: IgnoreMode.DOCKER,
    exclude: imageContextExcludes(workspace),
  });
}
