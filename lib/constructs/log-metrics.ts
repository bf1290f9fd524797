import { Duration } from 'aws-cdk-lib';
import * as cloudwatch from 'aws-cdk-lib/aws-cloudwatch';
import * as logs from 'aws-cdk-lib/aws-logs';
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

  /** `namespace`: the deployment's metric namespace (`metricsNamespace`). */
  constructor(
    scope: Construct,
    id: string,
    logGroup: logs.ILogGroup,
    namespace: string,
    counted: Record<string, LogLineMetric>,
  ) {
    super(scope, id);
    for (const [key, { metricName, pattern }] of Object.entries(counted)) {
      const filter = new logs.MetricFilter(this, metricName, {
        logGroup,
        filterPattern: pattern,
        metricNamespace: namespace,
        metricName,
        metricValue: '1',
        defaultValue: 0,
        unit: cloudwatch.Unit.COUNT,
      });
      this.metrics[key] = filter.metric({ statistic: 'Sum', period: Duration.minutes(1) });
    }
  }
}
