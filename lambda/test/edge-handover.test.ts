import {
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  EC2Client,
} from '@aws-sdk/client-ec2';
import {
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  SSMClient,
} from '@aws-sdk/client-ssm';
import { mockClient } from 'aws-sdk-client-mock';
import { beforeEach, describe, expect, it } from 'vitest';
import { isComplete, specFrom } from '../src/edge-handover/handler';
import {
  drainComment,
  type HandoverContext,
  type HandoverSpec,
  handoverStep,
  resumeComment,
} from '../src/edge-handover/handover';

const ec2 = mockClient(EC2Client);
const ssm = mockClient(SSMClient);
const clients = { ec2: new EC2Client({}), ssm: new SSMClient({}) };

const spec: HandoverSpec = {
  allocationId: 'eipalloc-0abc',
  instanceId: 'i-0bbb',
  drainScript: '/etc/voice-intake-edge/bin/edge-drain.sh',
  drainSeconds: 900,
  readyScript: '/etc/voice-intake-edge/bin/edge-ready.sh',
  readySeconds: 1200,
};
const START = Date.parse('2026-11-30T10:00:00Z');
const update = (overrides: Partial<HandoverContext> = {}): HandoverContext => ({
  firstAssociation: false,
  requestId: 'req-1',
  startedAt: START,
  now: () => START + 60_000,
  sleep: async () => undefined,
  ...overrides,
});

/** The world: who holds the EIP, which hosts run and are SSM-online, what the ready check says, drains sent so far. */
let holder: string | undefined;
let running: Set<string>;
let online: Set<string>;
let readyStatus: { Status: string; StandardOutputContent?: string };
let drains: { Comment: string; Status: string }[];

beforeEach(() => {
  ec2.reset();
  ssm.reset();
  holder = 'i-0aaa';
  running = new Set(['i-0aaa', 'i-0bbb']);
  online = new Set(['i-0aaa', 'i-0bbb']);
  readyStatus = { Status: 'Success', StandardOutputContent: 'edge-ready: ready' };
  drains = [];
  ec2
    .on(DescribeAddressesCommand)
    .callsFake(() => ({ Addresses: [{ AllocationId: spec.allocationId, InstanceId: holder }] }));
  ec2.on(DescribeInstancesCommand).callsFake((input) => ({
    Reservations: [
      {
        Instances: input.InstanceIds.map((id: string) => ({
          InstanceId: id,
          State: { Name: running.has(id) ? 'running' : 'terminated' },
        })),
      },
    ],
  }));
  ec2.on(AssociateAddressCommand).callsFake((input) => {
    holder = input.InstanceId;
    return { AssociationId: 'eipassoc-1' };
  });
  ssm.on(DescribeInstanceInformationCommand).callsFake((input) => ({
    InstanceInformationList: input.Filters[0].Values.filter((id: string) => online.has(id)).map((id: string) => ({
      InstanceId: id,
      PingStatus: 'Online',
    })),
  }));
  ssm.on(SendCommandCommand).callsFake((input) => {
    if (input.Comment?.startsWith('edge handover drain')) drains.push({ Comment: input.Comment, Status: 'InProgress' });
    return { Command: { CommandId: `cmd-${Math.random()}` } };
  });
  ssm.on(GetCommandInvocationCommand).callsFake(() => readyStatus);
  // Paged as SSM pages them (50 a page by default), newest first; other commands to the host come between.
  ssm.on(ListCommandsCommand).callsFake((input) => {
    const all = [...drains].reverse();
    const start = Number(input.NextToken ?? 0);
    const pageSize = input.MaxResults ?? 50;
    const next = start + pageSize < all.length ? String(start + pageSize) : undefined;
    return { Commands: all.slice(start, start + pageSize), NextToken: next };
  });
});

const sentDrains = () =>
  ssm.commandCalls(SendCommandCommand).filter((call) => call.args[0].input.Comment?.startsWith('edge handover drain'));
const sentResumes = () =>
  ssm.commandCalls(SendCommandCommand).filter((call) => call.args[0].input.Comment?.startsWith('edge handover resume'));

describe('edge host handover (EIP to a replacement host, drained)', () => {
  it('associates at once on a first deployment: no host to drain, no ready wait', async () => {
    holder = undefined;
    const step = await handoverStep(clients, spec, update({ firstAssociation: true }));
    expect(step).toEqual({ done: true, outcome: 'EIP eipalloc-0abc moved to i-0bbb' });
    expect(ssm.calls()).toHaveLength(0);
  });

  it('drains a host that holds the EIP even on a Create (the resource re-created under a new logical id)', async () => {
    expect(await handoverStep(clients, spec, update({ firstAssociation: true }))).toEqual({
      done: false,
      waitingFor: 'host i-0aaa to drain (up to 900 s)',
    });
    expect(holder).toBe('i-0aaa');
    drains[0].Status = 'Success';
    expect(await handoverStep(clients, spec, update({ firstAssociation: true }))).toEqual({
      done: true,
      outcome: 'EIP eipalloc-0abc moved from i-0aaa to i-0bbb',
    });
  });

  it('does nothing when the EIP is already on the host', async () => {
    holder = 'i-0bbb';
    expect((await handoverStep(clients, spec, update())).done).toBe(true);
    expect(ec2.commandCalls(AssociateAddressCommand)).toHaveLength(0);
    expect(ssm.calls()).toHaveLength(0);
  });

  it('waits for the new host, and gives up after readySeconds leaving the EIP on the old host', async () => {
    online.delete('i-0bbb');
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: false,
      waitingFor: 'new host i-0bbb to register with SSM',
    });
    online.add('i-0bbb');
    readyStatus = { Status: 'Failed', StandardOutputContent: 'edge-ready: no LiveKit SIP node active yet\n' };
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: false,
      waitingFor: 'new host i-0bbb to be ready (edge-ready: no LiveKit SIP node active yet)',
    });
    await expect(handoverStep(clients, spec, update({ now: () => START + 1_201_000 }))).rejects.toThrow(
      /gave up after 1201 s waiting for new host i-0bbb to be ready .*; i-0aaa keeps EIP eipalloc-0abc/,
    );
    expect(sentDrains()).toHaveLength(0); // the old host never stopped taking calls
    expect(sentResumes()).toHaveLength(0); // so it is not told to take them again
    expect(holder).toBe('i-0aaa');
  });

  it('tells the host that gets the EIP to take calls, in its ready check (a rollback returns it to a drained host)', async () => {
    await handoverStep(clients, spec, update());
    const check = ssm
      .commandCalls(SendCommandCommand)
      .find((call) => call.args[0].input.Comment === 'edge handover ready check');
    expect(check?.args[0].input).toMatchObject({
      InstanceIds: ['i-0bbb'],
      Parameters: {
        commands: ['/etc/voice-intake-edge/bin/edge-drain.sh --resume && /etc/voice-intake-edge/bin/edge-ready.sh'],
      },
    });
  });

  it('tells a drained old host to take calls again when the new host then fails its check for good', async () => {
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: false,
      waitingFor: 'host i-0aaa to drain (up to 900 s)',
    });
    // The check runs again at every poll: the new host can fail it while the old one drains.
    readyStatus = { Status: 'Failed', StandardOutputContent: 'edge-ready: no LiveKit SIP node active yet\n' };
    await expect(handoverStep(clients, spec, update({ now: () => START + 1_500_000 }))).rejects.toThrow(
      'i-0aaa keeps EIP eipalloc-0abc; i-0aaa was told to take new calls again',
    );
    expect(sentResumes().map((call) => call.args[0].input)).toEqual([
      expect.objectContaining({
        InstanceIds: ['i-0aaa'],
        Parameters: { commands: ['/etc/voice-intake-edge/bin/edge-drain.sh --resume'] },
        Comment: resumeComment('req-1'),
      }),
    ]);
    expect(holder).toBe('i-0aaa');
  });

  it('says how to resume the old host by hand when it cannot be told', async () => {
    drains = [{ Comment: drainComment('req-1'), Status: 'TimedOut' }];
    ssm.on(SendCommandCommand).callsFake((input) => {
      if (input.Comment?.startsWith('edge handover resume'))
        throw Object.assign(new Error('rate exceeded'), { name: 'ThrottlingException' });
      return { Command: { CommandId: 'cmd-ready' } };
    });
    await expect(handoverStep(clients, spec, update())).rejects.toThrow(
      /^drain of host i-0aaa ended TimedOut .*; i-0aaa could not be told to take new calls again \(rate exceeded\): run \/etc\/voice-intake-edge\/bin\/edge-drain.sh --resume on it$/,
    );
  });

  it('drains the old host once, keeps the EIP there while it drains, then moves it', async () => {
    const first = await handoverStep(clients, spec, update());
    expect(first).toEqual({ done: false, waitingFor: 'host i-0aaa to drain (up to 900 s)' });
    expect(sentDrains()).toHaveLength(1);
    expect(sentDrains()[0].args[0].input).toMatchObject({
      InstanceIds: ['i-0aaa'],
      DocumentName: 'AWS-RunShellScript',
      Parameters: { commands: ['/etc/voice-intake-edge/bin/edge-drain.sh 900'] },
      TimeoutSeconds: 1020,
      Comment: drainComment('req-1'),
    });

    expect((await handoverStep(clients, spec, update())).done).toBe(false);
    expect(sentDrains()).toHaveLength(1); // found by its comment, not sent again
    expect(holder).toBe('i-0aaa');

    drains[0].Status = 'Success';
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: true,
      outcome: 'EIP eipalloc-0abc moved from i-0aaa to i-0bbb',
    });
    expect(ec2.commandCalls(AssociateAddressCommand)[0].args[0].input).toEqual({
      AllocationId: 'eipalloc-0abc',
      InstanceId: 'i-0bbb',
      AllowReassociation: true,
    });
  });

  it('keeps the EIP on a host whose drain failed, timed out or was cancelled: it may still carry calls', async () => {
    for (const status of ['Failed', 'TimedOut', 'Cancelled']) {
      drains = [{ Comment: drainComment('req-1'), Status: status }];
      await expect(handoverStep(clients, spec, update())).rejects.toThrow(
        `drain of host i-0aaa ended ${status} (command unknown): it may still carry calls, so it keeps EIP eipalloc-0abc; i-0aaa was told to take new calls again`,
      );
    }
    expect(sentResumes()).toHaveLength(3);
    // A cancel under way has not ended: its script may still run.
    drains = [{ Comment: drainComment('req-1'), Status: 'Cancelling' }];
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: false,
      waitingFor: 'host i-0aaa to drain (up to 900 s)',
    });
    expect(ec2.commandCalls(AssociateAddressCommand)).toHaveLength(0);
    expect(holder).toBe('i-0aaa');
  });

  it("finds its drain past the first page of the host's commands, and asks only for those since it began", async () => {
    expect((await handoverStep(clients, spec, update())).done).toBe(false);
    // The node sync keeps sending the host its list while it drains.
    for (let sync = 0; sync < 120; sync += 1) drains.push({ Comment: 'edge node sync', Status: 'Success' });
    drains[0].Status = 'Success';
    expect((await handoverStep(clients, spec, update())).done).toBe(true);
    expect(sentDrains()).toHaveLength(1);
    expect(ssm.commandCalls(ListCommandsCommand).at(-1)?.args[0].input.Filters).toEqual([
      { key: 'InvokedAfter', value: '2026-11-30T09:59:00Z' },
    ]);
  });

  it('does not take a drain of another request for its own', async () => {
    drains.push({ Comment: drainComment('req-0'), Status: 'Success' });
    expect((await handoverStep(clients, spec, update())).done).toBe(false);
    expect(sentDrains()).toHaveLength(1);
  });

  it('keeps the EIP on a running host SSM cannot reach to drain, drains it once it can, and gives up after readySeconds', async () => {
    online.delete('i-0aaa');
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: false,
      waitingFor: 'host i-0aaa to come online with SSM, to drain it',
    });
    await expect(handoverStep(clients, spec, update({ now: () => START + 1_201_000 }))).rejects.toThrow(
      'gave up after 1201 s waiting for host i-0aaa to come online with SSM to drain it; it keeps EIP eipalloc-0abc (stop it to hand over without a drain)',
    );
    expect(ec2.commandCalls(AssociateAddressCommand)).toHaveLength(0);
    expect(holder).toBe('i-0aaa');
    online.add('i-0aaa');
    expect(await handoverStep(clients, spec, update())).toEqual({
      done: false,
      waitingFor: 'host i-0aaa to drain (up to 900 s)',
    });
    expect(sentDrains()).toHaveLength(1);
  });

  it('hands over at once when the old host is gone', async () => {
    running.delete('i-0aaa');
    expect((await handoverStep(clients, spec, update())).done).toBe(true);
    expect(sentDrains()).toHaveLength(0);
    expect(holder).toBe('i-0bbb');
  });
});

describe('edge handover custom resource', () => {
  const properties = {
    ServiceToken: 'arn:aws:lambda:us-east-1:123456789012:function:x',
    AllocationId: 'eipalloc-0abc',
    InstanceId: 'i-0bbb',
    DrainScript: '/etc/voice-intake-edge/bin/edge-drain.sh',
    DrainSeconds: '900',
    ReadyScript: '/etc/voice-intake-edge/bin/edge-ready.sh',
    ReadySeconds: '1200',
  };

  it('reads its string properties and names a bad one', () => {
    expect(specFrom(properties)).toEqual(spec);
    expect(() => specFrom({ ...properties, DrainScript: 'edge-drain.sh; reboot' })).toThrow(
      /DrainScript: must be an absolute path/,
    );
    expect(() => specFrom({ ...properties, InstanceId: 'i-0bbb; reboot' })).toThrow(
      /InstanceId: must be an instance id/,
    );
  });

  it('completes a delete at once and polls an update until the EIP has moved', async () => {
    const base = {
      ServiceToken: properties.ServiceToken,
      ResponseURL: 'https://x',
      StackId: 's',
      RequestId: 'req-1',
      LogicalResourceId: 'H',
      ResourceType: 'Custom::EdgeHostHandover',
    };
    expect(
      await isComplete({
        ...base,
        RequestType: 'Delete',
        PhysicalResourceId: 'eipalloc-0abc',
        ResourceProperties: properties,
      }),
    ).toEqual({ IsComplete: true });
    const updateEvent = {
      ...base,
      RequestType: 'Update' as const,
      PhysicalResourceId: 'eipalloc-0abc',
      ResourceProperties: properties,
      OldResourceProperties: { ...properties, InstanceId: 'i-0aaa' },
      Data: { StartedAt: new Date().toISOString() },
    };
    expect(await isComplete(updateEvent)).toEqual({ IsComplete: false });
    drains[0].Status = 'Success';
    expect(await isComplete(updateEvent)).toEqual({ IsComplete: true });
    expect(holder).toBe('i-0bbb');
  });
});
