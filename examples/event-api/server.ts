/**
 * Seed 003, the event API: `ws://<host>:<port>/v1/ws` with `Authorization: Bearer <token>`,
 * lowercase `subscribe`/`unsubscribe` with server-side `filters`, `event` frames on the
 * `devices`, `alerts` and `system_status` topics, and `error` frames with the seed's codes.
 *
 * Events come from the simulator, and from `POST /v1/events {topic, type, data}` (the route a
 * host raises its own events through; bearer token `ops`).
 *
 *   npx tsx examples/event-api/server.ts        (PORT, HOST, INTERVAL_MS, DEMO_TOKENS from the environment)
 *   DEMO_TOKENS=ops=ops-secret,viewer=viewer-secret fixes the demo tokens for scripted clients.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, events, generateToken, hashToken, type Broker, type Principal } from 'switchyard';
import { attach } from 'switchyard/http';
import { Simulator } from './simulator.js';

export interface StartOptions {
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * Fixed demo bearer tokens, for scripted clients. Default: `DEMO_TOKENS` from the environment
   * (`ops=<token>,viewer=<token>`), else fresh random ones on every start.
   */
  demoTokens?: { ops?: string; viewer?: string };
  /** The simulator's tick interval, or false to leave it stopped (tests call `simulator.tick()`). Default 2,000 ms. */
  simulate?: { intervalMs: number } | false;
}

export interface EventApi {
  broker: Broker;
  server: http.Server;
  simulator: Simulator;
  port: number;
  /** `ws://host:port/v1/ws`. */
  url: string;
  /** Demo bearer tokens: `ops` reads every topic, `viewer` only devices and alerts. */
  tokens: { ops: string; viewer: string };
  stop(): Promise<void>;
}

export const TOPICS = ['devices', 'alerts', 'system_status'] as const;

export async function start(options: StartOptions = {}): Promise<EventApi> {
  // Bearer tokens are kept as keyed hashes: token hash → user.
  const pepper = generateToken();
  const users = new Map<string, Principal>();
  const issue = (principal: Principal, fixed: string | undefined): string => {
    const token = fixed ?? generateToken();
    users.set(hashToken(token, pepper), principal);
    return token;
  };
  const fixed = options.demoTokens ?? parseDemoTokens(process.env.DEMO_TOKENS);
  const tokens = {
    // `ops` may also raise events through POST /v1/events (data.raise).
    ops: issue({ id: 'ops', grants: TOPICS.map((topic) => ({ topic, access: 'read' as const })), data: { raise: true } }, fixed.ops),
    viewer: issue({ id: 'viewer', grants: [{ topic: 'devices', access: 'read' }, { topic: 'alerts', access: 'read' }] }, fixed.viewer),
  };

  const broker = createBroker({
    endpoints: [{
      path: '/v1/ws',
      // Payloads are `{type, data}` as in the seed's "Topics" section; filters such as the
      // seed's `{"severity": [...]}` are looked up under `data`.
      protocol: events({ filterRoot: 'data' }),
      maxConnectionsPerPrincipal: 5,
    }],
    // "Connection Headers: Authorization: Bearer <token>". A browser, which cannot set headers,
    // can send `?token=` or the subprotocol pair ['Bearer', token] instead. No token, or an
    // unknown one, is refused with an AUTH_ERROR frame and close 4001 / 4003.
    authenticate: ({ credentials }) => {
      if (credentials === undefined) return null;
      if (credentials.source === 'header' && credentials.scheme !== 'bearer') return null;
      return users.get(hashToken(credentials.token, pepper)) ?? null;
    },
  });

  const simulator = new Simulator(broker, options.simulate === false ? {} : { intervalMs: options.simulate?.intervalMs ?? 2_000 });
  const bearer = (header: string | undefined): Principal | undefined => {
    const token = /^Bearer\s+(\S+)\s*$/i.exec(header ?? '')?.[1];
    return token === undefined ? undefined : users.get(hashToken(token, pepper));
  };
  const server = http.createServer((req, res) => {
    if (req.method === 'POST' && req.url === '/v1/events') return void raiseEvent(req, res, broker, bearer(req.headers.authorization));
    json(res, 404, { error: 'not found' });
  });
  attach(broker, server);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((done, failed) => {
    server.once('error', failed);
    server.listen(options.port ?? 8080, host, () => {
      server.off('error', failed);
      done();
    });
  });
  if (options.simulate !== false) simulator.start();
  const port = (server.address() as AddressInfo).port;

  return {
    broker,
    server,
    simulator,
    port,
    url: `ws://${host}:${port}/v1/ws`,
    tokens,
    async stop() {
      simulator.stop();
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

/**
 * `POST /v1/events {topic, type, data}`: what a host's own code does to raise an event (a device
 * changed, an alert was created), so clients see it without waiting for the simulator. Needs a
 * bearer token whose principal may raise events (the demo `ops`).
 */
async function raiseEvent(req: http.IncomingMessage, res: http.ServerResponse, broker: Broker, principal: Principal | undefined): Promise<void> {
  if (principal === undefined) return json(res, 401, { error: 'Authorization: Bearer <token> required' });
  if (principal.data?.raise !== true) return json(res, 403, { error: 'this token may not raise events' });
  let body: { topic?: unknown; type?: unknown; data?: unknown };
  try {
    let text = '';
    for await (const chunk of req) {
      text += chunk;
      if (text.length > 64 * 1024) return json(res, 413, { error: 'body too large' });
    }
    body = JSON.parse(text) as typeof body;
  } catch {
    return json(res, 400, { error: 'body must be JSON' });
  }
  if (typeof body?.topic !== 'string' || !(TOPICS as readonly string[]).includes(body.topic)) {
    return json(res, 400, { error: `topic must be one of ${TOPICS.join(', ')}` });
  }
  if (typeof body.type !== 'string' || body.data === null || typeof body.data !== 'object') {
    return json(res, 400, { error: 'type must be a string and data an object' });
  }
  const result = await broker.publish(body.topic, { type: body.type, data: body.data });
  json(res, 202, { message_id: result.messageId, recipients: result.recipients });
}

function json(res: http.ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
}

/** `name=token,name=token` from an environment variable. */
export function parseDemoTokens(value: string | undefined): Record<string, string> {
  const tokens: Record<string, string> = {};
  for (const pair of (value ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at > 0 && at < pair.length - 1) tokens[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return tokens;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const app = await start({
    demoTokens: parseDemoTokens(process.env.DEMO_TOKENS),
    port: Number(process.env.PORT ?? 8080),
    host: process.env.HOST ?? '127.0.0.1',
    simulate: { intervalMs: Number(process.env.INTERVAL_MS ?? 2_000) },
  });
  console.log(`event API on ${app.url}`);
  console.log(`  token ops    (devices, alerts, system_status) ${app.tokens.ops}`);
  console.log(`  token viewer (devices, alerts)                ${app.tokens.viewer}`);
  const shutdown = () => void app.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
