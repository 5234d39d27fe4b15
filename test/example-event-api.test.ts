/** examples/event-api (seed 003) run for real on port 0, with the seed's own Python client. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { Simulator } from '../examples/event-api/simulator.js';
import { start, type EventApi } from '../examples/event-api/server.js';
import type { Client, Frame } from './helpers.js';
import { open, Proc, refused, subscriptions } from './wire-helpers.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const PYTHON = '/usr/bin/python3'; // Debian's, with python3-websockets (installed by .ci/run)
// Outside CI a machine without python3-websockets skips (with the reason); in CI it must run.
const probe = spawnSync(PYTHON, ['-c', 'import websockets'], { encoding: 'utf8' });
const skipPython = probe.status !== 0 && !process.env.CI;
if (skipPython) console.log(`skipping the seed 003 Python client test: ${PYTHON} cannot import websockets (${(probe.stderr || String(probe.error)).trim().split('\n').pop()})`);

let app: EventApi;
const clients: Client[] = [];
const procs: Proc[] = [];

beforeEach(async () => {
  app = await start({ port: 0, simulate: false });
});

afterEach(async () => {
  await Promise.all(procs.splice(0).map((p) => p.stop()));
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await app.stop();
});

async function connect(token: string): Promise<Client> {
  const client = await open(app.url, { headers: { Authorization: `Bearer ${token}` } });
  clients.push(client);
  return client;
}

const events = (c: Client) => c.frames.filter((f) => f.type === 'event');

describe('seed 003 "Connection Flow" and "Subscription Management"', () => {
  it('connect with a token, subscribe with the seed\'s filters, get confirmed, receive filtered events', async () => {
    const c = await connect(app.tokens.ops);
    c.sendJson({ type: 'subscribe', topics: ['devices', 'alerts'], filters: { severity: ['high', 'critical'] } });
    const confirmed = await c.nextOf('subscription_confirmed');
    expect(confirmed).toEqual({ type: 'subscription_confirmed', topics: ['devices', 'alerts'], timestamp: expect.any(String) });
    expect(new Date(confirmed.timestamp as string).toISOString()).toBe(confirmed.timestamp);

    // Four ticks bring every severity round once: low, medium, high, critical.
    for (let i = 0; i < 4; i++) await app.simulator.tick();
    // The last subscribed message of those ticks is the critical alert: once it is in, all are.
    await c.next((f) => f.type === 'event' && f.topic === 'alerts' && f.data.data.severity === 'critical');
    const got = events(c);
    expect(got.filter((e) => e.topic === 'alerts').map((e) => e.data.data.severity)).toEqual(['high', 'critical']);
    expect(got.filter((e) => e.topic === 'devices')).toHaveLength(4); // no severity field: passes the filter
    expect(got.some((e) => e.topic === 'system_status')).toBe(false); // not subscribed
    const alert = got.find((e) => e.topic === 'alerts')!;
    expect(alert).toEqual({
      type: 'event',
      topic: 'alerts',
      data: { type: 'alert_created', data: { id: 'alert_3', title: 'Unusual Login', severity: 'high', device_id: 'device_3' } },
      timestamp: expect.any(String),
    });
  });

  it('publishes device_update, alert_created and system_status shaped as in the seed\'s "Topics"', async () => {
    const c = await connect(app.tokens.ops);
    c.sendJson({ type: 'subscribe', topics: ['devices', 'alerts', 'system_status'] });
    await c.nextOf('subscription_confirmed');
    await app.simulator.tick();
    await c.next((f) => f.topic === 'system_status');
    const [device, alert, status] = events(c) as [Frame, Frame, Frame];
    expect(device.data).toEqual({ type: 'device_update', data: { id: 'device_1', status: 'online', last_seen: expect.any(String) } });
    expect(alert.data).toEqual({ type: 'alert_created', data: { id: 'alert_1', title: 'Security Alert', severity: 'low', device_id: 'device_1' } });
    expect(status.data).toEqual({ type: 'system_status', data: { status: 'healthy', metrics: { cpu_usage: 30, memory_usage: 40 } } });
  });

  it('unsubscribes: unsubscription_confirmed, then no more events on that topic', async () => {
    const c = await connect(app.tokens.ops);
    c.sendJson({ type: 'subscribe', topics: ['devices', 'system_status'] });
    await c.nextOf('subscription_confirmed');
    c.sendJson({ type: 'unsubscribe', topics: ['devices'] });
    expect(await c.nextOf('unsubscription_confirmed')).toMatchObject({ topics: ['devices'] });
    await app.simulator.tick();
    await c.next((f) => f.topic === 'system_status');
    expect(events(c).map((e) => e.topic)).toEqual(['system_status']);
  });

  it("runs the seed's JavaScript client shape from a browser, with ?token= since it cannot set headers", async () => {
    const ws = new WebSocket(`${app.url}?token=${encodeURIComponent(app.tokens.viewer)}`);
    const received: Frame[] = [];
    const gotEvent = new Promise<void>((resolve) => {
      ws.onmessage = (event) => {
        const data = JSON.parse(String(event.data)) as Frame;
        received.push(data);
        if (data.type === 'subscription_confirmed') void app.simulator.tick();
        if (data.type === 'event' && data.topic === 'alerts') resolve();
      };
    });
    ws.onopen = () => ws.send(JSON.stringify({ type: 'subscribe', topics: ['devices', 'alerts'] }));
    await gotEvent;
    expect(received.map((f) => f.type)).toEqual(['subscription_confirmed', 'event', 'event']);
    const closed = new Promise((resolve) => (ws.onclose = resolve));
    ws.close();
    await closed;
  });
});

describe('seed 003 "Error Handling"', () => {
  it('AUTH_ERROR then 4001 without a token; AUTH_ERROR then 4003 with an invalid or non-Bearer one', async () => {
    const missing = await refused(app.url);
    expect(missing.code).toBe(4001);
    expect(missing.frames).toEqual([{ type: 'error', code: 'AUTH_ERROR', message: 'missing credentials', timestamp: expect.any(String) }]);
    for (const authorization of ['Bearer invalid', `Token ${app.tokens.ops}`]) {
      const invalid = await refused(app.url, { headers: { Authorization: authorization } });
      expect(invalid.code, authorization).toBe(4003);
      expect(invalid.frames).toMatchObject([{ type: 'error', code: 'AUTH_ERROR', message: 'invalid credentials' }]);
    }
  });

  it('SUBSCRIPTION_ERROR for a topic the token may not read, or one that does not exist', async () => {
    const c = await connect(app.tokens.viewer);
    c.sendJson({ type: 'subscribe', topics: ['system_status'] });
    expect(await c.nextOf('error')).toMatchObject({ code: 'SUBSCRIPTION_ERROR', topics: ['system_status'], timestamp: expect.any(String) });
    c.sendJson({ type: 'subscribe', topics: ['devices', 'billing'] });
    expect(await c.nextOf('error')).toMatchObject({ code: 'SUBSCRIPTION_ERROR', topics: ['billing'] });
    c.sendJson({ type: 'subscribe', topics: ['devices'], filters: { severity: 'high' } });
    expect(await c.nextOf('error')).toMatchObject({ code: 'SUBSCRIPTION_ERROR' });
    expect(app.broker.stats().subscriptions).toBe(0);
  });

  it('CONNECTION_ERROR for a malformed message, and for a refused connection past the per-user limit (4004)', async () => {
    const c = await connect(app.tokens.viewer);
    c.ws.send('{"type": "subscribe", "topics": [');
    expect(await c.nextOf('error')).toMatchObject({ code: 'CONNECTION_ERROR', message: expect.stringContaining('invalid JSON') });
    for (let i = 0; i < 4; i++) await connect(app.tokens.viewer); // five in all
    const sixth = await refused(app.url, { headers: { Authorization: `Bearer ${app.tokens.viewer}` } });
    expect(sixth.code).toBe(4004);
    expect(sixth.frames).toMatchObject([{ type: 'error', code: 'CONNECTION_ERROR', message: 'connection limit reached' }]);
  });
});

describe('the simulator', () => {
  it('ticks on its interval once started, and stops', async () => {
    const c = await connect(app.tokens.ops);
    c.sendJson({ type: 'subscribe', topics: ['system_status'] });
    await c.nextOf('subscription_confirmed');
    const sim = new Simulator(app.broker, { intervalMs: 5 }).start();
    expect(sim.running).toBe(true);
    await c.next((f) => f.type === 'event' && events(c).length >= 2);
    sim.stop();
    expect(sim.running).toBe(false);
    expect(() => new Simulator(app.broker, { intervalMs: 0 })).toThrow(TypeError);
  });
});

describe('the seed\'s own clients and CLI', () => {
  it.skipIf(skipPython)("runs seed 003's Python client (Debian python3-websockets) against the example", async () => {
    const python = new Proc(PYTHON, ['-u', 'examples/event-api/client.py'], { EVENT_API_URL: app.url, EVENT_API_TOKEN: app.tokens.ops });
    procs.push(python);
    expect(await python.next(/^Received: /)).toMatch(/^Received: \{'type': 'subscription_confirmed', 'topics': \['devices', 'alerts'\], 'timestamp': '[^']+'\}$/);
    await subscriptions(app.broker, 2);
    await app.simulator.tick();
    expect(await python.next(/^Received: /)).toMatch(/^Received: \{'type': 'event', 'topic': 'devices', 'data': \{'type': 'device_update', 'data': \{'id': 'device_1'/);
    expect(await python.next(/^Received: /)).toMatch(/^Received: \{'type': 'event', 'topic': 'alerts', 'data': \{'type': 'alert_created'/);
    // system_status is not subscribed: the next line is the next tick's device update.
    await app.simulator.tick();
    expect(await python.next(/^Received: /)).toMatch(/'topic': 'devices'.*'id': 'device_2'/);
    await python.stop();
    expect(python.stderr).not.toContain('Traceback');
  });

  it('starts with one command (npx tsx examples/event-api/server.ts) and serves clients', async () => {
    const cli = new Proc(process.execPath, [`${ROOT}node_modules/tsx/dist/cli.mjs`, 'examples/event-api/server.ts'], { PORT: '0', INTERVAL_MS: '20' });
    procs.push(cli);
    const url = (await cli.next(/^event API on /)).slice('event API on '.length);
    const token = (await cli.next(/token ops/)).trim().split(/\s+/).at(-1)!;
    const c = await open(url, { headers: { Authorization: `Bearer ${token}` } });
    clients.push(c);
    c.sendJson({ type: 'subscribe', topics: ['alerts'] });
    await c.nextOf('subscription_confirmed');
    expect((await c.nextOf('event')).data.type).toBe('alert_created');
    await c.close();
    expect(await cli.stop()).toEqual({ code: 0, signal: null });
  });
});
