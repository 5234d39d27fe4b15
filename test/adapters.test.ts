/**
 * One suite, four hosts: the same behaviour from switchyard/express, switchyard/fastify,
 * switchyard/koa and switchyard/http, each on a real app on port 0 with real `ws` clients.
 */
import Fastify from 'fastify';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket, { WebSocketServer } from 'ws';
import { createBroker, envelope, grantsAllow, type Authenticate, type Authorize, type Broker, type LimitOptions, type Protocol } from 'switchyard';
import { fastifySwitchyard } from 'switchyard/fastify';
import { ADAPTERS, SESSIONS, hanging, request, tryConnect, type AdapterCase, type Host, type Outcome } from './adapter-helpers.js';
import { Client, connect, tokenAuth, until } from './helpers.js';

interface Seen {
  authenticated: Array<{ path: string; params: Record<string, string>; via: string }>;
  authorized: Array<{ action: string; topic: string; params: Record<string, string> }>;
  opened: Array<Record<string, string>>;
}

/** Envelope, recording the path parameters each connection's protocol sees. */
function recording(seen: Seen): Protocol {
  const base = envelope();
  return { ...base, open: (conn) => (seen.opened.push({ ...conn.params }), base.open(conn)) };
}

function brokerFor(adapter: AdapterCase, seen: Seen, limits: LimitOptions = {}): Broker {
  const protocol = recording(seen);
  const authenticate: Authenticate = (h) => {
    const user = adapter.hostUser(h);
    seen.authenticated.push({ path: h.path, params: { ...h.params }, via: user === undefined ? 'token' : 'host' });
    if (user !== undefined) return { id: user.id, grants: [{ topic: '#', access: 'readwrite' }], data: { role: user.role } };
    return tokenAuth(h);
  };
  // A device connection may only use its own device's topics: the rule reads the path parameter.
  const authorize: Authorize = (principal, action, topic, context) => {
    seen.authorized.push({ action, topic, params: { ...context.params } });
    const device = context.params.deviceId;
    if (device !== undefined && !topic.startsWith(`devices/${device}/`)) return false;
    return grantsAllow(context.syntax, principal.grants, action, topic);
  };
  const endpoint = { protocol, ...adapter.routing };
  return createBroker({
    endpoints: [
      { path: '/ws', ...endpoint },
      { path: '/ws/strict', ...endpoint, reject: 'http' },
      { path: '/ws/device/:deviceId', ...endpoint },
      { path: '/ws/workspaces/:id/', ...endpoint },
      { path: '/ws/v2/workspaces/:id/', ...endpoint },
    ],
    authenticate,
    authorize,
    heartbeat: false,
    limits,
  });
}

async function opened(outcome: Promise<Outcome>): Promise<WebSocket> {
  const result = await outcome;
  if (result.kind !== 'open') throw new Error(`expected the connection to open, got ${JSON.stringify(result)}`);
  return result.ws;
}

async function closeWs(ws: WebSocket): Promise<void> {
  if (ws.readyState === WebSocket.CLOSED) return;
  const closed = new Promise((resolve) => ws.once('close', resolve));
  ws.close();
  await closed;
}

describe.each(ADAPTERS)('$name adapter', (adapter) => {
  let host: Host | undefined;
  let broker: Broker;
  let seen: Seen;
  const clients: Array<Client | WebSocket> = [];

  async function mount(limits?: LimitOptions): Promise<Host> {
    seen = { authenticated: [], authorized: [], opened: [] };
    broker = brokerFor(adapter, seen, limits);
    host = await adapter.mount(broker);
    return host;
  }
  const ws = (path: string) => `ws://127.0.0.1:${host!.port}${path}`;
  const track = <T extends Client | WebSocket>(c: T): T => (clients.push(c), c);

  afterEach(async () => {
    await Promise.all(clients.splice(0).map((c) => (c instanceof Client ? c.close() : closeWs(c))));
    await host?.stop();
    host = undefined;
  });

  it('connects with a valid token and exchanges messages', async () => {
    await mount();
    const alice = track(await connect(ws('/ws?token=alice')));
    const bob = track(await connect(ws('/ws'), undefined, { headers: { authorization: 'Bearer bob' } }));
    expect((await alice.request('Subscribe', { topics: ['chat/#'] })).type).toBe('Ack');
    const ack = await bob.request('Broadcast', { topic: 'chat/general', payload: { text: 'hi' } });
    expect(ack.data).toMatchObject({ status: 'delivered', recipients: 1 });
    expect((await alice.nextOf('Broadcast')).data).toMatchObject({ topic: 'chat/general', payload: { text: 'hi' } });
  });

  it("refuses a bad token: close 4003, and 403 on a reject: 'http' endpoint", async () => {
    await mount();
    expect(await tryConnect(ws('/ws?token=bad'))).toEqual({ kind: 'close', code: 4003 });
    expect(await tryConnect(ws('/ws'))).toEqual({ kind: 'close', code: 4001 });
    expect(await tryConnect(ws('/ws/strict?token=bad'))).toMatchObject({ kind: 'http', status: 403 });
    expect(await tryConnect(ws('/ws/strict'))).toMatchObject({ kind: 'http', status: 401 });
  });

  it('serves path-parameter endpoints on one port; decoded params reach authenticate, authorize and the protocol', async () => {
    await mount();
    const device = track(await connect(ws('/ws/device/sensor%201?token=alice')));
    const workspace = track(await connect(ws('/ws/workspaces/42/?token=alice')));
    const v2 = track(await connect(ws('/ws/v2/workspaces/caf%C3%A9/?token=alice')));
    expect(seen.authenticated.map(({ path, params }) => ({ path, params }))).toEqual([
      { path: '/ws/device/:deviceId', params: { deviceId: 'sensor 1' } },
      { path: '/ws/workspaces/:id/', params: { id: '42' } },
      { path: '/ws/v2/workspaces/:id/', params: { id: 'café' } },
    ]);
    expect(seen.opened).toEqual([{ deviceId: 'sensor 1' }, { id: '42' }, { id: 'café' }]);

    expect((await device.request('Subscribe', { topics: ['devices/sensor 1/commands'] })).type).toBe('Ack');
    const denied = await device.request('Subscribe', { topics: ['devices/other/commands'] });
    expect(denied).toMatchObject({ type: 'Error', data: { code: 403 } });
    expect(seen.authorized).toContainEqual({ action: 'subscribe', topic: 'devices/other/commands', params: { deviceId: 'sensor 1' } });

    // One broker behind every path: a workspace client publishes, the device receives.
    await workspace.request('Broadcast', { topic: 'devices/sensor 1/commands', payload: { op: 'reboot' } });
    expect((await device.nextOf('Broadcast')).data.payload).toEqual({ op: 'reboot' });
    expect(broker.stats().connections).toBe(3);
    await v2.close();
  });

  it('shares the port with ordinary HTTP routes: a REST call that publishes reaches a subscriber', async () => {
    const { port } = await mount();
    const sub = track(await connect(ws('/ws?token=alice')));
    await sub.request('Subscribe', { topics: ['rooms/lobby'] });
    const answer = await request(port, 'POST', '/api/rooms/lobby/messages', { text: 'from REST' });
    expect(answer).toEqual({ status: 200, body: JSON.stringify({ recipients: 1 }) });
    expect((await sub.nextOf('Broadcast')).data).toMatchObject({ topic: 'rooms/lobby', payload: { text: 'from REST' } });
  });

  it("leaves upgrades for unknown paths to the framework (its own 404) and to other 'upgrade' listeners", async () => {
    const { port, server } = await mount();
    const nope = await tryConnect(ws('/nope'));
    expect(nope).toMatchObject({ kind: 'http', status: adapter.notFound.status });
    expect(nope.kind === 'http' && nope.body).toMatch(adapter.notFound.body);
    // The host machinery mounted for the broker's paths does not run for others.
    expect(await tryConnect(ws('/nope'), { headers: { cookie: 'sid=boom' } })).toMatchObject({ status: adapter.notFound.status });

    // Another WebSocket server on the same port, added after the broker, owns /other.
    const other = new WebSocketServer({ noServer: true });
    const onUpgrade = (req: import('node:http').IncomingMessage, socket: import('node:stream').Duplex, head: Buffer) => {
      if (req.url === '/other') other.handleUpgrade(req, socket, head, (w) => w.send('other says hi'));
      else if (!req.url?.startsWith('/ws')) socket.destroy();
    };
    server.on('upgrade', onUpgrade);
    try {
      const theirs = await opened(tryConnect(ws('/other')));
      await closeWs(theirs);
      const ours = track(await connect(ws('/ws?token=alice')));
      expect((await ours.request('Ping', {})).type).toBe('Ack');
    } finally {
      server.removeListener('upgrade', onUpgrade);
      other.close();
    }
    // Nothing crashed: the host still answers HTTP.
    expect((await request(port, 'POST', '/api/rooms/x/messages', {})).status).toBe(200);
  });

  it("handles trailing slashes, encoded and malformed segments the way the framework's own routes do", async () => {
    const { port } = await mount();
    // Compares each WebSocket path with the same path on one of the app's own GET routes.
    const pairs: Array<[string, string]> = [
      ['/ws/device/abc', '/api/device/abc'],
      ['/ws/device/abc/', '/api/device/abc/'],
      ['/ws/device/a%2Fb', '/api/device/a%2Fb'],
      ['/ws/device/caf%C3%A9', '/api/device/caf%C3%A9'],
      ['/WS/DEVICE/abc', '/API/DEVICE/abc'],
      ['/ws/workspaces/42/', '/api/workspaces/42/'],
      ['/ws/workspaces/42', '/api/workspaces/42'],
    ];
    for (const [wsPath, httpPath] of pairs) {
      const outcome = await tryConnect(ws(`${wsPath}?token=alice`));
      if (outcome.kind === 'open') await closeWs(outcome.ws);
      const got = outcome.kind === 'open' ? { status: 200, params: seen.authenticated.at(-1)!.params } : { status: outcome.kind === 'http' ? outcome.status : -1 };
      if (adapter.name === 'http') {
        // No framework router: the broker's own defaults (trailing slash optional, case-sensitive).
        expect(got.status, wsPath).toBe(wsPath.startsWith('/WS') ? 404 : 200);
        continue;
      }
      const route = await request(port, 'GET', httpPath);
      if (adapter.divergences?.[wsPath] !== undefined) {
        expect(got.status, `${wsPath}: ${adapter.divergences[wsPath]}`).not.toBe(route.status);
        continue;
      }
      expect(got.status, `${wsPath} vs ${httpPath}`).toBe(route.status);
      if (route.status === 200) expect(got.params, wsPath).toEqual(JSON.parse(route.body));
    }
    // A broken percent-encoding is a 400, never a crash.
    expect(await tryConnect(ws('/ws/device/%E0%A4%A?token=alice'))).toMatchObject({ kind: 'http', status: 400 });
    expect(seen.authenticated.every((a) => !Object.values(a.params).includes('%E0%A4%A'))).toBe(true);
  });

  it("authenticates from the host's own middleware or hook: what it put on the request reaches authenticate", async () => {
    await mount();
    // A session cookie and no token: the host's session machinery decides who this is.
    const carol = track(await connect(ws('/ws/workspaces/7/'), undefined, { headers: { cookie: 'sid=s-carol' } }));
    expect(seen.authenticated.at(-1)).toMatchObject({ via: 'host', params: { id: '7' } });
    expect(broker.connectionIds(SESSIONS['s-carol']!.id)).toHaveLength(1);
    expect((await carol.request('Broadcast', { topic: 'rooms/a', payload: 1 })).type).toBe('Ack');

    // A session the host refuses: the framework's own answer (bare http: the broker's close code).
    const before = seen.authenticated.length;
    const refused = await tryConnect(ws('/ws/workspaces/7/'), { headers: { cookie: 'sid=forged' } });
    if ('status' in adapter.refusedSession) {
      expect(refused).toMatchObject({ kind: 'http', status: adapter.refusedSession.status });
      expect(seen.authenticated.length, 'authenticate never ran').toBe(before);
    } else {
      expect(refused).toEqual({ kind: 'close', code: adapter.refusedSession.close });
    }

    // Middleware that throws: the framework's error answer, and the host keeps serving.
    const failed = await tryConnect(ws('/ws'), { headers: { cookie: 'sid=boom' } });
    if (adapter.name === 'http') expect(failed).toEqual({ kind: 'close', code: 4001 });
    else expect(failed).toMatchObject({ kind: 'http', status: 500 });
    track(await connect(ws('/ws?token=alice')));
  });

  it('shuts down cleanly: connections get 1001 and the upgrade listener is gone', async () => {
    const mounted = await mount();
    expect(mounted.server.listenerCount('upgrade')).toBe(mounted.baseline + 1);
    const client = await connect(ws('/ws?token=alice'));
    const pending = new Client(ws('/ws/device/x?token=alice'));
    await pending.opened;
    await mounted.stop();
    host = undefined;
    expect((await client.closed).code).toBe(1001);
    await pending.closed;
    expect(broker.closed).toBe(true);
    expect(mounted.server.listenerCount('upgrade')).toBe(mounted.baseline);
    expect(mounted.server.listening).toBe(false);
  });

  it("bounds the host's machinery by the handshake timeout (408), and ends what is still running on close", async () => {
    const mounted = await mount({ handshakeTimeoutMs: 300 });
    const timedOut = await tryConnect(ws('/ws'), { headers: { cookie: 'sid=hang' } });
    if (adapter.name === 'http') expect(timedOut).toEqual({ kind: 'close', code: 4001 });
    else expect(timedOut).toMatchObject({ kind: 'http', status: 408 });
    if (adapter.name === 'http') return; // no host machinery: authenticate itself refused
    const started = hanging.count;
    const stillRunning = tryConnect(ws('/ws'), { headers: { cookie: 'sid=hang' } });
    await until(() => hanging.count > started, 'the host middleware to start');
    await mounted.stop();
    host = undefined;
    expect(await stillRunning).toMatchObject({ kind: 'http', status: 503 });
  });

  // Fastify has no detach of its own: its close hooks are the way out (previous test).
  if (adapter.name === 'fastify') return;
  it('detach() removes exactly its listener and leaves broker and server running', async () => {
    const mounted = await mount();
    mounted.detach!();
    expect(mounted.server.listenerCount('upgrade')).toBe(mounted.baseline);
    expect(broker.closed).toBe(false);
    await until(() => mounted.server.listening, 'server still listening');
  });
});

describe('fastify plugin specifics', () => {
  const broker = () => createBroker({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, heartbeat: false });

  it('refuses to be registered under a prefix (endpoint paths are absolute)', async () => {
    const app = Fastify();
    const b = broker();
    await expect(app.register(fastifySwitchyard, { broker: b, prefix: '/api' })).rejects.toThrow(/without a prefix/);
    await app.close();
    await b.close();
  });

  it('answers a plain HTTP GET on a broker path with 426, and app.close() before listen closes the broker', async () => {
    const app = Fastify();
    const b = broker();
    await app.register(fastifySwitchyard, { broker: b });
    const res = await app.inject({ method: 'GET', url: '/ws' });
    expect(res.statusCode).toBe(426);
    expect(res.headers.upgrade).toBe('websocket');
    await app.close();
    expect(b.closed).toBe(true);
    expect(app.server.listenerCount('upgrade')).toBe(0);
  });
});
