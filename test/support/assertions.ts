import type { Template } from 'aws-cdk-lib/assertions';

type Resource = { Type: string; Properties?: Record<string, unknown> };

function resourcesOf(template: Template): Record<string, Resource> {
  return (template.toJSON().Resources ?? {}) as Record<string, Resource>;
}

const OPEN_IPV4 = '0.0.0.0/0';
const OPEN_IPV6 = '::/0';

/**
 * Every ingress rule, inline or standalone, that admits the whole internet: `"<logicalId>: <proto> <from>-<to>"`.
 * A stack passes when this is empty (the edge tier is open to its allowlist only, never to the world).
 */
export function openIngressRules(template: Template): string[] {
  const found: string[] = [];
  const check = (id: string, rule: Record<string, unknown>) => {
    if (rule.CidrIp === OPEN_IPV4 || rule.CidrIpv6 === OPEN_IPV6) {
      found.push(`${id}: ${String(rule.IpProtocol)} ${String(rule.FromPort)}-${String(rule.ToPort)}`);
    }
  };
  for (const [id, resource] of Object.entries(resourcesOf(template))) {
    if (resource.Type === 'AWS::EC2::SecurityGroup') {
      for (const rule of (resource.Properties?.SecurityGroupIngress ?? []) as Record<string, unknown>[])
        check(id, rule);
    }
    if (resource.Type === 'AWS::EC2::SecurityGroupIngress') check(id, resource.Properties ?? {});
  }
  return found;
}

/** Logical ids of the resources of one type. */
export function logicalIdsOfType(template: Template, type: string): string[] {
  return Object.entries(resourcesOf(template))
    .filter(([, resource]) => resource.Type === type)
    .map(([id]) => id);
}
