/**
 * Seed 002, device telemetry: `npx tsx examples/device-telemetry/server.ts`.
 *
 * Devices (Raspberry Pis) and dashboards connect to the same path, `/ws/device/{device_id}`.
 * A device sends its API token as `Authorization: Bearer <t>`; the server keeps only a hash of
 * each token and refuses a mismatch with HTTP 403 before the upgrade. A device is one
 * connection at a time (409 for a second one). A dashboard (another kind of token) on the same
 * path receives the device's telemetry; `POST /api/devices/{id}/commands` sends the device a
 * command. Everything lives in memory.
 */
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, hashToken, stream, verifyToken, type Broker, type Handshake, type Principal } from 'switchyard';
import { attach } from 'switchyard/http';

/** A dashboard token's owner and the devices it may watch and command. */
export interface DashboardAccount {
  user: string;
  devices: string[] | '*';
}

export interface DeviceTelemetryOptions {
  /** Port to listen on; 0 picks a free one. Default 8080. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /**
   * The `devices` table: device id → `hashToken(apiToken, pepper)`, written at provisioning
   * (seed 002 Rule 3: the server stores a hash, never the token). Default: the demo devices.
   */
  devices?: Record<string, string>;
  /** `hashToken(dashboardToken, pepper)` → account. Default: the demo dashboard. */
  dashboards?: Record<string, DashboardAccount>;
  /** Browser origins besides the server's own whose dashboards may sign in with the cookie. Default none. */
  origins?: string[];
  /** Server-side secret mixed into every token hash. Default ''. */
  pepper?: string;
  /** Where to print what happens. Default: nowhere. */
  log?: (line: string) => void;
}

export interface RunningExample {
  broker: Broker;
  server: http.Server;
  port: number;
  /** `ws://host:port` + path. */
  url: (path: string) => string;
  stop: () => Promise<void>;
}

/** Demo credentials, printed at startup. `sk_live_83928` is the token of the seed's example. */
export const DEMO_TOKENS = {
  devices: { ems_001: 'sk_live_83928', ems_002: 'sk_live_40417' },
  dashboard: 'dash_demo_token',
} as const;

/** Device ids become topic levels: letters, digits, `_` and `-` only (no `/`, `+`, `#`). */
const DEVICE_ID = /^[A-Za-z0-9_-]{1,64}$/;
const MAX_BODY_BYTES = 16 * 1024;
/** The cookie a dashboard app would set at login (the demo just expects the dashboard token). */
export const DASHBOARD_COOKIE = 'dashboard_token';

const telemetryTopic = (id: string) => `devices/${id}/telemetry`;
const commandTopic = (id: string) => `devices/${id}/commands`;

export async function start(options: DeviceTelemetryOptions = {}): Promise<RunningExample> {
  const pepper = options.pepper ?? '';
  const log = options.log ?? (() => {});
  const devices = new Map(Object.entries(options.devices ?? demoDevices(pepper)));
  const dashboards = new Map(Object.entries(options.dashboards ?? { [hashToken(DEMO_TOKENS.dashboard, pepper)]: { user: 'demo', devices: '*' } }));

  /** The dashboard account a token belongs to, if it may see `deviceId`. */
  function dashboardFor(token: string, deviceId: string): DashboardAccount | undefined {
    const account = dashboards.get(hashToken(token, pepper));
    if (account === undefined) return undefined;
    return account.devices === '*' || account.devices.includes(deviceId) ? account : undefined;
  }

  // Seed 002 "Authentication Flow": extract the Bearer token, hash it, compare it with the hash
  // stored for this device. Null answers 401 (no token) or 403 (mismatch) before the upgrade.
  function authenticate({ credentials, params, headers }: Handshake): Principal | null {
    const deviceId = params.deviceId ?? '';
    if (!DEVICE_ID.test(deviceId) || !devices.has(deviceId)) return null;
    if (credentials === undefined) {
      // The seed's dashboard hook opens `new WebSocket(url)`: a browser cannot add a header, so
      // a dashboard may come with its login cookie, from an allowed origin only (a cookie rides
      // along with any page's request: checking Origin stops cross-site WebSocket hijacking).
      const token = cookie(headers.cookie, DASHBOARD_COOKIE);
      if (token === undefined || !originAllowed(headers.origin, headers.host)) return null;
      return dashboardPrincipal(token, deviceId);
    }
    if (credentials.scheme !== 'bearer') return null;
    // Device tokens only from the header (Rules 1 and 2); a browser dashboard may also use the
    // subprotocol pair `new WebSocket(url, ['Bearer', token])`.
    if (credentials.source !== 'header') return dashboardPrincipal(credentials.token, deviceId);
    if (verifyToken(credentials.token, devices.get(deviceId)!, pepper)) {
      return {
        id: `device:${deviceId}`,
        // "doesn't conflict with existing IDs": one connection per device (409 for a second).
        exclusive: true,
        grants: [
          { topic: telemetryTopic(deviceId), access: 'readwrite' },
          { topic: commandTopic(deviceId), access: 'read' },
        ],
        data: { kind: 'device', deviceId },
      };
    }
    return dashboardPrincipal(credentials.token, deviceId);
  }

  function dashboardPrincipal(token: string, deviceId: string): Principal | null {
    const account = dashboardFor(token, deviceId);
    if (account === undefined) return null;
    return {
      id: `dashboard:${account.user}`,
      grants: [{ topic: telemetryTopic(deviceId), access: 'read' }],
      data: { kind: 'dashboard', deviceId },
    };
  }

  /** Same origin as the request's Host, or one of `options.origins`. */
  function originAllowed(origin: string | undefined, host: string | undefined): boolean {
    if (origin === undefined) return false;
    if (options.origins?.includes(origin)) return true;
    try {
      return new URL(origin).host === host;
    } catch {
      return false;
    }
  }

  const broker = createBroker({
    endpoints: [
      {
        path: '/ws/device/:deviceId',
        // A device publishes telemetry and receives commands; a dashboard receives telemetry.
        protocol: stream({
          bind: ({ deviceId }, principal) =>
            principal.data?.kind === 'device'
              ? { subscribe: [commandTopic(deviceId!)], publish: telemetryTopic(deviceId!) }
              : { subscribe: [telemetryTopic(deviceId!)] },
        }),
        reject: 'http', // 401/403/409 before the 101, as seed 002 asks
        credentials: ['header', 'subprotocol'], // Rule 1: a token is never read from the URL
      },
    ],
    authenticate,
  });
  broker.on('connection', ({ principal }) => log(`✅ ${principal.id} connected`));
  broker.on('disconnect', ({ principal, code }) => log(`👋 ${principal.id} disconnected (${code})`));

  const server = http.createServer((req, res) => {
    route(req, res).catch((err: unknown) => {
      log(`⚠️ ${req.method} ${req.url?.split('?')[0]} failed: ${(err as Error).message}`);
      if (!res.headersSent) json(res, 500, { error: 'internal_error' });
      else res.destroy();
    });
  });

  async function route(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const { pathname } = new URL(req.url ?? '/', 'http://localhost');
    const match = /^\/api\/devices\/([^/]+)\/commands\/?$/.exec(pathname);
    if (match === null) return json(res, 404, { error: 'not_found' });
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' }, { allow: 'POST' });
    // Commands come from operators: a dashboard token that may see this device.
    const token = /^Bearer\s+(\S+)\s*$/i.exec(req.headers.authorization ?? '')?.[1];
    if (token === undefined) return json(res, 401, { error: 'missing_token' }, { 'www-authenticate': 'Bearer' });
    const deviceId = safeDecode(match[1]!);
    if (deviceId === undefined || !DEVICE_ID.test(deviceId) || !devices.has(deviceId)) {
      return json(res, dashboards.has(hashToken(token, pepper)) ? 404 : 403, { error: 'unknown_device_or_forbidden' });
    }
    if (dashboardFor(token, deviceId) === undefined) return json(res, 403, { error: 'forbidden' });
    const body = await readJson(req);
    if (body === undefined || body === null || typeof body !== 'object' || Array.isArray(body)) {
      return json(res, 400, { error: 'body must be a JSON object, e.g. {"command":"reboot"}' });
    }
    // Commands are not queued: a device that is not connected would never see it.
    if (broker.connectionsOf(`device:${deviceId}`) === 0) return json(res, 409, { error: 'device_offline' });
    const command = { id: randomUUID(), issued_at: new Date().toISOString(), ...body };
    const result = await broker.publish(commandTopic(deviceId), command);
    log(`📤 command ${command.id} → ${deviceId}`);
    json(res, 202, { id: command.id, delivered: result.recipients > 0 });
  }

  attach(broker, server);
  await new Promise<void>((done, fail) => {
    server.once('error', fail);
    server.listen(options.port ?? 8080, options.host ?? '127.0.0.1', () => done());
  });
  const { address, port } = server.address() as AddressInfo;
  return {
    broker,
    server,
    port,
    url: (path) => `ws://${address}:${port}${path}`,
    stop: async () => {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

function demoDevices(pepper: string): Record<string, string> {
  return Object.fromEntries(Object.entries(DEMO_TOKENS.devices).map(([id, token]) => [id, hashToken(token, pepper)]));
}

function json(res: http.ServerResponse, status: number, body: unknown, headers: http.OutgoingHttpHeaders = {}): void {
  res.writeHead(status, { 'content-type': 'application/json', ...headers }).end(JSON.stringify(body));
}

function cookie(header: string | undefined, name: string): string | undefined {
  for (const pair of header?.split(';') ?? []) {
    const eq = pair.indexOf('=');
    if (eq > 0 && pair.slice(0, eq).trim() === name) return safeDecode(pair.slice(eq + 1).trim());
  }
  return undefined;
}

function safeDecode(segment: string): string | undefined {
  try {
    return decodeURIComponent(segment);
  } catch {
    return undefined;
  }
}

/** The request body as JSON; undefined when it is not JSON or is too large. */
async function readJson(req: http.IncomingMessage): Promise<unknown> {
  let size = 0;
  const chunks: Buffer[] = [];
  for await (const chunk of req as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) return undefined;
    chunks.push(chunk);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    return undefined;
  }
}

// `npx tsx examples/device-telemetry/server.ts` (PORT=8080)
if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const running = await start({ port: Number(process.env.PORT ?? 8080), log: (line) => console.log(line) });
  const base = `http://127.0.0.1:${running.port}`;
  console.log(`Seed 002 device telemetry on ${running.url('/ws/device/{device_id}')}
  devices:   ${Object.entries(DEMO_TOKENS.devices).map(([id, t]) => `${id} (Bearer ${t})`).join(', ')}
  dashboard: Bearer ${DEMO_TOKENS.dashboard}
  simulator: npx tsx examples/device-telemetry/device.ts
  command:   curl -X POST ${base}/api/devices/ems_001/commands -H 'Authorization: Bearer ${DEMO_TOKENS.dashboard}' -d '{"command":"reboot"}'`);
  const shutdown = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
