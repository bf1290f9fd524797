import { Logger } from '@aws-lambda-powertools/logger';
import { AutoScalingClient } from '@aws-sdk/client-auto-scaling';
import { EC2Client } from '@aws-sdk/client-ec2';
import { ECSClient } from '@aws-sdk/client-ecs';
import { SSMClient } from '@aws-sdk/client-ssm';
import { parseEnvironment } from '@voice-intake/contracts';
import { z } from 'zod';
import { type EdgeSyncSettings, syncEdgeNodes } from './sync';

const logger = new Logger({ serviceName: 'edge-node-sync' });
const clients = {
  autoScaling: new AutoScalingClient({}),
  ec2: new EC2Client({}),
  ssm: new SSMClient({}),
  ecs: new ECSClient({}),
};

const envSchema = z.object({
  LIVEKIT_ASG_NAME: z.string().min(1),
  EDGE_TAG_KEY: z.string().min(1),
  EDGE_TAG_VALUE: z.string().min(1),
  STATE_PARAMETER: z.string().regex(/^\/[\w./-]+$/, 'must be an SSM parameter path'),
  NODE_SCRIPT: z.string().regex(/^\/[\w./-]+$/, 'must be an absolute path'),
  SIP_PORT: z.coerce.number().int().min(1).max(65535),
  REAPPLY_AFTER_MINUTES: z.coerce.number().int().min(1).max(1440).default(10),
  /** The LiveKit ECS service (cluster and service name): hosts whose LiveKit task is being stopped leave the list. */
  LIVEKIT_ECS_CLUSTER: z.string().min(1).optional(),
  LIVEKIT_ECS_SERVICE: z.string().min(1).optional(),
});

export function settingsFromEnv(env: NodeJS.ProcessEnv): EdgeSyncSettings {
  const values = parseEnvironment(envSchema, env, 'edge node sync environment');
  return {
    livekitAutoScalingGroup: values.LIVEKIT_ASG_NAME,
    edgeTag: { key: values.EDGE_TAG_KEY, value: values.EDGE_TAG_VALUE },
    stateParameter: values.STATE_PARAMETER,
    nodeScript: values.NODE_SCRIPT,
    sipPort: values.SIP_PORT,
    reapplyAfterMs: values.REAPPLY_AFTER_MINUTES * 60_000,
    ...(values.LIVEKIT_ECS_CLUSTER && values.LIVEKIT_ECS_SERVICE
      ? { livekitService: { cluster: values.LIVEKIT_ECS_CLUSTER, service: values.LIVEKIT_ECS_SERVICE } }
      : {}),
  };
}

/** Runs every minute and on the LiveKit group's launch/terminate events; the event itself carries nothing we need. */
export async function handler(): Promise<void> {
  const outcome = await syncEdgeNodes(clients, settingsFromEnv(process.env));
  if (outcome.unreachableEdgeHosts)
    logger.warn('edge hosts SSM cannot reach left out of the node list update', {
      unreachableEdgeHosts: outcome.unreachableEdgeHosts,
    });
  if (outcome.action === 'sent') logger.info('LiveKit node list sent to the edge', { ...outcome });
  else if (outcome.action === 'no-edge-hosts') logger.warn('no running edge host to update', { nodes: outcome.nodes });
  else logger.debug('edge node list up to date', { ...outcome });
}
