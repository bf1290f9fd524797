import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { FileSystem, IgnoreMode } from 'aws-cdk-lib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ImageWorkspace, imageContextExcludes, REPO_ROOT, WORKSPACES } from '../lib/image-context';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => relative(dir, join(entry.parentPath, entry.name)));
}

describe('image build contexts (what each image is built from)', () => {
  let synthesized: SynthesizedApp;
  const staged: Partial<Record<ImageWorkspace, string[]>> = {};

  beforeAll(() => {
    synthesized = synthVoiceIntake(undefined, { keepAssembly: true });
    const outdir = synthesized.app.outdir;
    for (const dir of readdirSync(outdir).filter((name) => name.startsWith('asset.'))) {
      const files = filesUnder(join(outdir, dir));
      if (files.includes('agent/Dockerfile')) staged.agent = files;
      if (files.includes('mcp-server/Dockerfile')) staged['mcp-server'] = files;
    }
  });
  afterAll(() => rmSync(synthesized.app.outdir, { recursive: true, force: true }));

  for (const [workspace, other] of [
    ['agent', 'mcp-server'],
    ['mcp-server', 'agent'],
  ] as const) {
    it(`stages the ${workspace} image with its workspace, the contracts and the manifests only`, () => {
      const files = staged[workspace]!;
      expect(files, 'staged').toBeDefined();
      expect(files).toEqual(
        expect.arrayContaining([
          'package.json',
          'package-lock.json',
          '.npmrc',
          'tsconfig.base.json',
          `${workspace}/Dockerfile`,
          `${workspace}/package.json`,
          `${other}/package.json`,
          ...WORKSPACES.map((name) => `${name}/package.json`),
        ]),
      );
      // npm ci checks every workspace of the lockfile: the Dockerfile copies each manifest the context holds.
      const dockerfile = readFileSync(join(REPO_ROOT, workspace, 'Dockerfile'), 'utf8');
      for (const name of WORKSPACES)
        expect(dockerfile, name).toContain(`COPY ${name}/package.json ${name}/package.json`);
      expect(files.some((file) => file.startsWith(`${workspace}/src/`))).toBe(true);
      expect(files.some((file) => file.startsWith('contracts/src/'))).toBe(true);
      const outside = files.filter(
        (file) =>
          !WORKSPACES.some((name) => file.startsWith(`${name}/`)) &&
          !['package.json', 'package-lock.json', '.npmrc', 'tsconfig.base.json', '.dockerignore'].includes(file),
      );
      expect(outside).toEqual([]);
      for (const file of files) {
        expect(file).not.toMatch(/(^|\/)(node_modules|dist|test|bench)\//);
        expect(file.startsWith(`${other}/`) ? file : `${other}/package.json`).toBe(`${other}/package.json`);
        expect(
          WORKSPACES.some((name) => ![workspace, 'contracts'].includes(name) && file.startsWith(`${name}/`))
            ? file.split('/')[1]
            : 'package.json',
        ).toBe('package.json');
      }
      expect(files).not.toContain(`${workspace}/README.md`);
    });
  }
});

describe('image asset hashes', () => {
  const replica = mkdtempSync(join(tmpdir(), 'image-context-'));
  afterAll(() => rmSync(replica, { recursive: true, force: true }));

  // A small tree shaped like the repository, fingerprinted the way CDK fingerprints an image asset.
  const write = (path: string, content: string) => {
    mkdirSync(join(replica, path, '..'), { recursive: true });
    writeFileSync(join(replica, path), content);
  };
  beforeAll(() => {
    cpSync(join(REPO_ROOT, '.dockerignore'), join(replica, '.dockerignore'));
    for (const path of [
      'package.json',
      'package-lock.json',
      '.npmrc',
      'tsconfig.base.json',
      'README.md',
      'cdk.json',
      'lib/app.ts',
      'test/app.test.ts',
      'edge-config/src/render.ts',
      'lambda/src/handler.ts',
      'contracts/src/index.ts',
      'contracts/test/contracts.test.ts',
    ])
      write(path, `${path} v1`);
    for (const workspace of ['contracts', 'edge-config', 'agent', 'mcp-server', 'lambda'])
      write(`${workspace}/package.json`, `${workspace} manifest v1`);
    for (const workspace of ['agent', 'mcp-server']) {
      for (const path of [
        'Dockerfile',
        'src/main.ts',
        'test/main.test.ts',
        'README.md',
        'node_modules/x/index.js',
        'dist/main.js',
      ])
        write(`${workspace}/${path}`, `${workspace}/${path} v1`);
    }
    write('mcp-server/knowledge/faq.md', 'faq v1');
    write('agent/bench/density.ts', 'bench v1');
  });
  const hash = (workspace: ImageWorkspace) =>
    FileSystem.fingerprint(replica, { exclude: imageContextExcludes(workspace), ignoreMode: IgnoreMode.DOCKER });

  for (const [workspace, other] of [
    ['agent', 'mcp-server'],
    ['mcp-server', 'agent'],
  ] as const) {
    it(`keeps the ${workspace} hash through unrelated edits and changes it with the image's own inputs`, () => {
      const unrelated = [
        'README.md',
        'cdk.json',
        'lib/app.ts',
        'test/app.test.ts',
        'edge-config/src/render.ts',
        'lambda/src/handler.ts',
        `${other}/src/main.ts`,
        `${other}/Dockerfile`,
        `${workspace}/README.md`,
        `${workspace}/test/main.test.ts`,
        `${workspace}/node_modules/x/index.js`,
        `${workspace}/dist/main.js`,
        'contracts/test/contracts.test.ts',
      ];
      const own = [
        `${workspace}/src/main.ts`,
        `${workspace}/Dockerfile`,
        'contracts/src/index.ts',
        'package-lock.json',
        `${other}/package.json`,
        'tsconfig.base.json',
      ];
      for (const path of unrelated) {
        const before = hash(workspace);
        write(path, `${path} edited ${Math.random()}`);
        expect(hash(workspace), `${path} is not part of the ${workspace} image`).toBe(before);
      }
      for (const path of own) {
        const before = hash(workspace);
        write(path, `${path} edited ${Math.random()}`);
        expect(hash(workspace), `${path} is part of the ${workspace} image`).not.toBe(before);
      }
    });
  }

  it('keeps the knowledge base in the MCP server image (markdown it serves)', () => {
    const before = hash('mcp-server');
    write('mcp-server/knowledge/faq.md', `faq edited ${Math.random()}`);
    expect(hash('mcp-server')).not.toBe(before);
  });
});
