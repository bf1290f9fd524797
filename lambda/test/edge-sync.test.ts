import { AutoScalingClient, DescribeAutoScalingGroupsCommand } from '@aws-sdk/client-auto-scaling';
import { DescribeInstancesCommand, type DescribeInstancesCommandInput, EC2Client } from '@aws-sdk/client-ec2';
import { GetParameterCommand, ParameterNotFound, PutParameterCommand, SendCommandCommand, SSMClient } from '@aws-sdk/client-ssm';
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

/** The world the function looks at: LiveKit group members (id → address, state), edge hosts, the stored parameter. */
let livekit: { id: string; address: string; lifecycle?: string; health?: string }[];
let edgeHosts: { id: string; address: string }[];
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
    AutoScalingGroups: AutoScalingGroupNames?.[0] === settings.livekitAutoScalingGroup
      ? [{ AutoScalingGroupName: settings.livekitAutoScalingGroup, Instances: livekit.map((node) => ({ InstanceId: node.id, LifecycleState: node.lifecycle ?? 'InService', HealthStatus: node.health ?? 'Healthy' })) }]
      : [],
  }));
  ec2.on(DescribeInstancesCommand).callsFake((input: DescribeInstancesCommandInput) => {
    const byTag = input.Filters?.some((filter) => filter.Name === `tag:${settings.edgeTag.key}`);
    const pool = byTag ? edgeHosts : livekit.filter((node) => input.InstanceIds?.includes(node.id));
    return { Reservations: [{ Instances: pool.map((instance) => ({ InstanceId: instance.id, PrivateIpAddress: instance.address })) }] };
  });
  ssm.on(GetParameterCommand).callsFake(() => {
    if (parameter === undefined) throw new ParameterNotFound({ message: 'not found', $metadata: {} });
    return { Parameter: { Value: parameter } };
  });
  ssm.on(PutParameterCommand).callsFake(({ Value }) => {
    parameter = Value;
    return {};
  });
  ssm.on(SendCommandCommand).callsFake(() => ({ Command: { CommandId: `cmd-${++commandIds}` } }));
});

const sentCommands = () => ssm.commandCalls(SendCommandCommand).map((call) => call.args[0].input);
const at = (minutes: number) => new Date(Date.UTC(2026, 10, 24, 12, minutes));

describe('edge node sync', () => {
  it('sends every edge host the in-service LiveKit addresses, then remembers what it sent', async () => {
    livekit.push({ id: 'i-lk3', address: '10.0.3.30', lifecycle: 'Pending' }, { id: 'i-lk4', address: '10.0.4.40', health: 'Unhealthy' });
    const outcome = await syncEdgeNodes(clients, settings, at(0));
    expect(outcome).toMatchObject({ action: 'sent', reason: 'first sync', nodes: ['10.0.1.10', '10.0.2.20'], edgeHosts: ['i-edge-a', 'i-edge-b'] });
    expect(sentCommands()).toEqual([
      expect.objectContaining({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: ['i-edge-a', 'i-edge-b'],
        Parameters: { commands: ['/etc/voice-intake-edge/bin/edge-livekit-nodes.sh 10.0.1.10:5060 10.0.2.20:5060'] },
      }),
    ]);
    expect(JSON.parse(parameter!)).toEqual({ nodes: ['10.0.1.10', '10.0.2.20'], edgeHosts: ['i-edge-a', 'i-edge-b'], commandId: 'cmd-1', appliedAt: at(0).toISOString() });
  });

  it('does nothing while nothing changed, and re-applies after the interval', async () => {
    await syncEdgeNodes(clients, settings, at(0));
    expect(await syncEdgeNodes(clients, settings, at(1))).toMatchObject({ action: 'unchanged' });
    expect(await syncEdgeNodes(clients, settings, at(9))).toMatchObject({ action: 'unchanged' });
    expect(await syncEdgeNodes(clients, settings, at(10))).toMatchObject({ action: 'sent', reason: 're-apply interval elapsed' });
    expect(sentCommands()).toHaveLength(2);
  });

  it('sends again when a LiveKit host comes or goes, or an edge host is replaced', async () => {
    await syncEdgeNodes(clients, settings, at(0));
    livekit = livekit.filter((node) => node.id !== 'i-lk1');
    expect(await syncEdgeNodes(clients, settings, at(1))).toMatchObject({ action: 'sent', reason: 'LiveKit nodes changed: [10.0.1.10, 10.0.2.20] → [10.0.2.20]' });
    expect(sentCommands()[1].Parameters).toEqual({ commands: ['/etc/voice-intake-edge/bin/edge-livekit-nodes.sh 10.0.2.20:5060'] });

    edgeHosts[0] = { id: 'i-edge-c', address: '10.0.0.13' };
    expect(await syncEdgeNodes(clients, settings, at(2))).toMatchObject({ action: 'sent', reason: expect.stringContaining('edge hosts changed') });
    expect(sentCommands()[2].InstanceIds).toEqual(['i-edge-a', 'i-edge-c']);
  });

  it('sends an empty list when no LiveKit host is in service (the edge answers 503), and nothing without edge hosts', async () => {
    livekit = [];
    expect(await syncEdgeNodes(clients, settings, at(0))).toMatchObject({ action: 'sent', nodes: [] });
    expect(sentCommands()[0].Parameters).toEqual({ commands: ['/etc/voice-intake-edge/bin/edge-livekit-nodes.sh'] });
    edgeHosts = [];
    expect(await syncEdgeNodes(clients, settings, at(20))).toEqual({ action: 'no-edge-hosts', nodes: [] });
    expect(sentCommands()).toHaveLength(1);
  });

  it('keeps the state untouched when the command cannot be sent, so the next run tries again', async () => {
    ssm.on(SendCommandCommand).rejects(Object.assign(new Error('Instances not in a valid state for account'), { name: 'InvalidInstanceId' }));
    await expect(syncEdgeNodes(clients, settings, at(0))).rejects.toThrow(/valid state/);
    expect(parameter).toBeUndefined();
  });

  it('starts over from an unreadable state parameter, and fails clearly for an unknown group', async () => {
    parameter = '{"nodes":"garbage"}';
    expect(await syncEdgeNodes(clients, settings, at(0))).toMatchObject({ action: 'sent', reason: 'first sync' });
    await expect(syncEdgeNodes(clients, { ...settings, livekitAutoScalingGroup: 'missing' }, at(1))).rejects.toThrow(/Auto Scaling group missing not found/);
  });

  it('never puts anything but addresses on the command line', () => {
    expect(() => nodeScriptCommand('/x.sh', ['10.0.0.1; reboot'], 5060)).toThrow(/not an IPv4 address/);
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
