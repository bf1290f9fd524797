#!/usr/bin/env node
import { App } from 'aws-cdk-lib';
import { buildVoiceIntake } from '../lib/app';
import { applyCompliancePacks } from '../lib/compliance';
import { ConfigError, readConfig } from '../lib/config';

const app = new App();
try {
  const config = readConfig(app.node, app.node.getAllContext());
  buildVoiceIntake(app, config);
} catch (error) {
  if (error instanceof ConfigError) {
    // One readable line for the operator; a stack trace would bury the key that is wrong.
    console.error(error.message);
    process.exit(1);
  }
  throw error;
}
applyCompliancePacks(app);
app.synth();
