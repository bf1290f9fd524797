import { Arn, ArnFormat, Stack } from 'aws-cdk-lib';

/** Cross-region inference profile ids carry a geography prefix: `us.anthropic.claude-…`. */
const PROFILE_PREFIX = /^(us|eu|apac|au|ca|jp|us-gov|global)\.(.+)$/;

/**
 * The resources `bedrock:InvokeModel*` must name for one configured model: the foundation model itself, or — for an
 * inference profile — the profile plus the foundation model in every region the profile may route to.
 */
export function bedrockModelArns(stack: Stack, modelId: string): string[] {
  const foundationModel = (id: string, region: string) =>
    Arn.format({ service: 'bedrock', region, account: '', resource: 'foundation-model', resourceName: id, arnFormat: ArnFormat.SLASH_RESOURCE_NAME }, stack);

  if (modelId.startsWith('arn:')) {
    const parsed = Arn.split(modelId, ArnFormat.SLASH_RESOURCE_NAME);
    const profile = parsed.resource === 'inference-profile' ? PROFILE_PREFIX.exec(parsed.resourceName ?? '') : null;
    return profile ? [modelId, foundationModel(profile[2], '*')] : [modelId];
  }
  const profile = PROFILE_PREFIX.exec(modelId);
  if (!profile) return [foundationModel(modelId, stack.region)];
  const profileArn = Arn.format(
    { service: 'bedrock', resource: 'inference-profile', resourceName: modelId, arnFormat: ArnFormat.SLASH_RESOURCE_NAME },
    stack,
  );
  return [profileArn, foundationModel(profile[2], '*')];
}
