/**
 * A binary broadcast (0x01) with the broker's `clusterAcks` (README "Scale-out"): its
 * `Status binary_received` counts every node's recipients, as a Broadcast Ack does, and names the
 * nodes that did not answer in time (`partial`, `missing_nodes`); when every node answered, it has
 * neither field. Brokers on a MemoryHub with real clients; the silent node is a bare bus that
 * says hello and never answers (as a SIGSTOPped process would).
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { envelope, MemoryBus, MemoryHub, type BrokerOptions } from 'switchyard';
import { Client, connect, start, tokenAuth, type Running } from './helpers.js';

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

async function node(hub: MemoryHub, clusterAcks: BrokerOptions['clusterAcks']): Promise<Running> {
  const n = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, bus: new MemoryBus(hub), clusterAcks });
  nodes.push(n);
  return n;
}

async function client(n: Running, token: string, topics: string[] = []): Promise<Client> {
  const c = await connect(n.url(`/ws?token=${token}`));
  clients.push(c);
  if (topics.length > 0) await c.request('Subscribe', { topics });
  return c;
}

/** `[0x01][4-byte length][2-byte topic length][topic][data]`. */
function binaryBroadcast(topic: string, data: Buffer): Buffer {
  const t = Buffer.from(topic);
  const head = Buffer.alloc(7);
  head[0] = 0x01;
  head.writeUInt32BE(2 + t.length + data.length, 1);
  head.writeUInt16BE(t.length, 5);
  return Buffer.concat([head, t, data]);
}

function received(data: Buffer, extra: Record<string, unknown>) {
  const checksum = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  return { type: 'Status', data: { status: 'binary_received', details: { size: data.length, type: 'broadcast', checksum, ...extra } } };
}

describe('binary broadcast with clusterAcks', () => {
  it("counts the other node's subscribers, and has no partial fields when every node answered", async () => {
    const hub = new MemoryHub();
    const a = await node(hub, { timeoutMs: 5000 });
    const b = await node(hub, false);
    await client(b, 'b1', ['t/#']);
    await client(b, 'b2', ['t/#']);
    const pub = await client(a, 'pub');
    const data = Buffer.from([1, 2, 3]);
    pub.ws.send(binaryBroadcast('t/x', data));
    expect(await pub.nextOf('Status', (f) => f.data.status === 'binary_received')).toEqual(received(data, { recipients: 2 }));
  });

  it('names the node that did not answer within the timeout: partial, missing_nodes', async () => {
    const hub = new MemoryHub();
    const a = await node(hub, { timeoutMs: 200, helloIntervalMs: 60_000 });
    const b = await node(hub, false);
    const silent = new MemoryBus(hub);
    buses.push(silent);
    await silent.start('silent-node', () => {});
    await silent.publish({ v: 1, node: 'silent-node', kind: 'hello', intervalMs: 60_000, acks: false });
    await client(a, 'a1', ['t/#']);
    await client(b, 'b1', ['t/#']);
    const pub = await client(a, 'pub');
    const data = Buffer.from('bytes');
    pub.ws.send(binaryBroadcast('t/x', data));
    expect(await pub.nextOf('Status', (f) => f.data.status === 'binary_received')).toEqual(
      received(data, { recipients: 2, partial: true, missing_nodes: ['silent-node'] }),
    );
  });
});
