/**
 * The Bus conformance suite: what every Bus promises (lib/bus.ts), tested through that interface
 * only, so the memory bus and every real backend run the same tests:
 *
 *   busConformance('RedisBus', (size) => Array.from({ length: size }, () => new RedisBus({ url, channel })));
 *
 * `makeCluster(size)` returns `size` buses connected to each other and not yet started. Each test
 * starts them under fresh node ids and closes them afterwards. A backend that can count the
 * connections its buses hold passes `openConnections` (RedisBus: CLIENT LIST by client name), and
 * the suite checks that close() leaves none open.
 *
 * The suite never waits a fixed time to conclude that something did not arrive. It settles
 * instead: each node in turn publishes a marker and waits until every other node has it. By
 * per-sender ordering, every node then has everything the others sent before; and a copy of a
 * node's own message, had the bus returned one, would have come back to it before the markers
 * the other nodes sent in reply (true of any bus that delivers one channel's messages in the
 * order they were sent, as the memory hub, Redis pub/sub and Postgres NOTIFY do).
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Bus, BusMessage, Principal } from 'switchyard';
import { eventually } from './wait.js';

type MakeCluster = (size: number) => Promise<Bus[]> | Bus[];

export interface BusCapabilities {
  /** How many connections the buses made by `makeCluster` hold open now, on the server's count. */
  openConnections?: () => Promise<number>;
}

interface Node {
  id: string;
  bus: Bus;
  /** Everything the bus handed to this node, markers included. */
  received: BusMessage[];
}

/**
 * The version the suite writes. A bus carries `v` as it is: the nodes, not the bus, ignore and
 * report versions they do not know (lib/cluster.ts).
 */
const V = 1;
const MARKER = 'conformance-marker';

const markerOf = (m: BusMessage): string | undefined =>
  m.kind === 'notify' && typeof m.data === 'object' && m.data !== null && MARKER in m.data ? String((m.data as Record<string, unknown>)[MARKER]) : undefined;

/** What a node received apart from the suite's own markers. */
const messages = (node: Node): BusMessage[] => node.received.filter((m) => markerOf(m) === undefined);

/** Every byte value, so that base64 carrying binary data is checked on all of them. */
const BYTES = Buffer.from(Array.from({ length: 256 }, (_, i) => i));

function everyKind(node: string): BusMessage[] {
  const replacement: Principal = {
    id: 'bob',
    tokenId: 'tok-2',
    grants: [
      { topic: 'chat/#', access: 'read' },
      { topic: 'news/+', access: 'readwrite' },
    ],
    maxConnections: 3,
    exclusive: true,
    expiresAt: 1_900_000_000_000,
    data: { plan: 'pro', nested: { list: [1, null, 'x'] } },
  };
  const sentAt = 1_700_000_000_123;
  return [
    { v: V, node, kind: 'publish', topic: 'chat/room1', payload: { text: 'hé 😀', n: [1, 2.5, null] }, messageId: 'p1', sentAt, from: 'alice', offset: 7 },
    { v: V, node, kind: 'publish', topic: 'bin/x', payload: null, binary: BYTES.toString('base64'), messageId: 'p2', sentAt, from: null },
    { v: V, node, kind: 'publish', topic: 'plain', payload: 'just text', messageId: 'p3', sentAt, from: null },
    { v: V, node, kind: 'direct', target: 'bob', payload: [true, false, 0, ''], messageId: 'd1', sentAt, from: 'alice' },
    { v: V, node, kind: 'direct', target: 'bob', payload: null, binary: BYTES.subarray(250).toString('base64'), messageId: 'd2', sentAt, from: null },
    { v: V, node, kind: 'notify', target: 'all', data: { level: 'info' }, sentAt },
    { v: V, node, kind: 'notify', target: { principal: 'bob' }, data: 'plain string', sentAt },
    { v: V, node, kind: 'notify', target: { topic: 'chat/room1' }, data: 42, sentAt },
    { v: V, node, kind: 'revoke', principal: 'bob', tokenId: 'tok-1', reason: 'password changed' },
    { v: V, node, kind: 'revoke', tokenId: 'tok-1' },
    { v: V, node, kind: 'reauthorize', principal: 'bob', replacement },
    { v: V, node, kind: 'reauthorize', principal: 'carol' },
  ];
}

/** Random bytes of `size`, every byte value included. */
function bytes(size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 7919 + (i >> 8) * 31) & 0xff;
  return out;
}

export function busConformance(name: string, makeCluster: MakeCluster, capabilities: BusCapabilities = {}): void {
  describe(`Bus conformance: ${name}`, () => {
    let nodes: Node[] = [];
    let run: string;
    beforeEach(() => {
      run = randomUUID().slice(0, 8);
    });
    afterEach(async () => {
      await Promise.all(nodes.map((n) => n.bus.close()));
      nodes = [];
    });

    /** Makes and starts a cluster of `size` nodes. */
    async function cluster(size: number): Promise<Node[]> {
      const buses = await makeCluster(size);
      expect(buses).toHaveLength(size);
      nodes = buses.map((bus, i) => ({ id: `${run}-node${i}`, bus, received: [] }));
      await Promise.all(nodes.map((n) => n.bus.start(n.id, (m) => n.received.push(m))));
      return nodes;
    }

    /** Waits until every node in `live` has what the others in `live` sent so far (see the top of the file). */
    async function settle(live: Node[]): Promise<void> {
      for (const sender of live) {
        const marker = randomUUID();
        await sender.bus.publish({ v: V, node: sender.id, kind: 'notify', target: 'all', data: { [MARKER]: marker }, sentAt: Date.now() });
        for (const other of live) {
          if (other === sender) continue;
          await eventually(
            () => other.received.some((m) => markerOf(m) === marker),
            (seen) => seen,
            `${other.id} to receive the marker of ${sender.id}`,
          );
        }
      }
      for (const node of live) expect(node.received.filter((m) => m.node === node.id), `${node.id} got its own messages back`).toEqual([]);
    }

    it('delivers a message to every other node once, and never to its sender', async () => {
      const [a, b, c] = await cluster(3);
      const sent = [a!, b!, c!].map((n, i): BusMessage => ({ v: V, node: n.id, kind: 'notify', target: 'all', data: { from: i }, sentAt: i }));
      await Promise.all([a!, b!, c!].map((n, i) => n.bus.publish(sent[i]!)));
      await settle([a!, b!, c!]);
      // Senders are not ordered among themselves: compare in node id order.
      const byNode = (node: Node) => messages(node).sort((x, y) => x.node.localeCompare(y.node));
      expect(byNode(a!)).toEqual([sent[1], sent[2]]);
      expect(byNode(b!)).toEqual([sent[0], sent[2]]);
      expect(byNode(c!)).toEqual([sent[0], sent[1]]);
    });

    it('delivers every kind of message with its fields intact', async () => {
      const [a, b] = await cluster(2);
      const sent = everyKind(a!.id);
      for (const m of sent) await a!.bus.publish(m);
      await settle([a!, b!]);
      expect(messages(b!)).toStrictEqual(sent);
      const binary = messages(b!).find((m) => m.kind === 'publish' && m.binary !== undefined) as { binary: string };
      expect(Buffer.from(binary.binary, 'base64').equals(BYTES)).toBe(true);
    });

    it("carries messages of versions and kinds it does not know untouched, for the node to report", async () => {
      const [a, b] = await cluster(2);
      const future = [
        { v: V + 1, node: a!.id, kind: 'publish', topic: 't', payload: 1, messageId: 'm', sentAt: 1, from: null, extra: { x: 1 } },
        { v: V, node: a!.id, kind: 'future-kind', anything: ['goes'] },
      ] as unknown as BusMessage[];
      for (const m of future) await a!.bus.publish(m);
      await settle([a!, b!]);
      expect(messages(b!)).toStrictEqual(future);
    });

    it("keeps each sender's messages in the order it sent them", async () => {
      const [a, b, c] = await cluster(3);
      const count = 100;
      const message = (node: Node, i: number): BusMessage => ({ v: V, node: node.id, kind: 'revoke', principal: `p${i}`, reason: `${i}` });
      // Sent back to back without waiting, as the broker does (Cluster.send does not await).
      const sending: Promise<void>[] = [];
      for (let i = 0; i < count; i++) sending.push(a!.bus.publish(message(a!, i)), b!.bus.publish(message(b!, i)));
      await Promise.all(sending);
      await settle([a!, b!, c!]);
      const from = (receiver: Node, sender: Node) => messages(receiver).filter((m) => m.node === sender.id);
      const expected = (sender: Node) => Array.from({ length: count }, (_, i) => message(sender, i));
      expect(from(c!, a!)).toEqual(expected(a!));
      expect(from(c!, b!)).toEqual(expected(b!));
      expect(from(b!, a!)).toEqual(expected(a!));
      expect(from(a!, b!)).toEqual(expected(b!));
    });

    it('stops delivering to a closed bus while the others carry on', async () => {
      const [a, b, c] = await cluster(3);
      await c!.bus.close();
      const m: BusMessage = { v: V, node: a!.id, kind: 'revoke', principal: 'bob' };
      await a!.bus.publish(m);
      await settle([a!, b!]);
      expect(messages(b!)).toEqual([m]);
      // Not even the markers reached it.
      expect(c!.received).toEqual([]);
    });

    it('closes more than once', async () => {
      const [a, b] = await cluster(2);
      await a!.bus.close();
      await a!.bus.close();
      await Promise.all([b!.bus.close(), b!.bus.close()]);
    });

    it('rejects a publish after close, with a promise, never a synchronous throw', async () => {
      // Cluster.send only catches a rejected promise; a throw would escape into the broker's caller.
      const [a] = await cluster(2);
      await a!.bus.close();
      let outcome: Promise<void> | undefined;
      expect(() => {
        outcome = a!.bus.publish({ v: V, node: a!.id, kind: 'revoke', principal: 'bob' });
      }).not.toThrow();
      expect(typeof outcome?.then).toBe('function');
      await expect(outcome).rejects.toThrow();
    });

    it('carries large text and binary payloads intact', async () => {
      const [a, b, c] = await cluster(3);
      // Larger than the broker's 64 KiB default message limit, several times over.
      const text = 'é😀\u0000"\\\n'.repeat(20_000) + 'x'.repeat(100_000);
      const data = bytes(192 * 1024);
      const sent: BusMessage[] = [
        { v: V, node: a!.id, kind: 'publish', topic: 'big/text', payload: { text }, messageId: 'big1', sentAt: 1, from: null },
        { v: V, node: a!.id, kind: 'publish', topic: 'big/bin', payload: null, binary: data.toString('base64'), messageId: 'big2', sentAt: 2, from: null },
        { v: V, node: a!.id, kind: 'direct', target: 'bob', payload: null, binary: data.subarray(0, 1).toString('base64'), messageId: 'big3', sentAt: 3, from: null },
      ];
      for (const m of sent) await a!.bus.publish(m);
      await settle([a!, b!, c!]);
      for (const node of [b!, c!]) {
        expect(messages(node)).toStrictEqual(sent);
        const got = messages(node)[1] as { binary: string };
        expect(Buffer.from(got.binary, 'base64').equals(data)).toBe(true);
      }
    });

    it.runIf(capabilities.openConnections !== undefined)('releases every connection it opened on close', async () => {
      const all = await cluster(3);
      await eventually(() => capabilities.openConnections!(), (n) => n > 0, 'the buses to hold connections', 5000);
      await Promise.all(all.map((n) => n.bus.close()));
      await eventually(() => capabilities.openConnections!(), (n) => n === 0, 'no connection left open', 5000);
    });
  });
}
