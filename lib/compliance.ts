import { type App, Aspects, CfnResource, type IAspect, Stack, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks, HIPAASecurityChecks, NIST80053R5Checks } from 'cdk-nag';
import type { IConstruct } from 'constructs';

/** The rule packs every synth is checked against; an unacknowledged error fails synth. */
export function applyCompliancePacks(app: App): void {
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app), new HIPAASecurityChecks(app), new NIST80053R5Checks(app));
  Aspects.of(app).add(new CdkProviderFunctionSkips());
}

/**
 * Acknowledges several rules (often the same control in the three packs) on one construct for one reason.
 * Every acknowledgment must say why the finding does not apply or is accepted, specifically.
 */
export function acknowledgeRules(scope: IConstruct, ruleIds: readonly string[], reason: string): void {
  for (const id of ruleIds) Validations.of(scope).acknowledge({ id, reason });
}

/**
 * The `AwsSolutions-IAM5[Resource::…]` finding id cdk-nag gives a wildcard resource, as it writes it: tokens as
 * `<AWS::Partition>` / `<Logical.Arn>`, literals as they are. The same ARN reads differently with and without account
 * and region in the stack's environment, so ids are computed, not typed.
 */
export function wildcardResourceFinding(scope: IConstruct, arn: string): string {
  const flatten = (value: unknown): string => {
    if (typeof value === 'string') return value;
    const node = value as Record<string, unknown>;
    if (typeof node.Ref === 'string') return `<${node.Ref}>`;
    if (Array.isArray(node['Fn::GetAtt'])) return `<${(node['Fn::GetAtt'] as string[]).join('.')}>`;
    if (Array.isArray(node['Fn::Join'])) {
      const [separator, parts] = node['Fn::Join'] as [string, unknown[]];
      return parts.map(flatten).join(separator);
    }
    return JSON.stringify(value);
  };
  return `AwsSolutions-IAM5[Resource::${flatten(Stack.of(scope).resolve(arn))}]`;
}

export interface CheckovSkip {
  /** A checkov check id, e.g. CKV_AWS_18. */
  readonly id: string;
  /** Why it does not apply: checkov prints it in its report. */
  readonly comment: string;
}

/**
 * Records checkov skips in the resource's template metadata (`Metadata.checkov.skip`), where checkov reads them,
 * so each skip sits on the one resource it concerns, with its reason.
 */
export function skipCheckovChecks(scope: IConstruct, skips: readonly CheckovSkip[]): void {
  const resource = scope instanceof CfnResource ? scope : scope.node.defaultChild;
  if (!(resource instanceof CfnResource)) {
    throw new Error(`skipCheckovChecks: ${scope.node.path} is not a CloudFormation resource`);
  }
  const existing = (resource.getMetadata('checkov') as { skip?: CheckovSkip[] } | undefined)?.skip ?? [];
  resource.addMetadata('checkov', { skip: [...existing, ...skips] });
}

/**
 * CDK's own custom-resource provider functions (default security group restriction, log retention, …) run only
 * while CloudFormation deploys; they are not ours to put in a VPC or give a DLQ. Mark them for checkov once, here.
 */
export class CdkProviderFunctionSkips implements IAspect {
  visit(node: IConstruct): void {
    if (!(node instanceof CfnResource) || node.cfnResourceType !== 'AWS::Lambda::Function') return;
    if (!/CustomResourceProvider\/Handler$/.test(node.node.path)) return;
    const reason = 'CDK-managed custom resource provider that runs only during deployment, calling AWS APIs';
    skipCheckovChecks(node, [
      { id: 'CKV_AWS_115', comment: `${reason}; no concurrency to reserve.` },
      {
        id: 'CKV_AWS_116',
        comment: `${reason}; CloudFormation reports its failures, a DLQ would hold nothing useful.`,
      },
      { id: 'CKV_AWS_117', comment: `${reason}; it needs no VPC resources.` },
    ]);
  }
}

/**
 * The findings every ECS task definition here shares: CDK writes each role's grants as an inline default policy, and
 * the execution role's ECR token call takes no resource. Returns the default policies (other role first) for the
 * caller's own, specific acknowledgments.
 */
export function acknowledgeTaskRolePolicies(
  executionRole: IConstruct,
  otherRole: IConstruct,
): { rolePolicy: IConstruct; executionPolicy: IConstruct } {
  const rolePolicy = otherRole.node.findChild('DefaultPolicy');
  const executionPolicy = executionRole.node.findChild('DefaultPolicy');
  acknowledgeRules(
    executionPolicy,
    ['AwsSolutions-IAM5[Resource::*]'],
    'ecr:GetAuthorizationToken supports no resource-level scoping; image pulls are scoped to their repositories.',
  );
  for (const policy of [rolePolicy, executionPolicy]) {
    acknowledgeRules(
      policy,
      ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
      'Least-privilege statements generated for this one role; a managed policy would be shared by nothing else.',
    );
  }
  return { rolePolicy, executionPolicy };
}

/** cdk-nag's finding ids for the AWS-managed Lambda execution policies, as it writes them. */
const LAMBDA_BASIC_EXECUTION_FINDING =
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole]';
const LAMBDA_VPC_ACCESS_FINDING =
  'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]';
export const INLINE_POLICY_RULES = ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'] as const;
const LAMBDA_DLQ_RULES = ['HIPAA.Security-LambdaDLQ', 'NIST.800.53.R5-LambdaDLQ'] as const;

/** Why a custom-resource function needs no DLQ, reserved concurrency or alarm of its own. */
export const DEPLOY_TIME_ONLY =
  'Runs only while CloudFormation deploys this stack; CloudFormation reports its failures, so a DLQ would hold nothing useful.';

/**
 * The findings every in-VPC custom-resource handler of ours shares: the managed execution policies, its inline
 * least-privilege policy, no DLQ and the Node 22 runtime. Returns the role's default policy for the caller's own, specific acknowledgments.
 */
export function acknowledgeDeployTimeHandler(fn: IConstruct & { readonly role?: IConstruct }): IConstruct {
  const role = fn.role!;
  acknowledgeRules(
    role,
    [LAMBDA_BASIC_EXECUTION_FINDING, LAMBDA_VPC_ACCESS_FINDING],
    'AWS-maintained execution policies for logs and VPC network interfaces; their scope is what Lambda itself needs.',
  );
  const policy = role.node.findChild('DefaultPolicy');
  acknowledgeRules(policy, INLINE_POLICY_RULES, 'Least-privilege statements generated for this one function role.');
  acknowledgeRules(fn, LAMBDA_DLQ_RULES, DEPLOY_TIME_ONLY);
  acknowledgeRules(
    fn,
    ['AwsSolutions-L1'],
    'NODEJS_22_X is the newest runtime this codebase targets (Node 22 across images and functions).',
  );
  return policy;
}

/**
 * The CDK provider framework's own function (`cr.Provider`'s onEvent, and its isComplete/onTimeout when polling): its
 * runtime and settings are CDK's, and it only invokes `handlers` (ours, which run in the VPC).
 */
export function acknowledgeProviderFrameworkFunction(
  fn: IConstruct & { readonly role?: IConstruct },
  handlers: string,
): void {
  acknowledgeRules(
    fn.role!,
    [LAMBDA_BASIC_EXECUTION_FINDING],
    "AWS-maintained policy for the provider framework function's logs.",
  );
  acknowledgeRules(
    fn,
    [
      'AwsSolutions-L1',
      ...LAMBDA_DLQ_RULES,
      'HIPAA.Security-LambdaConcurrency',
      'NIST.800.53.R5-LambdaConcurrency',
      'HIPAA.Security-LambdaInsideVPC',
      'NIST.800.53.R5-LambdaInsideVPC',
    ],
    `CDK provider framework function (runtime chosen by CDK): ${DEPLOY_TIME_ONLY} It only invokes ${handlers} (in the VPC).`,
  );
  skipCheckovChecks(fn, [
    { id: 'CKV_AWS_115', comment: 'CDK provider framework function, deploy-time only.' },
    { id: 'CKV_AWS_116', comment: DEPLOY_TIME_ONLY },
    { id: 'CKV_AWS_117', comment: `CDK provider framework function; it only invokes ${handlers} (in the VPC).` },
    { id: 'CKV_AWS_173', comment: `Its environment holds only function names (${handlers}).` },
  ]);
}
