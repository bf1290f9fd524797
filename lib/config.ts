import {
  AGENT_CALL_COST,
  agentScalingTarget,
  agentTaskCapacity,
  agentTaskMemoryMiB,
  callerTrustSchema,
  DEFAULT_CALLER_TRUST,
  describeIssues,
  recordingSentenceSchema,
} from '@voice-intake/contracts';
import { edgeSectionSchema, ipv4CidrSchema, parseIpv4Cidr } from '@voice-intake/edge-config';
import { z } from 'zod';

/** The context key that holds the operator config, in cdk.json or on the command line. */
export const CONFIG_CONTEXT_KEY = 'voiceIntake';

const retentionDays = z.number().int().min(1).max(36_500);

/** The retention periods CloudWatch Logs accepts (days); any other value fails the log group at deploy. */
export const CLOUDWATCH_LOG_RETENTION_DAYS = [
  1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653,
] as const;
export type LogRetentionDays = (typeof CLOUDWATCH_LOG_RETENTION_DAYS)[number];

const logRetentionDays = z
  .number()
  .refine((days): days is LogRetentionDays => (CLOUDWATCH_LOG_RETENTION_DAYS as readonly number[]).includes(days), {
    message: `must be a retention CloudWatch Logs offers: ${CLOUDWATCH_LOG_RETENTION_DAYS.join(', ')} (days)`,
  });

/**
 * The subnets the network stack lays out in every AZ, in this order (the CDK allocates them one group after another,
 * each aligned to its size): public (edge), private with egress (app tier), isolated (data).
 */
export const SUBNET_MASKS = { public: 24, private: 20, isolated: 24 } as const;

/** Addresses from the VPC's start the subnets of azCount AZs reach, laid out as the CDK does. */
export function subnetSpan(azCount: number): number {
  let next = 0;
  for (const mask of Object.values(SUBNET_MASKS)) {
    const size = 2 ** (32 - mask);
    next = Math.ceil(next / size) * size + azCount * size;
  }
  return next;
}

export const networkSchema = z
  .object({
    /** /16 (AWS's largest) or narrower, as long as the subnets of azCount AZs fit (checked below). */
    vpcCidr: ipv4CidrSchema
      .refine(
        (cidr) => (parseIpv4Cidr(cidr)?.prefixLength ?? 16) >= 16,
        'must be /16 or narrower (the largest VPC AWS allows)',
      )
      .default('10.40.0.0/16'),
    /** NAT gateways: one per AZ for production; 1 is cheaper for dev (one AZ's outage then cuts egress). */
    natGateways: z.number().int().min(1).max(6).optional(),
    /** A CloudWatch Logs log group's retention: one of CLOUDWATCH_LOG_RETENTION_DAYS. */
    flowLogRetentionDays: logRetentionDays.default(365),
  })
  .strict();

export const dataSchema = z
  .object({
    transcriptRetentionDays: retentionDays.default(365),
    /** Call recordings (recordings/ in the transcripts bucket) expire after this; at most transcriptRetentionDays. */
    recordingRetentionDays: retentionDays.default(90),
    auditRetentionDays: retentionDays.default(2_557),
    /** Object Lock on the audit bucket: GOVERNANCE lets privileged users lift it; COMPLIANCE never. */
    auditObjectLockMode: z.enum(['GOVERNANCE', 'COMPLIANCE']).default('GOVERNANCE'),
    auditObjectLockDays: retentionDays.default(365),
    accessLogRetentionDays: retentionDays.default(365),
    redisNodeType: z
      .string()
      .regex(/^cache\.[a-z0-9]+\.[a-z0-9]+$/, 'must be an ElastiCache node type such as cache.t4g.small')
      .default('cache.t4g.small'),
    /** Replicas per shard; at least 1 so automatic failover has somewhere to go. */
    redisReplicas: z.number().int().min(1).max(5).default(1),
    redisEngineVersion: z.string().default('7.1'),
  })
  .strict()
  .superRefine((data, ctx) => {
    // The transcripts' own expiry covers recordings/ too: a longer recording retention would never be kept.
    if (data.recordingRetentionDays > data.transcriptRetentionDays) {
      ctx.addIssue({
        code: 'custom',
        path: ['recordingRetentionDays'],
        message: `must not exceed transcriptRetentionDays (${data.transcriptRetentionDays}): recordings live in the transcripts bucket, which expires everything then`,
      });
    }
  });

export const agentSchema = z
  .object({
    /** Bedrock model id or inference-profile id/ARN for the conversation. */
    bedrockModelId: z.string().min(1).default('us.anthropic.claude-haiku-4-5-20251001-v1:0'),
    /** Used when the primary model stays throttled after retries. */
    bedrockFallbackModelId: z.string().min(1).optional(),
    pollyVoice: z.string().min(1).default('Ruth'),
    pollyEngine: z.enum(['standard', 'neural', 'long-form', 'generative']).default('generative'),
    transcribeLanguage: z
      .string()
      .regex(/^[a-z]{2}-[A-Z]{2}$/, 'must be a language code such as en-US')
      .default('en-US'),
    /**
     * Answer on Transcribe's stable words before its final arrives, keeping the answer only when the final confirms
     * them (agent/README.md, "Speculative turn-taking"). Off: every answer starts from the final.
     */
    speculativeTurns: z.boolean().default(true),
    /**
     * Call audio: off, announce (a notice is played first) or consent (the caller is asked; no means nothing is
     * stored). Stereo WAV parts, caller left and agent right, under recordings/ in the transcripts bucket.
     */
    recording: z
      .object({
        mode: z.enum(['off', 'announce', 'consent']).default('off'),
        sampleRate: z
          .union([z.literal(8_000), z.literal(16_000)], { error: 'must be 8000 or 16000 (Hz)' })
          .default(16_000),
        /** announce: what the caller hears first (default in agent/src/records/call-audio.ts). */
        notice: recordingSentenceSchema.optional(),
        /** consent: the question that opens the call; the caller's answer decides. */
        consentQuestion: recordingSentenceSchema.optional(),
      })
      .strict()
      .superRefine((recording, ctx) => {
        // A sentence for the other mode would be ignored without a word: say so at synth.
        if (recording.notice !== undefined && recording.mode !== 'announce')
          ctx.addIssue({ code: 'custom', path: ['notice'], message: 'is spoken only with mode "announce"' });
        if (recording.consentQuestion !== undefined && recording.mode !== 'consent')
          ctx.addIssue({ code: 'custom', path: ['consentQuestion'], message: 'is asked only with mode "consent"' });
      })
      .default({ mode: 'off', sampleRate: 16_000 }),
  })
  .strict();

export const enrichmentSchema = z
  .object({
    /** Model for post-call insights; defaults to agent.bedrockModelId. */
    modelId: z.string().min(1).optional(),
    /** Transcripts larger than this get an error record instead of an enrichment. */
    maxTranscriptBytes: z
      .number()
      .int()
      .min(1_024)
      .max(10 * 1_048_576)
      .default(1_048_576),
    /** Concurrent enrichments at most: bounds Bedrock spend and throttling during a backlog. */
    reservedConcurrency: z.number().int().min(1).max(1_000).default(10),
    /** How long the event bus archive keeps IntakeEnriched events for replay. */
    archiveRetentionDays: retentionDays.default(90),
  })
  .strict();

const portRange = z
  .object({ min: z.number().int().min(1024).max(65535), max: z.number().int().min(1024).max(65535) })
  .strict()
  .refine((range) => range.min <= range.max, 'is reversed (min > max)');

/**
 * An image pinned to a release: `name:tag` (not `latest`, which moves), `name@sha256:<digest>`, or both. An upgrade is
 * then a config change that shows in review, never a surprise at deploy. The name may start with a registry and its
 * port (`registry.example.org:5000/livekit/sip:v1.11.0`): that colon is not a tag's.
 */
const pinnedImageSchema = z.string().superRefine((image, ctx) => {
  const match = /^(?:[\w.-]+:\d{1,5}\/)?[\w./-]+(?::([\w.-]+))?(@sha256:[0-9a-f]{64})?$/.exec(image);
  const [, tag, digest] = match ?? [];
  const message = !match
    ? 'must be an image reference such as livekit/sip:v1.11.0 or livekit/sip@sha256:<digest>'
    : digest
      ? undefined
      : tag === undefined
        ? 'must be pinned: give a release tag or an @sha256: digest'
        : tag === 'latest'
          ? 'must be pinned: "latest" moves with every release; give a release tag or an @sha256: digest'
          : undefined;
  if (message) ctx.addIssue({ code: 'custom', message });
});

export const livekitSchema = z
  .object({
    /** Pinned images: an upgrade is a config change that shows in review, never a surprise at deploy. */
    serverImage: pinnedImageSchema.default('livekit/livekit-server:v1.13.5'),
    sipImage: pinnedImageSchema.default('livekit/sip:v1.11.0'),
    instanceType: z
      .string()
      .regex(/^[a-z][a-z0-9-]*\.[a-z0-9]+$/, 'must be an EC2 instance type')
      .default('c7i.xlarge'),
    minHosts: z.number().int().min(1).max(50).default(2),
    maxHosts: z.number().int().min(1).max(100).default(6),
    apiPort: z.number().int().min(1024).max(65535).default(7880),
    rtcTcpPort: z.number().int().min(1024).max(65535).default(7881),
    rtcUdpPortRange: portRange.default({ min: 50000, max: 60000 }),
    sipPort: z.number().int().min(1).max(65535).default(5060),
    sipRtpPortRange: portRange.default({ min: 10000, max: 20000 }),
    /**
     * How long a LiveKit host being upgraded may take to finish its calls (LiveKit drains on SIGTERM; ECS waits this
     * long before it kills the task). Meanwhile the edge sends the host no new call.
     */
    drainSeconds: z.number().int().min(30).max(3_600).default(900),
    /** Calls one LiveKit SIP node takes before it refuses more (then the edge fails over). */
    maxActiveCalls: z.number().int().min(1).max(2_000).default(100),
    maxCpuUtilization: z.number().min(0.1).max(1).default(0.9),
    sipHealthPort: z.number().int().min(1024).max(65535).default(8080),
    serverPrometheusPort: z.number().int().min(1024).max(65535).default(6789),
    sipPrometheusPort: z.number().int().min(1024).max(65535).default(6790),
    /** The agent dispatched into each call's room. */
    agentName: z
      .string()
      .regex(/^[a-z][a-z0-9-]{1,62}$/, 'lowercase letters, digits and "-"')
      .default('intake-agent'),
    roomPrefix: z
      .string()
      .regex(/^[a-z][a-z0-9_-]{0,30}$/, 'lowercase letters, digits, "_" and "-"')
      .default('call-'),
    /** The numbers (DIDs) the inbound trunk answers; empty = any number arriving from the edge. */
    sipNumbers: z.array(z.string().regex(/^\+[1-9]\d{6,14}$/, 'must be E.164')).default([]),
  })
  .strict()
  .superRefine((livekit, ctx) => {
    if (livekit.minHosts > livekit.maxHosts)
      ctx.addIssue({ code: 'custom', path: ['minHosts'], message: `must not exceed maxHosts (${livekit.maxHosts})` });
    const ranges = [
      ['rtcUdpPortRange', livekit.rtcUdpPortRange],
      ['sipRtpPortRange', livekit.sipRtpPortRange],
    ] as const;
    if (ranges[0][1].min <= ranges[1][1].max && ranges[1][1].min <= ranges[0][1].max) {
      ctx.addIssue({
        code: 'custom',
        path: ['sipRtpPortRange'],
        message: 'overlaps rtcUdpPortRange (both run on the same host)',
      });
    }
    const singles = {
      apiPort: livekit.apiPort,
      rtcTcpPort: livekit.rtcTcpPort,
      sipPort: livekit.sipPort,
      sipHealthPort: livekit.sipHealthPort,
      serverPrometheusPort: livekit.serverPrometheusPort,
      sipPrometheusPort: livekit.sipPrometheusPort,
    };
    const seen = new Map<number, string>();
    for (const [name, port] of Object.entries(singles)) {
      const other = seen.get(port);
      if (other)
        ctx.addIssue({ code: 'custom', path: [name], message: `${port} is also ${other} (one host runs both)` });
      seen.set(port, name);
      for (const [rangeName, range] of ranges) {
        if (port >= range.min && port <= range.max)
          ctx.addIssue({ code: 'custom', path: [name], message: `${port} lies in ${rangeName}` });
      }
    }
  });

/**
 * RFC 2606/6761 names that can never be a real PBX: a target like this deploys but fails every transfer. A fully
 * qualified name's trailing dot (`example.com.`) names the same host; `localhost` is this host, never the PBX.
 */
const PLACEHOLDER_HOST =
  /@?(?:^|[.@:])(?:example\.(?:com|net|org)|localhost|[^;>\s]*\.(?:example|invalid|test|localhost))\.?(?:[:;>]|$)/i;

export const mcpSchema = z
  .object({
    /** Knowledge search behind `search_knowledge`: an OpenSearch Serverless collection, or the bundled markdown index. */
    knowledgeBackend: z.enum(['opensearch', 'embedded']).default('opensearch'),
    /**
     * Queue name → SIP/tel URI that `request_human_transfer` may hand a call to. Required: a real target of yours, or
     * `{}` to turn transfer to a person off (then the tool is not offered). Documentation hosts are refused.
     */
    transferTargets: z.record(
      z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'queue names are lowercase words'),
      z
        .string()
        .regex(/^(sip|tel):\S+$/, 'must be a sip: or tel: URI')
        .refine(
          (uri) => !PLACEHOLDER_HOST.test(uri),
          'names a documentation host (example.com, .invalid, .test, localhost): give your PBX',
        ),
      {
        error: (issue) =>
          issue.input === undefined
            ? 'is required: map each queue to your PBX, e.g. {"front_desk":"sip:front-desk@pbx.yourcompany.com"}, or set {} to turn transfer off'
            : undefined,
      },
    ),
    /** The queue used when the agent names none; defaults to the first of transferTargets. */
    defaultTransferQueue: z.string().optional(),
    /** What lookup_caller reveals and which tools run at each attestation level (mcp-server/README.md). */
    callerTrust: callerTrustSchema.default(DEFAULT_CALLER_TRUST),
    /** The enterprise REST endpoint that receives submitted cases; unset = cases stay in DynamoDB only. */
    backendUrl: z.url({ protocol: /^https$/, message: 'must be an https:// URL' }).optional(),
    port: z.number().int().min(1024).max(65535).default(8080),
    cpu: z.union([z.literal(256), z.literal(512), z.literal(1024), z.literal(2048)]).default(512),
    memoryMiB: z.number().int().min(512).max(8192).default(1024),
    desiredCount: z.number().int().min(1).max(20).default(2),
  })
  .strict()
  .superRefine((mcp, ctx) => {
    if (mcp.defaultTransferQueue !== undefined && !Object.hasOwn(mcp.transferTargets, mcp.defaultTransferQueue)) {
      ctx.addIssue({
        code: 'custom',
        path: ['defaultTransferQueue'],
        message: `is not a queue of transferTargets (${Object.keys(mcp.transferTargets).join(', ')})`,
      });
    }
  });

/** The default agent task (2 vCPU / 4 GiB) and the calls it holds by the measured per-call cost (contracts). */
const AGENT_DEFAULT_CPU = 2048;
const AGENT_DEFAULT_MEMORY_MIB = 4096;
const AGENT_DEFAULT_CALLS = agentTaskCapacity(AGENT_DEFAULT_CPU / 1024, AGENT_DEFAULT_MEMORY_MIB).calls;

export const agentServiceSchema = z
  .object({
    cpu: z.union([z.literal(1024), z.literal(2048), z.literal(4096)]).default(AGENT_DEFAULT_CPU),
    memoryMiB: z.number().int().min(2048).max(30_720).default(AGENT_DEFAULT_MEMORY_MIB),
    minTasks: z.number().int().min(1).max(200).default(2),
    maxTasks: z.number().int().min(1).max(500).default(20),
    /** Scale out above this average CPU (LiveKit's guidance: ~4 cores per 25 voice agents). */
    targetCpuPercent: z.number().int().min(20).max(90).default(60),
    /**
     * Calls one task takes at most: LiveKit sees the worker as full beyond (each call is a job process). Default:
     * what the default task holds by the measured per-call CPU and memory (`agentTaskCapacity`, contracts).
     */
    maxCallsPerTask: z.number().int().min(1).max(200).default(AGENT_DEFAULT_CALLS),
    /** Scale out when tasks average more calls than this (below maxCallsPerTask: room for bursts). */
    targetCallsPerTask: z.number().int().min(1).max(200).default(agentScalingTarget(AGENT_DEFAULT_CALLS)),
    /** How long a task being stopped may take to finish its calls (Fargate allows at most 120 s). */
    stopTimeoutSeconds: z.number().int().min(10).max(120).default(120),
    piiRedaction: z.boolean().default(false),
  })
  .strict()
  .superRefine((service, ctx) => {
    if (service.minTasks > service.maxTasks)
      ctx.addIssue({ code: 'custom', path: ['minTasks'], message: `must not exceed maxTasks (${service.maxTasks})` });
    if (service.targetCallsPerTask > service.maxCallsPerTask) {
      ctx.addIssue({
        code: 'custom',
        path: ['targetCallsPerTask'],
        message: `must not exceed maxCallsPerTask (${service.maxCallsPerTask})`,
      });
    }
    const neededMiB = agentTaskMemoryMiB(service.maxCallsPerTask);
    if (neededMiB > service.memoryMiB) {
      const fixedMiB = agentTaskMemoryMiB(0);
      const perCall = `${AGENT_CALL_COST.jobProcessMiB} MiB per call process + ${fixedMiB}`;
      const message = `needs about ${neededMiB} MiB (${perCall}), more than memoryMiB (${service.memoryMiB})`;
      ctx.addIssue({ code: 'custom', path: ['maxCallsPerTask'], message });
    }
  });

export const observabilitySchema = z
  .object({
    /** Subscribe this address to the alarm topic, ours or alarmTopicArn (confirm the e-mail after deploy). */
    alarmEmail: z.email().optional(),
    /** Use an existing topic instead of creating one. */
    alarmTopicArn: z
      .string()
      .regex(/^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[\w-]+$/, 'must be an SNS topic ARN')
      .optional(),
    /** Alarm when voice-to-voice latency p95 stays above this. */
    voiceToVoiceP95ThresholdMs: z.number().int().min(200).max(10_000).default(1_500),
    /** Alarm when tool calls fail more often than this in five minutes. */
    toolErrorsPerFiveMinutes: z.number().int().min(1).max(10_000).default(10),
    /** Alarm when LiveKit SIP closes more inbound calls with an error than this in five minutes. */
    sipCallErrorsPerFiveMinutes: z.number().int().min(1).max(10_000).default(5),
    /**
     * Alarm when more caller turns than this in five minutes got no answer after every retry and the fallback model
     * (each one a caller who heard an apology instead); 0 pages on the first.
     */
    unansweredTurnsPerFiveMinutes: z.number().int().min(0).max(10_000).default(0),
    /**
     * Alarm when the edge's RTPEngine refused to anchor more calls' media than this in five minutes (out of ports, not
     * answering): each one answered 503 or 488. A rate, not the first one: a burst of forged INVITEs can cost a few.
     */
    mediaAnchorFailuresPerFiveMinutes: z.number().int().min(1).max(10_000).default(5),
    /**
     * Alarm when at least this many calls in five minutes could not be set up (agent `CallSetupFailures`: Redis
     * unreachable, the call's state unreadable): each one a caller transferred without a word or hung up on. 1: the
     * first.
     */
    callSetupFailuresPerFiveMinutes: z.number().int().min(1).max(10_000).default(1),
  })
  .strict();

/** What AWS allows in tag keys and values: letters, digits, spaces and _ . : / = + - @. */
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;
/** Tags a resource may hold (50) less the ones the CDK adds itself (Name, aws-cdk:subnet-type on subnets). */
export const MAX_TAGS = 48;

const tagsSchema = z.record(z.string(), z.string()).superRefine((tags, ctx) => {
  const entries = Object.entries(tags);
  if (entries.length > MAX_TAGS)
    ctx.addIssue({
      code: 'custom',
      message: `${entries.length} tags: at most ${MAX_TAGS} (AWS allows 50 per resource)`,
    });
  for (const [key, value] of entries) {
    if (key.length === 0) {
      ctx.addIssue({ code: 'custom', message: 'has a tag with an empty key' });
      continue;
    }
    const problems = [
      key.length > 128 && `the key is ${key.length} characters, more than 128`,
      /^aws:/i.test(key) && 'keys starting with "aws:" are reserved for AWS',
      !TAG_TEXT.test(key) && 'the key may hold only letters, digits, spaces and _ . : / = + - @',
      value.length > 256 && `the value is ${value.length} characters, more than 256`,
      !TAG_TEXT.test(value) && 'the value may hold only letters, digits, spaces and _ . : / = + - @',
    ].filter((problem): problem is string => typeof problem === 'string');
    for (const message of problems) ctx.addIssue({ code: 'custom', path: [key], message });
  }
});

/** Bucket-name prefixes S3 reserves: a deployment name starting so would fail the data stack at deploy. */
const S3_RESERVED_PREFIXES = ['xn--', 'sthree-', 'amzn-s3-demo-'] as const;

export const voiceIntakeConfigSchema = z
  .object({
    /** Prefix of every stack name, so two deployments can share one account. */
    deploymentName: z
      .string()
      .regex(
        /^[a-z][a-z0-9-]{0,19}$/,
        'must start with a lowercase letter and hold only lowercase letters, digits and "-" (max 20: it prefixes S3 bucket names)',
      )
      .refine((name) => !S3_RESERVED_PREFIXES.some((prefix) => name.startsWith(prefix)), {
        message: `must not start with ${S3_RESERVED_PREFIXES.map((prefix) => `"${prefix}"`).join(', ')} (S3 refuses bucket names that do)`,
      })
      .default('voice-intake'),
    /** Both or neither: with them the app is environment-specific (real AZ names, lookups). */
    account: z
      .string()
      .regex(/^\d{12}$/, 'must be a 12-digit AWS account id')
      .optional(),
    region: z
      .string()
      .regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as us-east-1')
      .optional(),
    azCount: z.number().int().min(2, 'must be at least 2 (the edge and Redis fail over across AZs)').max(6).default(2),
    network: networkSchema.default(networkSchema.parse({})),
    data: dataSchema.default(dataSchema.parse({})),
    edge: edgeSectionSchema.default(edgeSectionSchema.parse({})),
    agent: agentSchema.default(agentSchema.parse({})),
    enrichment: enrichmentSchema.default(enrichmentSchema.parse({})),
    // A missing section is parsed as an empty one (the cast: {} is deliberately incomplete), so the error names
    // mcp.transferTargets as required.
    mcp: mcpSchema.prefault({} as z.input<typeof mcpSchema>),
    livekit: livekitSchema.default(livekitSchema.parse({})),
    agentService: agentServiceSchema.default(agentServiceSchema.parse({})),
    observability: observabilitySchema.default(observabilitySchema.parse({})),
    tags: tagsSchema.default({}),
  })
  .strict()
  .superRefine((config, ctx) => {
    if ((config.account === undefined) !== (config.region === undefined)) {
      ctx.addIssue({
        code: 'custom',
        path: [config.account ? 'region' : 'account'],
        message: 'account and region go together: set both or neither',
      });
    }
    if (config.region && config.edge.amiIds && !(config.region in config.edge.amiIds)) {
      ctx.addIssue({ code: 'custom', path: ['edge', 'amiIds'], message: `has no image for region ${config.region}` });
    }
    const vpcSize = 2 ** (32 - (parseIpv4Cidr(config.network.vpcCidr)?.prefixLength ?? 32));
    const needed = subnetSpan(config.azCount);
    if (needed > vpcSize) {
      const prefix = 32 - Math.ceil(Math.log2(needed));
      const layout = `a public /${SUBNET_MASKS.public}, a private /${SUBNET_MASKS.private} and an isolated /${SUBNET_MASKS.isolated}`;
      ctx.addIssue({
        code: 'custom',
        path: ['network', 'vpcCidr'],
        message: `is too small for ${config.azCount} AZs of ${layout} each (${needed} addresses): use /${prefix} or wider`,
      });
    }
    if (config.network.natGateways !== undefined && config.network.natGateways > config.azCount) {
      ctx.addIssue({
        code: 'custom',
        path: ['network', 'natGateways'],
        message: `must not exceed azCount (${config.azCount})`,
      });
    }
  });

export type VoiceIntakeConfig = z.infer<typeof voiceIntakeConfigSchema>;
export type VoiceIntakeConfigInput = z.input<typeof voiceIntakeConfigSchema>;

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

/** Validates an already-assembled config object; throws one ConfigError whose message names every bad key. */
export function parseConfig(raw: unknown): VoiceIntakeConfig {
  const result = voiceIntakeConfigSchema.safeParse(raw ?? {});
  if (!result.success) {
    throw new ConfigError(`invalid ${CONFIG_CONTEXT_KEY} config: ${describeIssues(result.error.issues)}`);
  }
  return result.data;
}

type ContextReader = { tryGetContext(key: string): unknown };

function parseContextValue(key: string, value: unknown): unknown {
  if (typeof value !== 'string') return value;
  try {
    return JSON.parse(value);
  } catch {
    // A bare word after a dotted key (`-c voiceIntake.deploymentName=prod`) is a string.
    if (key !== CONFIG_CONTEXT_KEY) return value;
    throw new ConfigError(`invalid ${CONFIG_CONTEXT_KEY} config: -c ${CONFIG_CONTEXT_KEY}=… is not valid JSON`);
  }
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown, fullKey: string): void {
  let node = target;
  for (const segment of path.slice(0, -1)) {
    const next = node[segment];
    if (next === undefined) node[segment] = {};
    else if (next === null || typeof next !== 'object' || Array.isArray(next)) {
      throw new ConfigError(`invalid ${CONFIG_CONTEXT_KEY} config: ${fullKey}: ${segment} is not an object`);
    }
    node = node[segment] as Record<string, unknown>;
  }
  node[path[path.length - 1]] = value;
}

/** A dotted `-c` key: where it goes, the value as JSON read it, and the text as given. */
interface DottedOverride {
  readonly key: string;
  readonly path: string[];
  readonly value: unknown;
  readonly text?: string;
}

function issueUnder(
  issues: readonly { code?: string; path: readonly PropertyKey[] }[],
  path: readonly string[],
  code?: string,
): boolean {
  return issues.some(
    (issue) =>
      (code === undefined || issue.code === code) &&
      path.every((segment, index) => String(issue.path[index]) === segment),
  );
}

function mergeOverrides(base: Record<string, unknown>, overrides: readonly DottedOverride[], asText: Set<string>) {
  const merged = structuredClone(base);
  for (const override of overrides) {
    const value = asText.has(override.key) ? override.text : override.value;
    setPath(merged, override.path, value, override.key);
  }
  return merged;
}

/**
 * Reads the operator config from CDK context: the `voiceIntake` object (cdk.json, or `-c voiceIntake='<JSON>'`,
 * which replaces it), then any dotted keys (`-c voiceIntake.edge.hostsPerAz=1`) patched on top. Values given on the
 * command line arrive as strings and are parsed as JSON where they are JSON; a dotted value the schema refuses as JSON
 * (`-c voiceIntake.account=123456789012`: a number where the key is a string) is taken as the text it was given.
 */
export function readConfig(context: ContextReader, allContext: Record<string, unknown>): VoiceIntakeConfig {
  const base = parseContextValue(CONFIG_CONTEXT_KEY, context.tryGetContext(CONFIG_CONTEXT_KEY)) ?? {};
  if (typeof base !== 'object' || Array.isArray(base)) {
    throw new ConfigError(`invalid ${CONFIG_CONTEXT_KEY} config: must be a JSON object`);
  }
  const prefix = `${CONFIG_CONTEXT_KEY}.`;
  const overrides: DottedOverride[] = Object.keys(allContext)
    .filter((key) => key.startsWith(prefix))
    .sort()
    .map((key) => {
      const raw = allContext[key];
      const value = parseContextValue(key, raw);
      const text = typeof raw === 'string' ? raw : undefined;
      return { key, path: key.slice(prefix.length).split('.'), value, text };
    });
  const asText = new Set<string>();
  const first = voiceIntakeConfigSchema.safeParse(mergeOverrides(base as Record<string, unknown>, overrides, asText));
  if (first.success) return first.data;
  // A scalar JSON read as a number, boolean or null where the schema wants text: try the text as given, and keep it
  // unless the key refuses text too (`edge.hostsPerAz=true` is reported as the boolean it was read as).
  const retried = overrides.filter(
    (override) =>
      override.text !== undefined &&
      typeof override.value !== 'string' &&
      (override.value === null || typeof override.value !== 'object') &&
      issueUnder(first.error.issues, override.path),
  );
  if (retried.length === 0) return parseConfig(mergeOverrides(base as Record<string, unknown>, overrides, asText));
  for (const override of retried) asText.add(override.key);
  const second = voiceIntakeConfigSchema.safeParse(mergeOverrides(base as Record<string, unknown>, overrides, asText));
  if (!second.success) {
    for (const override of retried)
      if (issueUnder(second.error.issues, override.path, 'invalid_type')) asText.delete(override.key);
  }
  return parseConfig(mergeOverrides(base as Record<string, unknown>, overrides, asText));
}

/**
 * The context `cdk synth` sees from cdk.json's `context` and the command line's `-c key=value` / `--context key=value`
 * (which win, as they do for the CDK), for tools outside the CDK app that must read the config exactly as synth does.
 */
export function contextFromCommandLine(
  cdkJsonContext: Record<string, unknown>,
  argv: readonly string[],
): Record<string, unknown> {
  const context: Record<string, unknown> = { ...cdkJsonContext };
  for (let index = 0; index < argv.length; index++) {
    const arg = argv[index];
    let pair: string | undefined;
    if (arg === '-c' || arg === '--context') pair = argv[++index];
    else if (arg.startsWith('--context=')) pair = arg.slice('--context='.length);
    if (pair === undefined) continue;
    const equals = pair.indexOf('=');
    if (equals <= 0) throw new ConfigError(`invalid ${CONFIG_CONTEXT_KEY} config: ${arg} ${pair}: expected key=value`);
    context[pair.slice(0, equals)] = pair.slice(equals + 1);
  }
  return context;
}

/** readConfig over a plain context object (cdk.json's context with command-line keys, see contextFromCommandLine). */
export function readConfigFromContext(context: Record<string, unknown>): VoiceIntakeConfig {
  return readConfig({ tryGetContext: (key) => context[key] }, context);
}
