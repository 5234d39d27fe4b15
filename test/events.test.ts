/** The events protocol (seed 003) end to end over real sockets: subscribe, filters, events, errors. */
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { events, type BrokerOptions, type EndpointOptions, type Principal } from 'switchyard';
import { Client, start, type Frame, type Running } from './helpers.js';
import { open, refused, subscriptions } from './wire-helpers.js';

const OPS: Principal = { id: 'ops', maxConnections: 1, grants: [{ topic: 'devices', access: 'read' }, { topic: 'alerts', access: 'read' }] };
const ADMIN: Principal = { id: 'admin', grants: [{ topic: '#', access: 'read' }] };
const TOKENS: Record<string, Principal> = { 'ops-token': OPS, 'admin-token': ADMIN };

const authenticate: BrokerOptions['authenticate'] = ({ credentials }) => (credentials && TOKENS[credentials.token]) ?? null;

let running: Running | undefined;
const clients: Client[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await running?.stop();
  running = undefined;
});

async function serve(endpoint: Partial<EndpointOptions> = {}, options: Partial<BrokerOptions> = {}): Promise<Running> {
  running = await start({
    endpoints: [{ path: '/v1/ws', protocol: events(), ...endpoint }],
    authenticate,
    heartbeat: false,
    ...options,
  });
  return running;
}

async function connect(token: string): Promise<Client> {
  const client = await open(running!.url('/v1/ws'), { headers: { Authorization: `Bearer ${token}` } });
  clients.push(client);
  return client;
}

function isIso(value: unknown): boolean {
  return typeof value === 'string' && new Date(value).toISOString() === value;
}

/** Subscribes and returns the confirmation (or the error that answered instead). */
async function subscribe(client: Client, topics: unknown, filters?: unknown): Promise<Frame> {
  client.sendJson({ type: 'subscribe', topics, ...(filters !== undefined && { filters }) });
  return client.next((f) => f.type === 'subscription_confirmed' || f.type === 'error', 'subscribe reply');
}

describe('events: seed 003 "Subscription Management"', () => {
  it('confirms a subscribe, then delivers event {topic, data, timestamp} with data the published payload', async () => {
    await serve();
    const c = await connect('ops-token');
    const confirmed = await subscribe(c, ['devices', 'alerts']);
    expect(Object.keys(confirmed).sort()).toEqual(['timestamp', 'topics', 'type']);
    expect(confirmed).toMatchObject({ type: 'subscription_confirmed', topics: ['devices', 'alerts'] });
    expect(isIso(confirmed.timestamp)).toBe(true);

    const data = { id: 'alert_id', title: 'New Alert', severity: 'high' };
    const before = Date.now();
    await running!.broker.publish('alerts', data);
    const event = await c.nextOf('event');
    expect(Object.keys(event).sort()).toEqual(['data', 'timestamp', 'topic', 'type']);
    expect(event).toMatchObject({ type: 'event', topic: 'alerts', data });
    expect(isIso(event.timestamp)).toBe(true);
    expect(Date.parse(event.timestamp as string)).toBeGreaterThanOrEqual(before - 1);
  });

  it('evaluates filters on the server; a payload without the field passes', async () => {
    await serve();
    const c = await connect('ops-token');
    // The seed's own subscribe message.
    await subscribe(c, ['devices', 'alerts'], { severity: ['high', 'critical'] });
    const { broker } = running!;
    expect((await broker.publish('alerts', { id: 'a1', severity: 'low' })).recipients).toBe(0);
    expect((await broker.publish('alerts', { id: 'a2', severity: 'critical' })).recipients).toBe(1);
    expect((await broker.publish('devices', { id: 'd1', status: 'online' })).recipients).toBe(1);
    await c.next((f) => f.type === 'event' && f.topic === 'devices');
    expect(c.frames.filter((f) => f.type === 'event').map((f) => f.data.id)).toEqual(['a2', 'd1']);
  });

  it('looks filter fields up under filterRoot for {type, data} payloads', async () => {
    await serve({ protocol: events({ filterRoot: 'data' }) });
    const c = await connect('ops-token');
    await subscribe(c, ['alerts'], { severity: ['high'] });
    const { broker } = running!;
    await broker.publish('alerts', { type: 'alert_created', data: { id: 'low', severity: 'low' } });
    await broker.publish('alerts', { type: 'alert_created', data: { id: 'high', severity: 'high' } });
    const event = await c.nextOf('event');
    expect(event.data).toEqual({ type: 'alert_created', data: { id: 'high', severity: 'high' } });
    expect(() => events({ filterRoot: '' })).toThrow(TypeError);
    expect(() => events({ filterRoot: 'a..b' })).toThrow(TypeError);
  });

  it('answers unsubscribe with unsubscription_confirmed and stops those events', async () => {
    await serve();
    const c = await connect('ops-token');
    await subscribe(c, ['devices', 'alerts']);
    c.sendJson({ type: 'unsubscribe', topics: ['devices'] });
    const reply = await c.nextOf('unsubscription_confirmed');
    expect(reply).toMatchObject({ topics: ['devices'] });
    expect(isIso(reply.timestamp)).toBe(true);
    await running!.broker.publish('devices', { id: 'gone' });
    await running!.broker.publish('alerts', { id: 'marker' });
    await c.nextOf('event');
    expect(c.frames.filter((f) => f.type === 'event').map((f) => f.data.id)).toEqual(['marker']);
  });

  it('supports topic wildcards for principals allowed them', async () => {
    await serve();
    const c = await connect('admin-token');
    await subscribe(c, ['devices/#']);
    await running!.broker.publish('devices/d1/status', { status: 'offline' });
    expect(await c.nextOf('event')).toMatchObject({ topic: 'devices/d1/status', data: { status: 'offline' } });
  });
});

describe('events: seed 003 "Error Handling"', () => {
  it('AUTH_ERROR then 4001 without a token, AUTH_ERROR then 4003 with a bad one', async () => {
    await serve();
    const missing = await refused(running!.url('/v1/ws'));
    expect(missing.code).toBe(4001);
    expect(missing.frames).toEqual([{ type: 'error', code: 'AUTH_ERROR', message: 'missing credentials', timestamp: expect.any(String) }]);
    const invalid = await refused(running!.url('/v1/ws'), { headers: { Authorization: 'Bearer wrong' } });
    expect(invalid.code).toBe(4003);
    expect(invalid.frames).toMatchObject([{ type: 'error', code: 'AUTH_ERROR', message: 'invalid credentials' }]);
    expect(isIso((invalid.frames[0] as Frame).timestamp)).toBe(true);
  });

  it("sends no frame under reject: 'http' (401 before the upgrade)", async () => {
    await serve({ reject: 'http' });
    const c = new Client(running!.url('/v1/ws'));
    await expect(c.opened).rejects.toMatchObject({ status: 401 });
  });

  it('SUBSCRIPTION_ERROR for a forbidden or invalid topic, bad filters or no topics; nothing is subscribed', async () => {
    await serve();
    const c = await connect('ops-token');
    const forbidden = await subscribe(c, ['devices', 'system_status']);
    expect(forbidden).toMatchObject({ type: 'error', code: 'SUBSCRIPTION_ERROR', topics: ['system_status'] });
    expect(forbidden.message).toContain('system_status');
    expect(isIso(forbidden.timestamp)).toBe(true);
    expect(running!.broker.stats().subscriptions).toBe(0); // all or nothing: devices was not added

    expect(await subscribe(c, ['alerts/#/x'])).toMatchObject({ code: 'SUBSCRIPTION_ERROR', topics: ['alerts/#/x'] });
    expect(await subscribe(c, ['alerts'], { severity: 'high' })).toMatchObject({ code: 'SUBSCRIPTION_ERROR' });
    expect(await subscribe(c, [])).toMatchObject({ code: 'SUBSCRIPTION_ERROR' });
    expect(await subscribe(c, undefined)).toMatchObject({ code: 'SUBSCRIPTION_ERROR' });
    c.sendJson({ type: 'unsubscribe', topics: 'devices' });
    expect(await c.nextOf('error')).toMatchObject({ code: 'SUBSCRIPTION_ERROR' });
    // The connection is still usable.
    expect(await subscribe(c, ['alerts'])).toMatchObject({ type: 'subscription_confirmed' });
  });

  it('SUBSCRIPTION_ERROR naming the topics when a permission is revoked live; the connection stays', async () => {
    await serve();
    const c = await connect('ops-token');
    await subscribe(c, ['devices', 'alerts']);
    expect(await running!.broker.reauthorize('ops', { ...OPS, grants: [{ topic: 'devices', access: 'read' }] })).toBe(1);
    expect(await c.nextOf('error')).toMatchObject({ code: 'SUBSCRIPTION_ERROR', topics: ['alerts'] });
    await running!.broker.publish('alerts', { id: 'hidden' });
    await running!.broker.publish('devices', { id: 'seen' });
    expect((await c.nextOf('event')).data).toEqual({ id: 'seen' });
    expect(c.ws.readyState).toBe(WebSocket.OPEN);
  });

  it('AUTH_ERROR, then close 4002, when the token is revoked while connected', async () => {
    await serve();
    const c = await connect('ops-token');
    running!.broker.revoke({ principal: 'ops' }, 'token revoked');
    expect(await c.nextOf('error')).toMatchObject({ code: 'AUTH_ERROR', message: 'token revoked' });
    expect((await c.closed).code).toBe(4002);
  });

  it('CONNECTION_ERROR for malformed or unknown messages, and the connection stays', async () => {
    await serve();
    const c = await connect('ops-token');
    for (const frame of ['not json', '[]', '{"topics":["devices"]}', '{"type":"publish","topic":"devices"}', Buffer.from([1])]) {
      c.ws.send(frame);
      const error = await c.nextOf('error');
      expect(error, String(frame)).toMatchObject({ type: 'error', code: 'CONNECTION_ERROR' });
      expect(isIso(error.timestamp)).toBe(true);
    }
    expect(await subscribe(c, ['devices'])).toMatchObject({ type: 'subscription_confirmed' });
  });

  it('CONNECTION_ERROR then 4004 past the connection limit', async () => {
    await serve();
    await connect('ops-token');
    const r = await refused(running!.url('/v1/ws'), { headers: { Authorization: 'Bearer ops-token' } });
    expect(r.code).toBe(4004);
    expect(r.frames).toMatchObject([{ type: 'error', code: 'CONNECTION_ERROR', message: 'connection limit reached' }]);
  });

  it('CONNECTION_ERROR for a rate-limited message', async () => {
    await serve({}, { limits: { rate: { perSecond: 0.001, burst: 1 } } });
    const c = await connect('admin-token');
    c.sendJson({ type: 'subscribe', topics: ['devices'] });
    c.sendJson({ type: 'subscribe', topics: ['alerts'] });
    await c.nextOf('subscription_confirmed');
    expect(await c.nextOf('error')).toMatchObject({ code: 'CONNECTION_ERROR', message: expect.stringContaining('rate limit') });
    await subscriptions(running!.broker, 1);
  });
});
