/**
 * The cluster registry with real processes: three broker nodes (test/fixtures/cluster-node.ts)
 * on one Redis with RedisBus, RedisRegistry and RedisStore under a key prefix of this run's own.
 * Connection limits and exclusive identity hold across nodes, presence changes are announced
 * once for the cluster, direct messages find their principal on any node (and are queued once
 * when it is on none), a revoked token is refused by a node started after the revocation, and a
 * node killed with SIGKILL stops counting, its principals announced offline by the others.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client, connect, type Frame } from './helpers.js';
import { NodeProcess } from './cluster/nodes.js';
import { until } from './cluster/procs.js';
import { REDIS_URL, serviceUp } from './cluster/services.js';

/** Heartbeat and ttl of the nodes: a dead node's principals go offline within ttl + heartbeat (README). */
const HEARTBEAT_MS = 500;
const TTL_MS = 3000;

const clients: Client[] = [];
async function client(node: NodeProcess, token: string): Promise<Client> {
  const c = await connect(node.url(token));
  clients.push(c);
  return c;
}
/** A connection the node refuses after the 101: resolves its close code. */
async function refused(node: NodeProcess, token: string): Promise<number> {
  const c = new Client(node.url(token));
  clients.push(c);
  return (await c.closed).code;
}
const presenceOf = (watcher: Client, id: string): Array<Frame['data']> =>
  watcher.frames.filter((f) => f.type === 'Presence' && f.data.user_id === id).map((f) => f.data);

describe('three nodes on one Redis registry', async () => {
  if (!(await serviceUp('Redis', 6379))) return;
  const prefix = `sy-test:cluster-registry:${randomUUID()}:`;
  const env = {
    SY_BUS: 'redis',
    SY_CHANNEL: `${prefix}bus`,
    SY_REGISTRY: 'redis',
    SY_STORE_PREFIX: prefix,
    SY_KEY_PREFIX: prefix,
    SY_HEARTBEAT_MS: String(HEARTBEAT_MS),
    SY_TTL_MS: String(TTL_MS),
  };
  let nodes: NodeProcess[] = [];
  const extra: NodeProcess[] = [];
  let n1: NodeProcess, n2: NodeProcess, n3: NodeProcess;

  beforeAll(async () => {
    nodes = await Promise.all([0, 1, 2].map(() => NodeProcess.start(env)));
    [n1, n2, n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  }, 120_000);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
    await Promise.all([...nodes, ...extra].map((n) => n.kill('SIGTERM')));
    // Only this run's keys: SCAN by prefix, never FLUSH.
    const admin = new Redis(REDIS_URL);
    for await (const keys of admin.scanStream({ match: `${prefix}*`, count: 500 })) {
      if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
    }
    await admin.quit();
  }, 30_000);

  /**
   * Waits until every Presence frame the given nodes sent `watcher` before now has arrived: each
   * node publishes a marker after it, and a node's cluster messages keep their order on the bus.
   */
  async function settle(watcher: Client, from: NodeProcess[]): Promise<void> {
    const topic = `marks/${randomUUID()}`;
    await watcher.request('Subscribe', { topics: [topic] });
    for (const node of from) await node.command({ cmd: 'publish', topic, payload: node.port });
    await until(() => watcher.frames.filter((f) => f.type === 'Broadcast' && f.data.topic === topic).length === from.length, 'the markers');
  }

  it('holds maxConnections across nodes (4004), and frees the slot when a connection closes', async () => {
    const token = `max-${randomUUID()}:#|max=2`;
    const one = await client(n1, token);
    await client(n2, token);
    expect(await refused(n3, token)).toBe(4004);
    expect(await refused(n1, token)).toBe(4004);
    await one.close();
    await client(n3, token);
    expect(await refused(n2, token)).toBe(4004);
  });

  it('holds exclusive identity across nodes (4009)', async () => {
    const token = `device-${randomUUID()}:#|exclusive`;
    const first = await client(n1, token);
    expect(await refused(n2, token)).toBe(4009);
    expect(await refused(n3, token)).toBe(4009);
    await first.close();
    await client(n3, token);
  });

  it('never admits past the limit when the connections race on every node at once', async () => {
    const token = `race-${randomUUID()}:#|max=3`;
    const attempts = Array.from({ length: 12 }, (_, i) => {
      const c = new Client(nodes[i % 3]!.url(token));
      clients.push(c);
      return c.nextOf('Status', (f) => f.data.status === 'connected').then(
        () => 'open' as const,
        () => c.closed.then(({ code }) => code),
      );
    });
    const outcomes = await Promise.all(attempts);
    expect(outcomes.filter((o) => o === 'open')).toHaveLength(3);
    expect(outcomes.filter((o) => o === 4004)).toHaveLength(9);
  });

  it('announces a principal online once and offline once for the cluster, and answers presence on every node', async () => {
    const id = `pat-${randomUUID()}`;
    const watcher = await client(n1, `watcher:$presence/#=r,marks/#`);
    await watcher.request('Subscribe', { topics: [`$presence/${id}`] });
    const onTwo = await client(n2, id);
    const onThree = await client(n3, id);
    await watcher.nextOf('Presence', (f) => f.data.user_id === id && f.data.status === 'online');
    for (const node of nodes) expect(await node.command({ cmd: 'presence', principal: id })).toMatchObject({ user_id: id, status: 'online' });
    await onTwo.close();
    await onThree.close();
    const offline = await watcher.nextOf('Presence', (f) => f.data.user_id === id && f.data.status === 'offline');
    await settle(watcher, nodes);
    expect(presenceOf(watcher, id).map((p) => p.status)).toEqual(['online', 'offline']);
    // n1 never held a connection of it, and still knows when it was last seen.
    expect(await n1.command({ cmd: 'presence', principal: id })).toMatchObject({ status: 'offline', last_seen: offline.data.last_seen });
  });

  it("lists a direct message's connections on every node in delivered_to, and queues it once when the principal is on none", async () => {
    const bob = `bob-${randomUUID()}`;
    const onTwo = await client(n2, bob);
    const onThree = await client(n3, bob);
    const ids = [...((await n2.command({ cmd: 'connectionIds', principal: bob })) as string[]), ...((await n3.command({ cmd: 'connectionIds', principal: bob })) as string[])];
    expect(ids).toHaveLength(2);
    const alice = await client(n1, `alice-${randomUUID()}`);
    const ack = await alice.request('DirectMessage', { target_user: bob, payload: { n: 1 } });
    expect(ack.type).toBe('Ack');
    expect([...ack.data.delivered_to].sort()).toEqual([...ids].sort());
    expect((await onTwo.nextOf('DirectMessage')).data.payload).toEqual({ n: 1 });
    expect((await onThree.nextOf('DirectMessage')).data.payload).toEqual({ n: 1 });

    const zoe = `zoe-${randomUUID()}`;
    const queued = await alice.request('DirectMessage', { target_user: zoe, payload: { n: 2 } });
    expect(queued.data).toMatchObject({ code: 404, details: { queued: true } });
    expect(await n2.command({ cmd: 'sendTo', principal: zoe, payload: { n: 3 } })).toMatchObject({ deliveredTo: [], queued: true });
    // Queued once, in the shared store: the first connection, on any node, gets each message once.
    const back = await client(n3, zoe);
    await back.nextOf('DirectMessage', (f) => f.data.payload.n === 3);
    await back.request('Ping', {});
    expect(back.frames.filter((f) => f.type === 'DirectMessage').map((f) => f.data.payload.n)).toEqual([2, 3]);
    const again = await client(n1, zoe);
    await again.request('Ping', {});
    expect(again.frames.filter((f) => f.type === 'DirectMessage')).toEqual([]);
  });

  it('closes a revoked token on every node, and a node started after the revocation refuses it (4002)', async () => {
    const tokenId = `tid-${randomUUID()}`;
    const user = `rita-${randomUUID()}`;
    const onOne = await client(n1, `${user}:#|tid=${tokenId}`);
    const onTwo = await client(n2, `${user}:#|tid=${tokenId}`);
    const otherToken = await client(n2, `${user}:#|tid=other-${tokenId}`);
    await n3.command({ cmd: 'revoke', tokenId });
    expect((await onOne.closed).code).toBe(4002);
    expect((await onTwo.closed).code).toBe(4002);
    expect((await otherToken.request('Ping', {})).type).toBe('Ack');
    expect(await refused(n2, `${user}:#|tid=${tokenId}`)).toBe(4002);
    const late = await NodeProcess.start(env);
    extra.push(late);
    expect(await refused(late, `${user}:#|tid=${tokenId}`)).toBe(4002);
    await client(late, `${user}:#|tid=fresh-${tokenId}`);
  });

  // Last: it kills node 3.
  it("takes a node killed with SIGKILL for dead within ttl + heartbeat: its principals go offline once, its slots are free", async () => {
    const kim = `kim-${randomUUID()}`;
    const watcher = await client(n1, `watcher:$presence/#=r,marks/#`);
    await watcher.request('Subscribe', { topics: [`$presence/${kim}`] });
    const onThree = await client(n3, `${kim}:#|exclusive`);
    await watcher.nextOf('Presence', (f) => f.data.user_id === kim && f.data.status === 'online');
    expect(await refused(n2, `${kim}:#|exclusive`)).toBe(4009);
    expect(await n3.kill('SIGKILL')).toBe(null);
    expect((await onThree.closed).code).toBe(1006);
    // Bounded by TTL_MS + HEARTBEAT_MS; waited for here with room for a loaded machine.
    await until(() => presenceOf(watcher, kim).some((p) => p.status === 'offline'), 'kim offline', 30_000);
    const offline = await watcher.nextOf('Presence', (f) => f.data.user_id === kim && f.data.status === 'offline');
    await settle(watcher, [n1, n2]);
    expect(presenceOf(watcher, kim).map((p) => p.status)).toEqual(['online', 'offline']);
    expect(await n2.command({ cmd: 'presence', principal: kim })).toMatchObject({ status: 'offline', last_seen: offline.data.last_seen });
    await client(n2, `${kim}:#|exclusive`);
    expect(n1.errors()).toEqual([]);
    expect(n2.errors()).toEqual([]);
  }, 60_000);
});
