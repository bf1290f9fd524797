import { describe, expect, it } from 'vitest';
import { MetricsEmitter } from '../src/metrics';

describe('EMF metrics', () => {
  it('writes one embedded-metric line with the present metrics, the Service dimension and the call as a property', () => {
    const lines: string[] = [];
    const emitter = new MetricsEmitter({ namespace: 'VoiceIntake/prod', write: (line) => lines.push(line), now: () => 1_795_000_000_000 });
    emitter.emit({ VoiceToVoiceLatency: 812.34, LlmTimeToFirstToken: 301, TtsTimeToFirstByte: undefined }, { callId: 'call-1' });
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
    expect(line).toMatchObject({ Service: 'agent', callId: 'call-1', VoiceToVoiceLatency: 812.3, LlmTimeToFirstToken: 301 });
    expect(line.TtsTimeToFirstByte).toBeUndefined();
  });

  it('writes nothing when no metric has a value', () => {
    const lines: string[] = [];
    new MetricsEmitter({ write: (line) => lines.push(line) }).emit({ ToolLatency: Number.NaN });
    expect(lines).toEqual([]);
  });
});
