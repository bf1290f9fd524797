import { metricsNamespace } from '@voice-intake/contracts';
import { CfnOutput, RemovalPolicy } from 'aws-cdk-lib';
import type * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as ec2 from 'aws-cdk-lib/aws-ec2';
import * as ecs from 'aws-cdk-lib/aws-ecs';
import * as kms from 'aws-cdk-lib/aws-kms';
import type * as s3 from 'aws-cdk-lib/aws-s3';
import type { Construct } from 'constructs';
import { AgentService } from '../constructs/agent-service';
import type { KnowledgeCollection } from '../constructs/knowledge-collection';
import { KnowledgeLoaderTask } from '../constructs/knowledge-loader-task';
import { LiveKitCluster } from '../constructs/livekit-cluster';
import { grantKeyToLogGroups } from '../constructs/log-key-grant';
import { McpServerService } from '../constructs/mcp-server-service';
import type { DataStack } from './data-stack';
import { VoiceIntakeStack, type VoiceIntakeStackProps } from './voice-intake-stack';

export interface AppStackProps extends VoiceIntakeStackProps {
  readonly vpc: ec2.IVpc;
  /** The data stack: Redis is opened to this tier's security groups from here. */
  readonly data: DataStack;
  readonly casesTable: dynamodb.ITable;
  readonly auditBucket: s3.IBucket;
  /** Seals audit segments: the MCP server and agent tasks may GenerateMac with it, nothing more. */
  readonly auditSealKey: kms.IKey;
  readonly accessLogsBucket: s3.IBucket;
  readonly dataKey: kms.IKey;
  readonly knowledge?: KnowledgeCollection;
}

/**
 * The app tier behind the edge, all in private subnets: the ECS cluster, the agent's security group (the only client
 * the MCP server admits) and the MCP server service.
 */
export class AppStack extends VoiceIntakeStack {
  readonly appKey: kms.Key;
  readonly cluster: ecs.Cluster;
  readonly agentSecurityGroup: ec2.SecurityGroup;
  readonly mcpServer: McpServerService;
  readonly livekit: LiveKitCluster;
  readonly agent: AgentService;

  constructor(scope: Construct, id: string, props: AppStackProps) {
    super(scope, id, props);
    // Declared first: grants on data-tier secrets and keys then stay in this stack's policies (no cycle).
    this.addStackDependency(props.data);

    this.appKey = new kms.Key(this, 'AppKey', {
      description: 'Encrypts app-tier secrets and logs',
      enableKeyRotation: true,
      removalPolicy: RemovalPolicy.RETAIN,
    });
    grantKeyToLogGroups(this.appKey);

    this.cluster = new ecs.Cluster(this, 'Cluster', {
      vpc: props.vpc,
      containerInsightsV2: ecs.ContainerInsights.ENHANCED,
    });

    this.agentSecurityGroup = new ec2.SecurityGroup(this, 'AgentSecurityGroup', {
      vpc: props.vpc,
      description: 'Agent workers: clients of the MCP server, LiveKit and Redis',
      allowAllOutbound: true,
    });

    this.mcpServer = new McpServerService(this, 'McpServer', {
      vpc: props.vpc,
      cluster: this.cluster,
      mcp: props.config.mcp,
      deploymentName: props.config.deploymentName,
      casesTable: props.casesTable,
      auditBucket: props.auditBucket,
      auditSealKey: props.auditSealKey,
      piiRedaction: props.config.agentService.piiRedaction,
      dataKey: props.dataKey,
      appKey: this.appKey,
      knowledge: props.knowledge,
      accessLogsBucket: props.accessLogsBucket,
      metricsNamespace: metricsNamespace(props.config.deploymentName),
    });
    this.mcpServer.allowFrom(this.agentSecurityGroup, 'agent workers to the MCP server');
    // The collection is private: its passages are loaded from inside the VPC (npm run … has no way in).
    if (props.knowledge) {
      new KnowledgeLoaderTask(this, 'KnowledgeLoader', {
        vpc: props.vpc,
        cluster: this.cluster,
        knowledge: props.knowledge,
        logKey: this.appKey,
      });
    }

    this.livekit = new LiveKitCluster(this, 'LiveKit', {
      vpc: props.vpc,
      cluster: this.cluster,
      livekit: props.config.livekit,
      redisAddress: `${props.data.redisEndpoint.host}:${props.data.redisEndpoint.port}`,
      redisAuthSecret: props.data.redisAuthSecret,
      dataKey: props.dataKey,
      appKey: this.appKey,
      accessLogsBucket: props.accessLogsBucket,
      metricsNamespace: metricsNamespace(props.config.deploymentName),
    });
    this.livekit.allowAgents(this.agentSecurityGroup);

    // Redis: LiveKit (room state, bus) and agents (session state); nothing else. The MCP server keeps its state in the
    // case table, so the tier most exposed to model-chosen input has no path to the call state.
    props.data.allowRedisFrom(this.livekit.hostSecurityGroup, 'LiveKit hosts to Redis');
    props.data.allowRedisFrom(this.agentSecurityGroup, 'agent workers to Redis');

    this.agent = new AgentService(this, 'Agent', {
      vpc: props.vpc,
      cluster: this.cluster,
      securityGroup: this.agentSecurityGroup,
      config: props.config,
      livekitUrl: this.livekit.url,
      livekitApiSecret: this.livekit.apiSecret,
      mcpUrl: this.mcpServer.url,
      mcpTokenSecret: this.mcpServer.tokenSecret,
      redis: { ...props.data.redisEndpoint, authSecretArn: props.data.redisAuthSecret.secretArn },
      auditSealKey: props.auditSealKey,
      dataKey: props.dataKey,
      appKey: this.appKey,
    });

    new CfnOutput(this, 'LiveKitUrl', { value: this.livekit.url });
    new CfnOutput(this, 'McpServerUrl', { value: this.mcpServer.url });
    new CfnOutput(this, 'McpTokenSecretArn', { value: this.mcpServer.tokenSecret.secretArn });
  }
}
