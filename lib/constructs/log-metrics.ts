import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as logs from 'aws-cdk-lib/aws-logs';
import { METRICS_NAMESPACE } from '@voice-intake/contracts';
import { Construct } from 'constructs';

export interface LogLineMetric {
  /** Metric name (from the contracts, so dashboards and filters agree). */
  readonly metricName: string;
  /** The log lines to count. */
  readonly pattern: logs.IFilterPattern;
}

/**
 * Counts log lines as CloudWatch metrics (one metric filter each, 0 when nothing matched so alarms see data), for
 * software we do not instrument ourselves: Kamailio on the edge, LiveKit SIP.
 */
export class LogLineMetrics extends Construct {
  readonly metrics: Record<string, cloudwatch.Metric> = {};

  constructor(scope: Construct, id: string, logGroup: logs.ILogGroup, counted: Record<string, LogLineMetric>) {
    super(scope, id);
    for (const [key, { metricName, pattern }] of Object.entries(counted)) {
      const filter = new logs.MetricFilter(this, metricName, {
        logGroup,
        filterPattern: pattern,
        metricNamespace: METRICS_NAMESPACE,
        metricName,
        metricValue: '1',
        defaultValue: 0,
        unit: cloudwatch.Unit.COUNT,
      });
      this.metrics[key] = filter.metric({ statistic: 'Sum', period: Duration.minutes(1) });
    }
  }
}
