import { AGENT_METRICS, type AgentMetricName, metricsNamespace } from '@voice-intake/contracts';

type Unit = 'Milliseconds' | 'Count';

const UNITS: Record<AgentMetricName, Unit> = {
  [AGENT_METRICS.endOfUtteranceDelay]: 'Milliseconds',
  [AGENT_METRICS.sttFinalDelay]: 'Milliseconds',
  [AGENT_METRICS.llmTimeToFirstToken]: 'Milliseconds',
  [AGENT_METRICS.ttsTimeToFirstByte]: 'Milliseconds',
  [AGENT_METRICS.voiceToVoiceLatency]: 'Milliseconds',
  [AGENT_METRICS.toolLatency]: 'Milliseconds',
  [AGENT_METRICS.toolErrors]: 'Count',
  [AGENT_METRICS.serviceErrors]: 'Count',
  [AGENT_METRICS.unansweredTurns]: 'Count',
  [AGENT_METRICS.speculationHits]: 'Count',
  [AGENT_METRICS.speculationCancels]: 'Count',
  [AGENT_METRICS.finalAfterPreflightWait]: 'Milliseconds',
  [AGENT_METRICS.callsStarted]: 'Count',
  [AGENT_METRICS.callsEnded]: 'Count',
  [AGENT_METRICS.callsTakenOver]: 'Count',
  [AGENT_METRICS.callSetupFailures]: 'Count',
  [AGENT_METRICS.activeCalls]: 'Count',
};

export interface MetricsEmitterOptions {
  /** The deployment's namespace (METRICS_NAMESPACE, set by the app stack). Default: that of a deployment named `local`. */
  namespace?: string;
  /** Where lines go. Default: stdout. */
  write?: (line: string) => void;
  service?: string;
  now?: () => number;
}

/**
 * Writes CloudWatch embedded-metric-format lines (one JSON object per line on stdout, which the awslogs driver ships):
 * CloudWatch extracts the metrics, with dimension `Service` only (per-call ids stay properties, not dimensions, so
 * cardinality stays flat), and the line stays searchable in Logs Insights by call id.
 */
export class MetricsEmitter {
  private readonly namespace: string;
  private readonly write: (line: string) => void;
  private readonly service: string;
  private readonly now: () => number;

  constructor(options: MetricsEmitterOptions = {}) {
    this.namespace = options.namespace ?? metricsNamespace('local');
    this.write = options.write ?? ((line) => process.stdout.write(`${line}\n`));
    this.service = options.service ?? 'agent';
    this.now = options.now ?? Date.now;
  }

  /** One line carrying every given metric (undefined values are skipped). */
  emit(
    values: Partial<Record<AgentMetricName, number | undefined>>,
    properties: Record<string, string | number> = {},
  ): void {
    const present = Object.entries(values).filter(
      (entry): entry is [AgentMetricName, number] => typeof entry[1] === 'number' && Number.isFinite(entry[1]),
    );
    if (present.length === 0) return;
    const line = {
      _aws: {
        Timestamp: this.now(),
        CloudWatchMetrics: [
          {
            Namespace: this.namespace,
            Dimensions: [['Service']],
            Metrics: present.map(([name]) => ({ Name: name, Unit: UNITS[name] })),
          },
        ],
      },
      Service: this.service,
      ...properties,
      ...Object.fromEntries(present.map(([name, value]) => [name, Math.round(value * 10) / 10])),
    };
    this.write(JSON.stringify(line));
  }
}
