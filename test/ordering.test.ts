/**
 * Ordered delivery of history topics across nodes (lib/ordering.ts), in one process: three brokers
 * on one MemoryHub and one shared MemoryStore (numbered by the store, as Redis numbers them for
 * separate processes), real sockets and clients. The bus wrapper below holds back or drops what a
 * node receives, and drives the observer as a network bus does on a reconnect.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  envelope,
  MemoryBus,
  MemoryHub,
  MemoryRegistry,
  MemoryStore,
  type BrokerOptions,
  type BusHandler,
  type BusMessage,
  type BusObserver,
  type HistoryLimits,
  type HistoryPage,
  type HistoryQuery,
  type HistoryRecord,
  type QueuedDirect,
  type Store,
} from 'switchyard';
import { connect, start, tokenAuth, until, type Client, type Frame, type Running } from './helpers.js';

/** A MemoryBus whose node can stop hearing (down), hold back chosen messages, and be told of gaps. */
class GatedBus extends MemoryBus {
  observer: BusObserver | undefined;
  /** Incoming messages are dropped while true (the link is down). */
  down = false;
  /** Incoming messages this returns true for wait in `held` until release(). */
  holdIf: (message: BusMessage) => boolean = () => false;
  held: BusMessage[] = [];
  #handler: BusHandler = () => undefined;

  override async start(nodeId: string, handler: BusHandler, observer?: BusObserver): Promise<void> {
    this.observer = observer;
    this.#handler = handler;
    await super.start(nodeId, (message) => {
      if (this.down) return;
      if (this.holdIf(message)) this.held.push(message);
      else handler(message);
    });
  }

  release(): void {
    const held = this.held;
    this.held = [];
    this.holdIf = () => false;
    for (const message of held) this.#handler(message);
  }

  /** The link is lost, then back: what arrived meanwhile was dropped. */
  lose(): void {
    this.down = true;
    this.observer!.down!({ since: Date.now(), reason: 'test' });
  }

  back(): void {
    this.down = false;
    const now = Date.now();
    this.observer!.gap!({ since: now - 1, until: now, durationMs: 1, reason: 'test' });
  }
}

/** The shared MemoryStore, counting history reads (and failing them on demand). */
class SharedStore implements Store {
  readonly inner = new MemoryStore();
  reads = 0;
  failReads = false;
  /** Reads wait here while set, until releaseReads(). */
  holdReads = false;
  #heldReads: Array<() => void> = [];
  enqueueDirect(message: QueuedDirect): Promise<boolean> {
    return this.inner.enqueueDirect(message);
  }
  drainDirect(principalId: string): Promise<QueuedDirect[]> {
    return this.inner.drainDirect(principalId);
  }
  appendHistory(record: Omit<HistoryRecord, 'offset' | 'epoch'>, limits: HistoryLimits): HistoryRecord {
    return this.inner.appendHistory(record, limits);
  }
  async readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    this.reads++;
    if (this.failReads) throw new Error('store down');
    if (this.holdReads) await new Promise<void>((resolve) => this.#heldReads.push(resolve));
    return this.inner.readHistory(topic, query, limits);
  }
  get heldReads(): number {
    return this.#heldReads.length;
  }
  releaseReads(): void {
    this.holdReads = false;
    for (const resolve of this.#heldReads.splice(0)) resolve();
  }
  async close(): Promise<void> {}
}

type BrokerError = Error & { code?: string; context?: Record<string, unknown> };

interface Node {
  running: Running;
  bus: GatedBus;
  errors: BrokerError[];
}

let nodes: Node[] = [];
let clients: Client[] = [];
afterEach(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await Promise.all(nodes.map((n) => n.running.stop()));
  nodes = [];
  clients = [];
});

async function cluster(count: number, store: Store, extra: Partial<BrokerOptions> = {}): Promise<Node[]> {
  const hub = new MemoryHub();
  const registry = new MemoryRegistry();
  nodes = await Promise.all(
    Array.from({ length: count }, async () => {
      const bus = new GatedBus(hub);
      const running = await start({
        endpoints: [{ path: '/ws', protocol: envelope() }],
        authenticate: tokenAuth,
        bus,
        registry,
        store,
        history: { topics: ['ordered/#'], maxMessages: 10_000 },
        ...extra,
      });
      const errors: BrokerError[] = [];
      running.broker.on('error', (err) => errors.push(err));
      return { running, bus, errors };
    }),
  );
  return nodes;
}

async function client(node: Node, token: string): Promise<Client> {
  const c = await connect(node.running.url(`/ws?token=${encodeURIComponent(token)}`));
  clients.push(c);
  return c;
}

const broadcasts = (c: Client, topic: string): Frame[] => c.frames.filter((f) => f.type === 'Broadcast' && f.data.topic === topic);
const offsets = (c: Client, topic: string): number[] => broadcasts(c, topic).map((f) => f.data.metadata.offset as number);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function receivedAll(c: Client, topic: string, count: number): Promise<void> {
  await until(() => broadcasts(c, topic).length >= count, `${count} broadcasts on ${topic}`, 10_000);
  // A marker sent after everything proves nothing more (a duplicate) was on its way.
  await c.request('Ping', {});
}

describe('ordering across publishing nodes', () => {
  it('hands every subscriber on every node the same consecutive offsets while three nodes publish at once', async () => {
    const store = new SharedStore();
    const all = await cluster(3, store);
    const topic = 'ordered/room';
    const subscribers: Client[] = [];
    for (const [i, node] of all.entries()) {
      const exact = await client(node, `sub${i}`);
      await exact.request('Subscribe', { topics: [topic] });
      const wild = await client(node, `wild${i}`);
      await wild.request('Subscribe', { topics: ['ordered/#'] });
      subscribers.push(exact, wild);
    }
    const publishers = await Promise.all(all.map((node, i) => client(node, `pub${i}`)));
    const N = 60;
    // Host publishes on the three nodes in one turn, and clients' Broadcasts, all interleaved.
    const sent: Array<Promise<unknown>> = [];
    for (let i = 0; i < N; i++) {
      for (const [j, node] of all.entries()) {
        sent.push(node.running.broker.publish(topic, { node: j, i, by: 'host' }));
        sent.push(publishers[j]!.request('Broadcast', { topic, payload: { node: j, i, by: 'client' } }));
      }
    }
    await Promise.all(sent);
    const total = 2 * 3 * N;
    for (const s of subscribers) await receivedAll(s, topic, total);
    const first = broadcasts(subscribers[0]!, topic).map((f) => f.data.metadata.message_id);
    for (const s of subscribers) {
      expect(offsets(s, topic)).toEqual(range(1, total));
      expect(broadcasts(s, topic).map((f) => f.data.metadata.message_id)).toEqual(first);
    }
    for (const n of all) expect(n.errors).toEqual([]);
  });

  it('waits a bounded time for a message held up on the bus, reads it from the store, and drops the late copy', async () => {
    const store = new SharedStore();
    const [a, b, c] = await cluster(3, store, { history: { topics: ['ordered/#'], reorderWaitMs: 30 } });
    const topic = 'ordered/late';
    const sub = await client(c!, 'sub');
    await sub.request('Subscribe', { topics: [topic] });
    // Node a's messages to c are held on the bus; b's are not.
    c!.bus.holdIf = (m) => m.node === a!.running.broker.nodeId && m.kind === 'publish';
    await a!.running.broker.publish(topic, 'from a');
    await b!.running.broker.publish(topic, 'from b 1');
    await b!.running.broker.publish(topic, 'from b 2');
    await receivedAll(sub, topic, 3);
    expect(broadcasts(sub, topic).map((f) => [f.data.metadata.offset, f.data.payload])).toEqual([
      [1, 'from a'],
      [2, 'from b 1'],
      [3, 'from b 2'],
    ]);
    expect(c!.bus.held).toHaveLength(1);
    c!.bus.release();
    await b!.running.broker.publish(topic, 'from b 3');
    await receivedAll(sub, topic, 4);
    expect(offsets(sub, topic)).toEqual([1, 2, 3, 4]);
    expect(c!.errors).toEqual([]);
  });

  it('never reads the store to order what one node publishes alone (its offsets come consecutively)', async () => {
    const store = new SharedStore();
    const [a, b] = await cluster(2, store);
    const topic = 'ordered/solo';
    const subs = [await client(a!, 'x'), await client(b!, 'y')];
    for (const s of subs) await s.request('Subscribe', { topics: [topic] });
    const anchors = store.reads; // each node read where the topic stands when its first subscriber came
    expect(anchors).toBe(2);
    const pub = await client(a!, 'pub');
    for (let i = 0; i < 50; i++) void pub.request('Broadcast', { topic, payload: i });
    for (const s of subs) await receivedAll(s, topic, 50);
    for (const s of subs) expect(offsets(s, topic)).toEqual(range(1, 50));
    expect(store.reads).toBe(anchors);
  });

  it('recovers a subscriber while three nodes publish: no duplicate and no hole at the seam', async () => {
    const store = new SharedStore();
    const all = await cluster(3, store);
    const topic = 'ordered/recover';
    for (let i = 0; i < 10; i++) await all[i % 3]!.running.broker.publish(topic, i);
    const page = await all[0]!.running.broker.history(topic);
    const pubs = await Promise.all(all.map((n, i) => client(n, `p${i}`)));
    let stop = false;
    const pumping = pubs.map(async (p, i) => {
      for (let k = 0; !stop; k++) await p.request('Broadcast', { topic, payload: { i, k } });
    });
    const late = await client(all[1]!, 'late');
    const ack = await late.request('Subscribe', { topics: [topic], recover: { [topic]: { offset: 4, epoch: page.epoch } } });
    expect(ack.type).toBe('Ack');
    await until(() => broadcasts(late, topic).length >= 40, 'live messages after the replay');
    stop = true;
    await Promise.all(pumping);
    const latest = (await all[0]!.running.broker.history(topic, { limit: 1 })).latestOffset;
    await receivedAll(late, topic, latest - 4);
    expect(offsets(late, topic)).toEqual(range(5, latest));
  });
});

describe('at the bounds', () => {
  it('with too many waiting while a read is out, delivers them in order, skips the hole and reports it', async () => {
    const store = new SharedStore();
    const [a, b, c] = await cluster(3, store, { history: { topics: ['ordered/#'], reorderMaxBuffered: 3, reorderWaitMs: 60_000 } });
    const topic = 'ordered/full';
    const sub = await client(c!, 'sub');
    await sub.request('Subscribe', { topics: [topic] });
    c!.bus.holdIf = (m) => m.node === a!.running.broker.nodeId && m.kind === 'publish';
    store.holdReads = true;
    await a!.running.broker.publish(topic, 1);
    for (let i = 2; i <= 4; i++) await b!.running.broker.publish(topic, i);
    // Three waiting: the store is read at once, without waiting reorderWaitMs (a minute here).
    await until(() => store.heldReads === 1, 'the read of the missing offset');
    await b!.running.broker.publish(topic, 5);
    await receivedAll(sub, topic, 4);
    expect(offsets(sub, topic)).toEqual([2, 3, 4, 5]);
    expect(c!.errors.map((e) => [e.code, e.context])).toEqual([
      ['SY_ERR_BUS_GAP', { during: 'ordering', topic, epoch: expect.any(String), lost: { from: 1, to: 1 }, reason: '3 messages waiting while the store was read' }],
    ]);
    // The read's answer and the late copy come after: both are duplicates now.
    store.releaseReads();
    c!.bus.release();
    await b!.running.broker.publish(topic, 6);
    await receivedAll(sub, topic, 5);
    expect(offsets(sub, topic)).toEqual([2, 3, 4, 5, 6]);
  });

  it('reports what the store no longer keeps after a gap and delivers what it keeps, in order', async () => {
    const store = new SharedStore();
    const [a, c] = await cluster(2, store, { history: { topics: ['ordered/#'], maxMessages: 3 } });
    const topic = 'ordered/trimmed';
    const sub = await client(c!, 'sub');
    await sub.request('Subscribe', { topics: [topic] });
    await a!.running.broker.publish(topic, 1);
    await receivedAll(sub, topic, 1);
    c!.bus.lose();
    for (let i = 2; i <= 7; i++) await a!.running.broker.publish(topic, i);
    c!.bus.back();
    await receivedAll(sub, topic, 4);
    expect(broadcasts(sub, topic).map((f) => f.data.payload)).toEqual([1, 5, 6, 7]);
    expect(offsets(sub, topic)).toEqual([1, 5, 6, 7]);
    expect(c!.errors.filter((e) => e.context?.during === 'ordering').map((e) => e.context)).toEqual([
      { during: 'ordering', topic, epoch: expect.any(String), lost: { from: 2, to: 4 }, reason: 'no longer kept by the store' },
    ]);
  });

  it('orders only topics with subscribers here, forgets one once the last leaves, and past the cap delivers new ones as they come', async () => {
    const store = new SharedStore();
    const [a, b] = await cluster(2, store, { history: { topics: ['ordered/#'], reorderMaxTopics: 2 } });
    const stats = () => b!.running.broker.stats().orderedTopics;
    await a!.running.broker.publish('ordered/nobody', 0);
    const sub = await client(b!, 'sub');
    await sub.request('Subscribe', { topics: ['ordered/1', 'ordered/2'] });
    expect(stats()).toBe(2);
    await sub.request('Subscribe', { topics: ['ordered/3'] });
    expect(stats()).toBe(2);
    expect(b!.errors.map((e) => [e.code, e.context])).toEqual([['SY_ERR_BACKEND', { during: 'ordering', topic: 'ordered/3' }]]);
    await a!.running.broker.publish('ordered/3', 'unordered but delivered');
    await receivedAll(sub, 'ordered/3', 1);
    await sub.request('Unsubscribe', { topics: ['ordered/1', 'ordered/2', 'ordered/3'] });
    await until(() => stats() === 0, 'the topics to be forgotten', 10_000);
  });
});

describe('a bus gap', () => {
  it('delivers the history a node missed from the store, in order, before live messages; other topics are lost and said so', async () => {
    const store = new SharedStore();
    const [a, b, c] = await cluster(3, store);
    const topic = 'ordered/gap';
    const sub = await client(c!, 'sub');
    await sub.request('Subscribe', { topics: [topic, 'plain/gap'] });
    const local = await client(c!, 'local');
    await a!.running.broker.publish(topic, 'before');
    await receivedAll(sub, topic, 1);

    c!.bus.lose();
    await a!.running.broker.publish(topic, 'missed 1');
    await b!.running.broker.publish(topic, 'missed 2');
    await a!.running.broker.publish('plain/gap', 'lost');
    // Local traffic goes on meanwhile.
    await local.request('Broadcast', { topic: 'plain/gap', payload: 'local while down' });
    await receivedAll(sub, 'plain/gap', 1);
    // Node c has not heard of offsets 2 and 3.
    expect(offsets(sub, topic)).toEqual([1]);

    c!.bus.back();
    await receivedAll(sub, topic, 3);
    await b!.running.broker.publish(topic, 'live');
    await receivedAll(sub, topic, 4);
    expect(broadcasts(sub, topic).map((f) => [f.data.metadata.offset, f.data.payload])).toEqual([
      [1, 'before'],
      [2, 'missed 1'],
      [3, 'missed 2'],
      [4, 'live'],
    ]);
    expect(broadcasts(sub, 'plain/gap').map((f) => f.data.payload)).toEqual(['local while down']);
    const reports = c!.errors.map((e) => [e.code, e.context?.bus]);
    expect(reports).toEqual([
      ['SY_ERR_BUS_GAP', 'down'],
      ['SY_ERR_BUS_GAP', 'gap'],
    ]);
    expect(c!.errors[1]!.message).toMatch(/not received.*history topics are caught up/);
  });

  it('reports a store that fails during the catch-up and carries on', async () => {
    const store = new SharedStore();
    const [a, c] = await cluster(2, store);
    const topic = 'ordered/fail';
    const sub = await client(c!, 'sub');
    await sub.request('Subscribe', { topics: [topic] });
    c!.bus.lose();
    await a!.running.broker.publish(topic, 'missed');
    store.failReads = true;
    c!.bus.back();
    await until(() => c!.errors.some((e) => e.context?.during === 'ordering'), 'the failed catch-up to be reported');
    expect(c!.errors.find((e) => e.context?.during === 'ordering')).toMatchObject({ code: 'SY_ERR_STORE_UNAVAILABLE', context: { topic } });
    // The store is back: the next message shows the hole, which is then read.
    store.failReads = false;
    await a!.running.broker.publish(topic, 'live');
    await receivedAll(sub, topic, 2);
    expect(broadcasts(sub, topic).map((f) => [f.data.metadata.offset, f.data.payload])).toEqual([
      [1, 'missed'],
      [2, 'live'],
    ]);
    expect((await sub.request('Ping', {})).type).toBe('Ack');
  });
});
