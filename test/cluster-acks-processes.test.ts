/**
 * Cluster-wide acks with three broker processes (test/fixtures/cluster-node.ts) on the shared
 * Redis and on the shared nats-server (a channel / subject of this run's own): recipients summed
 * across nodes; a node stopped with SIGSTOP, or killed, is named in the Ack once the timeout has
 * passed and the Ack still comes; without the option no count crosses the bus.
 */
import { randomUUID } from 'node:crypto';
import { connect as natsConnect } from 'nats';
import { Redis } from 'ioredis';
import { afterAll, describe, expect, it } from 'vitest';
import { connect, type Client } from './helpers.js';
import { NodeProcess } from './cluster/nodes.js';
import { until } from './cluster/procs.js';
import { NATS_SERVERS, REDIS_URL, serviceUp } from './cluster/services.js';

const clients: Client[] = [];
const started: NodeProcess[] = [];
afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  for (const n of started) n.signal('SIGCONT');
  await Promise.all(started.map((n) => n.kill('SIGKILL')));
}, 30_000);

async function client(node: NodeProcess, token: string, topics: string[] = []): Promise<Client> {
  const c = await connect(node.url(token));
  clients.push(c);
  if (topics.length > 0) await c.request('Subscribe', { topics });
  return c;
}

async function threeNodes(env: Record<string, string>): Promise<[NodeProcess, NodeProcess, NodeProcess]> {
  const nodes = await Promise.all([0, 1, 2].map(() => NodeProcess.start(env)));
  started.push(...nodes);
  return nodes as [NodeProcess, NodeProcess, NodeProcess];
}

/** Every frame on the cluster's channel or subject, as a raw subscriber sees it. */
type Tap = { frames: string[]; close: () => Promise<void> };

interface Bus {
  name: string;
  port: number;
  env: () => Record<string, string>;
  tap: (env: Record<string, string>) => Promise<Tap>;
}

const buses: Bus[] = [
  {
    name: 'Redis',
    port: 6379,
    env: () => ({ SY_BUS: 'redis', SY_CHANNEL: `sy-acks:${randomUUID()}` }),
    tap: async (env) => {
      const redis = new Redis(REDIS_URL);
      const frames: string[] = [];
      redis.on('message', (_channel: string, frame: string) => frames.push(frame));
      await redis.subscribe(env.SY_CHANNEL!);
      return { frames, close: async () => void redis.disconnect() };
    },
  },
  {
    name: 'NATS',
    port: 4222,
    env: () => ({ SY_BUS: 'nats', SY_CHANNEL: `sy-acks.${randomUUID()}` }),
    tap: async (env) => {
      const nc = await natsConnect({ servers: NATS_SERVERS });
      const frames: string[] = [];
      nc.subscribe(env.SY_CHANNEL!, { callback: (_err, msg) => frames.push(msg.string()) });
      await nc.flush();
      return { frames, close: () => nc.close() };
    },
  },
];

for (const bus of buses) {
  describe(`cluster-wide acks, three processes on ${bus.name}`, async () => {
    if (!(await serviceUp(bus.name, bus.port))) return;

    it('sums recipients across nodes; names a SIGSTOPped node, then a killed one, after the timeout', async () => {
      // Hellos every second: a node unseen for 3 s is gone; acks wait 1.5 s at most.
      const [n1, n2, n3] = await threeNodes({ ...bus.env(), SY_ACKS_MS: '1500', SY_HELLO_MS: '1000' });
      await client(n1, 'a1', ['acks/#']);
      await client(n1, 'a2', ['acks/x']);
      await client(n2, 'b1', ['acks/+']);
      for (const id of ['c1', 'c2', 'c3']) await client(n3, id, ['acks/x']);
      const pub = await client(n1, 'pub');
      const full = { status: 'delivered', recipients: 6 };
      // Until every node has heard of every other (they start within a second of each other).
      await until(async () => {
        const ack = await pub.request('Broadcast', { topic: 'acks/x', payload: 'warm' });
        return ack.data.recipients === 6 && ack.data.partial === undefined;
      }, 'a complete count', 30_000);
      expect((await pub.request('Broadcast', { topic: 'acks/x', payload: 1 })).data).toEqual({ message_id: expect.any(String), ...full });
      // The host's publish on another node (which also asks) counts the same connections.
      expect(await n3.command({ cmd: 'publish', topic: 'acks/x', payload: 2 })).toEqual({ messageId: expect.any(String), recipients: 6 });

      n2.signal('SIGSTOP');
      const stopped = await pub.request('Broadcast', { topic: 'acks/x', payload: 3 });
      expect(stopped.data).toEqual({ message_id: expect.any(String), status: 'delivered', recipients: 5, partial: true, missing_nodes: [n2.nodeId] });
      n2.signal('SIGCONT');
      // Back: it answers again (and nothing it answered late reached the publisher as a second Ack).
      await until(async () => (await pub.request('Broadcast', { topic: 'acks/x', payload: 'again' })).data.recipients === 6, 'n2 to answer again', 30_000);
      const acks = pub.frames.filter((f) => f.type === 'Ack').map((f) => f.data.message_id);
      expect(new Set(acks).size).toBe(acks.length);

      await n3.kill('SIGKILL');
      const killed = await pub.request('Broadcast', { topic: 'acks/x', payload: 4 });
      expect(killed.data).toEqual({ message_id: expect.any(String), status: 'delivered', recipients: 3, partial: true, missing_nodes: [n3.nodeId] });
      // Unseen for 3 hello intervals, it is gone: acks are complete again without it.
      await until(async () => (await pub.request('Broadcast', { topic: 'acks/x', payload: 'after' })).data.partial === undefined, 'n3 to be gone', 30_000);
      expect(n1.errors()).toEqual([]);
    }, 120_000);

    it('sends no count and no ack request over the bus when the option is off', async () => {
      const env = bus.env();
      const tap = await bus.tap(env);
      try {
        const [n1, n2] = await threeNodes(env);
        const sub = await client(n2, 'sub', ['quiet/#']);
        const pub = await client(n1, 'pub');
        for (let i = 0; i < 5; i++) expect((await pub.request('Broadcast', { topic: 'quiet/x', payload: i })).data).toMatchObject({ recipients: 0 });
        await until(() => sub.frames.filter((f) => f.type === 'Broadcast').length === 5, 'the broadcasts on node 2');
        await n1.command({ cmd: 'publish', topic: 'quiet/x', payload: 'host' });
        await until(() => tap.frames.filter((f) => f.includes('"topic":"quiet/x"')).length === 6, 'the publishes on the bus');
        expect(tap.frames.filter((f) => f.includes('"kind":"recipients"') || f.includes('"ack":'))).toEqual([]);
        // One hello per node start, nothing periodic.
        expect(tap.frames.filter((f) => f.includes('"kind":"hello"'))).toHaveLength(3);
      } finally {
        await tap.close();
      }
    }, 120_000);
  });
}
