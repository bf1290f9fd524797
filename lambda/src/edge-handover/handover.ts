import {
  AssociateAddressCommand,
  DescribeAddressesCommand,
  DescribeInstancesCommand,
  type EC2Client,
} from '@aws-sdk/client-ec2';
import {
  type Command,
  DescribeInstanceInformationCommand,
  GetCommandInvocationCommand,
  ListCommandsCommand,
  SendCommandCommand,
  type SSMClient,
} from '@aws-sdk/client-ssm';

/**
 * Hands one edge host's EIP to its replacement without dropping a call. CloudFormation replaces an edge instance
 * (new image, instance type or config) by creating the new one first; this step, polled until it reports done:
 *   1. waits until the new host is ready (SSM online, its ready script passes: daemons up, a LiveKit node active);
 *   2. drains the host that holds the EIP (its drain script: new INVITEs get 503 so the carrier uses another
 *      origination URI; calls in progress run to their BYE, or the drain time passes);
 *   3. moves the EIP to the new host.
 * Stateless between polls: what was done is read back from EC2 (who holds the EIP) and SSM (the drain command,
 * found by a comment naming the CloudFormation request).
 *
 * No host is left refusing calls: the host that gets the EIP is told to take calls (its drain script's `--resume`,
 * part of its ready check; a rollback hands the EIP back to a host this handover drained), and a handover that gives
 * up after draining the old host tells it to take calls again before failing.
 */
export interface HandoverSpec {
  /** The EIP's allocation id. */
  readonly allocationId: string;
  /** The host that should hold the EIP. */
  readonly instanceId: string;
  readonly drainScript: string;
  readonly drainSeconds: number;
  readonly readyScript: string;
  /** How long the new host may take to become ready before the deployment fails (the old host keeps the EIP). */
  readonly readySeconds: number;
}

export interface HandoverClients {
  readonly ec2: EC2Client;
  readonly ssm: SSMClient;
}

export interface HandoverContext {
  /** A Create: no host to drain, no traffic to protect, unless a host holds the EIP all the same. */
  readonly firstAssociation: boolean;
  /** CloudFormation's request id: marks the drain command this handover sent. */
  readonly requestId: string;
  /** When the handover began (ms since epoch). */
  readonly startedAt: number;
  readonly now?: () => number;
  readonly sleep?: (ms: number) => Promise<void>;
}

export type HandoverStep =
  | { readonly done: true; readonly outcome: string }
  | { readonly done: false; readonly waitingFor: string };

const TERMINAL = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut', 'Cancelling']);
/** A command that has ended (a cancel still under way has not: its script may still run). */
const ENDED = new Set(['Success', 'Failed', 'Cancelled', 'TimedOut']);
const wait = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export const drainComment = (requestId: string) => `edge handover drain ${requestId}`.slice(0, 100);

async function eipHolder(clients: HandoverClients, allocationId: string): Promise<string | undefined> {
  const { Addresses = [] } = await clients.ec2.send(new DescribeAddressesCommand({ AllocationIds: [allocationId] }));
  if (Addresses.length === 0) throw new Error(`EIP ${allocationId} not found`);
  return Addresses[0].InstanceId || undefined;
}

async function isRunning(clients: HandoverClients, instanceId: string): Promise<boolean> {
  const { Reservations = [] } = await clients.ec2.send(new DescribeInstancesCommand({ InstanceIds: [instanceId] }));
  return Reservations.flatMap((reservation) => reservation.Instances ?? []).some(
    (instance) => instance.State?.Name === 'running',
  );
}

async function ssmOnline(clients: HandoverClients, instanceId: string): Promise<boolean> {
  const { InstanceInformationList = [] } = await clients.ssm.send(
    new DescribeInstanceInformationCommand({ Filters: [{ Key: 'InstanceIds', Values: [instanceId] }] }),
  );
  return InstanceInformationList.some((info) => info.PingStatus === 'Online');
}

/**
 * Runs the ready script on the new host and waits (up to a minute) for its verdict. The host is first told to take
 * new calls (`--resume`, a no-op on a fresh host): the EIP is about to bring it calls, and on a rollback it is a host
 * this deployment drained.
 */
async function readyCheck(
  clients: HandoverClients,
  spec: HandoverSpec,
  context: HandoverContext,
): Promise<string | true> {
  if (!(await ssmOnline(clients, spec.instanceId))) return `new host ${spec.instanceId} to register with SSM`;
  const { Command } = await clients.ssm.send(
    new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [spec.instanceId],
      Parameters: { commands: [`${spec.drainScript} --resume && ${spec.readyScript}`] },
      TimeoutSeconds: 60,
      Comment: 'edge handover ready check',
    }),
  );
  const commandId = Command?.CommandId;
  if (!commandId) throw new Error('SSM returned no command id for the ready check');
  const sleep = context.sleep ?? wait;
  for (let attempt = 0; attempt < 30; attempt++) {
    await sleep(2_000);
    try {
      const invocation = await clients.ssm.send(
        new GetCommandInvocationCommand({ CommandId: commandId, InstanceId: spec.instanceId }),
      );
      if (invocation.Status === 'Success') return true;
      if (TERMINAL.has(invocation.Status ?? '')) {
        return `new host ${spec.instanceId} to be ready (${(invocation.StandardOutputContent ?? invocation.Status ?? '').trim()})`;
      }
    } catch (error) {
      // Right after SendCommand the invocation may not exist yet.
      if ((error as { name?: string }).name !== 'InvocationDoesNotExist') throw error;
    }
  }
  return `new host ${spec.instanceId} to answer its ready check`;
}

/**
 * The command this handover sent to `instanceId` under `comment`, if any. Paged, and only those sent since the handover
 * began: the host gets other commands meanwhile (the node sync's), and a drain hidden past the first page would be
 * sent again.
 */
async function findCommand(
  clients: HandoverClients,
  instanceId: string,
  comment: string,
  context: HandoverContext,
): Promise<Command | undefined> {
  // A minute of slack for clocks: the start is the Lambda's, the command's time SSM's. Whole seconds, as SSM's
  // examples give the filter.
  const invokedAfter = new Date(context.startedAt - 60_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
  let NextToken: string | undefined;
  do {
    const page = await clients.ssm.send(
      new ListCommandsCommand({
        InstanceId: instanceId,
        Filters: [{ key: 'InvokedAfter', value: invokedAfter }],
        MaxResults: 50,
        NextToken,
      }),
    );
    const found = page.Commands?.find((command) => command.Comment === comment);
    if (found) return found;
    NextToken = page.NextToken;
  } while (NextToken);
  return undefined;
}

export const resumeComment = (requestId: string) => `edge handover resume ${requestId}`.slice(0, 100);

/**
 * A handover that gives up after it drained `holder` (the drain sent for this request) tells that host to take new
 * calls again: it keeps the EIP, and a drained host would answer every new call 503. Returns what the error should
 * add: whether the host was resumed, or how to do it by hand.
 */
async function resumeIfDrained(
  clients: HandoverClients,
  spec: HandoverSpec,
  holder: string,
  context: HandoverContext,
): Promise<string> {
  try {
    if (!(await findCommand(clients, holder, drainComment(context.requestId), context))) return '';
    await clients.ssm.send(
      new SendCommandCommand({
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [holder],
        Parameters: { commands: [`${spec.drainScript} --resume`] },
        TimeoutSeconds: 60,
        Comment: resumeComment(context.requestId),
      }),
    );
    return `; ${holder} was told to take new calls again`;
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error);
    return `; ${holder} could not be told to take new calls again (${reason}): run ${spec.drainScript} --resume on it`;
  }
}

/** Drains `holder`, once per request: sends the drain script, then reports it running until it ends. */
async function drain(
  clients: HandoverClients,
  spec: HandoverSpec,
  holder: string,
  context: HandoverContext,
): Promise<string | true> {
  const comment = drainComment(context.requestId);
  const sent = await findCommand(clients, holder, comment, context);
  if (sent) {
    if (!ENDED.has(sent.Status ?? '')) return `host ${holder} to drain (up to ${spec.drainSeconds} s)`;
    // Only a drain that ran to its end (no call left, or its time up) hands over. One that failed (Kamailio never
    // told to refuse new calls), timed out or was cancelled leaves a host that may still take and carry calls.
    if (sent.Status !== 'Success') {
      const resumed = await resumeIfDrained(clients, spec, holder, context);
      throw new Error(
        `drain of host ${holder} ended ${sent.Status} (command ${sent.CommandId ?? 'unknown'}): it may still carry calls, so it keeps EIP ${spec.allocationId}${resumed}`,
      );
    }
    return true;
  }
  // A host that is gone carries no call: hand over at once.
  if (!(await isRunning(clients, holder))) return true;
  // One that runs while its SSM agent is not online may still carry calls, which we cannot drain: wait for the agent,
  // up to readySeconds. Stopping the host hands over without a drain.
  if (!(await ssmOnline(clients, holder))) {
    const elapsedSeconds = Math.round(((context.now ?? Date.now)() - context.startedAt) / 1000);
    if (elapsedSeconds > spec.readySeconds) {
      throw new Error(
        `gave up after ${elapsedSeconds} s waiting for host ${holder} to come online with SSM to drain it; it keeps EIP ${spec.allocationId} (stop it to hand over without a drain)`,
      );
    }
    return `host ${holder} to come online with SSM, to drain it`;
  }
  await clients.ssm.send(
    new SendCommandCommand({
      DocumentName: 'AWS-RunShellScript',
      InstanceIds: [holder],
      Parameters: { commands: [`${spec.drainScript} ${spec.drainSeconds}`] },
      TimeoutSeconds: spec.drainSeconds + 120,
      Comment: comment,
    }),
  );
  return `host ${holder} to drain (up to ${spec.drainSeconds} s)`;
}

export async function handoverStep(
  clients: HandoverClients,
  spec: HandoverSpec,
  context: HandoverContext,
): Promise<HandoverStep> {
  const now = context.now ?? Date.now;
  const holder = await eipHolder(clients, spec.allocationId);
  if (holder === spec.instanceId) return { done: true, outcome: `EIP ${spec.allocationId} is on ${spec.instanceId}` };

  // A Create hands the EIP over at once only when no host holds it (a first deployment). One that finds a holder (the
  // resource re-created under a new logical id, say) protects that host's calls like an update.
  if (!context.firstAssociation || holder) {
    const ready = await readyCheck(clients, spec, context);
    if (ready !== true) {
      const elapsedSeconds = Math.round((now() - context.startedAt) / 1000);
      if (elapsedSeconds > spec.readySeconds) {
        // The new host can fail its check after the old one was drained (the check runs again at every poll).
        const resumed = holder ? await resumeIfDrained(clients, spec, holder, context) : '';
        throw new Error(
          `gave up after ${elapsedSeconds} s waiting for ${ready}; ${holder ?? 'no host'} keeps EIP ${spec.allocationId}${resumed}`,
        );
      }
      return { done: false, waitingFor: ready };
    }
    if (holder) {
      const drained = await drain(clients, spec, holder, context);
      if (drained !== true) return { done: false, waitingFor: drained };
    }
  }
  await clients.ec2.send(
    new AssociateAddressCommand({
      AllocationId: spec.allocationId,
      InstanceId: spec.instanceId,
      AllowReassociation: true,
    }),
  );
  return {
    done: true,
    outcome: `EIP ${spec.allocationId} moved ${holder ? `from ${holder} ` : ''}to ${spec.instanceId}`,
  };
}
