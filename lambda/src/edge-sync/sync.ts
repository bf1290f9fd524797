import { type AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, type EC2Client, type Filter } from '@aws-sdk/client-ec2';
import {
  DescribeContainerInstancesCommand,
  DescribeTasksCommand,
  type DesiredStatus,
  type ECSClient,
  ListTasksCommand,
} from '@aws-sdk/client-ecs';
import {
  DescribeInstanceInformationCommand,
  GetParameterCommand,
  ParameterNotFound,
  PutParameterCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';
import { z } from 'zod';

/**
 * Keeps every SIP edge host's LiveKit node list (Kamailio's dispatcher set) equal to the LiveKit hosts that are in
 * service: the hosts live in an Auto Scaling group, so their addresses change; the edge hosts cannot resolve them by
 * themselves. Each run compares the current LiveKit addresses and edge hosts with what was last applied (an SSM
 * parameter) and sends the edge hosts' node script through SSM Run Command only when something changed — or when the
 * last application is older than the re-apply interval, so a host that missed a command catches up.
 */
export interface EdgeSyncSettings {
  livekitAutoScalingGroup: string;
  /** The edge hosts' tag. */
  edgeTag: { key: string; value: string };
  /** Where the last applied state is kept. */
  stateParameter: string;
  /** The node script on the edge hosts (edge-livekit-nodes.sh). */
  nodeScript: string;
  /** LiveKit SIP's port on the nodes. */
  sipPort: number;
  /** Re-send even without a change after this long. */
  reapplyAfterMs: number;
  /**
   * The LiveKit ECS service: a host takes new calls only while its LiveKit task runs and is not being stopped. A node
   * ECS is replacing (an upgrade) stays on the edge's list as draining while its task still runs: it gets no new call,
   * but its calls in progress can still be hung up from either side.
   */
  livekitService?: { cluster: string; service: string };
}

export interface EdgeSyncClients {
  autoScaling: AutoScalingClient;
  ec2: EC2Client;
  ssm: SSMClient;
  ecs?: ECSClient;
}

const appliedStateSchema = z.object({
  nodes: z.array(z.string()),
  /** Listed but never chosen for a new call (a state written before draining existed has none). */
  draining: z.array(z.string()).default([]),
  edgeHosts: z.array(z.string()),
  commandId: z.string(),
  appliedAt: z.iso.datetime(),
});
export type AppliedState = z.infer<typeof appliedStateSchema>;

/** Running edge hosts left out because SSM cannot reach them yet (still booting) or any more: named when any. */
type Unreachable = { unreachableEdgeHosts?: string[] };
export type SyncOutcome = Unreachable &
  (
    | { action: 'unchanged'; nodes: string[]; draining: string[]; edgeHosts: string[] }
    | { action: 'sent'; reason: string; nodes: string[]; draining: string[]; edgeHosts: string[]; commandId: string }
    | { action: 'no-edge-hosts'; nodes: string[]; draining: string[] }
  );

/** The LiveKit nodes: those taking new calls, and those draining (their task is being stopped), addresses sorted. */
export interface LiveKitNodes {
  nodes: string[];
  draining: string[];
}

async function taskArnsOf(ecs: ECSClient, service: { cluster: string; service: string }, desired: DesiredStatus) {
  const taskArns: string[] = [];
  let nextToken: string | undefined;
  do {
    const page = await ecs.send(
      new ListTasksCommand({
        cluster: service.cluster,
        serviceName: service.service,
        desiredStatus: desired,
        nextToken,
      }),
    );
    taskArns.push(...(page.taskArns ?? []));
    nextToken = page.nextToken;
  } while (nextToken);
  return taskArns;
}

/**
 * Last statuses of a task ECS is stopping whose containers still run: DEACTIVATING comes before the stop, and in
 * STOPPING the containers have had SIGTERM and LiveKit SIP finishes its calls until they exit (up to the agent's stop
 * timeout). From DEPROVISIONING on the containers are gone.
 */
const STILL_RUNNING_WHILE_STOPPED = new Set(['RUNNING', 'DEACTIVATING', 'STOPPING']);

/**
 * EC2 instances that run a task of `service`: serving (running and meant to keep running), or draining (still
 * running, but ECS is stopping it — a deployment, a drain — with desired status STOPPED while its calls finish). A
 * host with a serving task counts as serving whatever else it runs.
 */
export async function hostsServing(
  ecs: ECSClient,
  service: { cluster: string; service: string },
): Promise<{ serving: Set<string>; draining: Set<string> }> {
  // Tasks desired STOPPED include those already stopped (listed for a while): only those still running count.
  const taskArns = (
    await Promise.all([taskArnsOf(ecs, service, 'RUNNING'), taskArnsOf(ecs, service, 'STOPPED')])
  ).flat();
  const byContainerInstance = new Map<string, 'serving' | 'draining'>();
  for (let start = 0; start < taskArns.length; start += 100) {
    const batch = taskArns.slice(start, start + 100);
    const { tasks = [] } = await ecs.send(new DescribeTasksCommand({ cluster: service.cluster, tasks: batch }));
    for (const task of tasks) {
      if (!task.containerInstanceArn) continue;
      if (task.desiredStatus === 'RUNNING' && task.lastStatus === 'RUNNING')
        byContainerInstance.set(task.containerInstanceArn, 'serving');
      else if (
        task.desiredStatus === 'STOPPED' &&
        STILL_RUNNING_WHILE_STOPPED.has(task.lastStatus ?? '') &&
        !byContainerInstance.has(task.containerInstanceArn)
      )
        byContainerInstance.set(task.containerInstanceArn, 'draining');
    }
  }
  const serving = new Set<string>();
  const draining = new Set<string>();
  const arns = [...byContainerInstance.keys()];
  for (let start = 0; start < arns.length; start += 100) {
    const batch = arns.slice(start, start + 100);
    const page = await ecs.send(
      new DescribeContainerInstancesCommand({ cluster: service.cluster, containerInstances: batch }),
    );
    for (const instance of page.containerInstances ?? []) {
      if (!instance.ec2InstanceId || !instance.containerInstanceArn) continue;
      const role = byContainerInstance.get(instance.containerInstanceArn);
      (role === 'serving' ? serving : draining).add(instance.ec2InstanceId);
    }
  }
  for (const host of serving) draining.delete(host);
  return { serving, draining };
}

/**
 * Private addresses of the group's instances that are in service and healthy (and, given the LiveKit service, run a
 * LiveKit task that is not being stopped), sorted; given the service, also the draining ones: any running instance
 * of the group (a scale-in waits in Terminating:Wait) whose LiveKit task is being stopped, or whose task still runs
 * while the instance is not in service and healthy (marked unhealthy, in Standby, leaving the group): it takes no new
 * call, but the calls it holds can still be hung up through the edge.
 */
export async function livekitNodeAddresses(
  clients: EdgeSyncClients,
  groupName: string,
  livekitService?: EdgeSyncSettings['livekitService'],
): Promise<LiveKitNodes> {
  const { AutoScalingGroups = [] } = await clients.autoScaling.send(
    new DescribeAutoScalingGroupsCommand({ AutoScalingGroupNames: [groupName] }),
  );
  const group = AutoScalingGroups[0];
  if (!group) throw new Error(`Auto Scaling group ${groupName} not found`);
  const members = (group.Instances ?? []).filter((instance) => instance.InstanceId);
  const ids = members
    .filter((instance) => instance.LifecycleState === 'InService' && instance.HealthStatus === 'Healthy')
    .map((instance) => instance.InstanceId!);
  const addresses = async (chosen: string[]) =>
    chosen.length === 0 ? [] : (await describeRunning(clients, [], chosen)).map(({ address }) => address).sort();
  if (livekitService) {
    if (!clients.ecs) throw new Error('an ECS client is needed to check the LiveKit tasks');
    const { serving, draining } = await hostsServing(clients.ecs, livekitService);
    const nodes = await addresses(ids.filter((id) => serving.has(id)));
    const eligible = new Set(ids);
    const drainingIds = members
      .map((instance) => instance.InstanceId!)
      .filter((id) => draining.has(id) || (serving.has(id) && !eligible.has(id)));
    return { nodes, draining: await addresses(drainingIds) };
  }
  return { nodes: await addresses(ids), draining: [] };
}

/** The edge hosts (running, by tag): their instance ids, sorted. */
export async function edgeHostIds(clients: EdgeSyncClients, tag: { key: string; value: string }): Promise<string[]> {
  return (await describeRunning(clients, [{ Name: `tag:${tag.key}`, Values: [tag.value] }])).map(({ id }) => id).sort();
}

/**
 * Of `ids`, those whose SSM agent is online. Run Command refuses a whole request that names one instance not
 * registered with SSM (InvalidInstanceId), so a replacement host still booting would keep every other edge host from
 * getting its list.
 */
async function ssmOnline(clients: EdgeSyncClients, ids: string[]): Promise<Set<string>> {
  const online = new Set<string>();
  // The InstanceIds filter takes at most 50 values.
  for (let start = 0; start < ids.length; start += 50) {
    let NextToken: string | undefined;
    do {
      const page = await clients.ssm.send(
        new DescribeInstanceInformationCommand({
          Filters: [{ Key: 'InstanceIds', Values: ids.slice(start, start + 50) }],
          NextToken,
        }),
      );
      for (const info of page.InstanceInformationList ?? [])
        if (info.InstanceId && info.PingStatus === 'Online') online.add(info.InstanceId);
      NextToken = page.NextToken;
    } while (NextToken);
  }
  return online;
}

async function describeRunning(
  clients: EdgeSyncClients,
  filters: Filter[],
  ids?: string[],
): Promise<{ id: string; address: string }[]> {
  const found: { id: string; address: string }[] = [];
  let NextToken: string | undefined;
  do {
    const page = await clients.ec2.send(
      new DescribeInstancesCommand({
        InstanceIds: ids,
        Filters: [...filters, { Name: 'instance-state-name', Values: ['running'] }],
        NextToken,
      }),
    );
    for (const reservation of page.Reservations ?? []) {
      for (const instance of reservation.Instances ?? []) {
        if (instance.InstanceId && instance.PrivateIpAddress)
          found.push({ id: instance.InstanceId, address: instance.PrivateIpAddress });
      }
    }
    NextToken = page.NextToken;
  } while (NextToken);
  return found;
}

async function readState(clients: EdgeSyncClients, name: string): Promise<AppliedState | undefined> {
  try {
    const { Parameter } = await clients.ssm.send(new GetParameterCommand({ Name: name }));
    const parsed = appliedStateSchema.safeParse(JSON.parse(Parameter?.Value ?? 'null'));
    return parsed.success ? parsed.data : undefined; // unreadable: treat as never applied
  } catch (error) {
    if (error instanceof ParameterNotFound || (error as Error).name === 'ParameterNotFound') return undefined;
    throw error;
  }
}

const sameList = (a: readonly string[], b: readonly string[]) =>
  a.length === b.length && a.every((value, index) => value === b[index]);

/** Why the edge hosts need the list again, or undefined when they have it. */
export function changeReason(
  previous: AppliedState | undefined,
  { nodes, draining }: LiveKitNodes,
  edgeHosts: string[],
  now: Date,
  reapplyAfterMs: number,
): string | undefined {
  if (!previous) return 'first sync';
  if (!sameList(previous.nodes, nodes))
    return `LiveKit nodes changed: [${previous.nodes.join(', ')}] → [${nodes.join(', ')}]`;
  if (!sameList(previous.draining, draining))
    return `draining LiveKit nodes changed: [${previous.draining.join(', ')}] → [${draining.join(', ')}]`;
  if (!sameList(previous.edgeHosts, edgeHosts))
    return `edge hosts changed: [${previous.edgeHosts.join(', ')}] → [${edgeHosts.join(', ')}]`;
  if (now.getTime() - Date.parse(previous.appliedAt) >= reapplyAfterMs) return 're-apply interval elapsed';
  return undefined;
}

/**
 * The command the edge hosts run: the node script with one `address:port` argument per LiveKit node, and one
 * `'~address:port'` per draining node (quoted: a leading ~ is the shell's home directory expansion).
 */
export function nodeScriptCommand(script: string, nodes: string[], sipPort: number, draining: string[] = []): string {
  for (const node of [...nodes, ...draining])
    if (!/^(\d{1,3}\.){3}\d{1,3}$/.test(node)) throw new Error(`not an IPv4 address: ${node}`);
  return [
    script,
    ...nodes.map((node) => `${node}:${sipPort}`),
    ...draining.map((node) => `'~${node}:${sipPort}'`),
  ].join(' ');
}

export async function syncEdgeNodes(
  clients: EdgeSyncClients,
  settings: EdgeSyncSettings,
  now = new Date(),
): Promise<SyncOutcome> {
  const [{ nodes, draining }, runningEdgeHosts, previous] = await Promise.all([
    livekitNodeAddresses(clients, settings.livekitAutoScalingGroup, settings.livekitService),
    edgeHostIds(clients, settings.edgeTag),
    readState(clients, settings.stateParameter),
  ]);
  // Only hosts SSM can reach get the list, and only they are recorded as having it: one that comes online later is
  // an edge host change, so it gets the list on the next run.
  const online = runningEdgeHosts.length === 0 ? new Set<string>() : await ssmOnline(clients, runningEdgeHosts);
  const edgeHosts = runningEdgeHosts.filter((id) => online.has(id));
  const unreachable = runningEdgeHosts.filter((id) => !online.has(id));
  const noted: Unreachable = unreachable.length > 0 ? { unreachableEdgeHosts: unreachable } : {};
  if (edgeHosts.length === 0) return { action: 'no-edge-hosts', nodes, draining, ...noted };
  const reason = changeReason(previous, { nodes, draining }, edgeHosts, now, settings.reapplyAfterMs);
  if (!reason) return { action: 'unchanged', nodes, draining, edgeHosts, ...noted };

  const { Command } = await clients.ssm.send(
    new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: edgeHosts,
      Comment: 'voice-intake: LiveKit SIP node list for the edge',
      TimeoutSeconds: 60,
      Parameters: { commands: [nodeScriptCommand(settings.nodeScript, nodes, settings.sipPort, draining)] },
    }),
  );
  const commandId = Command?.CommandId ?? 'unknown';
  const state: AppliedState = { nodes, draining, edgeHosts, commandId, appliedAt: now.toISOString() };
  await clients.ssm.send(
    new PutParameterCommand({
      Name: settings.stateParameter,
      Value: JSON.stringify(state),
      Type: 'String',
      Overwrite: true,
    }),
  );
  return { action: 'sent', reason, nodes, draining, edgeHosts, commandId, ...noted };
}
