/**
 * Seed 003, the event API: `ws://<host>:<port>/v1/ws` with `Authorization: Bearer <token>`,
 * lowercase `subscribe`/`unsubscribe` with server-side `filters`, `event` frames on the
 * `devices`, `alerts` and `system_status` topics, and `error` frames with the seed's codes.
 *
 *   npx tsx examples/event-api/server.ts        (PORT, HOST, INTERVAL_MS from the environment)
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
  const issue = (principal: Principal): string => {
    const token = generateToken();
    users.set(hashToken(token, pepper), principal);
    return token;
  };
  const tokens = {
    ops: issue({ id: 'ops', grants: TOPICS.map((topic) => ({ topic, access: 'read' as const })) }),
    viewer: issue({ id: 'viewer', grants: [{ topic: 'devices', access: 'read' }, { topic: 'alerts', access: 'read' }] }),
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
  const server = http.createServer((_req, res) => {
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"not found"}');
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

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const app = await start({
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
