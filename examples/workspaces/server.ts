/**
 * Seed 004, workspaces: `npx tsx examples/workspaces/server.ts`.
 *
 * `/ws/workspaces/{id}/` streams the workspace's `reading` and `event` messages, bare JSON as the
 * seed shows them; `/ws/v2/workspaces/{id}/` streams the same with `version: 2`. A token comes as
 * `?token=` or as the subprotocol pair `Token, <t>` (`new WebSocket(url, ['Token', t])`); a
 * missing, invalid or expired one closes with 4401 and nothing is delivered. `POST
 * /api/sim/start/{id}/` starts the workspace's simulator; `GET
 * /api/workspaces/{id}/latest-readings/` is the polling fallback, with the same token. Memory only.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { BrokerError, createBroker, hashToken, stream, type Broker, type Handshake, type Principal, type StreamBind } from 'switchyard';
import { attach } from 'switchyard/http';
import { seededRandom, Simulator, type Reading, type Sensor, type SimMessage } from './simulator.js';

/** Who a token belongs to and which workspaces it may read (`'*'`: all). */
export interface Account {
  user: string;
  workspaces: string[] | '*';
}

export interface WorkspacesOptions {
  /** Port to listen on; 0 picks a free one. Default 8000. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** Token auth on the WebSocket and REST routes. false: open, as seed 004's local dev. Default true. */
  auth?: boolean;
  /** `hashToken(token, pepper)` → account. Default: the demo tokens. */
  tokens?: Record<string, Account>;
  /** Server-side secret mixed into every token hash. Default ''. */
  pepper?: string;
  /** The example's "database": workspace id → its sensors. Default: two demo workspaces. */
  workspaces?: Record<string, Sensor[]>;
  /** Simulator tick (ms, default 1,000) and seed for a repeatable signal (default: Math.random). */
  sim?: { intervalMs?: number; seed?: number };
  log?: (line: string) => void;
}

export interface RunningExample {
  broker: Broker;
  server: http.Server;
  port: number;
  /** `ws://host:port` + path. */
  url: (path: string) => string;
  /** `http://host:port` + path. */
  http: (path: string) => string;
  stop: () => Promise<void>;
}

export const DEMO_TOKENS = { all: 'demo-token-all', workspace1: 'demo-token-w1' } as const;

export const DEMO_WORKSPACES: Record<string, Sensor[]> = {
  '1': [
    { id: 1, name: 'temperature', unit: '°C', threshold: 70, base: 62, amplitude: 16 },
    { id: 2, name: 'current', unit: 'A', threshold: 15, base: 12, amplitude: 5 },
    { id: 3, name: 'vibration', unit: 'mm/s', threshold: 7, base: 5, amplitude: 4 },
  ],
  '2': [
    { id: 4, name: 'humidity', unit: '%', threshold: 80, base: 65, amplitude: 20 },
    { id: 5, name: 'pressure', unit: 'bar', threshold: 8, base: 6, amplitude: 2.5 },
  ],
};

/** Seed 004: "the server MUST close the connection with an error code (e.g., 4401) on invalid/expired tokens". */
const CLOSE_CODES = { 4001: 4401, 4002: 4401, 4003: 4401 };
const topicsOf = (id: string) => ({ all: `workspaces/${id}/#`, readings: `workspaces/${id}/readings`, events: `workspaces/${id}/events`, info: `workspaces/${id}/info` });

export async function start(options: WorkspacesOptions = {}): Promise<RunningExample> {
  const auth = options.auth ?? true;
  const pepper = options.pepper ?? '';
  const log = options.log ?? (() => {});
  const workspaces = new Map(Object.entries(options.workspaces ?? DEMO_WORKSPACES));
  const accounts = new Map(
    Object.entries(
      options.tokens ?? {
        [hashToken(DEMO_TOKENS.all, pepper)]: { user: 'admin', workspaces: '*' },
        [hashToken(DEMO_TOKENS.workspace1, pepper)]: { user: 'ana', workspaces: ['1'] },
      },
    ),
  );
  /** The latest reading of each sensor, per workspace: what the REST fallback serves. */
  const latest = new Map<string, Map<number, Reading>>();
  const simulators = new Map<string, Simulator>();

  /** The account a token belongs to, or null. Tokens are compared by their hash only. */
  const accountOf = (token: string | undefined): Account | null => (token === undefined ? null : accounts.get(hashToken(token, pepper)) ?? null);
  const mayRead = (account: Account, id: string) => account.workspaces === '*' || account.workspaces.includes(id);

  function authenticate({ credentials, params }: Handshake): Principal | null {
    const id = params.id ?? '';
    if (!auth) return { id: 'anonymous', grants: [{ topic: topicsOf(id).all, access: 'read' }] };
    const account = accountOf(credentials?.token);
    if (account === null || !mayRead(account, id)) return null; // 4001/4003 → 4401
    return { id: `user:${account.user}`, grants: [{ topic: topicsOf(id).all, access: 'read' }] };
  }

  // An unknown workspace gets the seed's control message, then a 1008 close with the same words.
  const bind: StreamBind = ({ id }, _principal, conn) => {
    if (id === undefined || !workspaces.has(id)) {
      conn.send({ type: 'error', message: 'workspace_not_found' });
      throw new BrokerError('SY_ERR_POLICY', 'workspace_not_found');
    }
    return { subscribe: [topicsOf(id).all] };
  };

  const endpoint = { reject: 'close' as const, closeCodes: CLOSE_CODES, credentials: ['query' as const, 'subprotocol' as const, 'header' as const] };
  const broker = createBroker({
    endpoints: [
      { path: '/ws/workspaces/:id/', protocol: stream({ bind }), ...endpoint },
      { path: '/ws/v2/workspaces/:id/', protocol: stream({ bind, version: 2 }), ...endpoint },
    ],
    authenticate,
  });
  broker.on('connection', ({ principal, path, params }) => log(`✅ ${principal.id} on ${path.replace(':id', params.id ?? '')}`));
  broker.on('error', (err) => log(`⚠️ ${err.message}`));

  function publish(id: string, message: SimMessage | { type: 'info'; message: string }): void {
    const t = topicsOf(id);
    const topic = message.type === 'reading' ? t.readings : message.type === 'event' ? t.events : t.info;
    broker.publish(topic, message).catch((err: unknown) => log(`⚠️ publish to ${topic} failed: ${(err as Error).message}`));
  }

  function simulatorOf(id: string): Simulator {
    let sim = simulators.get(id);
    if (sim === undefined) {
      const readings = new Map<number, Reading>();
      latest.set(id, readings);
      const seed = options.sim?.seed;
      sim = new Simulator({
        sensors: workspaces.get(id)!,
        intervalMs: options.sim?.intervalMs ?? 1000,
        ...(seed !== undefined && { random: seededRandom(seed + Number(id)) }),
        emit: (message) => {
          if (message.type === 'reading') readings.set(message.sensor_id, message);
          publish(id, message);
        },
      });
      simulators.set(id, sim);
    }
    return sim;
  }

  const server = http.createServer((req, res) => {
    try {
      route(req, res);
    } catch (err) {
      log(`⚠️ ${req.method} ${req.url?.split('?')[0]} failed: ${(err as Error).message}`);
      if (!res.headersSent) json(res, 500, { detail: 'internal_error' });
    }
  });

  function route(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    // Django-style URLs: the trailing slash is optional here.
    const latestMatch = /^\/api\/workspaces\/([^/]+)\/latest-readings\/?$/.exec(url.pathname);
    const simMatch = /^\/api\/sim\/(start|stop)\/([^/]+)\/?$/.exec(url.pathname);
    if (latestMatch === null && simMatch === null) return json(res, 404, { detail: 'not_found' });
    const method = latestMatch !== null ? 'GET' : 'POST';
    if (req.method !== method) return json(res, 405, { detail: 'method_not_allowed' }, { allow: method });
    const id = decode(latestMatch?.[1] ?? simMatch![2]!);

    // The same token as the WebSocket: `?token=` or `Authorization: Token|Bearer <t>`.
    if (auth) {
      const token = url.searchParams.get('token') ?? /^(?:Token|Bearer)\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
      if (!token) return json(res, 401, { detail: 'authentication_required' }, { 'www-authenticate': 'Token' });
      const account = accountOf(token);
      if (account === null) return json(res, 401, { detail: 'invalid_token' }, { 'www-authenticate': 'Token' });
      if (id === undefined || !mayRead(account, id)) return json(res, 403, { detail: 'forbidden' });
    }
    if (id === undefined || !workspaces.has(id)) return json(res, 404, { detail: 'workspace_not_found' });

    if (latestMatch !== null) {
      const readings = [...(latest.get(id)?.values() ?? [])].sort((a, b) => a.sensor_id - b.sensor_id);
      return json(res, 200, readings);
    }
    const sim = simulatorOf(id);
    if (simMatch![1] === 'start') {
      const started = sim.start();
      if (started) publish(id, { type: 'info', message: 'simulator_started' });
      log(`▶️ simulator ${id} ${started ? 'started' : 'already running'}`);
      return json(res, 200, { status: started ? 'simulator_started' : 'already_running', workspace_id: Number(id) });
    }
    const stopped = sim.stop();
    if (stopped) publish(id, { type: 'info', message: 'simulator_stopped' });
    return json(res, 200, { status: stopped ? 'simulator_stopped' : 'not_running', workspace_id: Number(id) });
  }

  attach(broker, server);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 8000, options.host ?? '127.0.0.1', () => done());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    broker,
    server,
    port,
    url: (path) => `ws://${address}:${port}${path}`,
    http: (path) => `http://${address}:${port}${path}`,
    stop: async () => {
      for (const sim of simulators.values()) sim.stop();
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', ...headers }).end(JSON.stringify(body));
}

function decode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

// `npx tsx examples/workspaces/server.ts` (PORT=8000, AUTH=off for seed 004's open dev mode)
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const auth = process.env.AUTH !== 'off';
  const running = await start({ port: Number(process.env.PORT ?? 8000), auth, log: (line) => console.log(line) });
  const q = auth ? `?token=${DEMO_TOKENS.all}` : '';
  console.log(`Seed 004 workspaces on ${running.url('/ws/workspaces/{id}/')} and ${running.url('/ws/v2/workspaces/{id}/')}
  ${auth ? `tokens: ${DEMO_TOKENS.all} (all workspaces), ${DEMO_TOKENS.workspace1} (workspace 1); AUTH=off to run open` : 'auth is off'}
  start:   curl -X POST '${running.http(`/api/sim/start/1/${q}`)}'
  watch:   npx wscat -c '${running.url(`/ws/workspaces/1/${q}`)}'
  poll:    curl '${running.http(`/api/workspaces/1/latest-readings/${q}`)}'`);
  const shutdown = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
