import { Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as aoss from 'aws-cdk-lib/aws-opensearchserverless';
import { Construct } from 'constructs';

/**
 * OpenSearch Serverless policy and endpoint names: at most 32 characters. The collection's name is cut only as far as
 * needed (a short name keeps its whole suffix, so existing names are unchanged); the suffixes start with different
 * letters, so the cut names stay distinct.
 */
function policyName(collectionName: string, suffix: 'enc' | 'net' | 'vpce' | 'read' | 'write'): string {
  return `${collectionName}-${suffix}`.slice(0, 32);
}

export interface KnowledgeCollectionProps {
  readonly collectionName: string;
  readonly vpc: ec2.IVpc;
  readonly encryptionKey: kms.IKey;
}

/**
 * The knowledge base for `search_knowledge`: an OpenSearch Serverless search collection, encrypted with our key,
 * reachable only through its own VPC endpoint (no public access). Who may read it is a data access policy created
 * by the tier that reads it (`grantRead`), so the policy names that tier's role.
 */
export class KnowledgeCollection extends Construct {
  readonly collection: aoss.CfnCollection;
  readonly endpointSecurityGroup: ec2.SecurityGroup;
  readonly collectionName: string;

  constructor(scope: Construct, id: string, props: KnowledgeCollectionProps) {
    super(scope, id);
    this.collectionName = props.collectionName;
    const resource = [`collection/${props.collectionName}`];

    const encryption = new aoss.CfnSecurityPolicy(this, 'EncryptionPolicy', {
      name: policyName(props.collectionName, 'enc'),
      type: 'encryption',
      policy: Stack.of(this).toJsonString({
        Rules: [{ ResourceType: 'collection', Resource: resource }],
        AWSOwnedKey: false,
        KmsARN: props.encryptionKey.keyArn,
      }),
    });

    this.endpointSecurityGroup = new ec2.SecurityGroup(this, 'EndpointSecurityGroup', {
      vpc: props.vpc,
      description: 'Knowledge collection endpoint: HTTPS from its readers only',
      allowAllOutbound: false,
    });
    const endpoint = new aoss.CfnVpcEndpoint(this, 'VpcEndpoint', {
      name: policyName(props.collectionName, 'vpce'),
      vpcId: props.vpc.vpcId,
      subnetIds: props.vpc.selectSubnets({ subnetType: ec2.SubnetType.PRIVATE_ISOLATED }).subnetIds,
      securityGroupIds: [this.endpointSecurityGroup.securityGroupId],
    });

    const network = new aoss.CfnSecurityPolicy(this, 'NetworkPolicy', {
      name: policyName(props.collectionName, 'net'),
      type: 'network',
      policy: Stack.of(this).toJsonString([
        {
          Rules: [{ ResourceType: 'collection', Resource: resource }],
          AllowFromPublic: false,
          SourceVPCEs: [endpoint.attrId],
        },
      ]),
    });

    this.collection = new aoss.CfnCollection(this, 'Collection', {
      name: props.collectionName,
      type: 'SEARCH',
      standbyReplicas: 'ENABLED',
      description: 'voice-intake knowledge passages for grounded answers',
    });
    this.collection.addResourceDependency(encryption);
    this.collection.addResourceDependency(network);
  }

  /** Lets one role read and describe the collection's indexes (data access policy + IAM). */
  grantRead(scope: Construct, role: iam.IRole): void {
    new aoss.CfnAccessPolicy(scope, 'KnowledgeReadAccess', {
      name: policyName(this.collectionName, 'read'),
      type: 'data',
      policy: Stack.of(scope).toJsonString([
        {
          Rules: [
            {
              ResourceType: 'index',
              Resource: [`index/${this.collectionName}/*`],
              Permission: ['aoss:ReadDocument', 'aoss:DescribeIndex'],
            },
            {
              ResourceType: 'collection',
              Resource: [`collection/${this.collectionName}`],
              Permission: ['aoss:DescribeCollectionItems'],
            },
          ],
          Principal: [role.roleArn],
        },
      ]),
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['aoss:APIAccessAll'], resources: [this.collection.attrArn] }),
    );
  }

  /** Lets one role create the index and write passages (the in-VPC knowledge loader): data access policy + IAM. */
  grantWrite(scope: Construct, role: iam.IRole): void {
    new aoss.CfnAccessPolicy(scope, 'KnowledgeWriteAccess', {
      name: policyName(this.collectionName, 'write'),
      type: 'data',
      policy: Stack.of(scope).toJsonString([
        {
          Rules: [
            {
              ResourceType: 'index',
              Resource: [`index/${this.collectionName}/*`],
              Permission: [
                'aoss:CreateIndex',
                'aoss:UpdateIndex',
                'aoss:DescribeIndex',
                'aoss:ReadDocument',
                'aoss:WriteDocument',
              ],
            },
            {
              ResourceType: 'collection',
              Resource: [`collection/${this.collectionName}`],
              Permission: ['aoss:DescribeCollectionItems', 'aoss:CreateCollectionItems', 'aoss:UpdateCollectionItems'],
            },
          ],
          Principal: [role.roleArn],
        },
      ]),
    });
    role.addToPrincipalPolicy(
      new iam.PolicyStatement({ actions: ['aoss:APIAccessAll'], resources: [this.collection.attrArn] }),
    );
  }
}
