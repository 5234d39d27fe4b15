/**
 * examples/workspaces (seed 004) end to end: the real example on port 0 with `ws` clients that
 * authenticate the two ways the seed allows, and its REST fallback over fetch.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { DEMO_TOKENS, DEMO_WORKSPACES, start, type RunningExample } from '../examples/workspaces/server.js';
import { watchWorkspace, type WatchOptions, type WorkspaceMessage } from '../examples/workspaces/client.js';
import { isoSeconds, seededRandom, Simulator, type SimMessage } from '../examples/workspaces/simulator.js';
import { Client, until, type Frame } from './helpers.js';

const ALL = DEMO_TOKENS.all;
const W1 = DEMO_TOKENS.workspace1;
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/;

let app: RunningExample;
const clients: Client[] = [];
beforeEach(async () => {
  app = await start({ port: 0, sim: { intervalMs: 10, seed: 7 } });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await app.stop();
});

function client(path: string, protocols?: string[]): Client {
  const c = new Client(app.url(path), protocols);
  clients.push(c);
  return c;
}

/** Opens a client and waits until it is subscribed to its workspace. */
async function watch(path: string, protocols?: string[]): Promise<Client> {
  const before = app.broker.stats().subscriptions;
  const c = client(path, protocols);
  await c.opened;
  await until(() => app.broker.stats().subscriptions > before, 'the connection bound');
  return c;
}

function api(method: string, path: string, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(app.http(path), { method, headers });
}

async function sim(action: 'start' | 'stop', id: string, token = ALL): Promise<unknown> {
  const res = await api('POST', `/api/sim/${action}/${id}/?token=${token}`);
  expect(res.status).toBe(200);
  return res.json();
}

const isInfo = (message: string) => (f: Frame) => f.type === 'info' && (f as { message?: unknown }).message === message;

function expectSeedShape(frame: Record<string, unknown>, version?: number): void {
  const { version: v, ...rest } = frame;
  expect(v).toBe(version);
  if (rest.type === 'reading') {
    expect(Object.keys(rest).sort()).toEqual(['sensor_id', 'ts', 'type', 'unit', 'value']);
    expect(rest).toMatchObject({ sensor_id: expect.any(Number), value: expect.any(Number), unit: expect.any(String), ts: expect.stringMatching(ISO) });
  } else if (rest.type === 'event') {
    expect(Object.keys(rest).sort()).toEqual('sensor_id' in rest ? ['level', 'message', 'sensor_id', 'ts', 'type'] : ['level', 'message', 'ts', 'type']);
    expect(['INFO', 'WARN', 'CRIT']).toContain(rest.level);
    expect(rest).toMatchObject({ message: expect.any(String), ts: expect.stringMatching(ISO) });
  } else {
    expect(rest.type).toBe('info'); // a control message, which clients ignore (seed 004)
  }
}

describe('examples/workspaces: streams (seed 004 "Message Types")', () => {
  it('streams reading and event messages after POST /api/sim/start/1/ (query token)', async () => {
    const c = await watch(`/ws/workspaces/1/?token=${W1}`);
    expect(await sim('start', '1')).toEqual({ status: 'simulator_started', workspace_id: 1 });
    expect(await sim('start', '1')).toEqual({ status: 'already_running', workspace_id: 1 });
    await c.next(isInfo('simulator_started'), 'simulator_started');
    await c.nextOf('reading');
    await c.nextOf('event');
    for (const frame of c.frames) expectSeedShape(frame);
    const sensors = new Set(DEMO_WORKSPACES['1']!.map((s) => s.id));
    for (const f of c.frames.filter((f) => f.type === 'reading')) expect(sensors.has(f.sensor_id as number)).toBe(true);
  });

  it('adds version: 2 on /ws/v2/workspaces/{id}/ (subprotocol token), the same stream otherwise', async () => {
    const v1 = await watch(`/ws/workspaces/1/?token=${ALL}`);
    const v2 = await watch('/ws/v2/workspaces/1/', ['Token', ALL]);
    expect(v2.ws.protocol).toBe('Token'); // the 101 selects an offered entry, never the token itself
    await sim('start', '1');
    await until(() => v1.frames.filter((f) => f.type === 'event').length >= 2, 'two events');
    await sim('stop', '1');
    await v1.next(isInfo('simulator_stopped'));
    await v2.next(isInfo('simulator_stopped'));
    expect(v2.frames).toEqual(v1.frames.map((f) => ({ ...f, version: 2 })));
    for (const frame of v2.frames) expectSeedShape(frame, 2);
  });

  it('delivers one workspace only', async () => {
    const one = await watch(`/ws/workspaces/1/?token=${ALL}`);
    const two = await watch(`/ws/workspaces/2/?token=${ALL}`);
    await sim('start', '2');
    await two.nextOf('reading');
    await sim('start', '1');
    await one.nextOf('reading');
    const ids = (c: Client) => new Set(c.frames.filter((f) => f.type === 'reading').map((f) => f.sensor_id));
    expect([...ids(two)].every((id) => id === 4 || id === 5)).toBe(true);
    expect([...ids(one)].every((id) => id === 1 || id === 2 || id === 3)).toBe(true);
  });
});

describe('examples/workspaces: authentication (seed 004 "Authentication")', () => {
  it.each([
    { what: 'no token', path: '/ws/workspaces/1/', protocols: undefined },
    { what: 'an invalid query token', path: '/ws/workspaces/1/?token=nope', protocols: undefined },
    { what: 'an invalid subprotocol token', path: '/ws/workspaces/1/', protocols: ['Token', 'nope'] },
    { what: 'a bare Token entry', path: '/ws/workspaces/1/', protocols: ['Token'] },
    { what: 'a token for another workspace', path: `/ws/workspaces/2/?token=${W1}`, protocols: undefined },
    { what: 'an invalid token on v2', path: '/ws/v2/workspaces/1/?token=nope', protocols: undefined },
  ])('closes 4401 with $what, and delivers nothing', async ({ path, protocols }) => {
    await sim('start', '1');
    await sim('start', '2');
    const c = client(path, protocols);
    await c.opened; // the upgrade completes so a browser can see the close code
    if (protocols !== undefined) expect(c.ws.protocol).toBe('Token');
    expect((await c.closed).code).toBe(4401);
    expect(c.frames).toEqual([]);
  });

  it('answers an unknown workspace with the seed’s error message, then closes 1008', async () => {
    for (const id of ['9', 'abc']) {
      const c = client(`/ws/workspaces/${id}/?token=${ALL}`);
      expect(await c.closed).toEqual({ code: 1008, reason: 'workspace_not_found' });
      expect(c.frames).toEqual([{ type: 'error', message: 'workspace_not_found' }]);
    }
  });

  it.each(['/ws/workspaces/', '/ws/v3/workspaces/1/', '/ws/workspaces/1/readings/', '/ws/v2/workspaces/', '/ws/other'])(
    'answers 404 to the unknown path %s',
    async (path) => {
      const c = client(`${path}?token=${ALL}`);
      await expect(c.opened).rejects.toMatchObject({ status: 404 });
    },
  );

  it('accepts the path without its trailing slash, as Django with APPEND_SLASH would', async () => {
    const c = await watch(`/ws/workspaces/1?token=${ALL}`);
    await sim('start', '1');
    await c.nextOf('reading');
  });

  it('is open when auth is off (seed 004: "in development … typically open")', async () => {
    await app.stop();
    app = await start({ port: 0, auth: false, sim: { intervalMs: 10, seed: 1 } });
    const c = await watch('/ws/workspaces/2/');
    expect((await api('POST', '/api/sim/start/2/')).status).toBe(200);
    await c.nextOf('reading');
    expect((await api('GET', '/api/workspaces/2/latest-readings/')).status).toBe(200);
  });
});

describe('examples/workspaces: the REST fallback (seed 004 "Graceful degrade")', () => {
  it('returns the latest reading per sensor, the same as the stream last said', async () => {
    expect(await (await api('GET', `/api/workspaces/1/latest-readings/?token=${ALL}`)).json()).toEqual([]);
    const c = await watch(`/ws/workspaces/1/?token=${ALL}`);
    await sim('start', '1');
    await until(() => new Set(c.frames.filter((f) => f.type === 'reading').map((f) => f.sensor_id)).size === 3, 'all three sensors');
    await sim('stop', '1');
    await c.next(isInfo('simulator_stopped'));
    const last = new Map<number, unknown>();
    for (const f of c.frames) if (f.type === 'reading') last.set(f.sensor_id as number, f);
    const expected = [...last.entries()].sort(([a], [b]) => a - b).map(([, f]) => f);
    const variants: Array<Record<string, string>> = [{}, { authorization: `Token ${W1}` }, { authorization: `Bearer ${W1}` }];
    for (const headers of variants) {
      const res = await api('GET', `/api/workspaces/1/latest-readings/${'authorization' in headers ? '' : `?token=${W1}`}`, headers);
      expect(res.status).toBe(200);
      expect(res.headers.get('content-type')).toMatch(/^application\/json/);
      expect(await res.json()).toEqual(expected);
    }
  });

  it.each([
    { what: 'no token', method: 'GET', path: '/api/workspaces/1/latest-readings/', status: 401, detail: 'authentication_required' },
    { what: 'an invalid token', method: 'GET', path: '/api/workspaces/1/latest-readings/?token=nope', status: 401, detail: 'invalid_token' },
    { what: 'a token for another workspace', method: 'GET', path: `/api/workspaces/2/latest-readings/?token=${W1}`, status: 403, detail: 'forbidden' },
    { what: 'an unknown workspace', method: 'GET', path: `/api/workspaces/9/latest-readings/?token=${ALL}`, status: 404, detail: 'workspace_not_found' },
    { what: 'the wrong method', method: 'POST', path: `/api/workspaces/1/latest-readings/?token=${ALL}`, status: 405, detail: 'method_not_allowed' },
    { what: 'an unknown route', method: 'GET', path: `/api/workspaces/1/?token=${ALL}`, status: 404, detail: 'not_found' },
    { what: 'sim start without a token', method: 'POST', path: '/api/sim/start/1/', status: 401, detail: 'authentication_required' },
    { what: 'sim start on an unknown workspace', method: 'POST', path: `/api/sim/start/9/?token=${ALL}`, status: 404, detail: 'workspace_not_found' },
  ])('answers $what with $status', async ({ method, path, status, detail }) => {
    const res = await api(method, path);
    expect(res.status).toBe(status);
    expect(await res.json()).toEqual({ detail });
    if (status === 401) expect(res.headers.get('www-authenticate')).toBe('Token');
  });
});

describe('examples/workspaces: the simulator', () => {
  const sensors = DEMO_WORKSPACES['1']!;

  it('emits 1–3 readings of distinct sensors per tick, and an event on each threshold crossing', () => {
    const out: SimMessage[] = [];
    const sim = new Simulator({ sensors, emit: (m) => out.push(m), random: seededRandom(42) });
    const levels = new Map<number, string>(sensors.map((s) => [s.id, 'OK']));
    const now = new Date('2025-07-31T15:47:51.123Z');
    for (let i = 0; i < 300; i++) {
      const tick = sim.tick(now);
      const readings = tick.filter((m) => m.type === 'reading');
      expect(readings.length).toBeGreaterThanOrEqual(1);
      expect(readings.length).toBeLessThanOrEqual(3);
      expect(new Set(readings.map((r) => r.sensor_id)).size).toBe(readings.length);
      for (const m of tick) expect(m.ts).toBe('2025-07-31T15:47:51Z');
      for (const r of readings) {
        const s = sensors.find((x) => x.id === r.sensor_id)!;
        expect(r.unit).toBe(s.unit);
        const level = r.value > s.threshold * 1.15 ? 'CRIT' : r.value > s.threshold ? 'WARN' : 'OK';
        const before = levels.get(s.id)!;
        levels.set(s.id, level);
        const events = tick.filter((m) => m.type === 'event' && m.sensor_id === s.id);
        const crossed = level !== before && !(level === 'WARN' && before === 'CRIT');
        expect(events.length).toBe(crossed ? 1 : 0);
      }
    }
    const events = out.filter((m) => m.type === 'event');
    expect(new Set(events.map((e) => e.level))).toEqual(new Set(['INFO', 'WARN', 'CRIT']));
    expect(events.some((e) => e.sensor_id === undefined && e.message === 'workspace overload')).toBe(true);
    expect(sim.running).toBe(false); // tick() alone never starts the timer
  });

  it('formats timestamps as the seed does', () => {
    expect(isoSeconds(new Date('2025-07-31T15:47:51.999Z'))).toBe('2025-07-31T15:47:51Z');
  });
});

describe('examples/workspaces: a client that follows "Client Behavior (Recommended)"', () => {
  it('backs off exponentially, polls the REST fallback while the socket is down, and comes back', async () => {
    await sim('start', '1');
    const port = app.port;
    const messages: Array<[source: 'ws' | 'poll', message: WorkspaceMessage]> = [];
    const others: unknown[] = [];
    const states: Array<[string, { delayMs?: number; code?: number } | undefined]> = [];
    const controller = new AbortController();
    const options: WatchOptions = {
      url: app.url(''), workspaceId: 1, token: ALL, v2: true,
      backoff: { initialMs: 20, maxMs: 80 }, degradeAfterMs: 100, pollMs: 20, signal: controller.signal,
      onMessage: (m, source) => messages.push([source, m]),
      onOther: (m) => others.push(m),
      onState: (state, detail) => states.push([state, detail]),
    };
    const run = watchWorkspace(options);
    await until(() => messages.some(([s, m]) => s === 'ws' && m.type === 'reading' && m.version === 2), 'a v2 reading');

    // Outage: the server goes away. Delays double from 20 ms up to the 80 ms cap; polling starts.
    await app.stop();
    const delays = () => states.filter(([s]) => s === 'waiting').map(([, d]) => d!.delayMs);
    await until(() => delays().length >= 5 && states.some(([s]) => s === 'polling'), 'backoff and polling');
    expect(delays().slice(0, 5)).toEqual([20, 40, 80, 80, 80]);
    expect(states.find(([s]) => s === 'waiting')![1]!.code).toBe(1001); // "server shutting down"

    // The server is back but its WebSocket path is not (a proxy dropping upgrades): polling delivers.
    app = await start({ port, sim: { intervalMs: 10, seed: 3 } });
    const upgrade = app.server.listeners('upgrade') as Array<(...args: unknown[]) => void>;
    app.server.removeAllListeners('upgrade');
    app.server.on('upgrade', (_req, socket: import('node:stream').Duplex) => socket.end('HTTP/1.1 503 Service Unavailable\r\nConnection: close\r\n\r\n'));
    await sim('start', '1');
    await until(() => messages.filter(([s]) => s === 'poll').length >= 3, 'polled readings');
    for (const [, m] of messages.filter(([s]) => s === 'poll')) expectSeedShape(m as never);

    // The WebSocket path comes back: the client reconnects and stops polling.
    app.server.removeAllListeners('upgrade');
    for (const listener of upgrade) app.server.on('upgrade', listener);
    const opens = () => states.filter(([s]) => s === 'open').length;
    await until(() => opens() === 2, 'the reconnect');
    const seen = messages.length;
    await until(() => messages.slice(seen).filter(([s]) => s === 'ws').length >= 3, 'live readings again');
    expect(messages.slice(seen).every(([s]) => s === 'ws')).toBe(true);
    await sim('stop', '1');
    await until(() => others.length === 1, 'the info message');
    expect(others).toEqual([{ type: 'info', message: 'simulator_stopped', version: 2 }]); // not a reading or event: set aside
    controller.abort();
    expect(await run).toEqual({ reason: 'aborted', connections: 2 });
  });

  it('stops on 4401 and on an unknown workspace instead of retrying', async () => {
    const base = { url: app.url(''), backoff: { initialMs: 5, maxMs: 5 }, onMessage: () => {} };
    expect(await watchWorkspace({ ...base, workspaceId: 1, token: 'nope' })).toEqual({ reason: 'unauthorized', connections: 1 });
    expect(await watchWorkspace({ ...base, workspaceId: 1, token: 'nope', tokenIn: 'query' })).toEqual({ reason: 'unauthorized', connections: 1 });
    expect(await watchWorkspace({ ...base, workspaceId: 9, token: ALL })).toEqual({ reason: 'not_found', connections: 1 });
  });
});
