/**
 * Two broker nodes sharing one bus (MemoryHub), each on its own HTTP server, with real clients:
 * what a host does on one node reaches connections on the other.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, MemoryBus, MemoryHub, MemoryRegistry, type Bus, type BusHandler, type BusMessage, type Logger } from 'switchyard';
import { connect, start, tokenAuth, type Running } from './helpers.js';

let nodes: Running[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  nodes = [];
});

/** Two nodes on one MemoryHub, sharing one MemoryRegistry (as every node of a cluster shares one registry). */
async function cluster(hub = new MemoryHub(), logger?: Logger): Promise<[Running, Running]> {
  const registry = new MemoryRegistry();
  nodes = await Promise.all(
    [0, 1].map(() =>
      start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, bus: new MemoryBus(hub), registry, ...(logger && { logger }) }),
    ),
  );
  return [nodes[0]!, nodes[1]!];
}

describe('cluster over a shared bus', () => {
  it('delivers publishes, direct messages and notifications to connections on other nodes', async () => {
    const [a, b] = await cluster();
    const onB = await connect(b.url('/ws?token=bob'));
    await onB.request('Subscribe', { topics: ['chat/#'] });
    const onA = await connect(a.url('/ws?token=alice'));
    const ack = await onA.request('Broadcast', { topic: 'chat/x', payload: { n: 1 } });
    expect(ack.data.recipients).toBe(0); // counts this node's connections (README: Decisions)
    expect((await onB.nextOf('Broadcast')).data.payload).toEqual({ n: 1 });
    await a.broker.sendTo('bob', { dm: true });
    expect((await onB.nextOf('DirectMessage')).data.payload).toEqual({ dm: true });
    await a.broker.notify({ topic: 'chat/y' }, { level: 'info' });
    expect((await onB.nextOf('Notification')).data).toEqual({ level: 'info' });
    await onA.close();
    await onB.close();
  });

  it('revokes and re-authorizes connections on every node', async () => {
    const [a, b] = await cluster();
    const bob = await connect(b.url(`/ws?token=${encodeURIComponent('bob:chat/#,news/#')}`));
    await bob.request('Subscribe', { topics: ['chat/a', 'news/a'] });
    await a.broker.reauthorize('bob', { id: 'bob', grants: [{ topic: 'chat/#', access: 'read' }] });
    expect((await bob.nextOf('Error')).data).toMatchObject({ code: 403, details: { topics: ['news/a'] } });
    a.broker.revoke({ principal: 'bob' });
    expect(await bob.closed).toMatchObject({ code: 4002 });
  });

  it('answers a direct message to a principal on another node as delivered there, never queues it, never delivers twice', async () => {
    const [a, b] = await cluster();
    const bob = await connect(b.url('/ws?token=bob'));
    const [bobId] = b.broker.connectionIds('bob');
    expect(await a.broker.sendTo('bob', { n: 1 })).toMatchObject({ deliveredTo: [bobId], queued: false });
    expect((await bob.nextOf('DirectMessage')).data.payload).toEqual({ n: 1 });
    // From a client on node a: an Ack naming bob's connection on b, not Error 404 {queued}.
    const alice = await connect(a.url('/ws?token=alice'));
    const ack = await alice.request('DirectMessage', { target_user: 'bob', payload: { n: 2 } });
    expect(ack).toMatchObject({ type: 'Ack', data: { status: 'delivered', delivered_to: [bobId] } });
    expect((await bob.nextOf('DirectMessage')).data.payload).toEqual({ n: 2 });
    // Nothing was kept for later: bob's next connection, on either node, gets no old message.
    for (const node of [a, b]) {
      const again = await connect(node.url('/ws?token=bob'));
      await again.request('Ping', {}); // a round trip on the same connection: anything queued came first
      expect(again.frames.filter((f) => f.type === 'DirectMessage')).toEqual([]);
      await again.close();
    }
    await bob.request('Ping', {});
    expect(bob.frames.filter((f) => f.type === 'DirectMessage')).toHaveLength(2);
    await alice.close();
    await bob.close();
  });

  it('queues a direct message only when its principal is connected nowhere, and forgets a closed node', async () => {
    const [a, b] = await cluster();
    const carol = await connect(b.url('/ws?token=carol'));
    await carol.close();
    await b.broker.close(); // b leaves the registry: nothing of it counts any more
    expect(await a.broker.sendTo('carol', { n: 1 })).toMatchObject({ deliveredTo: [], queued: true });
    const back = await connect(a.url('/ws?token=carol'));
    expect((await back.nextOf('DirectMessage')).data.payload).toEqual({ n: 1 });
    await back.close();
  });
});

describe("the cluster's handling of bus messages", () => {
  function recordingLogger(): Logger & { warnings: string[] } {
    const warnings: string[] = [];
    return { warnings, debug() {}, info() {}, warn: (msg) => void warnings.push(msg), error() {} };
  }

  /** A bare bus on the hub, standing in for another node, and the id of the broker node it hears from. */
  async function intruder(hub: MemoryHub, node: Running): Promise<{ bus: MemoryBus; brokerNode: string }> {
    const bus = new MemoryBus(hub);
    const heard: BusMessage[] = [];
    await bus.start('intruder', (m) => heard.push(m));
    await node.broker.publish('probe', 1);
    await new Promise<void>((resolve) => queueMicrotask(resolve));
    const brokerNode = heard.find((m) => m.kind === 'publish')?.node;
    if (brokerNode === undefined) throw new Error('no message from the broker node');
    return { bus, brokerNode };
  }

  const publish = (node: string, payload: unknown, extra: Record<string, unknown> = {}) =>
    ({ v: 1, node, kind: 'publish', topic: 'chat/x', payload, messageId: `m-${String(payload)}`, sentAt: 1, from: null, ...extra }) as BusMessage;

  it("ignores messages carrying its own node id, and takes other nodes' ones", async () => {
    // A bus that returns every message to its sender too (a raw pub/sub channel does): only the
    // broker's own-node filter keeps a node from delivering its own publishes twice.
    const handlers = new Set<BusHandler>();
    const echoBus = (): Bus => {
      let mine: BusHandler | undefined;
      return {
        start: async (_node, handler) => void handlers.add((mine = handler)),
        publish: async (message) => {
          for (const h of handlers) queueMicrotask(() => h(message));
        },
        close: async () => void (mine && handlers.delete(mine)),
      };
    };
    const a = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, bus: echoBus() });
    nodes = [a];
    const other = echoBus();
    await other.start('other', () => {});
    const sub = await connect(a.url('/ws?token=sub'));
    await sub.request('Subscribe', { topics: ['chat/#'] });
    await a.broker.publish('chat/x', 'local');
    await other.publish(publish('other', 'remote'));
    await sub.nextOf('Broadcast', (f) => f.data.payload === 'remote');
    expect(sub.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload)).toEqual(['local', 'remote']);
    await other.close();
    await sub.close();
  });

  it('warns about and ignores unknown versions and kinds, and goes on with the next message', async () => {
    const hub = new MemoryHub();
    const logger = recordingLogger();
    const [a] = await cluster(hub, logger);
    const { bus } = await intruder(hub, a);
    const sub = await connect(a.url('/ws?token=sub'));
    await sub.request('Subscribe', { topics: ['chat/#'] });
    await bus.publish(publish('intruder', 'future', { v: 2 }));
    await bus.publish({ v: 1, node: 'intruder', kind: 'teleport', topic: 'chat/x' } as unknown as BusMessage);
    await bus.publish(publish('intruder', 'current'));
    expect((await sub.nextOf('Broadcast')).data.payload).toBe('current');
    expect(sub.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload)).toEqual(['current']);
    expect(logger.warnings).toEqual(
      expect.arrayContaining(['ignoring cluster message of unknown version', 'ignoring cluster message of unknown kind']),
    );
    await bus.close();
    await sub.close();
  });
});
