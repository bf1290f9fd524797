import { Fn, Stack, type StackProps, Token } from 'aws-cdk-lib';
import type { Construct } from 'constructs';
import type { VoiceIntakeConfig } from '../config';

export interface VoiceIntakeStackProps extends StackProps {
  readonly config: VoiceIntakeConfig;
}

/**
 * Base of every voice-intake stack. Without an account/region CDK offers only two AZs
 * (`Fn::GetAZs` picks 0 and 1); we honour `azCount` by selecting as many from the same list.
 */
export class VoiceIntakeStack extends Stack {
  readonly config: VoiceIntakeConfig;

  constructor(scope: Construct, id: string, props: VoiceIntakeStackProps) {
    super(scope, id, props);
    this.config = props.config;
  }

  override get availabilityZones(): string[] {
    if (!Token.isUnresolved(this.region)) return super.availabilityZones.slice(0, this.config.azCount);
    return Array.from({ length: this.config.azCount }, (_, index) => Fn.select(index, Fn.getAzs()));
  }
}
