import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, type DescribeInstancesCommandInput, EC2Client } from '@aws-sdk/client-ec2';
import {
  DescribeContainerInstancesCommand,
  DescribeTasksCommand,
  ECSClient,
  ListTasksCommand,
} from '@aws-sdk/client-ecs';
import {
  DescribeInstanceInformationCommand,
  type DescribeInstanceInformationCommandInput,
  GetParameterCommand,
  InvalidInstanceId,
  ParameterNotFound,
  PutParameterCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { settingsFromEnv } from '../src/edge-sync/handler';
import { type EdgeSyncSettings, nodeScriptCommand, syncEdgeNodes } from '../src/edge-sync/sync';

const autoScaling = mockClient(AutoScalingClient);
const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const clients = { autoScaling: new AutoScalingClient({}), ec2: new EC2Client({}), ssm: new SSMClient({}) };

const settings: EdgeSyncSettings = {
  livekitAutoScalingGroup: 'livekit-hosts',
  edgeTag: { key: 'voice-intake:role', value: 'sip-edge' },
  stateParameter: '/voice-intake/edge/livekit-nodes',
  nodeScript: '/etc/voice-intake-edge/bin/edge-livekit-nodes.sh',
  sipPort: 5060,
  reapplyAfterMs: 10 * 60_000,
};

/**
 * The world the function looks at: LiveKit group members (id → address, state), edge hosts (with their SSM agent:
 * online unless told), the stored parameter.
 */
let livekit: { id: string; address: string; lifecycle?: string; health?: string }[];
let edgeHosts: { id: string; address: string; ssm?: 'ConnectionLost' | 'unregistered' }[];
let parameter: string | undefined;
let commandIds: number;

beforeEach(() => {
  autoScaling.reset();
  ec2.reset();
  ssm.reset();
  livekit = [
    { id: 'i-lk2', address: '10.0.2.20' },
    { id: 'i-lk1', address: '10.0.1.10' },
  ];
  edgeHosts = [
    { id: 'i-edge-b', address: '10.0.0.12' },
    { id: 'i-edge-a', address: '10.0.0.11' },
  ];
  parameter = undefined;
  commandIds = 0;
  autoScaling.on(DescribeAutoScalingGroupsCommand).callsFake(({ AutoScalingGroupNames }) => ({
    AutoScalingGroups:
      AutoScalingGroupNames?.[0] === settings.livekitAutoScalingGroup
        ? [
            {
              AutoScalingGroupName: settings.livekitAutoScalingGroup,
              Instances: livekit.map((node) => ({
                InstanceId: node.id,
                LifecycleState: node.lifecycle ?? 'InService',
                HealthStatus: node.health ?? 'Healthy',
              })),
            },
          ]
        : [],
  }));
  ec2.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) => {
    const byTag = input.Filters?.some((filter) => filter.Name === `tag:${settings.edgeTag.key}`);
    const pool = byTag ? edgeHosts : livekit.filter((node) => input.InstanceIds?.includes(node.id));
    return {
      Reservations: [
        { Instances: pool.map((instance) => ({ InstanceId: instance.id, PrivateIpAddress: instance.address })) },
      ],
    };
  });
  ssm.on(GetParameterCommand).callsFake(() => {
    if (parameter === undefined) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    return { Parameter: { Value: parameter } };
  });
  ssm.on(PutParameterCommand).callsFake(({ Value }) => {
    parameter = Value;
    return {};
  });
  ssm.on(DescribeInstanceInformationCommand).callsFake((input: DescribeInstanceInformationCommandInput) => {
    const ids = input.Filters?.find((filter) => filter.Key === 'InstanceIds')?.Values ?? [];
    return {
      InstanceInformationList: edgeHosts
        .filter((host) => ids.includes(host.id) && host.ssm !== 'unregistered')
        .map((host) => ({ InstanceId: host.id, PingStatus: host.ssm ?? 'Online' })),
    };
  });
  // As SSM does: one instance not registered with it refuses the whole command.
  ssm.on(SendCommandCommand).callsFake(({ InstanceIds }) => {
    const unregistered = edgeHosts.filter((host) => InstanceIds?.includes(host.id) && host.ssm === 'unregistered');
    if (unregistered.length > 0)
      throw new InvalidInstanceId({
        message: `Instances [[${unregistered.map((host) => host.id).join(', ')}]] not in a valid state for account`,
        $metadata: {},
      });
    return { Command: { CommandId: `cmd-${++commandIds}` } };
  });
});

const sentCommands = () => ssm.commandCalls(SendCommandCommand).map((call) => call.args[0].input);
const at = (minutes: number) => new Date(Date.UTC(2026, 10, 24, 12, minutes));

describe('edge node sync', () => {
  it('sends every edge host the in-service LiveKit addresses, then remembers what it sent', async () => {
    livekit.push(
      { id: 'i-lk3', address: '10.0.3.30', lifecycle: 'Pending' },
      { id: 'i-lk4', address: '10.0.4.40', health: 'Unhealthy' },
    );
    const outcome = await syncEdgeNodes(clients, settings, at(0));
    expect(outcome).toMatchObject({
      action: 'sent',
      reason: 'first sync',
      nodes: ['10.0.1.10', '10.0.2.20'],
      edgeHosts: ['i-edge-a', 'i-edge-b'],
    });
    expect(sentCommands()).toEqual([
      expect.objectContaining({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: ['i-edge-a', 'i-edge-b'],
        Parameters: { commands: ['/etc/voice-intake-edge/bin/edge-livekit-nodes.sh 10.0.1.10:5060 10.0.2.20:5060'] },
      }),
    ]);
    expect(JSON.parse(parameter!)).toEqual({
      nodes: ['10.0.1.10', '10.0.2.20'],
      draining: [],
      edgeHosts: ['i-edge-a', 'i-edge-b'],
      commandId: 'cmd-1',
      appliedAt: at(0).toISOString(),
    });
  });

  it('does nothing while nothing changed, and re-applies after the interval', async () => {
    await syncEdgeNodes(clients, settings, at(0));
    expect(await syncEdgeNodes(clients, settings, at(1))).toMatchObject({ action: 'unchanged' });
    expect(await syncEdgeNodes(clients, settings, at(9))).toMatchObject({ action: 'unchanged' });
    expect(await syncEdgeNodes(clients, settings, at(10))).toMatchObject({
      action: 'sent',
      reason: 're-apply interval elapsed',
    });
    expect(sentCommands()).toHaveLength(2);
  });

  it('sends again when a LiveKit host comes or goes, or an edge host is replaced', async () => {
    await syncEdgeNodes(clients, settings, at(0));
    livekit = livekit.filter((node) => node.id !== 'i-lk1');
    expect(await syncEdgeNodes(clients, settings, at(1))).toMatchObject({
      action: 'sent',
      reason: 'LiveKit nodes changed: [10.0.1.10, 10.0.2.20] → [10.0.2.20]',
    });
    expect(sentCommands()[1].Parameters).toEqual({
      commands: ['/etc/voice-intake-edge/bin/edge-livekit-nodes.sh 10.0.2.20:5060'],
    });

    edgeHosts[0] = { id: 'i-edge-c', address: '10.0.0.13' };
    expect(await syncEdgeNodes(clients, settings, at(2))).toMatchObject({
      action: 'sent',
      reason: expect.stringContaining('edge hosts changed'),
    });
    expect(sentCommands()[2].InstanceIds).toEqual(['i-edge-a', 'i-edge-c']);
  });

  it('sends an empty list when no LiveKit host is in service (the edge answers 503), and nothing without edge hosts', async () => {
    livekit = [];
    expect(await syncEdgeNodes(clients, settings, at(0))).toMatchObject({ action: 'sent', nodes: [] });
    expect(sentCommands()[0].Parameters).toEqual({ commands: ['/etc/voice-intake-edge/bin/edge-livekit-nodes.sh'] });
    edgeHosts = [];
    expect(await syncEdgeNodes(clients, settings, at(20))).toEqual({
      action: 'no-edge-hosts',
      nodes: [],
      draining: [],
    });
    expect(sentCommands()).toHaveLength(1);
  });

  it('updates the hosts SSM reaches while a new one still boots, and that one as soon as it is online', async () => {
    edgeHosts.push(
      { id: 'i-edge-c', address: '10.0.0.13', ssm: 'unregistered' },
      { id: 'i-edge-d', address: '10.0.0.14', ssm: 'ConnectionLost' },
    );
    expect(await syncEdgeNodes(clients, settings, at(0))).toMatchObject({
      action: 'sent',
      edgeHosts: ['i-edge-a', 'i-edge-b'],
      unreachableEdgeHosts: ['i-edge-c', 'i-edge-d'],
    });
    expect(sentCommands()[0].InstanceIds).toEqual(['i-edge-a', 'i-edge-b']);
    expect(JSON.parse(parameter!).edgeHosts).toEqual(['i-edge-a', 'i-edge-b']);
    expect(await syncEdgeNodes(clients, settings, at(1))).toMatchObject({ action: 'unchanged' });

    edgeHosts[2].ssm = undefined; // registered and online
    expect(await syncEdgeNodes(clients, settings, at(2))).toMatchObject({
      action: 'sent',
      reason: 'edge hosts changed: [i-edge-a, i-edge-b] → [i-edge-a, i-edge-b, i-edge-c]',
      unreachableEdgeHosts: ['i-edge-d'],
    });
    expect(sentCommands()[1].InstanceIds).toEqual(['i-edge-a', 'i-edge-b', 'i-edge-c']);

    for (const host of edgeHosts) host.ssm = 'unregistered';
    expect(await syncEdgeNodes(clients, settings, at(3))).toMatchObject({
      action: 'no-edge-hosts',
      unreachableEdgeHosts: ['i-edge-a', 'i-edge-b', 'i-edge-c', 'i-edge-d'],
    });
    expect(sentCommands()).toHaveLength(2);
  });

  it('keeps the state untouched when the command cannot be sent, so the next run tries again', async () => {
    ssm
      .on(SendCommandCommand)
      .rejects(Object.assign(new Error('Instances not in a valid state for account'), { name: 'InvalidInstanceId' }));
    await expect(syncEdgeNodes(clients, settings, at(0))).rejects.toThrow(/valid state/);
    expect(parameter).toBeUndefined();
  });

  it('starts over from an unreadable state parameter, and fails clearly for an unknown group', async () => {
    parameter = '{"nodes":"garbage"}';
    expect(await syncEdgeNodes(clients, settings, at(0))).toMatchObject({ action: 'sent', reason: 'first sync' });
    await expect(syncEdgeNodes(clients, { ...settings, livekitAutoScalingGroup: 'missing' }, at(1))).rejects.toThrow(
      /Auto Scaling group missing not found/,
    );
  });

  it('never puts anything but addresses on the command line', () => {
    expect(() => nodeScriptCommand('/x.sh', ['10.0.0.1; reboot'], 5060)).toThrow(/not an IPv4 address/);
    expect(() => nodeScriptCommand('/x.sh', ['10.0.0.1'], 5060, ["10.0.0.2'; reboot; '"])).toThrow(
      /not an IPv4 address/,
    );
    expect(nodeScriptCommand('/x.sh', ['10.0.0.1'], 5060, ['10.0.0.2', '10.0.0.3'])).toBe(
      "/x.sh 10.0.0.1:5060 '~10.0.0.2:5060' '~10.0.0.3:5060'",
    );
  });

  it('reads a state written before draining nodes existed as none draining', async () => {
    parameter = JSON.stringify({
      nodes: ['10.0.1.10', '10.0.2.20'],
      edgeHosts: ['i-edge-a', 'i-edge-b'],
      commandId: 'cmd-0',
      appliedAt: at(0).toISOString(),
    });
    expect(await syncEdgeNodes(clients, settings, at(1))).toMatchObject({ action: 'unchanged', draining: [] });
  });

  it('reads its settings from the environment, naming a bad variable', () => {
    const env = {
      LIVEKIT_ASG_NAME: 'livekit-hosts',
      EDGE_TAG_KEY: 'voice-intake:role',
      EDGE_TAG_VALUE: 'sip-edge',
      STATE_PARAMETER: '/voice-intake/edge/livekit-nodes',
      NODE_SCRIPT: '/etc/voice-intake-edge/bin/edge-livekit-nodes.sh',
      SIP_PORT: '5060',
    };
    expect(settingsFromEnv(env)).toEqual(settings);
    expect(() => settingsFromEnv({ ...env, SIP_PORT: 'five' })).toThrow(/SIP_PORT/);
  });
});

describe('edge node sync with the LiveKit ECS service', () => {
  const ecs = mockClient(ECSClient);
  const withEcs = { ...clients, ecs: new ECSClient({}) };
  const service = { cluster: 'voice-intake-cluster', service: 'livekit' };
  /** LiveKit tasks: host → (last status, desired status); `id` tells two tasks on one host apart. */
  let tasks: { host: string; lastStatus: string; desiredStatus: string; id?: string }[];
  const arnOf = (task: (typeof tasks)[number]) => `task/${task.host}${task.id ?? ''}`;

  beforeEach(() => {
    ecs.reset();
    tasks = [
      { host: 'i-lk1', lastStatus: 'RUNNING', desiredStatus: 'RUNNING' },
      { host: 'i-lk2', lastStatus: 'RUNNING', desiredStatus: 'RUNNING' },
    ];
    ecs.on(ListTasksCommand).callsFake((input) => {
      expect(input).toMatchObject({ cluster: service.cluster, serviceName: service.service });
      return { taskArns: tasks.filter((task) => task.desiredStatus === input.desiredStatus).map(arnOf) };
    });
    ecs.on(DescribeTasksCommand).callsFake((input) => ({
      tasks: tasks
        .filter((task) => input.tasks.includes(arnOf(task)))
        .map((task) => ({ ...task, containerInstanceArn: `ci/${task.host}` })),
    }));
    ecs.on(DescribeContainerInstancesCommand).callsFake((input) => ({
      containerInstances: input.containerInstances.map((arn: string) => ({
        containerInstanceArn: arn,
        ec2InstanceId: arn.slice(3),
      })),
    }));
  });

  it('lists a host as draining while ECS stops its LiveKit task (an upgrade), and as a node again once replaced', async () => {
    const settingsWithService = { ...settings, livekitService: service };
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(0))).toMatchObject({
      nodes: ['10.0.1.10', '10.0.2.20'],
      draining: [],
    });

    // ECS is replacing i-lk1's task: still running (finishing its calls) but desired STOPPED.
    tasks[0].desiredStatus = 'STOPPED';
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(1))).toMatchObject({
      action: 'sent',
      reason: 'LiveKit nodes changed: [10.0.1.10, 10.0.2.20] → [10.0.2.20]',
      nodes: ['10.0.2.20'],
      draining: ['10.0.1.10'],
    });
    expect(sentCommands().at(-1)?.Parameters?.commands).toEqual([
      `${settings.nodeScript} 10.0.2.20:5060 '~10.0.1.10:5060'`,
    ]);
    expect(JSON.parse(parameter!)).toMatchObject({ nodes: ['10.0.2.20'], draining: ['10.0.1.10'] });

    // The old task is gone (listed STOPPED for a while: no longer a node at all), the new one starting: not yet one.
    tasks[0] = { host: 'i-lk1', lastStatus: 'STOPPED', desiredStatus: 'STOPPED' };
    tasks.push({ host: 'i-lk1', lastStatus: 'PENDING', desiredStatus: 'RUNNING', id: '-new' });
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(2))).toMatchObject({
      action: 'sent',
      reason: 'draining LiveKit nodes changed: [10.0.1.10] → []',
      nodes: ['10.0.2.20'],
      draining: [],
    });
    expect(sentCommands().at(-1)?.Parameters?.commands).toEqual([`${settings.nodeScript} 10.0.2.20:5060`]);
    tasks[2].lastStatus = 'RUNNING';
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(3))).toMatchObject({
      action: 'sent',
      nodes: ['10.0.1.10', '10.0.2.20'],
      draining: [],
    });
  });

  it('keeps a host draining while its stopping task deactivates and LiveKit finishes its calls after SIGTERM', async () => {
    const settingsWithService = { ...settings, livekitService: service };
    tasks[0] = { host: 'i-lk1', lastStatus: 'DEACTIVATING', desiredStatus: 'STOPPED' };
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(0))).toMatchObject({
      nodes: ['10.0.2.20'],
      draining: ['10.0.1.10'],
    });
    tasks[0].lastStatus = 'STOPPING';
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(1))).toMatchObject({
      nodes: ['10.0.2.20'],
      draining: ['10.0.1.10'],
    });
    // Its containers have exited: no longer listed at all.
    tasks[0].lastStatus = 'DEPROVISIONING';
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(2))).toMatchObject({
      nodes: ['10.0.2.20'],
      draining: [],
    });
  });

  it('keeps a draining host listed while its instance leaves the group, and never a serving host as draining', async () => {
    const settingsWithService = { ...settings, livekitService: service };
    // Scale-in: the instance waits in Terminating:Wait while its task finishes its calls.
    livekit[1].lifecycle = 'Terminating:Wait';
    tasks[0].desiredStatus = 'STOPPED';
    // A replacement task already serves on i-lk2 next to its stopping one: i-lk2 serves.
    tasks.push({ host: 'i-lk2', lastStatus: 'RUNNING', desiredStatus: 'STOPPED', id: '-old' });
    livekit.push({ id: 'i-lk3', address: '10.0.3.30' });
    tasks.push({ host: 'i-lk3', lastStatus: 'RUNNING', desiredStatus: 'RUNNING' });
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(0))).toMatchObject({
      nodes: ['10.0.2.20', '10.0.3.30'],
      draining: ['10.0.1.10'],
    });
  });

  it('drains a host whose task still runs while its instance is unhealthy or in Standby: its calls can still end', async () => {
    const settingsWithService = { ...settings, livekitService: service };
    livekit[0].health = 'Unhealthy'; // i-lk2
    livekit.push({ id: 'i-lk3', address: '10.0.3.30', lifecycle: 'Standby' });
    tasks.push({ host: 'i-lk3', lastStatus: 'RUNNING', desiredStatus: 'RUNNING' });
    // In service and healthy but no LiveKit task at all: neither a node nor draining.
    livekit.push({ id: 'i-lk4', address: '10.0.4.40' });
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(0))).toMatchObject({
      nodes: ['10.0.1.10'],
      draining: ['10.0.2.20', '10.0.3.30'],
    });
    expect(sentCommands().at(-1)?.Parameters?.commands).toEqual([
      `${settings.nodeScript} 10.0.1.10:5060 '~10.0.2.20:5060' '~10.0.3.30:5060'`,
    ]);
    // Healthy again: a node again.
    livekit[0].health = 'Healthy';
    expect(await syncEdgeNodes(withEcs, settingsWithService, at(1))).toMatchObject({
      nodes: ['10.0.1.10', '10.0.2.20'],
      draining: ['10.0.3.30'],
    });
  });

  it('reads the service from the environment', () => {
    const env = {
      LIVEKIT_ASG_NAME: 'g',
      EDGE_TAG_KEY: 'k',
      EDGE_TAG_VALUE: 'v',
      STATE_PARAMETER: '/a/b',
      NODE_SCRIPT: '/x/y.sh',
      SIP_PORT: '5060',
    };
    expect(settingsFromEnv(env).livekitService).toBeUndefined();
    expect(settingsFromEnv({ ...env, LIVEKIT_ECS_CLUSTER: 'c', LIVEKIT_ECS_SERVICE: 's' }).livekitService).toEqual({
      cluster: 'c',
      service: 's',
    });
  });
});
