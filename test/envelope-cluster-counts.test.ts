/**
 * An envelope Broadcast with the broker's `clusterAcks` (README "Scale-out"): a request with an
 * id is acknowledged with every node's recipients, with `echo` set or not; one without an id
 * gets no Ack, so its publish asks no node for a count, with `echo` set or not. Two brokers on a
 * MemoryHub with real clients, and a bare bus listening to what goes between them.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, MemoryBus, MemoryHub, type BusMessage } from 'switchyard';
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

async function node(hub: MemoryHub): Promise<Running> {
  const n = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, bus: new MemoryBus(hub), clusterAcks: { timeoutMs: 5000 } });
  nodes.push(n);
  return n;
}

async function client(n: Running, token: string, topics: string[] = []): Promise<Client> {
  const c = await connect(n.url(`/ws?token=${token}`));
  clients.push(c);
  if (topics.length > 0) await c.request('Subscribe', { topics });
  return c;
}

describe('envelope Broadcast with clusterAcks', () => {
  it('with an id, echo or not: the Ack counts the other node’s subscribers; without an id no count is asked for', async () => {
    const hub = new MemoryHub();
    const heard: BusMessage[] = [];
    const tap = new MemoryBus(hub);
    buses.push(tap);
    await tap.start('tap', (m) => heard.push(m));
    const [a, b] = [await node(hub), await node(hub)];
    await client(b, 'b1', ['t/#']);
    await client(b, 'b2', ['t/#']);
    const pub = await client(a, 'pub', ['t/#']);

    const cases: Array<[string, Record<string, unknown>, number]> = [
      ['t/plain', {}, 2],
      ['t/echo', { echo: true }, 3],
      ['t/quiet', { echo: false }, 2],
    ];
    for (const [topic, extra, recipients] of cases) {
      const ack = await pub.request('Broadcast', { topic, payload: 1, ...extra });
      expect(ack.data, topic).toEqual({ message_id: ack.data.message_id, status: 'delivered', recipients });
    }
    for (const [topic, extra] of [['t/n-plain', {}], ['t/n-echo', { echo: true }], ['t/n-quiet', { echo: false }]] as const) {
      pub.sendJson({ type: 'Broadcast', data: { topic, payload: 2, ...extra } });
    }
    await until(() => heard.filter((m) => m.kind === 'publish' && m.topic.startsWith('t/n-')).length === 3, 'three publishes without id on the bus');
    const asked = (prefix: string) =>
      heard.filter((m): m is BusMessage & { kind: 'publish' } => m.kind === 'publish' && m.topic.startsWith(prefix)).map((m) => [m.topic, m.ack !== undefined]);
    expect(asked('t/n-')).toEqual([['t/n-plain', false], ['t/n-echo', false], ['t/n-quiet', false]]);
    expect(asked('t/').filter(([t]) => !String(t).startsWith('t/n-'))).toEqual([['t/plain', true], ['t/echo', true], ['t/quiet', true]]);
    // The echo reached the publisher only where it asked for it.
    await until(() => pub.frames.some((f) => f.type === 'Broadcast' && f.data.topic === 't/n-echo'), 'echo without id');
    expect(pub.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.topic)).toEqual(['t/echo', 't/n-echo']);
    expect(pub.frames.filter((f) => f.type === 'Ack' && !String(f.data.message_id).startsWith('r'))).toEqual([]);
  });
});
