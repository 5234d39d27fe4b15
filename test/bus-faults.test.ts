/**
 * RedisBus and NatsBus when their link fails, against servers of the test's own (never the shared
 * ones): a server killed and started again, and a subscription that goes silent with its socket
 * open. Each loss is reported as down, then as a gap with its duration once the bus has
 * resubscribed by itself, and messages flow again.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus, BusGap, BusMessage } from 'switchyard';
import { RedisBus } from 'switchyard/redis';
import { NatsBus } from 'switchyard/nats';
import { FreezableProxy, OwnServer, until } from './cluster/procs.js';

interface Node {
  id: string;
  bus: Bus;
  received: BusMessage[];
  downs: Array<{ since: number; reason: string }>;
  gaps: BusGap[];
  errors: Error[];
}

let cleanup: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

async function node(bus: Bus): Promise<Node> {
  const n: Node = { id: `n-${randomUUID().slice(0, 8)}`, bus, received: [], downs: [], gaps: [], errors: [] };
  cleanup.push(() => bus.close());
  await bus.start(n.id, (m) => n.received.push(m), { down: (d) => n.downs.push(d), gap: (g) => n.gaps.push(g), error: (e) => n.errors.push(e) });
  return n;
}

const note = (from: Node, text: string): BusMessage => ({ v: 1, node: from.id, kind: 'notify', target: 'all', data: text, sentAt: Date.now() });

/** Publishes `text` from `from` until `to` has it (a publisher that is reconnecting refuses at first). */
async function getsThrough(from: Node, to: Node, text: string): Promise<void> {
  await until(async () => {
    if (to.received.some((m) => m.kind === 'notify' && m.data === text)) return true;
    await from.bus.publish(note(from, text)).catch(() => undefined);
    return to.received.some((m) => m.kind === 'notify' && m.data === text);
  }, `"${text}" to reach ${to.id}`, 20_000);
}

async function restartCase(server: OwnServer, make: () => Bus): Promise<void> {
  await server.start();
  cleanup.push(() => server.kill());
  const a = await node(make());
  const b = await node(make());
  await getsThrough(a, b, 'before');
  const killedAt = Date.now();
  await server.kill();
  await until(() => a.downs.length > 0 && b.downs.length > 0, 'both buses to report the link down');
  await server.start();
  await until(() => a.gaps.length > 0 && b.gaps.length > 0, 'both buses to report the gap');
  for (const n of [a, b]) {
    expect(n.downs).toHaveLength(1);
    expect(n.gaps).toHaveLength(1);
    const gap = n.gaps[0]!;
    expect(gap.since).toBeGreaterThanOrEqual(killedAt);
    expect(gap.durationMs).toBe(gap.until - gap.since);
    expect(gap.durationMs).toBeGreaterThan(0);
  }
  await getsThrough(a, b, 'after');
  await getsThrough(b, a, 'back');
}

describe('RedisBus link faults', () => {
  it('reports a Redis restart as a gap, resubscribes, and carries messages again', async () => {
    const server = await OwnServer.redis();
    const channel = `sy-fault:${randomUUID()}`;
    await restartCase(server, () => new RedisBus({ connection: `redis://127.0.0.1:${server.port}`, channel, probeIntervalMs: 0 }));
  });

  it('finds a silent subscription with its probe and rebuilds it', async () => {
    const server = await OwnServer.redis();
    await server.start();
    cleanup.push(() => server.kill());
    const proxy = new FreezableProxy(server.port);
    await proxy.listen();
    cleanup.push(() => proxy.close());
    const channel = `sy-fault:${randomUUID()}`;
    const direct = () => new Redis(server.port, '127.0.0.1');
    const a = await node(new RedisBus({ connection: `redis://127.0.0.1:${server.port}`, channel, probeIntervalMs: 0 }));
    // b subscribes through the proxy and publishes directly, so only its subscription goes silent.
    const pub = direct();
    const sub = new Redis(proxy.port, '127.0.0.1');
    cleanup.push(() => {
      pub.disconnect();
      sub.disconnect();
    });
    const b = await node(new RedisBus({ publisher: pub, subscriber: sub, channel, probeIntervalMs: 200, probeTimeoutMs: 500 }));
    await getsThrough(a, b, 'before');
    proxy.freeze();
    await until(() => b.downs.length > 0, 'the probe to find the silence', 10_000);
    expect(b.downs[0]!.reason).toMatch(/probe/);
    await until(() => b.gaps.length > 0, 'the rebuilt subscription');
    await getsThrough(a, b, 'after');
    expect(a.downs).toEqual([]);
  });
});

describe('RedisBus started before Redis is there', () => {
  it('rejects start after startTimeoutMs, keeps trying, and reports the gap once Redis comes', async () => {
    const server = await OwnServer.redis();
    cleanup.push(() => server.kill());
    const channel = `sy-fault:${randomUUID()}`;
    const make = () => new RedisBus({ connection: `redis://127.0.0.1:${server.port}`, channel, probeIntervalMs: 0, startTimeoutMs: 300 });
    const late = make();
    const n: Node = { id: 'late', bus: late, received: [], downs: [], gaps: [], errors: [] };
    cleanup.push(() => late.close());
    await expect(late.start(n.id, (m) => n.received.push(m), { down: (d) => n.downs.push(d), gap: (g) => n.gaps.push(g), error: (e) => n.errors.push(e) })).rejects.toThrow(/not connected within 300 ms/);
    expect(n.downs).toHaveLength(1);
    await server.start();
    await until(() => n.gaps.length === 1, 'the gap once Redis is there');
    const other = await node(make());
    await getsThrough(other, n, 'hello late node');
    expect(n.errors.map((e) => e.message)).toEqual([]);
  });
});

describe('RedisBus frames it cannot read', () => {
  it('reports them and carries on', async () => {
    const channel = `sy-fault:${randomUUID()}`;
    const a = await node(new RedisBus({ channel, probeIntervalMs: 0 }));
    const b = await node(new RedisBus({ channel, probeIntervalMs: 0 }));
    const stranger = new Redis();
    cleanup.push(() => void stranger.disconnect());
    await stranger.publish(channel, 'no node id here');
    await stranger.publish(channel, 'someone\n{not json');
    await stranger.publish(channel, 'someone\n?probe of another node');
    await getsThrough(a, b, 'still fine');
    expect(b.errors.map((e) => e.message)).toEqual([expect.stringMatching(/no node id/), expect.stringMatching(/unreadable bus frame from someone/)]);
    expect(b.received.filter((m) => m.kind !== 'notify')).toEqual([]);
  });
});

describe('NatsBus link faults', () => {
  it('reports a nats-server restart as a gap, resubscribes, and carries messages again', async () => {
    const server = await OwnServer.nats();
    const subject = `sy-fault.${randomUUID()}`;
    await restartCase(server, () => new NatsBus({ connection: { servers: `127.0.0.1:${server.port}`, reconnectTimeWait: 100 }, subject, probeIntervalMs: 0 }));
  });

  it('finds a silent connection with its probe and reconnects it', async () => {
    const server = await OwnServer.nats();
    await server.start();
    cleanup.push(() => server.kill());
    const proxy = new FreezableProxy(server.port);
    await proxy.listen();
    cleanup.push(() => proxy.close());
    const subject = `sy-fault.${randomUUID()}`;
    const a = await node(new NatsBus({ connection: { servers: `127.0.0.1:${server.port}` }, subject, probeIntervalMs: 0 }));
    const b = await node(new NatsBus({ connection: { servers: `127.0.0.1:${proxy.port}`, reconnectTimeWait: 100 }, subject, probeIntervalMs: 200, probeTimeoutMs: 500 }));
    await getsThrough(a, b, 'before');
    proxy.freeze();
    await until(() => b.downs.length > 0, 'the probe to find the silence', 10_000);
    expect(b.downs[0]!.reason).toMatch(/probe/);
    await until(() => b.gaps.length > 0, 'the reconnected subscription', 20_000);
    await getsThrough(a, b, 'after');
  });
});
