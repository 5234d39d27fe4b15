/**
 * Cluster-wide acks (`clusterAcks`) on brokers sharing a MemoryHub, with real clients: a
 * Broadcast Ack's `recipients` sums every node's connections; a node that does not answer is
 * named after the timeout (one Ack per id, whatever comes later); nothing extra goes on the bus
 * when the option is off. The same over Redis and NATS processes: cluster-acks-processes.test.ts.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { BrokerError, createBroker, envelope, MemoryBus, MemoryHub, MemoryStore, tagged, type BrokerOptions, type BusMessage } from 'switchyard';
import { Client, connect, start, tokenAuth, until, type Running } from './helpers.js';

let nodes: Running[] = [];
let clients: Client[] = [];
let buses: MemoryBus[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.stop()));
  await Promise.all(buses.map((b) => b.close()));
  nodes = [];
  clients = [];
  buses = [];
});

const base = { endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth } satisfies Partial<BrokerOptions>;

async function node(hub: MemoryHub, clusterAcks: BrokerOptions['clusterAcks']): Promise<Running> {
  const n = await start({ ...base, bus: new MemoryBus(hub), clusterAcks });
  nodes.push(n);
  return n;
}

async function client(n: Running, token: string, topics: string[] = []): Promise<Client> {
  const c = await connect(n.url(`/ws?token=${token}`));
  clients.push(c);
  if (topics.length > 0) await c.request('Subscribe', { topics });
  return c;
}

/** A bare bus on the hub that records every message (a node that is not a broker). */
async function listener(hub: MemoryHub, id = 'listener'): Promise<{ bus: MemoryBus; heard: BusMessage[] }> {
  const bus = new MemoryBus(hub);
  buses.push(bus);
  const heard: BusMessage[] = [];
  await bus.start(id, (m) => heard.push(m));
  return { bus, heard };
}

/** Subscribers: 2 on a (one by wildcard), 3 on b, 1 on c; the publisher on a. */
async function spread(a: Running, b: Running, c: Running): Promise<Client> {
  await client(a, 'a1', ['t/#']);
  await client(a, 'a2', ['t/x']);
  for (const id of ['b1', 'b2', 'b3']) await client(b, id, ['t/+']);
  await client(c, 'c1', ['t/x', '#']); // overlapping subscriptions: one connection, counted once
  return client(a, 'pub');
}

describe('cluster-wide acks over a MemoryHub', () => {
  it("sums every node's recipients in the Broadcast Ack and in broker.publish", async () => {
    const hub = new MemoryHub();
    const [a, b, c] = [await node(hub, { timeoutMs: 5000 }), await node(hub, true), await node(hub, true)];
    const pub = await spread(a, b, c);
    const ack = await pub.request('Broadcast', { topic: 't/x', payload: 1 });
    expect(ack.data).toEqual({ message_id: ack.data.message_id, status: 'delivered', recipients: 6 });
    expect(await b.broker.publish('t/x', 2)).toEqual({ messageId: expect.any(String), recipients: 6 });
    // A topic only some nodes have subscribers for: those that have none answer 0.
    expect((await pub.request('Broadcast', { topic: 't/y/z', payload: 3 })).data).toMatchObject({ recipients: 2 });
  });

  it('sums the counts on history topics, which other nodes deliver in offset order (lib/ordering.ts)', async () => {
    const hub = new MemoryHub();
    const store = new MemoryStore();
    const opts = { ...base, store, history: { topics: ['t/#'] } };
    const [a, b, c] = await Promise.all([{ timeoutMs: 5000 }, false, false].map(async (clusterAcks) => {
      const n = await start({ ...opts, bus: new MemoryBus(hub), clusterAcks });
      nodes.push(n);
      return n;
    })) as [Running, Running, Running];
    const pub = await spread(a, b, c);
    for (let i = 1; i <= 3; i++) {
      expect((await pub.request('Broadcast', { topic: 't/x', payload: i })).data).toMatchObject({ status: 'delivered', recipients: 6, offset: i });
    }
    expect(await a.broker.publish('t/x', 4)).toMatchObject({ recipients: 6, offset: 4 });
  });

  it('sums the counts of nodes that do not ask for them themselves (the option is per broker)', async () => {
    const hub = new MemoryHub();
    const [a, b, c] = [await node(hub, { timeoutMs: 5000 }), await node(hub, false), await node(hub, undefined)];
    const pub = await spread(a, b, c);
    expect((await pub.request('Broadcast', { topic: 't/x', payload: 1 })).data).toMatchObject({ recipients: 6 });
    // b does not ask: its own Ack counts its own connections, as without the option.
    const onB = await client(b, 'pb');
    expect((await onB.request('Broadcast', { topic: 't/x', payload: 2 })).data).toEqual(expect.objectContaining({ recipients: 3 }));
  });

  it('learns of the nodes that were there before it, which say hello only once anyone asks', async () => {
    const hub = new MemoryHub();
    const { heard } = await listener(hub);
    const [b, c] = [await node(hub, false), await node(hub, false)];
    const a = await node(hub, { timeoutMs: 60_000, helloIntervalMs: 60_000 });
    const pub = await spread(a, b, c);
    // A minute's timeout: an Ack now means every node a knew of answered.
    expect((await pub.request('Broadcast', { topic: 't/x', payload: 1 })).data).toMatchObject({ recipients: 6 });
    // b and c say hello once at start, then answer a's (marked reply, which a does not answer).
    const hellos = heard.filter((m) => m.kind === 'hello');
    expect(hellos.map((m) => [m.node, 'reply' in m])).toEqual([[b, false], [c, false], [a, false], [b, true], [c, true]].map(([n, r]) => [(n as Running).broker.nodeId, r]));
  });

  it('names a node that does not answer, after the timeout, and sends one Ack per id whatever comes later', async () => {
    const hub = new MemoryHub();
    const a = await node(hub, { timeoutMs: 200, helloIntervalMs: 60_000 });
    const b = await node(hub, false);
    // A node that announces itself but never answers counts (as a SIGSTOPped process would).
    const silent = await listener(hub, 'silent-node');
    await silent.bus.publish({ v: 1, node: 'silent-node', kind: 'hello', intervalMs: 60_000, acks: false });
    await client(a, 'a1', ['t/#']);
    await client(b, 'b1', ['t/#']);
    const pub = await client(a, 'pub');
    const ack = await pub.request('Broadcast', { topic: 't/x', payload: 1 });
    const id = ack.data.message_id as string;
    expect(ack.data).toEqual({ message_id: id, status: 'delivered', recipients: 2, partial: true, missing_nodes: ['silent-node'] });
    expect(await a.broker.publish('t/x', 2)).toMatchObject({ recipients: 2, missingNodes: ['silent-node'] });
    // The silent node answers late, twice: nothing more reaches the publisher, and no count changes.
    const asked = silent.heard.filter((m): m is BusMessage & { kind: 'publish' } => m.kind === 'publish' && m.ack === true && m.topic === 't/x');
    expect(asked.map((m) => m.payload)).toEqual([1, 2]);
    for (let i = 0; i < 2; i++) {
      await silent.bus.publish({ v: 1, node: 'silent-node', kind: 'recipients', to: a.broker.nodeId, counts: asked.map((m) => [m.messageId, 5]) });
    }
    await pub.request('Ping', {});
    expect(pub.frames.filter((f) => f.type === 'Ack' && f.data.message_id === id)).toHaveLength(1);
  });

  it('stops waiting for a node that said bye, and for one unseen for 3 of its hello intervals', async () => {
    const hub = new MemoryHub();
    const a = await node(hub, { timeoutMs: 60_000, helloIntervalMs: 50 });
    const b = await node(hub, false);
    await client(a, 'a1', ['t/#']);
    await client(b, 'b1', ['t/#']);
    const pub = await client(a, 'pub');
    // A node that said hello once, with a short interval, then nothing: gone after 3 intervals.
    const ghost = await listener(hub, 'ghost');
    await ghost.bus.publish({ v: 1, node: 'ghost', kind: 'hello', intervalMs: 20, acks: false });
    // With a 60 s timeout, an Ack before the test's own timeout means the ghost was not waited on.
    expect((await pub.request('Broadcast', { topic: 't/x', payload: 1 })).data).toMatchObject({ recipients: 2 });
    // b closes (bye): the next publish waits for nobody and is complete.
    nodes = nodes.filter((n) => n !== b);
    await b.stop();
    const ack = await pub.request('Broadcast', { topic: 't/x', payload: 2 });
    expect(ack.data).toEqual({ message_id: ack.data.message_id, status: 'delivered', recipients: 1 });
  });

  it('ignores counts that are malformed, addressed to another node, or from a node counted already', async () => {
    const hub = new MemoryHub();
    const a = await node(hub, { timeoutMs: 300, helloIntervalMs: 60_000 });
    const rogue = await listener(hub, 'rogue');
    await rogue.bus.publish({ v: 1, node: 'rogue', kind: 'hello', intervalMs: 60_000, acks: false });
    await client(a, 'a1', ['t/#']);
    const pub = await client(a, 'pub');
    const reply = pub.request('Broadcast', { topic: 't/x', payload: 1 });
    const asked = () => rogue.heard.find((m) => m.kind === 'publish' && m.topic === 't/x') as { messageId: string; ack?: true } | undefined;
    await until(() => asked() !== undefined, 'the publish on the bus');
    expect(asked()!.ack).toBe(true);
    const id = asked()!.messageId;
    const send = (counts: unknown, to = a.broker.nodeId) =>
      rogue.bus.publish({ v: 1, node: 'rogue', kind: 'recipients', to, counts } as unknown as BusMessage);
    await send([[id, -1], [id, 1.5], [id, '3'], [id, Number.MAX_SAFE_INTEGER + 1], 'x', [7, 1]]);
    await send('not a list');
    await send([[id, 100]], 'another-node');
    await send([[id, 4]]);
    await send([[id, 4]]);
    expect((await reply).data).toEqual({ message_id: expect.any(String), status: 'delivered', recipients: 5 });
  });

  it('sends no count and no ack request on the bus when no broker asks, and one hello per node start', async () => {
    const hub = new MemoryHub();
    const { heard } = await listener(hub);
    const [a, b] = [await node(hub, false), await node(hub, undefined)];
    await client(b, 'b1', ['t/#']);
    const pub = await client(a, 'pub');
    expect((await pub.request('Broadcast', { topic: 't/x', payload: 1 })).data).toMatchObject({ recipients: 0 });
    await b.broker.publish('t/x', 2);
    await until(() => heard.filter((m) => m.kind === 'publish' && m.topic === 't/x').length === 2, 'both publishes on the bus');
    expect(heard.filter((m) => 'ack' in m)).toEqual([]);
    const others = heard.filter((m) => m.kind !== 'publish');
    expect(others.map((m) => [m.kind, m.node]).sort()).toEqual([['hello', a.broker.nodeId], ['hello', b.broker.nodeId]].sort());
  });

  it('neither asks nor waits when nobody reads the count: a Broadcast without id, the tagged protocol', async () => {
    const hub = new MemoryHub();
    // Acks would wait a minute for a node that never answers: any publish that waited would stall here.
    const a = await start({ ...base, endpoints: [...base.endpoints, { path: '/tagged', protocol: tagged() }], bus: new MemoryBus(hub), clusterAcks: { timeoutMs: 60_000 } });
    nodes.push(a);
    const silent = await listener(hub, 'silent-node');
    await silent.bus.publish({ v: 1, node: 'silent-node', kind: 'hello', intervalMs: 60_000, acks: false });
    const sub = await client(a, 'sub', ['t/#']);
    const pub = await client(a, 'pub');
    pub.sendJson({ type: 'Broadcast', data: { topic: 't/1', payload: 1 } });
    const tg = new Client(a.url('/tagged?token=tg&tags=t/x'));
    clients.push(tg);
    await tg.opened;
    tg.ws.send(JSON.stringify({ tag: 't/2', message: 2 }));
    tg.ws.send(JSON.stringify({ tag: 't/3', message: 3 }));
    await until(() => sub.frames.filter((f) => f.type === 'Broadcast').length === 3, 'three broadcasts');
    const published = silent.heard.filter((m): m is BusMessage & { kind: 'publish' } => m.kind === 'publish' && m.topic.startsWith('t/'));
    expect(published.map((m) => [m.topic, m.ack])).toEqual([['t/1', undefined], ['t/2', undefined], ['t/3', undefined]]);
  });

  it('refuses invalid clusterAcks options', () => {
    for (const clusterAcks of [{ timeoutMs: 0 }, { timeoutMs: -1 }, { helloIntervalMs: Number.NaN }, { timeoutMs: Infinity }, 'yes', null]) {
      expect(() => createBroker({ ...base, clusterAcks } as unknown as BrokerOptions)).toThrow(BrokerError);
    }
  });
});
