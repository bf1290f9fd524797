#!/usr/bin/env node
/**
 * npm run recover-first-deploy [-- --delete] [-- -c voiceIntake.<key>=<value> …]: after a failed first deploy, lists
 * the data stack's leftover named buckets and, with --delete, deletes them — only when the data stack is gone or
 * rolled back and the buckets are empty. Account and region: the config's (read as `cdk synth` does: cdk.json's
 * `voiceIntake`, then -c keys), else the environment's ACCOUNT and AWS_REGION.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { CloudFormationClient } from '@aws-sdk/client-cloudformation';
import { S3Client } from '@aws-sdk/client-s3';
import { ConfigError, contextFromCommandLine, readConfigFromContext } from '../lib/config';
import { executeRecovery, planRecovery } from '../lib/recovery';

async function main(): Promise<number> {
  // The config as synth reads it: cdk.json's, with any -c voiceIntake=… or -c voiceIntake.<key>=… on top.
  const cdkJson = JSON.parse(readFileSync(join(__dirname, '..', 'cdk.json'), 'utf8')).context ?? {};
  const config = readConfigFromContext(contextFromCommandLine(cdkJson, process.argv.slice(2)));
  const region = config.region ?? process.env.AWS_REGION;
  const account = config.account ?? process.env.ACCOUNT;
  if (!region || !account) {
    console.error('recover-first-deploy: set account and region in the config (or ACCOUNT and AWS_REGION)');
    return 2;
  }
  const clients = { cloudFormation: new CloudFormationClient({ region }), s3: new S3Client({ region }) };
  const plan = await planRecovery(clients, config.deploymentName, account, region);
  console.log(`${plan.dataStack}: ${plan.stackStatus ?? 'no stack'}`);
  for (const leftover of plan.leftovers)
    console.log(`leftover bucket ${leftover.bucket}${leftover.empty ? ' (empty)' : ' (holds objects)'}`);
  if (plan.refusal) {
    console.error(`recover-first-deploy: ${plan.refusal}`);
    return 1;
  }
  if (plan.leftovers.length === 0) {
    console.log('nothing left over: deploy again');
    return 0;
  }
  if (!process.argv.includes('--delete')) {
    console.log('run again with --delete to delete these, then deploy again');
    return 0;
  }
  for (const line of await executeRecovery(clients, plan)) console.log(line);
  return 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(2);
  },
);
