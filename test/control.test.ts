/**
 * The host's hand on one connection: disconnect(id, code, reason), subscribe/unsubscribe from
 * the server (checked by authorize unless told otherwise, told to the client in its protocol),
 * and connections({ principal, topic }). Real brokers on port 0, real `ws` clients.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { createBroker, envelope, events, MemoryBus, MemoryHub, type Broker } from 'switchyard';
import { attach } from 'switchyard/http';
import { Client, Client as TestClient, connectAs, start, startEnvelope, tokenAuth, type Running } from './helpers.js';

let running: Running | undefined;
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await running?.stop();
  running = undefined;
});

async function as(token: string): Promise<{ client: Client; id: string }> {
  const client = await connectAs(running!, token);
  clients.push(client);
  const welcome = client.frames.find((f) => f.type === 'Status' && f.data.status === 'connected')!;
  return { client, id: welcome.data.details.connection_id as string };
}

describe('broker.disconnect', () => {
  it('closes exactly that connection with the code and reason given; false for an unknown id', async () => {
    running = await startEnvelope({ heartbeat: false });
    const a = await as('alice');
    const b = await as('alice');
    expect(running.broker.disconnect(a.id, 4100, 'kicked by admin')).toBe(true);
    expect(await a.client.closed).toEqual({ code: 4100, reason: 'kicked by admin' });
    expect(running.broker.disconnect(a.id)).toBe(false);
    expect(running.broker.disconnect('nope')).toBe(false);
    // The other connection of the same principal is untouched.
    expect(running.broker.connections().map((c) => c.id)).toEqual([b.id]);
    expect(() => running!.broker.disconnect(b.id, 1006)).toThrow(/close code must be/);
    expect(running.broker.disconnect(b.id)).toBe(true);
    expect((await b.client.closed).code).toBe(1000);
  });
});

describe('broker.subscribe / unsubscribe from the server', () => {
  it('subscribes a connection (envelope: Status subscribed by server), and it receives what is published there', async () => {
    running = await startEnvelope({ heartbeat: false });
    const { client, id } = await as('bob:rooms/#=r');
    const result = await running.broker.subscribe(id, ['rooms/1']);
    expect(result).toEqual({ topics: ['rooms/1'], active: 1 });
    const status = await client.nextOf('Status', (f) => f.data.status === 'subscribed');
    expect(status.data.details).toEqual({ topics: ['rooms/1'], active_subscriptions: 1, by: 'server' });
    await running.broker.publish('rooms/1', { hello: 1 });
    expect((await client.nextOf('Broadcast')).data).toMatchObject({ topic: 'rooms/1', payload: { hello: 1 } });
    expect(running.broker.unsubscribe(id, ['rooms/1'])).toEqual({ topics: ['rooms/1'], active: 0 });
    expect((await client.nextOf('Status', (f) => f.data.status === 'unsubscribed')).data.details).toEqual({
      topics: ['rooms/1'], active_subscriptions: 0, by: 'server',
    });
    expect(running.broker.stats().subscriptions).toBe(0);
  });

  it('is checked by authorize (all or nothing) unless { authorize: false }', async () => {
    running = await startEnvelope({ heartbeat: false });
    const { client, id } = await as('carol:rooms/1=r');
    await expect(running.broker.subscribe(id, ['rooms/1', 'admin/x'])).rejects.toMatchObject({ code: 'SY_ERR_FORBIDDEN', details: { topics: ['admin/x'] } });
    expect(running.broker.connections({ principal: 'carol' })[0]!.subscriptions).toEqual([]);
    await expect(running.broker.subscribe(id, ['admin/x'], { authorize: false })).resolves.toEqual({ topics: ['admin/x'], active: 1 });
    await running.broker.publish('admin/x', 'for carol');
    expect((await client.nextOf('Broadcast')).data.payload).toBe('for carol');
    await expect(running.broker.subscribe('nope', ['rooms/1'])).rejects.toMatchObject({ code: 'SY_ERR_NOT_FOUND' });
    await expect(running.broker.subscribe(id, ['bad/#/x'], { authorize: false })).rejects.toMatchObject({ code: 'SY_ERR_BAD_TOPIC' });
  });

  it('tells an events-protocol client with subscription_confirmed', async () => {
    running = await start({ endpoints: [{ path: '/ws', protocol: events() }], authenticate: tokenAuth, heartbeat: false });
    const client = new TestClient(running.url('/ws?token=dave'));
    clients.push(client);
    await client.opened;
    const [conn] = running.broker.connections({ principal: 'dave' });
    await running.broker.subscribe(conn!.id, ['alerts']);
    expect(await client.nextOf('subscription_confirmed')).toMatchObject({ topics: ['alerts'] });
    running.broker.unsubscribe(conn!.id, ['alerts']);
    expect(await client.nextOf('unsubscription_confirmed')).toMatchObject({ topics: ['alerts'] });
  });
});

describe('broker.connections', () => {
  it('lists id, principal id, path, params, remote address, subscriptions, connected-at and buffered bytes; filters by principal and topic', async () => {
    running = await start({
      endpoints: [{ path: '/ws', protocol: envelope() }, { path: '/ws/rooms/:room', protocol: envelope() }],
      authenticate: tokenAuth,
      heartbeat: false,
    });
    const before = Date.now();
    const e = await as('erin');
    const f = new TestClient(running.url('/ws/rooms/7?token=frank'));
    clients.push(f);
    await f.nextOf('Status');
    e.client.sendJson({ type: 'Subscribe', data: { topics: ['rooms/+'] }, id: 's' });
    await e.client.nextOf('Ack');
    const all = running.broker.connections();
    expect(all).toHaveLength(2);
    const erin = all.find((c) => c.principalId === 'erin')!;
    expect(erin).toEqual({
      id: e.id, principalId: 'erin', path: '/ws', params: {}, remoteAddress: '127.0.0.1',
      subscriptions: ['rooms/+'], connectedAt: expect.any(Number), bufferedBytes: 0,
    });
    expect(erin.connectedAt).toBeGreaterThanOrEqual(before - 1000);
    expect(running.broker.connections({ principal: 'frank' })).toMatchObject([{ path: '/ws/rooms/:room', params: { room: '7' } }]);
    expect(running.broker.connections({ topic: 'rooms/7' }).map((c) => c.principalId)).toEqual(['erin']);
    expect(running.broker.connections({ topic: 'rooms/+' }).map((c) => c.principalId)).toEqual(['erin']);
    expect(running.broker.connections({ topic: 'other' })).toEqual([]);
    expect(running.broker.connections({ principal: 'frank', topic: 'rooms/7' })).toEqual([]);
  });

  it('answers for this node only on a cluster', async () => {
    const hub = new MemoryHub();
    const servers: Array<{ broker: Broker; server: http.Server; port: number }> = [];
    for (let i = 0; i < 2; i++) {
      const broker = createBroker({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, heartbeat: false, bus: new MemoryBus(hub) });
      const server = http.createServer();
      attach(broker, server);
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      servers.push({ broker, server, port: (server.address() as AddressInfo).port });
    }
    try {
      const c = new TestClient(`ws://127.0.0.1:${servers[1]!.port}/ws?token=gina`);
      clients.push(c);
      await c.nextOf('Status');
      expect(servers[0]!.broker.connections({ principal: 'gina' })).toEqual([]);
      expect(servers[1]!.broker.connections({ principal: 'gina' })).toHaveLength(1);
      const id = servers[1]!.broker.connections()[0]!.id;
      expect(servers[0]!.broker.disconnect(id)).toBe(false);
      await expect(servers[0]!.broker.subscribe(id, ['x'])).rejects.toMatchObject({ code: 'SY_ERR_NOT_FOUND' });
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      for (const s of servers) {
        await s.broker.close();
        await new Promise<void>((resolve) => s.server.close(() => resolve()));
      }
    }
  });
});
