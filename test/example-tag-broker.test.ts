/** examples/tag-broker (seed 000) run for real on port 0: the client guide's flows and every close code. */
import { fileURLToPath } from 'node:url';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { start, type TagBroker } from '../examples/tag-broker/server.js';
import type { Client } from './helpers.js';
import { connections, open, Proc, refused, subscriptions } from './wire-helpers.js';

const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

let app: TagBroker;
const clients: Client[] = [];

beforeEach(async () => {
  app = await start({ port: 0 });
});

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await app.stop();
});

/** Connects the way seed 000's guide does: `Authorization: Token …` and `Tag: …` headers. */
async function connect(token: string, tags: string): Promise<Client> {
  const client = await open(app.wsUrl, { headers: { Authorization: `Token ${token}`, Tag: tags } });
  clients.push(client);
  return client;
}

function refusal(headers: Record<string, string>, url = app.wsUrl) {
  return refused(url, { headers });
}

async function admin(method: string, path: string, body?: unknown, token = app.adminToken): Promise<{ status: number; body: any }> {
  const res = await fetch(`${app.httpUrl}${path}`, {
    method,
    headers: { Authorization: `Token ${token}`, ...(body !== undefined && { 'content-type': 'application/json' }) },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
  return { status: res.status, body: await res.json() };
}

function idOf(token: string): string {
  return token.slice(0, token.indexOf('.'));
}

describe('seed 000 "Connection Handshake" and "Message Format"', () => {
  it("runs the guide's example: Token + Tag headers, then {tag, message} both ways", async () => {
    const { sensor, dashboard } = app.demo;
    const viewer = await connect(dashboard, 'sensors/+/temperature,alerts/critical/#');
    const publisher = await connect(sensor, 'sensors/#');
    await subscriptions(app.broker, 3);
    const message = { value: 25.5, unit: 'Celsius', timestamp: 1677610000 };
    publisher.sendJson({ tag: 'sensors/room1/temperature', message });
    // "Messages received from the server follow the exact same format."
    expect(await viewer.next()).toEqual({ tag: 'sensors/room1/temperature', message });
  });

  it('matches the wildcard tags sensors/+/temp and alerts/#', async () => {
    const viewer = await connect(app.demo.dashboard, 'sensors/+/temp,alerts/#,devices/room1/status');
    const sensor = await connect(app.demo.sensor, 'alerts/#');
    const alarm = await connect(app.demo.alarm, 'sensors/#');
    await subscriptions(app.broker, 5);
    sensor.sendJson({ tag: 'sensors/room1/humidity', message: 'no' });
    sensor.sendJson({ tag: 'sensors/room1/temp', message: 21 });
    alarm.sendJson({ tag: 'alerts/critical/fire', message: { level: 'critical' } });
    alarm.sendJson({ tag: 'alerts/low', message: 'low' });
    await viewer.next((f) => f.tag === 'alerts/low');
    expect(viewer.frames).toEqual([
      { tag: 'sensors/room1/temp', message: 21 },
      { tag: 'alerts/critical/fire', message: { level: 'critical' } },
      { tag: 'alerts/low', message: 'low' },
    ]);
    // The sensor reads alerts/#, so it got the alarms too; the alarm reads sensors/#.
    await sensor.next((f) => f.tag === 'alerts/low');
    await alarm.next((f) => f.tag === 'sensors/room1/temp');
  });

  it('accepts ?token= and ?tags= from a browser, which cannot set headers', async () => {
    const tags = encodeURIComponent('sensors/+/temp,alerts/#');
    const browser = await open(`${app.wsUrl}?token=${encodeURIComponent(app.demo.dashboard)}&tags=${tags}`);
    clients.push(browser);
    await subscriptions(app.broker, 2);
    await app.broker.publish('alerts/door', 'open');
    expect(await browser.next()).toEqual({ tag: 'alerts/door', message: 'open' });
  });
});

describe('seed 000 "Disconnection Codes", row by row', () => {
  it('4001 Missing Credentials: no Authorization header', async () => {
    expect((await refusal({ Tag: 'alerts/#' })).code).toBe(4001);
  });

  it('4001 Missing Credentials: no Tag header', async () => {
    expect((await refusal({ Authorization: `Token ${app.demo.dashboard}` })).code).toBe(4001);
  });

  it('4003 Invalid Credentials: the token is invalid', async () => {
    const { dashboard } = app.demo;
    const wrongSecret = `${idOf(dashboard)}.${'x'.repeat(43)}`;
    for (const token of [wrongSecret, 'tok_unknown.secret', 'no-dot-at-all']) {
      expect((await refusal({ Authorization: `Token ${token}`, Tag: 'alerts/#' })).code, token).toBe(4003);
    }
  });

  it('4003 Invalid Credentials: no read/readwrite permission for one of the tags', async () => {
    // dashboard reads sensors/+/temp, not all of sensors/#.
    const r = await refusal({ Authorization: `Token ${app.demo.dashboard}`, Tag: 'alerts/#,sensors/#' });
    expect(r.code).toBe(4003);
    expect(app.broker.stats().subscriptions).toBe(0);
  });

  it('4004 Connection Limit Reached: past the token\'s maximum of concurrent connections', async () => {
    await connect(app.demo.alarm, 'alerts/#'); // alarm allows one
    expect((await refusal({ Authorization: `Token ${app.demo.alarm}`, Tag: 'alerts/#' })).code).toBe(4004);
    await connect(app.demo.sensor, 'sensors/#');
    await connect(app.demo.sensor, 'sensors/#'); // sensor allows two
    expect((await refusal({ Authorization: `Token ${app.demo.sensor}`, Tag: 'sensors/#' })).code).toBe(4004);
  });

  it('4002 Token Modified/Revoked: the token is deleted while connected', async () => {
    const { sensor, dashboard } = app.demo;
    const a = await connect(sensor, 'sensors/#');
    const b = await connect(sensor, 'alerts/#');
    const other = await connect(dashboard, 'alerts/#');
    const res = await admin('DELETE', `/admin/tokens/${idOf(sensor)}`);
    expect(res).toEqual({ status: 200, body: { closed: 2 } });
    expect((await a.closed).code).toBe(4002);
    expect((await b.closed).code).toBe(4002);
    expect(other.ws.readyState).toBe(WebSocket.OPEN);
    // The deleted token no longer authenticates.
    expect((await refusal({ Authorization: `Token ${sensor}`, Tag: 'sensors/#' })).code).toBe(4003);
  });

  it('4002 Token Modified/Revoked: the token is modified while connected', async () => {
    const { alarm } = app.demo;
    const a = await connect(alarm, 'alerts/#');
    const res = await admin('PATCH', `/admin/tokens/${idOf(alarm)}`, { max_connections: 2 });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ max_connections: 2, closed: 1 });
    expect((await a.closed).code).toBe(4002);
    await connections(app.broker, 0);
    // Reconnecting picks up the new terms: two connections now.
    await connect(alarm, 'alerts/#');
    await connect(alarm, 'alerts/#');
  });

  it('4003 Permission Revoked/Modified: a permission a subscription relies on is deleted', async () => {
    const { dashboard } = app.demo;
    const alerts = await connect(dashboard, 'alerts/critical/#');
    const temps = await connect(dashboard, 'sensors/+/temp');
    await subscriptions(app.broker, 2);
    const res = await admin('DELETE', `/admin/tokens/${idOf(dashboard)}/permissions?tag=${encodeURIComponent('alerts/#')}`);
    expect(res.status).toBe(200);
    expect(res.body.dropped).toBe(1);
    const closed = await alerts.closed;
    expect(closed.code).toBe(4003);
    expect(closed.reason).toContain('alerts/critical/#');
    // The connection whose tags do not rely on it stays.
    await app.broker.publish('sensors/k/temp', 20);
    expect(await temps.next()).toEqual({ tag: 'sensors/k/temp', message: 20 });
  });

  it('4003 Permission Revoked/Modified: a permission is changed so it no longer covers a tag', async () => {
    const { sensor } = app.demo;
    const c = await connect(sensor, 'sensors/room1/#');
    await subscriptions(app.broker, 1);
    // sensors/# readwrite becomes sensors/room2/# readwrite: first the narrower grant is added
    // (nothing lost), then the wide one goes and sensors/room1/# is no longer allowed.
    expect((await admin('PUT', `/admin/tokens/${idOf(sensor)}/permissions`, { tag: 'sensors/room2/#', access: 'readwrite' })).body.dropped).toBe(0);
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
    expect((await admin('DELETE', `/admin/tokens/${idOf(sensor)}/permissions?tag=${encodeURIComponent('sensors/#')}`)).body.dropped).toBe(1);
    expect((await c.closed).code).toBe(4003);
  });

  it('a change that leaves read access keeps the connection; a publish that now lacks readwrite closes 4003', async () => {
    const { alarm } = app.demo;
    const c = await connect(alarm, 'alerts/#');
    await subscriptions(app.broker, 1);
    const res = await admin('PUT', `/admin/tokens/${idOf(alarm)}/permissions`, { tag: 'alerts/#', access: 'read' });
    expect(res.body).toMatchObject({ dropped: 0, permissions: { 'alerts/#': 'read' } });
    await app.broker.publish('alerts/x', 'still subscribed');
    expect(await c.next()).toEqual({ tag: 'alerts/x', message: 'still subscribed' });
    c.sendJson({ tag: 'alerts/x', message: 'no longer allowed' });
    expect((await c.closed).code).toBe(4003);
  });

  it('4003 for a publish without readwrite or to a wildcard tag; 1008 for a frame that is not {tag, message}', async () => {
    const { dashboard, sensor } = app.demo;
    const reader = await connect(dashboard, 'alerts/#');
    reader.sendJson({ tag: 'alerts/x', message: 1 });
    expect((await reader.closed).code).toBe(4003);
    const wild = await connect(sensor, 'sensors/#');
    wild.sendJson({ tag: 'sensors/+/temp', message: 1 });
    expect((await wild.closed).code).toBe(4003);
    const junk = await connect(sensor, 'sensors/#');
    junk.ws.send('{"topic":"sensors/a","payload":1}');
    expect((await junk.closed).code).toBe(1008);
  });
});

describe('the admin API', () => {
  it('is guarded by the admin token', async () => {
    expect((await admin('GET', '/admin/tokens', undefined, 'wrong')).status).toBe(403);
    const res = await fetch(`${app.httpUrl}/admin/tokens`);
    expect(res.status).toBe(401);
    await res.body?.cancel();
    expect((await admin('GET', '/elsewhere')).status).toBe(404);
  });

  it('creates tokens that are shown once and kept hashed, and validates what it is given', async () => {
    const created = await admin('POST', '/admin/tokens', { name: 'kiosk', max_connections: 1, permissions: { 'devices/+/status': 'read' } });
    expect(created.status).toBe(201);
    const { token, id } = created.body;
    expect(typeof token).toBe('string');
    const record = app.tokens.get(id)!;
    expect(record.hash).not.toContain(token);
    expect(JSON.stringify(app.tokens.list())).not.toContain(token.split('.')[1]);
    const listed = await admin('GET', '/admin/tokens');
    expect(listed.body.find((t: { id: string }) => t.id === id)).toEqual({
      id, name: 'kiosk', max_connections: 1, permissions: { 'devices/+/status': 'read' }, connections: 0,
    });
    expect(JSON.stringify(listed.body)).not.toContain(token);

    const kiosk = await connect(token, 'devices/+/status');
    await subscriptions(app.broker, 1);
    expect((await admin('GET', `/admin/tokens/${id}`)).body.connections).toBe(1);
    await app.broker.publish('devices/room1/status', 'online');
    expect(await kiosk.next()).toEqual({ tag: 'devices/room1/status', message: 'online' });

    expect((await admin('PUT', `/admin/tokens/${id}/permissions`, { tag: 'a/#/b', access: 'read' })).status).toBe(400);
    expect((await admin('PUT', `/admin/tokens/${id}/permissions`, { tag: 'a/b', access: 'write' })).status).toBe(400);
    expect((await admin('POST', '/admin/tokens', { name: '' })).status).toBe(400);
    expect((await admin('PATCH', `/admin/tokens/${id}`, { max_connections: 0 })).status).toBe(400);
    expect((await admin('DELETE', '/admin/tokens/tok_nope')).status).toBe(404);
    expect((await admin('DELETE', `/admin/tokens/${id}/permissions?tag=nothing`)).status).toBe(404);
  });
});

describe('the command line', () => {
  it('starts with one command (npx tsx examples/tag-broker/server.ts) and serves the demo tokens', async () => {
    const cli = new Proc(process.execPath, [TSX, 'examples/tag-broker/server.ts'], { PORT: '0', ADMIN_TOKEN: 'cli-admin' });
    try {
      const url = (await cli.next(/^tag broker on /)).slice('tag broker on '.length);
      const sensor = (await cli.next(/demo token sensor/)).trim().split(/\s+/).at(-1)!;
      const publisher = await open(url, { headers: { Authorization: `Token ${sensor}`, Tag: 'sensors/#' } });
      clients.push(publisher);
      const httpUrl = url.replace(/^ws:/, 'http:').replace(/\/ws\/brocker\/$/, '');
      const listed = await fetch(`${httpUrl}/admin/tokens`, { headers: { Authorization: 'Token cli-admin' } });
      expect(((await listed.json()) as Array<{ name: string }>).map((t) => t.name)).toEqual(['sensor', 'dashboard', 'alarm']);
      publisher.sendJson({ tag: 'alerts/x', message: 1 }); // sensor only reads alerts/#
      expect((await publisher.closed).code).toBe(4003);
    } finally {
      expect(await cli.stop()).toEqual({ code: 0, signal: null });
    }
  });
});
