/**
 * The agent's CloudWatch metrics (embedded metric format): emitted by the worker, graphed and alarmed by the
 * observability tier. Names live here once so the dashboard and the emitter cannot drift apart.
 */
export const METRICS_NAMESPACE = 'VoiceIntake';

export const AGENT_METRICS = {
  endOfUtteranceDelay: 'EndOfUtteranceDelay',
  sttFinalDelay: 'TranscriptionDelay',
  llmTimeToFirstToken: 'LlmTimeToFirstToken',
  ttsTimeToFirstByte: 'TtsTimeToFirstByte',
  voiceToVoiceLatency: 'VoiceToVoiceLatency',
  toolLatency: 'ToolLatency',
  toolErrors: 'ToolErrors',
  callsStarted: 'CallsStarted',
  callsEnded: 'CallsEnded',
} as const;

export type AgentMetricName = (typeof AGENT_METRICS)[keyof typeof AGENT_METRICS];
