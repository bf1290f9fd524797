// Prints a signed session header for local testing with the MCP Inspector or curl:
//   npm run session-header -w mcp-server -- <callId> <+E164 caller number>
// Signs with MCP_SESSION_SECRET, else MCP_AUTH_TOKEN, else the documented local token.
import { issueSessionHeader, MCP_SESSION_HEADER } from '@voice-intake/contracts';

const [callId, callerNumber] = process.argv.slice(2);
if (!callId || !callerNumber) {
  console.error('usage: session-header <callId> <+E164 caller number>');
  process.exit(2);
}
const secret = process.env.MCP_SESSION_SECRET ?? process.env.MCP_AUTH_TOKEN ?? 'local-dev-token-change-me';
console.log(`${MCP_SESSION_HEADER}: ${issueSessionHeader({ callId, callerNumber }, secret, 24 * 3600)}`);
