/**
 * Seed 000, the tag-based broker: `ws://<host>:<port>/ws/brocker/` with `Authorization: Token …`
 * and `Tag: …` headers, `{tag, message}` frames both ways, per-tag read/readwrite permissions,
 * per-token connection limits, and live revocation through an admin HTTP API.
 *
 *   npx tsx examples/tag-broker/server.ts        (PORT, HOST, ADMIN_TOKEN, DEMO_TOKENS from the environment)
 *   DEMO_TOKENS=sensor=s1,dashboard=d1,alarm=a1 fixes the demo tokens (tok_sensor.s1, …) for scripted clients.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, generateToken, hashToken, tagged, type Broker } from 'switchyard';
import { attach } from 'switchyard/http';
import { adminRoutes } from './admin.js';
import { TokenStore } from './tokens.js';

export interface StartOptions {
  /** Port to listen on; 0 picks a free one. Default 8001, as in the seed. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Token for the admin routes. Default: a fresh random one. */
  adminToken?: string;
  /**
   * Fixed secrets of the demo tokens, for scripted clients: each token is then
   * `tok_<name>.<secret>`. Default: `DEMO_TOKENS` from the environment
   * (`sensor=<secret>,dashboard=<secret>,alarm=<secret>`), else random ones on every start.
   */
  demoSecrets?: { sensor?: string; dashboard?: string; alarm?: string };
}

/** `name=value,name=value` from an environment variable. */
export function parsePairs(value: string | undefined): Record<string, string> {
  const pairs: Record<string, string> = {};
  for (const pair of (value ?? '').split(',')) {
    const at = pair.indexOf('=');
    if (at > 0 && at < pair.length - 1) pairs[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return pairs;
}

export interface TagBroker {
  broker: Broker;
  server: http.Server;
  tokens: TokenStore;
  port: number;
  /** `ws://host:port/ws/brocker/`. */
  wsUrl: string;
  /** `http://host:port`, for the admin routes. */
  httpUrl: string;
  adminToken: string;
  /** Plaintext of the demo tokens created at start (shown once, stored hashed). */
  demo: { sensor: string; dashboard: string; alarm: string };
  stop(): Promise<void>;
}

export async function start(options: StartOptions = {}): Promise<TagBroker> {
  const tokens = new TokenStore();
  const adminToken = options.adminToken ?? generateToken();
  const adminPepper = generateToken();

  const broker = createBroker({
    // "The WebSocket server is accessible at … /ws/brocker/" (sic).
    endpoints: [{ path: '/ws/brocker/', protocol: tagged() }],
    // Runs before the 101: no credentials → 4001, an unknown or wrong token → 4003, and the
    // principal's maxConnections → 4004. The Tag header is checked by the protocol (4001/4003).
    authenticate: ({ credentials }) => {
      if (credentials === undefined) return null;
      const record = tokens.verify(credentials.token);
      return record === undefined ? null : tokens.principal(record);
    },
  });

  const secrets: Record<string, string | undefined> = options.demoSecrets ?? parsePairs(process.env.DEMO_TOKENS);
  const demo = {
    sensor: tokens.create({ name: 'sensor', secret: secrets.sensor, maxConnections: 2, permissions: { 'sensors/#': 'readwrite', 'alerts/#': 'read' } }).token,
    dashboard: tokens.create({
      name: 'dashboard',
      secret: secrets.dashboard,
      maxConnections: 3,
      permissions: { 'sensors/+/temperature': 'read', 'sensors/+/temp': 'read', 'alerts/#': 'read', 'devices/#': 'read' },
    }).token,
    alarm: tokens.create({ name: 'alarm', secret: secrets.alarm, maxConnections: 1, permissions: { 'alerts/#': 'readwrite', 'sensors/#': 'read' } }).token,
  };

  const server = http.createServer(adminRoutes({ broker, tokens, adminHash: hashToken(adminToken, adminPepper), adminPepper }));
  attach(broker, server);
  const host = options.host ?? '127.0.0.1';
  await new Promise<void>((done, failed) => {
    server.once('error', failed);
    server.listen(options.port ?? 8001, host, () => {
      server.off('error', failed);
      done();
    });
  });
  const port = (server.address() as AddressInfo).port;

  return {
    broker,
    server,
    tokens,
    port,
    wsUrl: `ws://${host}:${port}/ws/brocker/`,
    httpUrl: `http://${host}:${port}`,
    adminToken,
    demo,
    async stop() {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const app = await start({
    port: Number(process.env.PORT ?? 8001),
    host: process.env.HOST ?? '127.0.0.1',
    ...(process.env.ADMIN_TOKEN && { adminToken: process.env.ADMIN_TOKEN }),
  });
  console.log(`tag broker on ${app.wsUrl}`);
  console.log(`admin API on ${app.httpUrl}/admin/tokens (Authorization: Token ${app.adminToken})`);
  for (const [name, token] of Object.entries(app.demo)) console.log(`  demo token ${name.padEnd(9)} ${token}`);
  const shutdown = () => void app.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
