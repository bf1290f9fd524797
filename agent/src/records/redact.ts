// One definition of PII redaction for every writer of records (agent, MCP server): it lives in contracts.
export { redactDeep, redactPii } from '@voice-intake/contracts';
