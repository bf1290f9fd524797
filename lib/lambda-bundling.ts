import { join } from 'node:path';
import * as lambda from 'aws-cdk-lib/aws-lambda';
import type * as nodejs from 'aws-cdk-lib/aws-lambda-nodejs';

const ROOT = join(__dirname, '..');

/**
 * How every function of ours is built: from a handler in the `lambda/` workspace, bundled locally by esbuild (no
 * Docker), AWS SDK included — the function runs the versions the tests ran, not whatever the runtime ships — on Node
 * 22, arm64.
 */
export function lambdaWorkspaceFunction(handlerFile: string, handler: string): nodejs.NodejsFunctionProps {
  return {
    entry: join(ROOT, 'lambda', 'src', handlerFile),
    handler,
    runtime: lambda.Runtime.NODEJS_22_X,
    architecture: lambda.Architecture.ARM_64,
    depsLockFilePath: join(ROOT, 'package-lock.json'),
    projectRoot: ROOT,
    bundling: { minify: true, target: 'node22', forceDockerBundling: false, externalModules: [] },
  };
}
