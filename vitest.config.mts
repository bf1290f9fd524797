import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts', '*/test/**/*.test.ts'],
    exclude: ['**/node_modules/**', 'cdk.out/**'],
    // CDK synth (with aws-cdk-lib's bundled CloudFormation rules) and real SIP/Redis processes are slow on 2 cores.
    testTimeout: 120_000,
    hookTimeout: 180_000,
    pool: 'forks',
    // The JSON report feeds the one-line summary CI prints (scripts/test-summary.mjs).
    reporters: ['default', 'json'],
    outputFile: { json: 'test-results/vitest.json' },
    snapshotSerializers: ['test/support/mask-asset-hashes.ts'],
    // Every process a test file started through spawnTracked ends with the file, pass or fail.
    setupFiles: ['test/support/process-cleanup.ts'],
  },
});
