/**
 * Two broker nodes sharing one bus (MemoryHub), each on its own HTTP server, with real clients:
 * what a host does on one node reaches connections on the other.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, MemoryBus, MemoryHub } from 'switchyard';
import { connect, start, tokenAuth, type Running } from './helpers.js';

let nodes: Running[] = [];
afterEach(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  nodes = [];
});

async function cluster(): Promise<[Running, Running]> {
  const hub = new MemoryHub();
  nodes = await Promise.all(
    [0, 1].map(() => start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, bus: new MemoryBus(hub) })),
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
});
