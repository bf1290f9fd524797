import { createHmac } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

type Json = Record<string, any>;

/**
 * A stand-in for LiveKit's Twirp SIP API on loopback: the JSON endpoints the server SDK calls
 * (`POST /twirp/livekit.SIP/<Method>`), an in-memory store, admin-token checks, and injectable 5xx failures.
 */
export class LiveKitTwirpStandIn {
  readonly trunks = new Map<string, Json>();
  readonly rules = new Map<string, Json>();
  readonly calls: string[] = [];
  private failures = 0;
  private nextId = 1;
  private server?: Server;

  constructor(
    private readonly apiKey: string,
    private readonly apiSecret: string,
  ) {}

  /** The next `count` requests answer 503. */
  failNext(count: number): void {
    this.failures = count;
  }

  async start(): Promise<string> {
    this.server = createServer(async (req, res) => {
      let body = '';
      for await (const chunk of req) body += chunk;
      const method = /^\/twirp\/livekit\.SIP\/(\w+)$/.exec(req.url ?? '')?.[1];
      const reply = (status: number, payload: Json) =>
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(payload));
      if (!method || req.method !== 'POST') return reply(404, { code: 'bad_route', msg: `no route ${req.url}` });
      if (!this.isAdmin(req.headers.authorization))
        return reply(401, { code: 'unauthenticated', msg: 'invalid token' });
      this.calls.push(method);
      if (this.failures > 0) {
        this.failures -= 1;
        return reply(503, { code: 'unavailable', msg: 'starting up' });
      }
      const handler = this.handlers[method];
      if (!handler) return reply(404, { code: 'bad_route', msg: method });
      try {
        return reply(200, handler(JSON.parse(body || '{}')));
      } catch (error) {
        return reply(404, { code: 'not_found', msg: (error as Error).message });
      }
    });
    await new Promise<void>((resolve) => this.server!.listen(0, '127.0.0.1', resolve));
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }

  /** LiveKit access tokens are HS256 JWTs issued by the API key, with a `sip.admin` grant for these calls. */
  private isAdmin(authorization: string | undefined): boolean {
    const token = /^Bearer (.+)$/.exec(authorization ?? '')?.[1];
    const [header, payload, signature] = token?.split('.') ?? [];
    if (!header || !payload || !signature) return false;
    const expected = createHmac('sha256', this.apiSecret).update(`${header}.${payload}`).digest('base64url');
    if (expected !== signature) return false;
    const claims = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
    return claims.iss === this.apiKey && claims.sip?.admin === true && claims.exp * 1000 > Date.now();
  }

  private id(prefix: string): string {
    return `${prefix}_${String(this.nextId++).padStart(4, '0')}`;
  }

  private readonly handlers: Record<string, (request: Json) => Json> = {
    ListSIPInboundTrunk: () => ({ items: [...this.trunks.values()] }),
    CreateSIPInboundTrunk: ({ trunk }) => {
      const stored = { ...trunk, sipTrunkId: this.id('ST') };
      this.trunks.set(stored.sipTrunkId, stored);
      return stored;
    },
    UpdateSIPInboundTrunk: ({ sipTrunkId, replace }) => {
      if (!this.trunks.has(sipTrunkId)) throw new Error(`trunk ${sipTrunkId}`);
      const stored = { ...replace, sipTrunkId };
      this.trunks.set(sipTrunkId, stored);
      return stored;
    },
    DeleteSIPTrunk: ({ sipTrunkId }) => {
      if (!this.trunks.delete(sipTrunkId)) throw new Error(`trunk ${sipTrunkId}`);
      return { sipTrunkId };
    },
    ListSIPDispatchRule: () => ({ items: [...this.rules.values()] }),
    CreateSIPDispatchRule: (request) => {
      const { rule, trunkIds, name, roomConfig } = request;
      const stored = { sipDispatchRuleId: this.id('SDR'), rule, trunkIds, name, roomConfig };
      this.rules.set(stored.sipDispatchRuleId, stored);
      return stored;
    },
    UpdateSIPDispatchRule: ({ sipDispatchRuleId, replace }) => {
      if (!this.rules.has(sipDispatchRuleId)) throw new Error(`rule ${sipDispatchRuleId}`);
      const stored = { ...replace, sipDispatchRuleId };
      this.rules.set(sipDispatchRuleId, stored);
      return stored;
    },
    DeleteSIPDispatchRule: ({ sipDispatchRuleId }) => {
      if (!this.rules.delete(sipDispatchRuleId)) throw new Error(`rule ${sipDispatchRuleId}`);
      return { sipDispatchRuleId };
    },
  };
}
