#!/usr/bin/env node
/**
 * npm run preflight [-- --offline] [-- -c voiceIntake.<key>=<value> …]: what a first deploy of this config would trip
 * over, one line per problem. Reads the config as `cdk synth` does: cdk.json's `voiceIntake`, then -c keys. With
 * credentials (the SDK's default chain) and a region it also asks the account; --offline, or no credentials, checks
 * the config alone.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ConfigError, contextFromCommandLine, readConfigFromContext } from '../lib/config';
import { accountFindings, awsClients, configFindings, formatFindings } from '../lib/preflight';

async function main(): Promise<number> {
  // The config as synth reads it: cdk.json's, with any -c voiceIntake=… or -c voiceIntake.<key>=… on top.
  const cdkJson = JSON.parse(readFileSync(join(__dirname, '..', 'cdk.json'), 'utf8')).context ?? {};
  const config = readConfigFromContext(contextFromCommandLine(cdkJson, process.argv.slice(2)));
  const region = config.region ?? process.env.AWS_REGION ?? process.env.AWS_DEFAULT_REGION;
  const findings = configFindings(config, region);
  let withAccount = false;
  if (!process.argv.includes('--offline') && region) {
    const clients = awsClients(region);
    const credentials = await clients.lambda.config.credentials().catch(() => undefined);
    if (credentials) {
      withAccount = true;
      findings.push(...(await accountFindings(config, region, clients)));
    }
  }
  for (const line of formatFindings(findings)) console.log(line);
  const problems = findings.filter((finding) => finding.level === 'problem').length;
  console.log(
    `preflight (${withAccount ? `config and account, ${region}` : 'config only: no credentials or region'}): ${problems} problem(s), ${findings.length - problems} warning(s)`,
  );
  return problems > 0 ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (error) => {
    console.error(error instanceof ConfigError ? error.message : error);
    process.exit(2);
  },
);
