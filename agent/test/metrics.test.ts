import { AGENT_METRICS } from '@voice-intake/contracts';
import { describe, expect, it } from 'vitest';
import { latencyMetricsOf } from '../src/call-session';
import { MetricsEmitter } from '../src/metrics';

describe('EMF metrics', () => {
  it('writes one embedded-metric line with the present metrics, the Service dimension and the call as a property', () => {
    const lines: string[] = [];
    const emitter = new MetricsEmitter({
      namespace: 'VoiceIntake/prod',
      write: (line) => lines.push(line),
      now: () => 1_795_000_000_000,
    });
    emitter.emit(
      { VoiceToVoiceLatency: 812.34, LlmTimeToFirstToken: 301, TtsTimeToFirstByte: undefined },
      { callId: 'call-1' },
    );
    expect(lines).toHaveLength(1);
    const line = JSON.parse(lines[0]);
    expect(line._aws).toEqual({
      Timestamp: 1_795_000_000_000,
      CloudWatchMetrics: [
        {
          Namespace: 'VoiceIntake/prod',
          Dimensions: [['Service']],
          Metrics: [
            { Name: 'VoiceToVoiceLatency', Unit: 'Milliseconds' },
            { Name: 'LlmTimeToFirstToken', Unit: 'Milliseconds' },
          ],
        },
      ],
    });
    expect(line).toMatchObject({
      Service: 'agent',
      callId: 'call-1',
      VoiceToVoiceLatency: 812.3,
      LlmTimeToFirstToken: 301,
    });
    expect(line.TtsTimeToFirstByte).toBeUndefined();
  });

  it('writes nothing when no metric has a value', () => {
    const lines: string[] = [];
    new MetricsEmitter({ write: (line) => lines.push(line) }).emit({ ToolLatency: Number.NaN });
    expect(lines).toEqual([]);
  });
});

describe("latency figures from LiveKit's metrics events", () => {
  const llmMetrics = (ttftMs: number, cancelled: boolean) =>
    ({
      type: 'llm_metrics',
      ttftMs,
      cancelled,
      durationMs: 40,
      timestamp: 0,
      requestId: 'r',
      label: 'bedrock',
    }) as never;

  it('passes a time to first token on, and leaves out the -1 of a reply cancelled before its first token', () => {
    expect(latencyMetricsOf(llmMetrics(312, false))).toEqual({ [AGENT_METRICS.llmTimeToFirstToken]: 312 });
    expect(latencyMetricsOf(llmMetrics(-1, true))).toEqual({});
    expect(latencyMetricsOf({ type: 'tts_metrics', ttfbMs: -1 } as never)).toEqual({});
    expect(latencyMetricsOf({ type: 'tts_metrics', ttfbMs: 95 } as never)).toEqual({
      [AGENT_METRICS.ttsTimeToFirstByte]: 95,
    });
  });

  it('keeps the end-of-utterance figures apart and never emits a line for a cancelled reply', () => {
    const eou = { type: 'eou_metrics', endOfUtteranceDelayMs: 540, transcriptionDelayMs: -1 } as never;
    expect(latencyMetricsOf(eou)).toEqual({ [AGENT_METRICS.endOfUtteranceDelay]: 540 });
    const lines: string[] = [];
    new MetricsEmitter({ write: (line) => lines.push(line) }).emit(latencyMetricsOf(llmMetrics(-1, true)));
    expect(lines).toEqual([]);
  });
});
