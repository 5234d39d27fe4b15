/**
 * What the broker does with its Registry, with real sockets: admissions decided by the registry
 * (limits across nodes sharing one, revoked tokens remembered), presence announced once per
 * cluster transition, an admission whose client left meanwhile given back, a registry that
 * fails refusing handshakes as retryable, and a node the registry lost admitting its
 * connections again.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { envelope, MemoryBus, MemoryHub, MemoryRegistry, type Admission, type AdmitLimits, type BrokerOptions, type Bus, type BusHandler, type BusMessage, type BusObserver, type Registry } from 'switchyard';
import { RedisRegistry } from 'switchyard/redis';
import { Client, connect, start, tokenAuth, until, type Running } from './helpers.js';
import { until as eventually } from './cluster/procs.js';
import { REDIS_URL, RUN, skipWithout } from './store-services.js';

let running: Running[] = [];
const clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(running.map((r) => r.stop()));
  running = [];
});

async function node(extra: Partial<BrokerOptions> = {}): Promise<Running> {
  const r = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, ...extra });
  running.push(r);
  return r;
}
async function as(r: Running, token: string): Promise<Client> {
  const c = await connect(r.url(`/ws?token=${encodeURIComponent(token)}`));
  clients.push(c);
  return c;
}
async function refusal(r: Running, token: string): Promise<number> {
  const c = new Client(r.url(`/ws?token=${encodeURIComponent(token)}`));
  clients.push(c);
  return (await c.closed).code;
}

/** Two nodes on one MemoryHub and one MemoryRegistry. */
async function pair(options: Partial<BrokerOptions> = {}): Promise<[Running, Running]> {
  const hub = new MemoryHub();
  const registry = new MemoryRegistry();
  return [await node({ bus: new MemoryBus(hub), registry, ...options }), await node({ bus: new MemoryBus(hub), registry, ...options })];
}

describe('a shared registry', () => {
  it('announces a principal connected on two nodes online once and offline once', async () => {
    const [a, b] = await pair();
    const watcher = await as(a, 'watcher:$presence/#=r');
    await watcher.request('Subscribe', { topics: ['$presence/pat'] });
    const onA = await as(a, 'pat');
    const onB = await as(b, 'pat');
    await watcher.nextOf('Presence', (f) => f.data.status === 'online');
    await onA.close();
    await onB.close();
    await watcher.nextOf('Presence', (f) => f.data.status === 'offline');
    await watcher.request('Ping', {});
    expect(watcher.frames.filter((f) => f.type === 'Presence').map((f) => f.data.status)).toEqual(['online', 'offline']);
    // Each node answers for the cluster: online while connected on the other one only.
    const again = await as(b, 'pat');
    expect(await a.broker.presence('pat')).toMatchObject({ status: 'online' });
    await again.close();
    await until(() => watcher.frames.filter((f) => f.type === 'Presence').length === 4, 'offline again');
    const offline = await a.broker.presence('pat');
    expect(offline).toMatchObject({ status: 'offline' });
    expect(offline.last_seen).toBe(watcher.frames.filter((f) => f.type === 'Presence').at(-1)!.data.last_seen);
  });

  it('holds maxConnections and exclusive across the nodes, over HTTP statuses too', async () => {
    const hub = new MemoryHub();
    const registry = new MemoryRegistry();
    const endpoints = [{ path: '/ws', protocol: envelope(), maxConnectionsPerPrincipal: 2 }, { path: '/http', protocol: envelope(), reject: 'http' as const, exclusive: true }];
    const a = await node({ endpoints, bus: new MemoryBus(hub), registry });
    const b = await node({ endpoints, bus: new MemoryBus(hub), registry });
    await as(a, 'amy');
    await as(b, 'amy');
    expect(await refusal(a, 'amy')).toBe(4004);
    expect(await refusal(b, 'amy')).toBe(4004);
    const dev = new Client(b.url('/http?token=dev'));
    clients.push(dev);
    await dev.opened;
    const second = new Client(a.url('/http?token=dev'));
    await expect(second.opened).rejects.toMatchObject({ status: 409 });
  });

  it('closes a node leaving: its principals go offline for the others, announced once', async () => {
    const [a, b] = await pair();
    const watcher = await as(a, 'watcher:$presence/#=r');
    await watcher.request('Subscribe', { topics: ['$presence/+'] });
    await as(b, 'lee');
    await watcher.nextOf('Presence', (f) => f.data.status === 'online');
    await b.stop();
    running = running.filter((r) => r !== b);
    await watcher.nextOf('Presence', (f) => f.data.user_id === 'lee' && f.data.status === 'offline');
    await watcher.request('Ping', {});
    expect(watcher.frames.filter((f) => f.type === 'Presence').map((f) => f.data.status)).toEqual(['online', 'offline']);
    expect(await a.broker.presence('lee')).toMatchObject({ status: 'offline' });
  });
});

describe('revoked tokens', () => {
  const withToken: BrokerOptions['authenticate'] = ({ credentials }) => {
    const [id, tokenId] = credentials!.token.split('.');
    return { id: id!, tokenId: tokenId!, expiresAt: Date.now() + 60_000 };
  };

  it('are refused at the handshake after revoke (4002, HTTP 401), by a node that shares the registry', async () => {
    const hub = new MemoryHub();
    const registry = new MemoryRegistry();
    const endpoints = [{ path: '/ws', protocol: envelope() }, { path: '/http', protocol: envelope(), reject: 'http' as const }];
    const a = await node({ endpoints, authenticate: withToken, bus: new MemoryBus(hub), registry });
    const open = await as(a, 'ann.t1');
    expect(a.broker.revoke({ tokenId: 't1' })).toBe(1);
    expect((await open.closed).code).toBe(4002);
    expect(await refusal(a, 'ann.t1')).toBe(4002);
    // A node that joins later knows it from the registry.
    const b = await node({ endpoints, authenticate: withToken, bus: new MemoryBus(hub), registry });
    expect(await refusal(b, 'ann.t1')).toBe(4002);
    const http = new Client(b.url('/http?token=ann.t1'));
    await expect(http.opened).rejects.toMatchObject({ status: 401 });
    await as(b, 'ann.t2');
  });

  it('are read back from the registry after a bus gap: a revoke the node missed closes its connections (4002)', async () => {
    const hub = new MemoryHub();
    const registry = new MemoryRegistry();
    /** A bus that can stop hearing, and reports the gap when it hears again, as a network bus does. */
    class Deaf implements Bus {
      readonly inner = new MemoryBus(hub);
      deaf = false;
      observer: BusObserver = {};
      start(node: string, handler: BusHandler, observer: BusObserver = {}): Promise<void> {
        this.observer = observer;
        return this.inner.start(node, (m) => void (this.deaf || handler(m)));
      }
      publish = (m: BusMessage) => this.inner.publish(m);
      close = () => this.inner.close();
    }
    const a = await node({ authenticate: withToken, bus: new MemoryBus(hub), registry });
    const bus = new Deaf();
    const b = await node({ authenticate: withToken, bus, registry });
    b.broker.on('error', () => undefined);
    const missed = await as(b, 'cy.t9');
    const kept = await as(b, 'cy.t10');
    bus.deaf = true;
    a.broker.revoke({ tokenId: 't9' });
    expect((await missed.request('Ping', {})).type).toBe('Ack'); // b never heard it
    bus.deaf = false;
    bus.observer.gap?.({ since: Date.now() - 10, until: Date.now(), durationMs: 10, reason: 'test' });
    expect((await missed.closed).code).toBe(4002);
    expect((await kept.request('Ping', {})).type).toBe('Ack');
  });

  it("revoking a principal remembers the tokens its connections used, not the principal", async () => {
    const registry = new MemoryRegistry();
    const a = await node({ authenticate: withToken, registry });
    const first = await as(a, 'bo.t1');
    a.broker.revoke({ principal: 'bo' });
    expect((await first.closed).code).toBe(4002);
    expect(registry.revoked('t1')).toBe(true);
    expect(await refusal(a, 'bo.t1')).toBe(4002);
    await as(a, 'bo.t2'); // a fresh token
  });
});

/** A registry whose answers the test holds back or fails. */
class Faulty implements Registry {
  readonly inner = new MemoryRegistry();
  readonly ttlMs = 0;
  fail = false;
  failRemove = false;
  constructor(readonly heartbeatMs = 0) {}
  gate: Promise<void> | undefined;
  /** Admissions the inner registry answered. */
  admitted = 0;
  admit(node: string, principal: string, connection: string, limits: AdmitLimits): Promise<Admission> {
    if (this.fail) return Promise.reject(new Error('registry down'));
    return (this.gate ?? Promise.resolve()).then(() => {
      const answer = this.inner.admit(node, principal, connection, limits);
      this.admitted++;
      return answer;
    });
  }
  remove = async (node: string, principal: string, connection: string) => {
    if (this.failRemove) throw new Error('registry down');
    return this.inner.remove(node, principal, connection);
  };
  connections = (p: string) => this.inner.connections(p);
  count = (p: string) => this.inner.count(p);
  nodes = (p: string) => this.inner.nodes(p);
  presence = (p: string) => this.inner.presence(p);
  heartbeat = (n: string) => this.inner.heartbeat(n);
  sweep = () => this.inner.sweep();
  leave = (n: string) => this.inner.leave(n);
  revoke = (t: string, at?: number) => this.inner.revoke(t, at);
  revoked = (t: string) => this.inner.revoked(t);
  close = () => this.inner.close();
}

describe('a registry that is slow or fails', () => {
  it('gives back an admission answered after its handshake ended (timed out, 408)', async () => {
    const registry = new Faulty();
    let release!: () => void;
    registry.gate = new Promise((resolve) => (release = resolve));
    const a = await node({ registry, limits: { handshakeTimeoutMs: 200 } });
    const late = new Client(a.url('/ws?token=quick'));
    await expect(late.opened).rejects.toMatchObject({ status: 408 });
    release();
    // Admitted by the registry after the 408, then given back: nothing of it is left.
    await eventually(async () => registry.admitted === 1 && (await registry.inner.count('quick')) === 0, 'the admission to be given back');
    await as(a, 'quick');
    expect(await registry.inner.count('quick')).toBe(1);
  });

  it('sends a removal the registry failed again after the next heartbeats, then announces the principal offline', async () => {
    const registry = new Faulty(50);
    const a = await node({ registry });
    a.broker.on('error', () => undefined);
    const watcher = await as(a, 'watcher:$presence/#=r');
    await watcher.request('Subscribe', { topics: ['$presence/vic'] });
    const vic = await as(a, 'vic');
    await watcher.nextOf('Presence', (f) => f.data.status === 'online');
    registry.failRemove = true;
    await vic.close();
    await watcher.request('Ping', {});
    expect(await registry.inner.count('vic')).toBe(1); // the registry did not take the removal
    registry.failRemove = false;
    await eventually(async () => (await registry.inner.count('vic')) === 0, 'the removal to be sent again');
    expect((await watcher.nextOf('Presence', (f) => f.data.status === 'offline')).data.user_id).toBe('vic');
  });

  it('refuses handshakes as retryable (1013, HTTP 503) while the registry fails, and reports it', async () => {
    const registry = new Faulty();
    const endpoints = [{ path: '/ws', protocol: envelope() }, { path: '/http', protocol: envelope(), reject: 'http' as const }];
    const a = await node({ endpoints, registry });
    const errors: Array<{ code?: string }> = [];
    a.broker.on('error', (err) => errors.push(err as { code?: string }));
    registry.fail = true;
    expect(await refusal(a, 'una')).toBe(1013);
    const http = new Client(a.url('/http?token=una'));
    await expect(http.opened).rejects.toMatchObject({ status: 503 });
    expect(errors.map((e) => e.code)).toEqual(['SY_ERR_BACKEND', 'SY_ERR_BACKEND']);
    registry.fail = false;
    await as(a, 'una');
  });
});

describe('a node the registry lost', async () => {
  const skip = await skipWithout('Redis');
  const keyPrefix = `sy-test:${RUN}:registry-broker:`;
  afterAll(async () => {
    if (skip) return;
    const admin = new Redis(REDIS_URL);
    for await (const keys of admin.scanStream({ match: `${keyPrefix}*`, count: 500 })) {
      if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
    }
    await admin.quit();
  });

  it.skipIf(skip)('admits its connections again and announces them online when Redis lost its data', async () => {
    const prefix = `${keyPrefix}${randomUUID()}:`;
    const registry = new RedisRegistry({ redis: REDIS_URL, keyPrefix: prefix, heartbeatMs: 100, ttlMs: 2000 });
    const a = await node({ registry });
    const watcher = await as(a, 'watcher:$presence/#=r');
    await watcher.request('Subscribe', { topics: ['$presence/ray'] });
    await as(a, 'ray');
    await watcher.nextOf('Presence', (f) => f.data.status === 'online');
    expect(await registry.count('ray')).toBe(1);
    // What a restart without persistence does to this node's keys (only this test's prefix).
    const admin = new Redis(REDIS_URL);
    for await (const keys of admin.scanStream({ match: `${prefix}*`, count: 500 })) {
      if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
    }
    await admin.quit();
    // The next heartbeat finds the node unknown and admits its connection again, as the principal's
    // first: a second online announcement (nothing announced it offline) proves the entry was gone.
    await watcher.nextOf('Presence', (f) => f.data.status === 'online');
    expect(await registry.count('ray')).toBe(1);
    expect(await a.broker.presence('ray')).toMatchObject({ status: 'online' });
  });
});
