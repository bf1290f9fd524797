import {
  AGENT_METRICS,
  type EDGE_METRICS,
  type LIVEKIT_SIP_METRICS,
  type MCP_SERVER_METRICS,
  metricsNamespace,
} from '@voice-intake/contracts';
import { CfnOutput, Duration, RemovalPolicy } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as actions from 'aws-cdk-lib/aws-cloudwatch-actions';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as kms from 'aws-cdk-lib/aws-kms';
import * as sns from 'aws-cdk-lib/aws-sns';
import * as subscriptions from 'aws-cdk-lib/aws-sns-subscriptions';
import type { Construct } from 'constructs';
import { VoiceIntakeStack, type VoiceIntakeStackProps } from './voice-intake-stack';

export interface ObservabilityStackProps extends VoiceIntakeStackProps {
  readonly redisReplicationGroupId: string;
  /** Nodes in the group (primary + replicas). */
  readonly redisNodeCount: number;
  /** Alarms other stacks created that should page too (enrichment DLQ, …). */
  readonly existingAlarms: cloudwatch.IAlarm[];
  /** What the edge refused and calls it could not place (metric filters on the edge hosts' logs). */
  readonly edgeMetrics: Record<keyof typeof EDGE_METRICS, cloudwatch.Metric>;
  /** LiveKit SIP's failed and rejected inbound calls (metric filters on its logs). */
  readonly livekitSipMetrics: Record<keyof typeof LIVEKIT_SIP_METRICS, cloudwatch.Metric>;
  /** Submitted cases the backend refused for good or has not taken for too long (metric filters on the MCP server's logs). */
  readonly mcpServerMetrics: Record<keyof typeof MCP_SERVER_METRICS, cloudwatch.Metric>;
}

/**
 * One dashboard for the whole call path and the alarms that page: voice-to-voice p95 over threshold, tool errors,
 * calls the agent could not set up, LiveKit SIP call failures, calls the edge could not place, an AZ with no healthy
 * edge host, submitted cases the backend refused or has not taken, Redis under pressure or failing over, and whatever
 * other stacks hand in — all to one SNS topic.
 */
export class ObservabilityStack extends VoiceIntakeStack {
  readonly topic: sns.ITopic;
  readonly dashboard: cloudwatch.Dashboard;

  constructor(scope: Construct, id: string, props: ObservabilityStackProps) {
    super(scope, id, props);
    const { observability, deploymentName } = props.config;
    const namespace = metricsNamespace(deploymentName);
    const agentMetric = (name: string, statistic: string, label?: string) =>
      new cloudwatch.Metric({
        namespace,
        metricName: name,
        dimensionsMap: { Service: 'agent' },
        statistic,
        period: Duration.minutes(1),
        label,
      });

    if (observability.alarmTopicArn) {
      this.topic = sns.Topic.fromTopicArn(this, 'AlarmTopic', observability.alarmTopicArn);
      // Asked for as well: the address is subscribed to the topic named, as it would be to one of ours.
      if (observability.alarmEmail)
        this.topic.addSubscription(new subscriptions.EmailSubscription(observability.alarmEmail));
    } else {
      const key = new kms.Key(this, 'AlarmTopicKey', {
        description: 'Encrypts the alarm topic',
        enableKeyRotation: true,
        removalPolicy: RemovalPolicy.RETAIN,
      });
      key.grantEncryptDecrypt(new iam.ServicePrincipal('cloudwatch.amazonaws.com'));
      const topic = new sns.Topic(this, 'AlarmTopic', {
        displayName: `${deploymentName} alarms`,
        masterKey: key,
        enforceSSL: true,
      });
      if (observability.alarmEmail)
        topic.addSubscription(new subscriptions.EmailSubscription(observability.alarmEmail));
      this.topic = topic;
    }
    const page = new actions.SnsAction(this.topic);

    const p95 = (name: string) => agentMetric(name, 'p95', `${name} p95`);
    const p50 = (name: string) => agentMetric(name, 'p50', `${name} p50`);
    const alarms: cloudwatch.Alarm[] = [];

    alarms.push(
      new cloudwatch.Alarm(this, 'VoiceToVoiceLatency', {
        alarmDescription: `Voice-to-voice latency p95 above ${observability.voiceToVoiceP95ThresholdMs} ms: callers wait too long for answers`,
        metric: agentMetric(AGENT_METRICS.voiceToVoiceLatency, 'p95'),
        threshold: observability.voiceToVoiceP95ThresholdMs,
        evaluationPeriods: 5,
        datapointsToAlarm: 3,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'ToolErrors', {
        alarmDescription: 'MCP tool calls are failing: callers hear apologies instead of answers',
        metric: agentMetric(AGENT_METRICS.toolErrors, 'Sum').with({ period: Duration.minutes(5) }),
        threshold: observability.toolErrorsPerFiveMinutes,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      new cloudwatch.Alarm(this, 'UnansweredTurns', {
        alarmDescription:
          'Caller turns went unanswered after every retry and the fallback model (Bedrock failing or throttled): callers hear an apology and are offered a person',
        metric: agentMetric(AGENT_METRICS.unansweredTurns, 'Sum').with({ period: Duration.minutes(5) }),
        threshold: observability.unansweredTurnsPerFiveMinutes,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      // Each one is a caller the agent never served: by default the first pages.
      new cloudwatch.Alarm(this, 'CallSetupFailures', {
        alarmDescription:
          'The agent could not set calls up (Redis unreachable, a call state it cannot read): callers were transferred without a word or hung up on',
        metric: agentMetric(AGENT_METRICS.callSetupFailures, 'Sum').with({ period: Duration.minutes(5) }),
        threshold: observability.callSetupFailuresPerFiveMinutes,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );

    const { edgeMetrics, livekitSipMetrics } = props;
    // A single call the edge refused is worth a page: each one is a caller who heard nothing.
    const edgeRefusedCalls = (id: string, alarmDescription: string, metric: cloudwatch.IMetric) =>
      new cloudwatch.Alarm(this, id, {
        alarmDescription,
        metric,
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    alarms.push(
      new cloudwatch.Alarm(this, 'LiveKitSipCallErrors', {
        alarmDescription:
          'LiveKit SIP is closing inbound calls with errors (media, room join, participant): callers are dropped',
        metric: livekitSipMetrics.callErrors.with({ period: Duration.minutes(5) }),
        threshold: observability.sipCallErrorsPerFiveMinutes,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      edgeRefusedCalls(
        'EdgeNoLiveKitNode',
        'The SIP edge found no LiveKit SIP node up and answered calls with 503',
        edgeMetrics.noLiveKitNode,
      ),
      edgeRefusedCalls(
        'EdgeTopologyStoreDown',
        "An edge host's topology-hiding Redis did not answer and the host answered calls with 503",
        edgeMetrics.topologyStoreDown,
      ),
      // RTPEngine out of ports or not answering on a host: its calls are refused until it recovers.
      new cloudwatch.Alarm(this, 'EdgeMediaAnchorFailures', {
        alarmDescription:
          "An edge host's RTPEngine could not anchor calls' media (out of ports or not answering): those calls were refused",
        metric: edgeMetrics.mediaAnchorFailures.with({ period: Duration.minutes(5) }),
        threshold: observability.mediaAnchorFailuresPerFiveMinutes,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      // Each one is a caller who rang out and heard no one: no agent joined in time, or the number is on no trunk.
      edgeRefusedCalls(
        'EdgeUnansweredCalls',
        'Calls rang at LiveKit SIP for edge.ringTimeoutSeconds without an answer and the edge ended them with 480',
        edgeMetrics.unansweredCalls,
      ),
    );

    // A submitted case that does not reach the backend is an intake nobody downstream acts on: each one pages.
    const { mcpServerMetrics } = props;
    const caseNotForwarded = (id: string, alarmDescription: string, metric: cloudwatch.Metric) =>
      new cloudwatch.Alarm(this, id, {
        alarmDescription,
        metric: metric.with({ period: Duration.minutes(5) }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      });
    alarms.push(
      caseNotForwarded(
        'CaseForwardRefused',
        'The backend refused a submitted case for good (4xx): it is not retried; fix the cause, then redrive it (README: forwarding to your backend)',
        mcpServerMetrics.caseForwardRefused,
      ),
      caseNotForwarded(
        'CaseForwardOverdue',
        'Submitted cases have waited for the backend longer than the overdue age: the backend is down or failing',
        mcpServerMetrics.caseForwardOverdue,
      ),
    );

    const redisNodes = Array.from(
      { length: props.redisNodeCount },
      (_, index) => `${props.redisReplicationGroupId}-${String(index + 1).padStart(3, '0')}`,
    );
    const redisPrimary = redisNodes[0];
    const redisNodeMetric = (name: string, node: string, statistic = 'Maximum') =>
      new cloudwatch.Metric({
        namespace: 'AWS/ElastiCache',
        metricName: name,
        dimensionsMap: { CacheClusterId: node },
        statistic,
        period: Duration.minutes(1),
      });
    const redisMetric = (name: string, statistic = 'Maximum') => redisNodeMetric(name, redisPrimary, statistic);
    alarms.push(
      new cloudwatch.Alarm(this, 'RedisEngineCpu', {
        alarmDescription: 'Session Redis engine CPU above 80%: LiveKit room state and call state slow down',
        metric: redisMetric('EngineCPUUtilization'),
        threshold: 80,
        evaluationPeriods: 5,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
      }),
      new cloudwatch.Alarm(this, 'RedisReplicationLag', {
        alarmDescription: 'Session Redis replica lagging: a failover now would lose recent call state',
        metric: new cloudwatch.Metric({
          namespace: 'AWS/ElastiCache',
          metricName: 'ReplicationLag',
          dimensionsMap: { CacheClusterId: `${props.redisReplicationGroupId}-002` },
          statistic: 'Maximum',
          period: Duration.minutes(1),
        }),
        threshold: 5,
        evaluationPeriods: 5,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
      // A failover moves the primary role: IsMaster changes on both nodes. It pages once and clears by itself.
      new cloudwatch.Alarm(this, 'RedisFailover', {
        alarmDescription:
          'Session Redis failed over to its replica: calls in flight may have lost their last state writes',
        metric: new cloudwatch.MathExpression({
          expression: redisNodes.map((_, index) => `ABS(DIFF(node${index + 1}))`).join(' + '),
          usingMetrics: Object.fromEntries(
            redisNodes.map((node, index) => [`node${index + 1}`, redisNodeMetric('IsMaster', node)]),
          ),
          period: Duration.minutes(1),
          label: 'primary role changes',
        }),
        threshold: 1,
        evaluationPeriods: 1,
        comparisonOperator: cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
        treatMissingData: cloudwatch.TreatMissingData.NOT_BREACHING,
      }),
    );
    for (const alarm of alarms) {
      alarm.addAlarmAction(page);
      alarm.addOkAction(page);
    }
    // Alarms other stacks own get their actions here, where the topic is.
    props.existingAlarms.forEach((alarm, index) => {
      new cloudwatch.CompositeAlarm(this, `Forwarded${index}`, {
        alarmDescription: `Pages for ${alarm.alarmName}`,
        alarmRule: cloudwatch.AlarmRule.fromAlarm(alarm, cloudwatch.AlarmState.ALARM),
      }).addAlarmAction(page);
    });

    this.dashboard = new cloudwatch.Dashboard(this, 'Dashboard', { dashboardName: `${deploymentName}-calls` });
    this.dashboard.addWidgets(
      new cloudwatch.GraphWidget({
        title: 'Calls in progress',
        // One ActiveCalls point per task per minute: the Sum is every call the agents hold.
        left: [agentMetric(AGENT_METRICS.activeCalls, 'Sum', 'in progress')],
        right: [
          agentMetric(AGENT_METRICS.callsStarted, 'Sum', 'started / min'),
          agentMetric(AGENT_METRICS.callsEnded, 'Sum', 'ended / min'),
          agentMetric(AGENT_METRICS.callsTakenOver, 'Sum', 'left to another worker / min'),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Voice-to-voice latency (ms)',
        left: [p50(AGENT_METRICS.voiceToVoiceLatency), p95(AGENT_METRICS.voiceToVoiceLatency)],
        leftAnnotations: [{ value: observability.voiceToVoiceP95ThresholdMs, label: 'p95 alarm' }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Per-stage latency p50/p95 (ms)',
        left: [
          AGENT_METRICS.endOfUtteranceDelay,
          AGENT_METRICS.sttFinalDelay,
          AGENT_METRICS.llmTimeToFirstToken,
          AGENT_METRICS.ttsTimeToFirstByte,
        ].flatMap((name) => [p50(name), p95(name)]),
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Tools and AWS services',
        left: [p95(AGENT_METRICS.toolLatency)],
        right: [
          agentMetric(AGENT_METRICS.toolErrors, 'Sum', 'errors'),
          // AWS service errors the session saw (retried or final), and turns the caller got an apology for instead.
          agentMetric(AGENT_METRICS.serviceErrors, 'Sum', 'AWS service errors'),
          agentMetric(AGENT_METRICS.unansweredTurns, 'Sum', 'unanswered turns'),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Speculative turn-taking',
        // Replies started before the caller's turn committed: kept (the caller heard them sooner) or cancelled unheard.
        left: [
          agentMetric(AGENT_METRICS.speculationHits, 'Sum', 'kept'),
          agentMetric(AGENT_METRICS.speculationCancels, 'Sum', 'cancelled'),
          new cloudwatch.MathExpression({
            expression: '100 * hits / (hits + cancels)',
            usingMetrics: {
              hits: agentMetric(AGENT_METRICS.speculationHits, 'Sum'),
              cancels: agentMetric(AGENT_METRICS.speculationCancels, 'Sum'),
            },
            label: 'hit rate %',
            period: Duration.minutes(1),
          }),
        ],
        // What the stable words gain: how long Transcribe's final came after them.
        right: [p50(AGENT_METRICS.finalAfterPreflightWait), p95(AGENT_METRICS.finalAfterPreflightWait)],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'SIP edge: refused (per minute)',
        left: [
          edgeMetrics.allowlistRejects.with({ label: 'not in allowlist' }),
          edgeMetrics.floodBans.with({ label: 'flood bans' }),
          edgeMetrics.scannerDrops.with({ label: 'scanners' }),
          edgeMetrics.malformedDrops.with({ label: 'malformed' }),
          edgeMetrics.oversizedRefusals.with({ label: 'oversized' }),
          edgeMetrics.topologyHidingFailures.with({ label: 'topology hiding failed' }),
          edgeMetrics.implausibleNumbers.with({ label: 'implausible number' }),
          edgeMetrics.invitesWithoutOffer.with({ label: 'INVITE without offer' }),
          edgeMetrics.foreignMediaAddresses.with({ label: 'media address not allowed' }),
          edgeMetrics.sdpRefusals.with({ label: 'SDP not rewritable' }),
          edgeMetrics.mediaAnchorFailures.with({ label: 'media not anchored' }),
          edgeMetrics.strayReplies.with({ label: 'replies without transaction' }),
          edgeMetrics.unknownLiveKitPeers.with({ label: 'not a LiveKit node' }),
          edgeMetrics.foreignNextHops.with({ label: 'in-dialog next hop not a LiveKit node' }),
          edgeMetrics.unconfirmedCalls.with({ label: 'never ACKed (media freed)' }),
          edgeMetrics.mediaSourceDrops.with({ label: 'RTP from wrong source' }),
          edgeMetrics.attestationRefusals.with({ label: 'caller attestation refused' }),
          edgeMetrics.deniedCallers.with({ label: 'caller on deny list' }),
          edgeMetrics.unlistedCallers.with({ label: 'caller not on allow list' }),
          edgeMetrics.anonymousCallers.with({ label: 'withheld number refused' }),
        ],
        stacked: true,
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Calls failing at LiveKit SIP (per minute)',
        left: [
          livekitSipMetrics.callErrors.with({ label: 'closed with error' }),
          livekitSipMetrics.callsRejected.with({ label: 'rejected (trunk, dispatch, flood)' }),
          edgeMetrics.noLiveKitNode.with({ label: 'no LiveKit node (edge 503)' }),
          edgeMetrics.topologyStoreDown.with({ label: 'topology store down (edge 503)' }),
          edgeMetrics.unansweredCalls.with({ label: 'rang unanswered (edge 480)' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Calls the agent could not set up (per 5 minutes)',
        // Answered, never served (agent/README.md, "A call that cannot be set up"); five-minute sums, as alarmed.
        left: [agentMetric(AGENT_METRICS.callSetupFailures, 'Sum', 'not set up').with({ period: Duration.minutes(5) })],
        leftAnnotations: [{ value: observability.callSetupFailuresPerFiveMinutes, label: 'alarm' }],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Cases to the backend (per minute)',
        left: [
          mcpServerMetrics.caseForwardRefused.with({ label: 'refused for good' }),
          mcpServerMetrics.caseForwardOverdue.with({ label: 'overdue (per redrive pass)' }),
        ],
        width: 8,
      }),
      new cloudwatch.GraphWidget({
        title: 'Session Redis',
        left: [redisMetric('EngineCPUUtilization'), redisMetric('CurrConnections')],
        right: [
          redisMetric('DatabaseMemoryUsagePercentage'),
          redisMetric('IsMaster').with({ label: 'node 001 is primary' }),
        ],
        width: 8,
      }),
      new cloudwatch.AlarmStatusWidget({ title: 'Alarms', alarms, width: 8 }),
    );

    // What a deployer needs after `cdk deploy`: where to look, and how to be told.
    new CfnOutput(this, 'DashboardUrl', {
      value: `https://${this.region}.console.aws.amazon.com/cloudwatch/home?region=${this.region}#dashboards:name=${this.dashboard.dashboardName}`,
      description: 'Calls, latency, errors and edge refusals',
    });
    new CfnOutput(this, 'AlarmTopicArn', {
      value: this.topic.topicArn,
      description:
        'Every alarm pages here. Subscribe: aws sns subscribe --topic-arn <this ARN> --protocol email --notification-endpoint you@example.org (then confirm the e-mail), or set observability.alarmEmail',
    });
  }
}
