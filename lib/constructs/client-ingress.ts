import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';

/**
 * Opens `target` on one TCP port to one client security group. The rule lives in the client's stack, so a stack that
 * owns the target (stateful, deployed first) never depends on the tiers that use it, and removing a tier removes its
 * rule with it.
 */
export function allowClientIngress(
  target: ec2.ISecurityGroup,
  client: ec2.ISecurityGroup,
  port: number,
  description: string,
): ec2.CfnSecurityGroupIngress {
  const scope = Stack.of(client);
  const id = `${target.node.id}From${client.node.id}Port${port}`;
  return new ec2.CfnSecurityGroupIngress(scope, id, {
    groupId: target.securityGroupId,
    sourceSecurityGroupId: client.securityGroupId,
    ipProtocol: 'tcp',
    fromPort: port,
    toPort: port,
    description,
  });
}
