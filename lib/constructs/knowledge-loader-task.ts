import { CfnOutput, RemovalPolicy, Stack } from 'aws-cdk-lib';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as iam from 'aws-cdk-lib/aws-iam';
import type * as kms from 'aws-cdk-lib/aws-kms';
import * as logs from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';
import { acknowledgeRules, acknowledgeTaskRolePolicies } from '../compliance';
import { workspaceImage } from '../image-context';
import { allowClientIngress } from './client-ingress';
import type { KnowledgeCollection } from './knowledge-collection';

export interface KnowledgeLoaderTaskProps {
  readonly vpc: ec2.IVpc;
  readonly cluster: ecs.ICluster;
  readonly knowledge: KnowledgeCollection;
  readonly logKey: kms.IKey;
}

/**
 * Loads the knowledge passages into the private OpenSearch collection from inside the VPC, where its endpoint is:
 * a one-off Fargate task of the MCP server image (its bundled loader and its `knowledge/*.md`), started by hand with
 * the command the stack outputs. A laptop cannot reach the collection (no public access).
 */
export class KnowledgeLoaderTask extends Construct {
  readonly taskDefinition: ecs.FargateTaskDefinition;
  readonly securityGroup: ec2.SecurityGroup;

  constructor(scope: Construct, id: string, props: KnowledgeLoaderTaskProps) {
    super(scope, id);
    const taskRole = new iam.Role(this, 'TaskRole', {
      assumedBy: new iam.ServicePrincipal('ecs-tasks.amazonaws.com'),
      description: 'Knowledge loader task: writes the knowledge index, nothing else',
    });
    props.knowledge.grantWrite(this, taskRole);

    this.taskDefinition = new ecs.FargateTaskDefinition(this, 'Task', {
      cpu: 512,
      memoryLimitMiB: 1024,
      runtimePlatform: {
        cpuArchitecture: ecs.CpuArchitecture.ARM64,
        operatingSystemFamily: ecs.OperatingSystemFamily.LINUX,
      },
      taskRole,
    });
    const logGroup = new logs.LogGroup(this, 'Logs', {
      retention: logs.RetentionDays.ONE_YEAR,
      encryptionKey: props.logKey,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.taskDefinition.addContainer('loader', {
      image: workspaceImage('mcp-server'),
      command: ['node', 'dist/load-knowledge.js', 'knowledge', 'aoss'],
      logging: ecs.LogDrivers.awsLogs({ streamPrefix: 'knowledge-loader', logGroup }),
      readonlyRootFilesystem: true,
      user: 'node',
      environment: {
        OPENSEARCH_ENDPOINT: props.knowledge.collection.attrCollectionEndpoint,
        OPENSEARCH_INDEX: 'knowledge',
        AWS_REGION: Stack.of(this).region,
      },
    });

    this.securityGroup = new ec2.SecurityGroup(this, 'SecurityGroup', {
      vpc: props.vpc,
      description: 'Knowledge loader task: HTTPS to the knowledge collection and AWS APIs only',
      allowAllOutbound: false,
    });
    this.securityGroup.addEgressRule(
      ec2.Peer.anyIpv4(),
      ec2.Port.tcp(443),
      'Knowledge collection endpoint, ECR, logs (HTTPS)',
    );
    allowClientIngress(
      props.knowledge.endpointSecurityGroup,
      this.securityGroup,
      443,
      'knowledge loader writes the index',
    );

    // The subnets come from the network stack's output at run time: an output may not re-export an import.
    const networkStack = Stack.of(props.vpc).stackName;
    const subnets = `$(aws cloudformation describe-stacks --stack-name ${networkStack} --query 'Stacks[0].Outputs[?OutputKey==\`PrivateSubnetIds\`].OutputValue' --output text)`;
    new CfnOutput(Stack.of(this), 'LoadKnowledgeCommand', {
      description:
        'Loads mcp-server/knowledge/*.md (as built into the MCP server image) into the knowledge collection, from inside the VPC',
      value: [
        'aws ecs run-task --launch-type FARGATE',
        `--cluster ${props.cluster.clusterName}`,
        `--task-definition ${this.taskDefinition.family}`,
        `--network-configuration "awsvpcConfiguration={subnets=[${subnets}],securityGroups=[${this.securityGroup.securityGroupId}],assignPublicIp=DISABLED}"`,
      ].join(' '),
    });

    const { rolePolicy } = acknowledgeTaskRolePolicies(this.taskDefinition.obtainExecutionRole(), taskRole);
    acknowledgeRules(
      rolePolicy,
      ['HIPAA.Security-IAMNoInlinePolicy', 'NIST.800.53.R5-IAMNoInlinePolicy'],
      'Least-privilege statements generated for this one task role.',
    );
    acknowledgeRules(
      this.taskDefinition,
      ['AwsSolutions-ECS2'],
      'Environment holds the collection endpoint, index name and region only; no secret.',
    );
  }
}
