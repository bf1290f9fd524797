/**
 * LiveKit on loopback as real processes: Redis, LiveKit Server, N LiveKit SIP nodes, the inbound trunk and dispatch
 * rule, and the SIP edge (Kamailio + RTPEngine + topos Redis) rendered from the loopback example so its dispatcher
 * points at the real SIP nodes. The YAML comes from our own generator (lib/livekit/config-yaml.ts) and the trunk and
 * rule from our own provisioning logic (the custom resource's), so both are proven against the real binaries.
 *
 * Every process runs in its own process group with its log in the run directory; start() ends leftovers of an
 * earlier run in the same directory first, and ends everything it started when any step fails.
 */

import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { EdgeSectionInput, RenderInputData } from '@voice-intake/edge-config';
import { AccessToken, RoomServiceClient, SipClient, type VideoGrant } from 'livekit-server-sdk';
import { EdgeHarness, endProcessesMentioning, sendUdp, sipRequest } from '../../../edge-config/harness/harness';
import { acquireLoopbackLock, releaseLoopbackLock } from '../../../edge-config/harness/loopback-lock';
import {
  type DesiredSipSetup,
  type ProvisionedSip,
  reconcileSip,
} from '../../../lambda/src/provisioner/sip-provisioning';
import { livekitSchema } from '../../../lib/config';
import { fillPlaceholders, liveKitServerYaml, liveKitSipYaml } from '../../../lib/livekit/config-yaml';
import { liveKitServerBinary, liveKitSipBinary, REPO_ROOT } from './binaries';
import { ManagedProcess, stopInOrder, waitFor } from './process';

const execFileAsync = promisify(execFile);

export const LOOPBACK_EDGE_EXAMPLE = resolve(REPO_ROOT, 'edge-config', 'examples', 'loopback.json');

export interface PortRange {
  readonly min: number;
  readonly max: number;
}

export interface SipNodeSpec {
  /** listen_ip and the address in its Contact/SDP (nat_1_to_1_ip): the dispatcher's destination. */
  readonly ip: string;
  readonly port: number;
  /** RTP binds 0.0.0.0 on this range (hard-coded upstream): keep it clear of every other range on the host. */
  readonly rtpPortRange: PortRange;
  /** Health and metrics ports bind every interface too: one pair per node. */
  readonly healthPort: number;
  readonly prometheusPort: number;
}

export interface LiveKitStackOptions {
  /** Configs and one log per process go here; emptied on start. */
  readonly runDir: string;
  readonly redisPort?: number;
  readonly apiPort?: number;
  readonly rtcTcpPort?: number;
  readonly rtcUdpPortRange?: PortRange;
  readonly serverPrometheusPort?: number;
  /** Default: the loopback example's LiveKit destinations, RTP 22000–22099, 22100–22199, …; [] with `edge: false`. */
  readonly sipNodes?: readonly SipNodeSpec[];
  /** The edge from the loopback example with these `edge` keys on top; false: no edge (LiveKit only). */
  readonly edge?: false | { readonly overrides?: Partial<EdgeSectionInput> };
  /** Numbers the trunk answers (the To user the carrier sends, E.164). */
  readonly numbers?: readonly string[];
  /** Who may send calls (the trunk's allowedAddresses); default: the edge's LiveKit-side address. */
  readonly allowedAddresses?: readonly string[];
  /** Readiness timeout per process (ms); generous: the machine may be busy. */
  readonly readyTimeoutMs?: number;
}

export const DEFAULT_TRUNK_NUMBER = '+15550100200';
export const TRUNK_NAME = 'voice-intake-loopback';
export const DISPATCH_RULE_NAME = 'voice-intake-loopback-agent';

interface LoopbackExample extends RenderInputData {
  livekitSip: { destinations: { host: string; port: number; transport: 'udp' | 'tcp' }[] };
  host: RenderInputData['host'] & { internalSipIp: string };
}

export function loopbackEdgeExample(): LoopbackExample {
  return JSON.parse(readFileSync(LOOPBACK_EDGE_EXAMPLE, 'utf8')) as LoopbackExample;
}

/** The example's LiveKit SIP destinations with RTP, health and metrics ports that collide with nothing else here. */
export function defaultSipNodes(): SipNodeSpec[] {
  return loopbackEdgeExample().livekitSip.destinations.map((destination, index) => ({
    ip: destination.host,
    port: destination.port,
    rtpPortRange: { min: 22000 + index * 100, max: 22099 + index * 100 },
    healthPort: 18081 + index,
    prometheusPort: 18091 + index,
  }));
}

/** A LiveKit SIP node of the stack: its process, config and log; kill/start it to play a crash and a restart. */
export class SipNode {
  constructor(
    readonly spec: SipNodeSpec,
    readonly process: ManagedProcess,
    private readonly timeoutMs: number,
  ) {}

  get logFile(): string {
    return this.process.options.logFile;
  }

  log(): string {
    try {
      return readFileSync(this.logFile, 'utf8');
    } catch {
      return '';
    }
  }

  /** Starts it and waits until its health port says OK and it answers SIP OPTIONS. */
  async start(): Promise<void> {
    this.process.start();
    const { ip, port, healthPort } = this.spec;
    await this.process.waitReady('health', this.timeoutMs, async () => {
      const response = await fetch(`http://127.0.0.1:${healthPort}/`, { signal: AbortSignal.timeout(1000) });
      return response.ok ? true : undefined;
    });
    await this.process.waitReady(`SIP OPTIONS at ${ip}:${port}`, this.timeoutMs, async () => {
      const replies = await sendUdp(sipRequest('OPTIONS', '127.0.0.1', { ip, port }), {
        from: '127.0.0.1',
        to: { ip, port },
        waitMs: 500,
      });
      return replies.some((reply) => reply.startsWith('SIP/2.0 200')) ? true : undefined;
    });
  }

  /** SIGKILL, as a crashed host would: no goodbye to Redis or the edge. */
  kill(): Promise<void> {
    return this.process.kill();
  }

  stop(): Promise<void> {
    return this.process.stop();
  }
}

/** The stack's view of the dispatcher: node "ip:port" → Kamailio's flags (AP active, IP inactive, …). */
export function parseDispatcherList(list: string): Record<string, string> {
  const states: Record<string, string> = {};
  for (const block of list.split(/\bDEST:/).slice(1)) {
    const uri = /URI:\s*sip:([^;\s]+)/.exec(block)?.[1];
    const flags = /FLAGS:\s*(\S+)/.exec(block)?.[1];
    if (uri && flags) states[uri] = flags;
  }
  return states;
}

export class LiveKitStack {
  readonly runDir: string;
  readonly apiKey = 'APIloopback';
  readonly apiSecret = randomBytes(24).toString('hex');
  readonly redisPassword = randomBytes(16).toString('hex');
  readonly redisPort: number;
  readonly apiPort: number;
  readonly numbers: readonly string[];
  readonly sipNodes: SipNode[];
  readonly edge?: EdgeHarness;
  readonly livekit: ReturnType<typeof livekitSchema.parse>;
  provisioned?: ProvisionedSip;
  private readonly timeoutMs: number;
  private readonly example = loopbackEdgeExample();
  private redis?: ManagedProcess;
  private server?: ManagedProcess;
  private holdsLoopbackLock = false;
  /** Whether this stack binds the loopback example's addresses (the edge, or a node at one of its destinations). */
  private readonly usesExampleAddresses: boolean;

  constructor(private readonly options: LiveKitStackOptions) {
    this.runDir = resolve(options.runDir);
    this.timeoutMs = options.readyTimeoutMs ?? 60_000;
    this.redisPort = options.redisPort ?? 16390;
    this.apiPort = options.apiPort ?? 17880;
    this.numbers = options.numbers ?? [DEFAULT_TRUNK_NUMBER];
    const specs = options.sipNodes ?? defaultSipNodes();
    // No SIP nodes: LiveKit Server alone (rooms and agents without phone calls); the edge needs a node to send to.
    if (specs.length === 0 && options.edge !== false) throw new Error('the edge needs at least one LiveKit SIP node');
    // Validated by the operator schema: the same port rules as a deployment (no overlaps, no clashes).
    this.livekit = livekitSchema.parse({
      sipRtpPortRange: specs[0]?.rtpPortRange,
      apiPort: this.apiPort,
      rtcTcpPort: options.rtcTcpPort ?? 17881,
      rtcUdpPortRange: options.rtcUdpPortRange ?? { min: 21000, max: 21099 },
      serverPrometheusPort: options.serverPrometheusPort ?? 17889,
      sipNumbers: [...this.numbers],
      // LiveKit SIP refuses calls above this share of the CPU, read machine-wide without a cgroup limit: on a
      // shared test machine other work would make it refuse ours.
      maxCpuUtilization: 1,
    });
    const sipBinary = liveKitSipBinary();
    this.sipNodes = specs.map((spec, index) => {
      const name = `livekit-sip-${index + 1}`;
      const process = new ManagedProcess({
        name,
        command: sipBinary,
        args: ['--config', join(this.runDir, `${name}.yaml`)],
        logFile: join(this.runDir, `${name}.log`),
      });
      return new SipNode(spec, process, this.timeoutMs);
    });
    const exampleDestinations = new Set(this.example.livekitSip.destinations.map((d) => `${d.host}:${d.port}`));
    this.usesExampleAddresses =
      options.edge !== false || specs.some((spec) => exampleDestinations.has(`${spec.ip}:${spec.port}`));
    if (options.edge !== false) {
      const input: RenderInputData = {
        ...this.example,
        edge: { ...this.example.edge, ...(options.edge?.overrides ?? {}) },
        livekitSip: {
          destinations: specs.map((spec) => ({ host: spec.ip, port: spec.port, transport: 'udp' as const })),
        },
      };
      this.edge = new EdgeHarness({ dir: join(this.runDir, 'edge'), input, probeFrom: this.carrierAddress });
    }
  }

  /** An allowlisted carrier address of the loopback example (calls come from here). */
  get carrierAddress(): string {
    return '127.0.3.1';
  }

  get httpUrl(): string {
    return `http://127.0.0.1:${this.apiPort}`;
  }

  get wsUrl(): string {
    return `ws://127.0.0.1:${this.apiPort}`;
  }

  get sipClient(): SipClient {
    return new SipClient(this.httpUrl, this.apiKey, this.apiSecret);
  }

  get roomService(): RoomServiceClient {
    return new RoomServiceClient(this.httpUrl, this.apiKey, this.apiSecret);
  }

  /** The trunk's allowed sources: the edge's LiveKit-side address, which is all LiveKit ever sees of a call. */
  get allowedAddresses(): readonly string[] {
    return this.options.allowedAddresses ?? [`${this.example.host.internalSipIp}/32`];
  }

  /** A join token for `identity` in `room`. */
  token(room: string, identity: string, grant: Partial<VideoGrant> = {}): Promise<string> {
    const token = new AccessToken(this.apiKey, this.apiSecret, { identity, ttl: '1h' });
    token.addGrant({ room, roomJoin: true, canPublish: true, canSubscribe: true, ...grant });
    return token.toJwt();
  }

  /**
   * Starts everything in dependency order; on any failure ends what it started and rethrows. First waits while
   * another test process holds the loopback edge and LiveKit SIP addresses (edge-config/harness/loopback-lock.ts).
   */
  async start(lockTimeoutMs?: number): Promise<void> {
    try {
      if (this.usesExampleAddresses && !this.holdsLoopbackLock) {
        await acquireLoopbackLock({ timeoutMs: lockTimeoutMs });
        this.holdsLoopbackLock = true;
      }
      await endProcessesMentioning(`${this.runDir}/`);
      rmSync(this.runDir, { recursive: true, force: true });
      mkdirSync(this.runDir, { recursive: true });
      this.writeConfigs();
      await this.startRedis();
      await this.startServer();
      for (const node of this.sipNodes) await node.start();
      if (this.sipNodes.length > 0) this.provisioned = await this.provision();
      if (this.edge) {
        await this.edge.start();
        await this.waitForDispatcher(
          this.sipNodes.map((node) => node.spec),
          'AP',
        );
      }
    } catch (error) {
      await this.stop().catch(() => undefined);
      throw error;
    }
  }

  /** Ends every process, edge first (no new calls), Redis last; keeps the logs. */
  async stop(): Promise<void> {
    await stopInOrder('the LiveKit stack', [
      () => this.edge?.stop(),
      ...this.sipNodes.map((node) => () => node.stop()),
      () => this.server?.stop(),
      () => this.redis?.stop(),
      // Anything else that names the run directory (a process of an earlier, crashed run).
      () => endProcessesMentioning(`${this.runDir}/`),
      async () => {
        if (!this.holdsLoopbackLock) return;
        this.holdsLoopbackLock = false;
        releaseLoopbackLock();
      },
    ]);
  }

  /** Re-applies the trunk and rule with our provisioning logic (idempotent: changes nothing when they match). */
  async provision(): Promise<ProvisionedSip & { changed: string[] }> {
    const desired: DesiredSipSetup = {
      trunkName: TRUNK_NAME,
      dispatchRuleName: DISPATCH_RULE_NAME,
      numbers: [...this.numbers],
      allowedAddresses: [...this.allowedAddresses],
      agentName: this.livekit.agentName,
      roomPrefix: this.livekit.roomPrefix,
    };
    return reconcileSip(this.sipClient, desired, { attempts: 5, baseDelayMs: 200 });
  }

  async dispatcherStates(): Promise<Record<string, string>> {
    if (!this.edge) throw new Error('this stack runs without the edge');
    return parseDispatcherList(await this.edge.kamcmd('dispatcher.list'));
  }

  /** Waits until Kamailio's flags for every node in `nodes` start with `flags` (AP active, IP inactive+probing). */
  async waitForDispatcher(
    nodes: readonly Pick<SipNodeSpec, 'ip' | 'port'>[],
    flags: string,
    timeoutMs = this.timeoutMs,
  ): Promise<Record<string, string>> {
    let last: Record<string, string> = {};
    try {
      return await waitFor(`dispatcher ${flags} for ${nodes.map((n) => n.ip).join(', ')}`, timeoutMs, async () => {
        last = await this.dispatcherStates();
        return nodes.every((node) => last[`${node.ip}:${node.port}`]?.startsWith(flags)) ? last : undefined;
      });
    } catch (error) {
      throw new Error(`${(error as Error).message}; last seen ${JSON.stringify(last)}`);
    }
  }

  private writeConfigs(): void {
    const base = { redisAddress: `127.0.0.1:${this.redisPort}`, redisTls: false } as const;
    const secrets = { apiKey: this.apiKey, apiSecret: this.apiSecret, redisPassword: this.redisPassword };
    writeFileSync(
      join(this.runDir, 'redis.conf'),
      `${[
        `port ${this.redisPort}`,
        'bind 127.0.0.1',
        `requirepass ${this.redisPassword}`,
        'save ""',
        'appendonly no',
        `dir ${this.runDir}`,
        'daemonize no',
      ].join('\n')}\n`,
      { mode: 0o600 },
    );
    const serverYaml = liveKitServerYaml({
      ...base,
      livekit: this.livekit,
      network: { bindAddresses: ['127.0.0.1'], interfaces: ['lo'], enableLoopbackCandidate: true },
    });
    const serverConfig = fillPlaceholders(serverYaml, { ...secrets, nodeIp: '127.0.0.1' });
    writeFileSync(join(this.runDir, 'livekit-server.yaml'), serverConfig, { mode: 0o600 });
    this.sipNodes.forEach((node, index) => {
      const { spec } = node;
      // One operator-schema livekit section per node: its ports validated like a deployment's.
      const livekit = livekitSchema.parse({
        ...this.livekit,
        sipPort: spec.port,
        sipRtpPortRange: spec.rtpPortRange,
        sipHealthPort: spec.healthPort,
        sipPrometheusPort: spec.prometheusPort,
        // LiveKit SIP measures the whole host's CPU and reports itself unhealthy (and refuses calls) above this:
        // on a shared test machine that is everyone else's load, not the node's.
        maxCpuUtilization: 1,
      });
      // RTP leaves every node from 127.0.0.1 (sockets on 0.0.0.0): the SDP must say so for the edge to take it.
      const network = { sipMediaAddress: '127.0.0.1' };
      const yaml = fillPlaceholders(liveKitSipYaml({ ...base, livekit, network }), { ...secrets, nodeIp: spec.ip });
      writeFileSync(join(this.runDir, `livekit-sip-${index + 1}.yaml`), yaml, { mode: 0o600 });
    });
  }

  private async startRedis(): Promise<void> {
    this.redis = new ManagedProcess({
      name: 'redis',
      command: 'redis-server',
      args: [join(this.runDir, 'redis.conf')],
      logFile: join(this.runDir, 'redis.log'),
    });
    this.redis.start();
    await this.redis.waitReady('PING', this.timeoutMs, async () => {
      const { stdout } = await execFileAsync(
        'redis-cli',
        ['-h', '127.0.0.1', '-p', String(this.redisPort), '--no-auth-warning', '-a', this.redisPassword, 'ping'],
        { timeout: 2000 },
      );
      return stdout.trim() === 'PONG' ? true : undefined;
    });
  }

  private async startServer(): Promise<void> {
    this.server = new ManagedProcess({
      name: 'livekit-server',
      command: liveKitServerBinary(),
      args: ['--config', join(this.runDir, 'livekit-server.yaml')],
      logFile: join(this.runDir, 'livekit-server.log'),
    });
    this.server.start();
    await this.server.waitReady('HTTP', this.timeoutMs, async () => {
      const response = await fetch(`${this.httpUrl}/`, { signal: AbortSignal.timeout(1000) });
      return response.ok ? true : undefined;
    });
    // The API answers once the node has joined the cluster through Redis.
    await this.server.waitReady('room API', this.timeoutMs, async () => {
      await this.roomService.listRooms();
      return true;
    });
  }
}
