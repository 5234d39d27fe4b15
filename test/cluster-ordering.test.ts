/**
 * Ordered delivery of history topics across real broker processes (test/fixtures/cluster-node.ts):
 * RedisStore numbers the messages (the shared Redis, a key prefix of this run's own), RedisBus or
 * NatsBus carries them. Three nodes publishing to one topic at once hand every subscriber the same
 * consecutive offsets; a bus server of the test's own, killed and started again mid-stream, leaves
 * a gap that history topics catch up from the store, in order, before live messages.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { connect, type Client, type Frame } from './helpers.js';
import { NodeProcess } from './cluster/nodes.js';
import { OwnServer, until } from './cluster/procs.js';
import { REDIS_URL, serviceUp } from './cluster/services.js';

const RUN = randomUUID();
const prefixes: string[] = [];
let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
}, 30_000);
afterAll(async () => {
  if (prefixes.length === 0) return;
  const admin = new Redis(REDIS_URL);
  for (const prefix of prefixes) {
    const keys: string[] = [];
    for await (const batch of admin.scanStream({ match: `${prefix}*`, count: 500 })) keys.push(...(batch as string[]));
    if (keys.length > 0) await admin.del(...keys);
  }
  await admin.quit();
});

/** A RedisStore key prefix of this test's own on the shared Redis. */
function storePrefix(): string {
  const prefix = `sy-ordering:${RUN}:${prefixes.length}:`;
  prefixes.push(prefix);
  return prefix;
}

async function startNodes(env: Record<string, string>): Promise<NodeProcess[]> {
  // Every node's store has the same prefix: one history.
  const shared = { SY_HISTORY: 'ordered/#', SY_STORE_PREFIX: storePrefix(), ...env };
  const nodes = await Promise.all([0, 1, 2].map(() => NodeProcess.start(shared)));
  for (const n of nodes) cleanup.push(() => n.kill('SIGTERM'));
  return nodes;
}

async function client(node: NodeProcess, token: string): Promise<Client> {
  const c = await connect(node.url(token));
  cleanup.push(() => c.close());
  return c;
}

const broadcasts = (c: Client, topic: string): Frame[] => c.frames.filter((f) => f.type === 'Broadcast' && f.data.topic === topic);
const offsets = (c: Client, topic: string): number[] => broadcasts(c, topic).map((f) => f.data.metadata.offset as number);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

async function receivedAll(c: Client, topic: string, count: number): Promise<void> {
  await until(() => broadcasts(c, topic).length >= count, `${count} broadcasts on ${topic}`, 30_000);
  await c.request('Ping', {}); // anything more (a duplicate) already on its way would have come first
}

describe('three processes publishing to one history topic', async () => {
  const up = await serviceUp('Redis', 6379);

  it.runIf(up)('Redis: every subscriber on every node receives the same consecutive offsets', async () => {
    const nodes = await startNodes({ SY_BUS: 'redis', SY_CHANNEL: `sy-ordering:${randomUUID()}` });
    const topic = 'ordered/room';
    const subs: Client[] = [];
    for (const [i, n] of nodes.entries()) {
      const exact = await client(n, `sub${i}`);
      await exact.request('Subscribe', { topics: [topic] });
      const wild = await client(n, `wild${i}`);
      await wild.request('Subscribe', { topics: ['ordered/#'] });
      subs.push(exact, wild);
    }
    const pubs = await Promise.all(nodes.map((n, i) => client(n, `pub${i}`)));
    const N = 150;
    const acks: Array<Promise<Frame>> = [];
    for (let i = 0; i < N; i++) for (const [j, p] of pubs.entries()) acks.push(p.request('Broadcast', { topic, payload: { j, i } }));
    for (const ack of await Promise.all(acks)) expect(ack.type).toBe('Ack');
    for (const s of subs) await receivedAll(s, topic, 3 * N);
    const sequence = broadcasts(subs[0]!, topic).map((f) => f.data.metadata.message_id);
    for (const s of subs) {
      expect(offsets(s, topic)).toEqual(range(1, 3 * N));
      expect(broadcasts(s, topic).map((f) => f.data.metadata.message_id)).toEqual(sequence);
    }
    for (const n of nodes) expect(n.errors()).toEqual([]);
  }, 120_000);
});

/**
 * The bus server is killed while node 3 publishes: node 1's subscriber receives what it missed on
 * the history topic from the store, in order, once the bus is back (nothing else published), then
 * live messages; the plain topic's message is lost, and the gap reported.
 */
async function gapCatchUp(server: OwnServer, env: Record<string, string>): Promise<void> {
  await server.start();
  cleanup.push(() => server.kill());
  const nodes = await startNodes({ ...env, SY_PROBE_MS: '500' });
  const [n1, , n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  const topic = 'ordered/gap';
  const bob = await client(n1, 'bob');
  await bob.request('Subscribe', { topics: [topic, 'plain/gap'] });
  const local = await client(n1, 'carol');
  const alice = await client(n3, 'alice');
  await alice.request('Broadcast', { topic, payload: 'before' });
  await receivedAll(bob, topic, 1);

  await server.kill();
  const missed = 5;
  for (let i = 1; i <= missed; i++) expect((await alice.request('Broadcast', { topic, payload: `missed ${i}` })).type).toBe('Ack');
  await alice.request('Broadcast', { topic: 'plain/gap', payload: 'lost' });
  // Local traffic goes on while the bus is away.
  await local.request('Broadcast', { topic: 'plain/gap', payload: 'local while down' });
  await receivedAll(bob, 'plain/gap', 1);

  await server.start();
  await until(() => nodes.every((n) => n.errors('SY_ERR_BUS_GAP').some((e) => (e.context as { bus?: string }).bus === 'gap')), 'every node to report the gap', 30_000);
  // Caught up from the store, with nothing published since.
  await receivedAll(bob, topic, 1 + missed);
  // Then live: publish until one arrives (the publishing node may still be reconnecting).
  let n = 0;
  await until(async () => {
    if (broadcasts(bob, 'plain/gap').some((f) => f.data.payload === 'after')) return true;
    await alice.request('Broadcast', { topic: 'plain/gap', payload: 'after' });
    n++;
    return false;
  }, 'plain/gap to flow again', 30_000);
  expect((await alice.request('Broadcast', { topic, payload: 'live' })).type).toBe('Ack');
  await until(() => broadcasts(bob, topic).some((f) => f.data.payload === 'live'), 'the live message');
  await bob.request('Ping', {});
  const payloads = broadcasts(bob, topic).map((f) => f.data.payload);
  expect(payloads).toEqual(['before', ...range(1, missed).map((i) => `missed ${i}`), 'live']);
  expect(offsets(bob, topic)).toEqual(range(1, missed + 2));
  // The plain topic's message published meanwhile is lost (and the gap was reported).
  expect(broadcasts(bob, 'plain/gap').map((f) => f.data.payload)).not.toContain('lost');
  const gap = n1.errors('SY_ERR_BUS_GAP').find((e) => (e.context as { bus?: string }).bus === 'gap')!;
  expect(gap.message).toMatch(/not received/);
  expect(n).toBeGreaterThan(0);
  for (const node of nodes) expect(await Promise.race([node.exited, Promise.resolve('running')])).toBe('running');
}

describe('a bus server restarted mid-stream, the store still up', async () => {
  const up = await serviceUp('Redis', 6379);

  it.runIf(up)('Redis bus: history topics catch up from the store in order before live messages', async () => {
    const server = await OwnServer.redis();
    await gapCatchUp(server, { SY_BUS: 'redis', SY_BUS_URL: `redis://127.0.0.1:${server.port}`, SY_CHANNEL: `sy-ordering:${randomUUID()}` });
  }, 120_000);

  it.runIf(up)('NATS bus: history topics catch up from the store in order before live messages', async () => {
    const server = await OwnServer.nats();
    await gapCatchUp(server, { SY_BUS: 'nats', SY_BUS_URL: `127.0.0.1:${server.port}`, SY_CHANNEL: `sy-ordering.${randomUUID()}` });
  }, 120_000);
});
