import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { RenderInputError, renderEdge, writeRendered } from './render';

const USAGE = `usage: npm run render -w edge-config -- --config FILE --out DIR [--local]

  --config FILE  renderer input (JSON): { edge, host, livekitSip, paths? } — see edge-config/README.md
  --out DIR      where the rendered tree is written
  --local        run the tree from DIR itself (paths.configDir = DIR, paths.runDir = DIR/run) instead of
                 installing it to paths.configDir; what the local harness does`;

function main(argv: string[]): number {
  let values: { config?: string; out?: string; local?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        config: { type: 'string' },
        out: { type: 'string' },
        local: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (error) {
    console.error(`${(error as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    console.log(USAGE);
    return 0;
  }
  if (!values.config || !values.out) {
    console.error(`--config and --out are required\n${USAGE}`);
    return 2;
  }
  const outDir = resolve(values.out);
  let input: Record<string, unknown>;
  try {
    input = JSON.parse(readFileSync(values.config, 'utf8'));
  } catch (error) {
    console.error(`cannot read ${values.config}: ${(error as Error).message}`);
    return 1;
  }
  if (values.local) input = { ...input, paths: { configDir: outDir, runDir: `${outDir}/run` } };
  try {
    const written = writeRendered(outDir, renderEdge(input as Parameters<typeof renderEdge>[0]));
    console.log(`rendered ${written.length} files into ${outDir}`);
    return 0;
  } catch (error) {
    if (error instanceof RenderInputError) {
      console.error(error.message);
      return 1;
    }
    throw error;
  }
}

process.exitCode = main(process.argv.slice(2));
