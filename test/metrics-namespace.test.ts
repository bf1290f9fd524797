import { beforeAll, describe, expect, it } from 'vitest';
import { type SynthesizedApp, synthVoiceIntake } from './support/synth';

/** Every CloudWatch namespace a template names, wherever it appears (filters, alarms, scaling, env). */
function namespacesIn(template: unknown): string[] {
  const found: string[] = [];
  const visit = (value: unknown, key?: string) => {
    if (Array.isArray(value)) for (const item of value) visit(item);
    else if (value && typeof value === 'object') {
      const record = value as Record<string, unknown>;
      // Container environment: { Name, Value } pairs.
      if (record.Name === 'METRICS_NAMESPACE' || record.Name === 'POWERTOOLS_METRICS_NAMESPACE')
        found.push(String(record.Value));
      for (const [childKey, child] of Object.entries(record)) visit(child, childKey);
    } else if (
      typeof value === 'string' &&
      (key === 'Namespace' || key === 'MetricNamespace' || key === 'POWERTOOLS_METRICS_NAMESPACE')
    ) {
      if (value.startsWith('VoiceIntake')) found.push(value);
    }
  };
  visit(template);
  return found;
}

describe('metric namespaces', () => {
  let synthesized: SynthesizedApp;

  beforeAll(() => {
    synthesized = synthVoiceIntake({ deploymentName: 'staging', edge: { allowlist: ['192.0.2.0/24'] } });
  });

  it('puts every metric of a deployment under its own namespace, so deployments sharing an account never mix', () => {
    const byStack = Object.fromEntries(
      Object.entries(synthesized.templates).map(([stack, template]) => [stack, namespacesIn(template.toJSON())]),
    );
    // Emitted (agent env, Lambda env), counted (edge and LiveKit SIP metric filters), scaled on and alarmed on.
    for (const stack of ['app', 'edge', 'enrichment', 'observability'])
      expect(byStack[stack].length, stack).toBeGreaterThan(0);
    expect(new Set(Object.values(byStack).flat())).toEqual(new Set(['VoiceIntake/staging']));
    // The agents scale on their own deployment's calls only.
    synthesized.templates.app.hasResourceProperties('AWS::ApplicationAutoScaling::ScalingPolicy', {
      TargetTrackingScalingPolicyConfiguration: {
        CustomizedMetricSpecification: { MetricName: 'ActiveCalls', Namespace: 'VoiceIntake/staging' },
      },
    });
  });
});
