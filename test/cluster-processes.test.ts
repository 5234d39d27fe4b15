/**
 * Three broker nodes as separate processes (test/fixtures/cluster-node.ts), real clients on
 * different nodes: what a client or the host does on one node reaches connections on the others,
 * over the shared Redis (a channel of this run's own) and the shared nats-server (a subject of its
 * own), the same tests on each bus; a node killed with SIGKILL leaves the others serving. A bus
 * server restarted mid-stream: cluster-restart.test.ts.
 */
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connect, type Client } from './helpers.js';
import { NodeProcess } from './cluster/nodes.js';
import { until } from './cluster/procs.js';
import { serviceUp } from './cluster/services.js';

/** Three nodes on one bus; stopped after the file. */
function threeNodes(env: () => Record<string, string>): () => NodeProcess[] {
  let nodes: NodeProcess[] = [];
  beforeAll(async () => {
    const shared = env();
    nodes = await Promise.all([0, 1, 2].map(() => NodeProcess.start(shared)));
  }, 120_000);
  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.kill('SIGTERM')));
  }, 30_000);
  return () => nodes;
}

const clients: Client[] = [];
async function client(node: NodeProcess, token: string): Promise<Client> {
  const c = await connect(node.url(token));
  clients.push(c);
  return c;
}
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
});

/** Publishes from `from` and checks `to` receives exactly `expected` of the topics, in order. */
async function crossNodePubSub(nodes: NodeProcess[], tag: string): Promise<void> {
  const [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  const bob = await client(n1, 'bob');
  await bob.request('Subscribe', { topics: [`${tag}/chat/#`, `${tag}/sensors/+/temp`] });
  const carol = await client(n2, 'carol');
  await carol.request('Subscribe', { topics: [`${tag}/chat/room1`] });
  const alice = await client(n3, 'alice');
  for (const topic of ['chat/room1', 'sensors/a/humidity', 'sensors/a/temp', 'chat']) {
    expect((await alice.request('Broadcast', { topic: `${tag}/${topic}`, payload: { topic } })).type).toBe('Ack');
  }
  // Per-publisher order: once `chat` arrived, `sensors/a/humidity` (sent before it) would have too.
  const got = [];
  for (let i = 0; i < 3; i++) got.push((await bob.nextOf('Broadcast')).data.topic);
  expect(got).toEqual([`${tag}/chat/room1`, `${tag}/sensors/a/temp`, `${tag}/chat`]);
  expect((await carol.nextOf('Broadcast')).data).toMatchObject({ topic: `${tag}/chat/room1`, payload: { topic: 'chat/room1' } });
  // The publisher's own node delivers locally, once: alice is not subscribed, so nothing comes back to her.
  expect(alice.frames.filter((f) => f.type === 'Broadcast')).toEqual([]);
}

/** The same tests on each bus: what a client or the host does on one node reaches the others. */
function onBus(name: string, port: number, env: () => Record<string, string>, tag: string): void {
  describe(`three nodes on ${name}`, async () => {
    if (!(await serviceUp(name, port))) return;
    const nodes = threeNodes(env);

    it('carries publishes and wildcard subscriptions across nodes', async () => {
      await crossNodePubSub(nodes(), tag);
    });

    it('delivers direct messages, notifications and host publishes to a principal on another node', async () => {
      const [n1, n2, n3] = nodes() as [NodeProcess, NodeProcess, NodeProcess];
      const dave = await client(n1, 'dave');
      await dave.request('Subscribe', { topics: ['news/#'] });
      const erin = await client(n2, 'erin');
      await erin.request('DirectMessage', { target_user: 'dave', payload: { hi: 'dave' } });
      expect((await dave.nextOf('DirectMessage')).data).toMatchObject({ from_user: 'erin', payload: { hi: 'dave' } });
      await n3.command({ cmd: 'sendTo', principal: 'dave', payload: { from: 'host' } });
      expect((await dave.nextOf('DirectMessage')).data).toMatchObject({ from_user: null, payload: { from: 'host' } });
      await n3.command({ cmd: 'notify', target: { principal: 'dave' }, data: { level: 'info' } });
      expect((await dave.nextOf('Notification')).data).toEqual({ level: 'info' });
      await n2.command({ cmd: 'publish', topic: 'news/today', payload: 'from the host on node 2' });
      expect((await dave.nextOf('Broadcast')).data).toMatchObject({ topic: 'news/today', payload: 'from the host on node 2' });
    });

    it('carries binary broadcasts across nodes unchanged', async () => {
      const [n1, , n3] = nodes() as [NodeProcess, NodeProcess, NodeProcess];
      const sub = await client(n1, 'bin-sub');
      await sub.request('Subscribe', { topics: [`${tag}/bin`] });
      const pub = await client(n3, 'bin-pub');
      const data = Buffer.from([0, 1, 2, 0xff, 0xfe, 0x80, 10, 13]);
      const name = Buffer.from(`${tag}/bin`);
      const frame = Buffer.alloc(7 + name.length + data.length);
      frame[0] = 0x01;
      frame.writeUInt32BE(2 + name.length + data.length, 1);
      frame.writeUInt16BE(name.length, 5);
      name.copy(frame, 7);
      data.copy(frame, 7 + name.length);
      pub.ws.send(frame);
      expect((await pub.nextOf('Status')).data).toMatchObject({ status: 'binary_received' });
      // Subscribers receive binary broadcasts in the same format (DESIGN.md, "Binary frames").
      await until(() => sub.binary.length === 1, 'the binary broadcast on another node');
      expect(sub.binary[0]).toEqual(frame);
    });

    it('closes a revoked principal on another node with 4002', async () => {
      const [n1, , n3] = nodes() as [NodeProcess, NodeProcess, NodeProcess];
      const frank = await client(n1, 'frank');
      const other = await client(n1, 'grace');
      await n3.command({ cmd: 'revoke', principal: 'frank' });
      expect(await frank.closed).toMatchObject({ code: 4002 });
      expect((await other.request('Ping', {})).type).toBe('Ack');
    });

    it('keeps serving on the other nodes when one is killed with SIGKILL', async () => {
      const [n1, n2, n3] = nodes() as [NodeProcess, NodeProcess, NodeProcess];
      const onTwo = await client(n2, 'heidi');
      expect(await n2.kill('SIGKILL')).toBe(null);
      expect((await onTwo.closed).code).toBe(1006);
      const ivan = await client(n1, 'ivan');
      await ivan.request('Subscribe', { topics: ['after/kill'] });
      const judy = await client(n3, 'judy');
      await judy.request('Broadcast', { topic: 'after/kill', payload: 1 });
      expect((await ivan.nextOf('Broadcast')).data.payload).toBe(1);
      expect(n1.errors()).toEqual([]);
      expect(n3.errors()).toEqual([]);
    });
  });
}

onBus('Redis', 6379, () => ({ SY_BUS: 'redis', SY_CHANNEL: `sy-cluster:${randomUUID()}` }), 'w');
onBus('NATS', 4222, () => ({ SY_BUS: 'nats', SY_CHANNEL: `sy-cluster.${randomUUID()}` }), 'n');
