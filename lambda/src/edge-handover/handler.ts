import { Logger } from '@aws-lambda-powertools/logger';
import { EC2Client } from '@aws-sdk/client-ec2';
import { SSMClient } from '@aws-sdk/client-ssm';
import { describeIssues } from '@voice-intake/contracts';
import type { CloudFormationCustomResourceEvent } from 'aws-lambda';
import { z } from 'zod';
import { type HandoverClients, type HandoverSpec, handoverStep } from './handover';

const logger = new Logger({ serviceName: 'edge-handover' });
const clients: HandoverClients = { ec2: new EC2Client({}), ssm: new SSMClient({}) };

const absolutePath = z.string().regex(/^\/[\w./-]+$/, 'must be an absolute path');
/** The custom resource's properties (CloudFormation passes numbers as strings). */
const propertiesSchema = z.object({
  AllocationId: z.string().regex(/^eipalloc-[0-9a-f]+$/, 'must be an EIP allocation id'),
  InstanceId: z.string().regex(/^i-[0-9a-f]+$/, 'must be an instance id'),
  DrainScript: absolutePath,
  DrainSeconds: z.coerce.number().int().min(0).max(2_100),
  ReadyScript: absolutePath,
  ReadySeconds: z.coerce.number().int().min(60).max(3_600),
});

export function specFrom(properties: unknown): HandoverSpec {
  const parsed = propertiesSchema.safeParse(properties);
  if (!parsed.success) throw new Error(`invalid edge handover properties: ${describeIssues(parsed.error.issues)}`);
  const p = parsed.data;
  return {
    allocationId: p.AllocationId,
    instanceId: p.InstanceId,
    drainScript: p.DrainScript,
    drainSeconds: p.DrainSeconds,
    readyScript: p.ReadyScript,
    readySeconds: p.ReadySeconds,
  };
}

type OnEventResult = { PhysicalResourceId: string; Data: { StartedAt: string } };

/** Starts a handover (CDK provider framework `onEvent`); `isComplete` does the work, polled. */
export async function onEvent(event: CloudFormationCustomResourceEvent): Promise<OnEventResult> {
  if (event.RequestType === 'Delete')
    return { PhysicalResourceId: event.PhysicalResourceId, Data: { StartedAt: new Date().toISOString() } };
  const spec = specFrom(event.ResourceProperties);
  return { PhysicalResourceId: spec.allocationId, Data: { StartedAt: new Date().toISOString() } };
}

type IsCompleteEvent = CloudFormationCustomResourceEvent & Partial<OnEventResult>;

/** Polled by the provider framework until it returns IsComplete (or its total timeout fails the deployment). */
export async function isComplete(event: IsCompleteEvent): Promise<{ IsComplete: boolean }> {
  // Deleting the resource leaves the EIP where it is: the instance or EIP being deleted ends the association.
  if (event.RequestType === 'Delete') return { IsComplete: true };
  const spec = specFrom(event.ResourceProperties);
  const startedAt = Date.parse(event.Data?.StartedAt ?? '') || Date.now();
  const step = await handoverStep(clients, spec, {
    firstAssociation: event.RequestType === 'Create',
    requestId: event.RequestId,
    startedAt,
  });
  if (step.done) logger.info('edge handover done', { outcome: step.outcome });
  else logger.info('edge handover waiting', { waitingFor: step.waitingFor });
  return { IsComplete: step.done };
}
