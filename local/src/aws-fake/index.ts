export {
  type CallerLine,
  DEFAULT_LATENCY,
  DEFAULT_SCENARIO,
  finalWords,
  type Latency,
  type Scenario,
  type ScenarioInput,
  STREAM_EXCEPTIONS,
} from './scenario';
export { AwsFake, type AwsFakeOptions, endpointEnv } from './server';
export { SESSION_HEADER, type SessionRecord } from './sessions';
