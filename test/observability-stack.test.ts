import { AGENT_METRICS, EDGE_METRICS, LIVEKIT_SIP_METRICS, MCP_SERVER_METRICS } from '@voice-intake/contracts';
import { Match, type Template } from 'aws-cdk-lib/assertions';
import { beforeAll, describe, expect, it } from 'vitest';
import { synthVoiceIntake } from './support/synth';

describe('observability stack', () => {
  let observability: Template;

  beforeAll(() => {
    observability = synthVoiceIntake({
      observability: {
        alarmEmail: 'oncall@example.com',
        voiceToVoiceP95ThresholdMs: 1200,
        sipCallErrorsPerFiveMinutes: 7,
        unansweredTurnsPerFiveMinutes: 2,
        mediaAnchorFailuresPerFiveMinutes: 9,
        callSetupFailuresPerFiveMinutes: 3,
      },
    }).templates.observability;
  });

  const alarms = () =>
    Object.values(observability.findResources('AWS::CloudWatch::Alarm')).map((alarm) => alarm.Properties);

  it('pages an encrypted topic, with the operator subscribed', () => {
    observability.hasResourceProperties('AWS::SNS::Topic', { KmsMasterKeyId: Match.anyValue() });
    observability.hasResourceProperties('AWS::SNS::Subscription', {
      Protocol: 'email',
      Endpoint: 'oncall@example.com',
    });
    for (const alarm of alarms()) expect(JSON.stringify(alarm.AlarmActions)).toMatch(/AlarmTopic/);
  });

  it('alarms on voice-to-voice p95 from the agent metrics, at the configured threshold', () => {
    const latency = alarms().find((alarm) => alarm.MetricName === AGENT_METRICS.voiceToVoiceLatency)!;
    expect(latency).toMatchObject({
      Namespace: 'VoiceIntake/voice-intake',
      ExtendedStatistic: 'p95',
      Threshold: 1200,
      Dimensions: [{ Name: 'Service', Value: 'agent' }],
    });
    expect(alarms().find((alarm) => alarm.MetricName === AGENT_METRICS.toolErrors)).toMatchObject({
      Statistic: 'Sum',
      Period: 300,
    });
  });

  it('pages when caller turns go unanswered after every retry and the fallback model', () => {
    expect(alarms().find((alarm) => alarm.MetricName === AGENT_METRICS.unansweredTurns)).toMatchObject({
      Namespace: 'VoiceIntake/voice-intake',
      Dimensions: [{ Name: 'Service', Value: 'agent' }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 2,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [{ Ref: expect.stringMatching(/^AlarmTopic/) }],
    });
  });

  it('pages on calls the agent could not set up, at the configured count, by default the first', () => {
    expect(alarms().find((alarm) => alarm.MetricName === AGENT_METRICS.callSetupFailures)).toMatchObject({
      Namespace: 'VoiceIntake/voice-intake',
      Dimensions: [{ Name: 'Service', Value: 'agent' }],
      Statistic: 'Sum',
      Period: 300,
      Threshold: 3,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
      AlarmActions: [{ Ref: expect.stringMatching(/^AlarmTopic/) }],
      OKActions: [{ Ref: expect.stringMatching(/^AlarmTopic/) }],
    });
    const defaults = synthVoiceIntake({}).templates.observability;
    const setup = Object.values(defaults.findResources('AWS::CloudWatch::Alarm')).find(
      (alarm) => alarm.Properties.MetricName === AGENT_METRICS.callSetupFailures,
    );
    expect(setup?.Properties).toMatchObject({ Threshold: 1, ComparisonOperator: 'GreaterThanOrEqualToThreshold' });
  });

  it('graphs calls the agent could not set up beside the calls failing at LiveKit SIP, with the alarm line', () => {
    const [dashboard] = Object.values(observability.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    const start = body.indexOf('Calls the agent could not set up');
    expect(start).toBeGreaterThan(body.indexOf('Calls failing at LiveKit SIP'));
    const widget = body.slice(start, body.indexOf('Session Redis'));
    expect(widget).toContain(`\\"${AGENT_METRICS.callSetupFailures}\\"`);
    // Five-minute sums, as the alarm counts: the graph's default period, so the metric names none of its own.
    expect(widget).toContain('{\\"label\\":\\"not set up\\",\\"stat\\":\\"Sum\\"}');
    expect(widget).toContain('\\"value\\":3,\\"label\\":\\"alarm\\"');
  });

  it('watches Redis and forwards the enrichment DLQ, edge node sync and edge AZ health alarms to the topic', () => {
    expect(alarms().map((alarm) => alarm.MetricName)).toEqual(
      expect.arrayContaining(['EngineCPUUtilization', 'ReplicationLag']),
    );
    observability.hasResourceProperties('AWS::CloudWatch::CompositeAlarm', {
      AlarmActions: [Match.anyValue()],
      AlarmRule: Match.anyValue(),
    });
    // The enrichment DLQ, the edge node sync, each AZ's edge health (edge stack: test/edge-rollout) and an edge host
    // forwarding media in userspace page through here.
    observability.resourceCountIs('AWS::CloudWatch::CompositeAlarm', 5);
    const rules = Object.values(observability.findResources('AWS::CloudWatch::CompositeAlarm')).map((alarm) =>
      JSON.stringify(alarm.Properties.AlarmRule),
    );
    expect(rules.filter((rule) => /EdgeAz\dUnhealthy/.test(rule))).toHaveLength(2);
    expect(rules.filter((rule) => /EdgeMediaUserspace/.test(rule))).toHaveLength(1);
  });

  it('pages once when Redis fails over (the primary role moves between the nodes)', () => {
    const failover = alarms().find((alarm) => /failed over/.test(alarm.AlarmDescription))!;
    const metrics = failover.Metrics as {
      Id: string;
      Expression?: string;
      MetricStat?: { Metric: { MetricName: string; Dimensions: { Value: unknown }[] } };
    }[];
    expect(metrics.find((metric) => metric.Expression)?.Expression).toBe('ABS(DIFF(node1)) + ABS(DIFF(node2))');
    const nodes = metrics
      .filter((metric) => metric.MetricStat?.Metric.MetricName === 'IsMaster')
      .map((metric) => JSON.stringify(metric.MetricStat!.Metric.Dimensions[0].Value));
    expect(nodes).toHaveLength(2);
    expect(nodes[0]).toMatch(/-001/);
    expect(nodes[1]).toMatch(/-002/);
    expect(failover).toMatchObject({
      Threshold: 1,
      ComparisonOperator: 'GreaterThanOrEqualToThreshold',
      TreatMissingData: 'notBreaching',
    });
  });

  it('watches every Redis node for the primary role, however many replicas there are', () => {
    const { templates } = synthVoiceIntake({ data: { redisReplicas: 2 } });
    const failover = Object.values(templates.observability.findResources('AWS::CloudWatch::Alarm')).find((alarm) =>
      /failed over/.test(alarm.Properties.AlarmDescription),
    )!;
    const metrics = failover.Properties.Metrics as {
      Expression?: string;
      MetricStat?: { Metric: { Dimensions: { Value: unknown }[] } };
    }[];
    expect(metrics.find((metric) => metric.Expression)?.Expression).toBe(
      'ABS(DIFF(node1)) + ABS(DIFF(node2)) + ABS(DIFF(node3))',
    );
    expect(
      JSON.stringify(
        metrics.filter((metric) => metric.MetricStat).map((metric) => metric.MetricStat!.Metric.Dimensions[0].Value),
      ),
    ).toMatch(/-003/);
  });

  it('alarms on LiveKit SIP call errors at the configured rate and on calls the edge could not place (no node, no topology store)', () => {
    expect(alarms().find((alarm) => alarm.MetricName === LIVEKIT_SIP_METRICS.callErrors)).toMatchObject({
      Statistic: 'Sum',
      Period: 300,
      Threshold: 7,
    });
    expect(alarms().find((alarm) => alarm.MetricName === EDGE_METRICS.noLiveKitNode)).toMatchObject({
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
    });
    expect(alarms().find((alarm) => alarm.MetricName === EDGE_METRICS.topologyStoreDown)).toMatchObject({
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
    });
    expect(alarms().find((alarm) => alarm.MetricName === EDGE_METRICS.unansweredCalls)).toMatchObject({
      Statistic: 'Sum',
      Period: 60,
      Threshold: 1,
    });
  });

  it('graphs every stage of the call path on one dashboard', () => {
    const [dashboard] = Object.values(observability.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    for (const name of [
      ...Object.values(AGENT_METRICS),
      ...Object.values(EDGE_METRICS),
      ...Object.values(LIVEKIT_SIP_METRICS),
    ])
      expect(body).toContain(name);
    expect(body).toContain('Calls in progress');
    expect(body).toContain('EngineCPUUtilization');
  });

  it('graphs speculative turn-taking: kept, cancelled, hit rate and the wait for the final', () => {
    const [dashboard] = Object.values(observability.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    const start = body.indexOf('Speculative turn-taking');
    expect(start).toBeGreaterThan(0);
    const widget = body.slice(start, body.indexOf('SIP edge: refused'));
    for (const name of [
      AGENT_METRICS.speculationHits,
      AGENT_METRICS.speculationCancels,
      AGENT_METRICS.finalAfterPreflightWait,
    ])
      expect(widget).toContain(`\\"${name}\\"`);
    expect(widget).toContain('100 * hits / (hits + cancels)');
    expect(widget).toContain('FinalAfterPreflightWait p95');
  });

  it('graphs every refusal class of the edge in its "refused" widget', () => {
    const [dashboard] = Object.values(observability.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    const refused = body.slice(body.indexOf('SIP edge: refused'), body.indexOf('Calls failing at LiveKit SIP'));
    // Calls the edge could not place (no node, no topology store, rang unanswered) have their own widget and alarms.
    const placed = [
      EDGE_METRICS.noLiveKitNode,
      EDGE_METRICS.topologyStoreDown,
      EDGE_METRICS.unansweredCalls,
    ] as string[];
    const refusals = Object.values(EDGE_METRICS).filter((metric) => !placed.includes(metric));
    for (const name of refusals) expect(refused).toContain(`\\"${name}\\"`);
    const failing = body.slice(body.indexOf('Calls failing at LiveKit SIP'), body.indexOf('Session Redis'));
    for (const name of placed) expect(failing).toContain(`\\"${name}\\"`);
  });

  it('pages on media anchor failures above the configured rate, never on the first', () => {
    expect(alarms().find((alarm) => alarm.MetricName === EDGE_METRICS.mediaAnchorFailures)).toMatchObject({
      Statistic: 'Sum',
      Period: 300,
      Threshold: 9,
      ComparisonOperator: 'GreaterThanThreshold',
      AlarmActions: [{ Ref: expect.stringMatching(/^AlarmTopic/) }],
    });
    const defaults = synthVoiceIntake({}).templates.observability;
    const anchor = Object.values(defaults.findResources('AWS::CloudWatch::Alarm')).find(
      (alarm) => alarm.Properties.MetricName === EDGE_METRICS.mediaAnchorFailures,
    );
    expect(anchor?.Properties.Threshold).toBe(5);
  });

  it('graphs SDP refusals beside media anchor failures, and pages no one for SDP refusals', () => {
    const [dashboard] = Object.values(observability.findResources('AWS::CloudWatch::Dashboard'));
    const body = JSON.stringify(dashboard.Properties.DashboardBody);
    const refused = body.slice(body.indexOf('SIP edge: refused'), body.indexOf('Calls failing at LiveKit SIP'));
    const sdp = refused.indexOf(`\\"${EDGE_METRICS.sdpRefusals}\\",{\\"label\\":\\"SDP not rewritable\\"`);
    const anchor = refused.indexOf(`\\"${EDGE_METRICS.mediaAnchorFailures}\\",{\\"label\\":\\"media not anchored\\"`);
    expect(sdp).toBeGreaterThan(0);
    expect(anchor).toBeGreaterThan(sdp);
    // What a peer sends (a carrier source can be forged over UDP) must not be able to page anyone.
    expect(alarms().map((alarm) => alarm.MetricName)).not.toContain(EDGE_METRICS.sdpRefusals);
  });

  it('pages on the first case the backend refused for good or has not taken past the overdue age', () => {
    for (const metricName of [MCP_SERVER_METRICS.caseForwardRefused, MCP_SERVER_METRICS.caseForwardOverdue]) {
      const alarm = alarms().find((candidate) => candidate.MetricName === metricName);
      expect(alarm, metricName).toMatchObject({
        Namespace: 'VoiceIntake/voice-intake',
        Statistic: 'Sum',
        Period: 300,
        Threshold: 1,
        ComparisonOperator: 'GreaterThanOrEqualToThreshold',
        TreatMissingData: 'notBreaching',
      });
      expect(alarm?.AlarmActions, metricName).toEqual([{ Ref: expect.stringMatching(/^AlarmTopic/) }]);
    }
  });

  it('matches the snapshot', () => {
    expect(observability.toJSON()).toMatchSnapshot();
  });
});

describe('observability stack with an existing topic', () => {
  it('uses the given topic and creates none, subscribing alarmEmail to it', () => {
    const arn = 'arn:aws:sns:us-east-1:123456789012:ops-pager';
    const observabilityConfig = { alarmTopicArn: arn, alarmEmail: 'oncall@acme-clinic.com' };
    const { templates } = synthVoiceIntake({ observability: observabilityConfig });
    templates.observability.resourceCountIs('AWS::SNS::Topic', 0);
    const [alarm] = Object.values(templates.observability.findResources('AWS::CloudWatch::Alarm'));
    expect(alarm.Properties.AlarmActions).toEqual([arn]);
    const subscriptions = Object.values(templates.observability.findResources('AWS::SNS::Subscription'));
    expect(subscriptions.map((subscription) => subscription.Properties)).toEqual([
      expect.objectContaining({ TopicArn: arn, Protocol: 'email', Endpoint: 'oncall@acme-clinic.com' }),
    ]);
  });
});
