import { Arn, ArnFormat, type Stack } from 'aws-cdk-lib';
import * as iam from 'aws-cdk-lib/aws-iam';
import { wildcardResourceFinding } from './compliance';

/** Cross-region inference profile ids carry a geography prefix: `us.anthropic.claude-…`. */
const PROFILE_PREFIX = /^(us|eu|apac|au|ca|jp|us-gov|global)\.(.+)$/;

/**
 * The resources `bedrock:InvokeModel*` must name for one configured model: the foundation model itself, or — for an
 * inference profile — the profile plus the foundation model in every region the profile may route to. An
 * application inference profile's models are not in its ARN: see `bedrockInvokeGrant`.
 */
export function bedrockModelArns(stack: Stack, modelId: string): string[] {
  const foundationModel = (id: string, region: string) =>
    Arn.format(
      {
        service: 'bedrock',
        region,
        account: '',
        resource: 'foundation-model',
        resourceName: id,
        arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
      },
      stack,
    );

  if (modelId.startsWith('arn:')) {
    const parsed = Arn.split(modelId, ArnFormat.SLASH_RESOURCE_NAME);
    const profile = parsed.resource === 'inference-profile' ? PROFILE_PREFIX.exec(parsed.resourceName ?? '') : null;
    return profile ? [modelId, foundationModel(profile[2], '*')] : [modelId];
  }
  const profile = PROFILE_PREFIX.exec(modelId);
  if (!profile) return [foundationModel(modelId, stack.region)];
  const profileArn = Arn.format(
    {
      service: 'bedrock',
      resource: 'inference-profile',
      resourceName: modelId,
      arnFormat: ArnFormat.SLASH_RESOURCE_NAME,
    },
    stack,
  );
  return [profileArn, foundationModel(profile[2], '*')];
}

export interface BedrockInvokeGrant {
  readonly statements: iam.PolicyStatement[];
  /** cdk-nag AwsSolutions-IAM5 finding ids these statements raise (resource wildcards): acknowledge with `reason`. */
  readonly wildcardFindings: string[];
  readonly reason: string;
}

/**
 * What a role needs to invoke one configured model. For an application inference profile
 * (`…:application-inference-profile/<id>`) Bedrock authorizes the profile and then the foundation models (and, for a
 * copy of a cross-region profile, the system profile) it routes to; their ids are not in the ARN, so those are
 * granted by wildcard only when the request comes through this very profile (`bedrock:InferenceProfileArn`).
 */
export function bedrockInvokeGrant(stack: Stack, modelId: string, actions: string[]): BedrockInvokeGrant {
  if (modelId.startsWith('arn:')) {
    const parsed = Arn.split(modelId, ArnFormat.SLASH_RESOURCE_NAME);
    if (parsed.resource === 'application-inference-profile') {
      const routedTo = [
        `arn:${parsed.partition}:bedrock:*::foundation-model/*`,
        `arn:${parsed.partition}:bedrock:*:${parsed.account}:inference-profile/*`,
      ];
      return {
        statements: [
          new iam.PolicyStatement({ actions, resources: [modelId] }),
          new iam.PolicyStatement({
            actions,
            resources: routedTo,
            conditions: { StringEquals: { 'bedrock:InferenceProfileArn': modelId } },
          }),
        ],
        wildcardFindings: routedTo.map((arn) => `AwsSolutions-IAM5[Resource::${arn}]`),
        reason:
          'An application inference profile routes to models its ARN does not name: ' +
          'granted only through that profile (bedrock:InferenceProfileArn).',
      };
    }
  }
  const resources = bedrockModelArns(stack, modelId);
  return {
    statements: [new iam.PolicyStatement({ actions, resources })],
    wildcardFindings: resources.filter((arn) => arn.includes(':*:')).map((arn) => wildcardResourceFinding(stack, arn)),
    reason: 'A cross-region inference profile routes to this one model in any region of its geography.',
  };
}
