/**
 * Three broker processes on a bus server of the test's own (redis-server or nats-server on a spare
 * port, never the shared one), which is killed mid-stream and started again: every node keeps
 * serving its local traffic, nothing crashes, the gap is reported, and once the bus has
 * resubscribed by itself messages published after the restart flow across nodes again.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { connect, type Client } from './helpers.js';
import { NodeProcess } from './cluster/nodes.js';
import { OwnServer, until } from './cluster/procs.js';

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
}, 30_000);

async function client(node: NodeProcess, token: string): Promise<Client> {
  const c = await connect(node.url(token));
  cleanup.push(() => c.close());
  return c;
}

/** Broadcasts from `from` until `to` receives one (the publishing node may still be reconnecting). */
async function flowsAgain(from: Client, to: Client, topic: string): Promise<void> {
  let n = 0;
  await until(async () => {
    if (to.frames.some((f) => f.type === 'Broadcast' && f.data.topic === topic)) return true;
    await from.request('Broadcast', { topic, payload: ++n });
    return false;
  }, `${topic} to flow across nodes again`, 30_000);
}

async function restartMidStream(server: OwnServer, env: Record<string, string>): Promise<void> {
  await server.start();
  cleanup.push(() => server.kill());
  const nodes = await Promise.all([0, 1, 2].map(() => NodeProcess.start({ ...env, SY_PROBE_MS: '500' })));
  for (const n of nodes) cleanup.push(() => n.kill('SIGTERM'));
  const [n1, , n3] = nodes as [NodeProcess, NodeProcess, NodeProcess];
  const bob = await client(n1, 'bob');
  await bob.request('Subscribe', { topics: ['live/#'] });
  const local = await client(n1, 'carol');
  const alice = await client(n3, 'alice');
  await alice.request('Broadcast', { topic: 'live/before', payload: 0 });
  expect((await bob.nextOf('Broadcast')).data.topic).toBe('live/before');

  await server.kill();
  // Local traffic goes on while the bus is away.
  await local.request('Broadcast', { topic: 'live/local', payload: 'while down' });
  expect((await bob.nextOf('Broadcast')).data).toMatchObject({ topic: 'live/local', payload: 'while down' });
  await alice.request('Broadcast', { topic: 'live/during', payload: 'maybe lost' });

  await server.start();
  // Each node heard of the loss, then of the gap with its duration, on the broker's error event.
  const reports = (n: NodeProcess) => n.errors('SY_ERR_BUS_GAP').map((e) => e.context as { bus: string; durationMs?: number; since: number; until?: number });
  await until(() => nodes.every((n) => reports(n).some((r) => r.bus === 'gap')), 'every node to report the gap', 30_000);
  for (const n of nodes) {
    const [down, gap] = reports(n);
    expect(down).toMatchObject({ bus: 'down' });
    expect(gap).toMatchObject({ bus: 'gap', since: down!.since });
    expect(gap!.durationMs).toBe(gap!.until! - gap!.since);
  }
  await flowsAgain(alice, bob, 'live/after');
  const dave = await client(n3, 'dave');
  await dave.request('Subscribe', { topics: ['live/#'] });
  await flowsAgain(local, dave, 'live/back');
  for (const n of nodes) expect(await Promise.race([n.exited, Promise.resolve('running')])).toBe('running');
}

describe('bus server restarted mid-stream', () => {
  it('Redis: nodes keep serving locally, resubscribe and carry messages again', async () => {
    const server = await OwnServer.redis();
    await restartMidStream(server, { SY_BUS: 'redis', SY_BUS_URL: `redis://127.0.0.1:${server.port}`, SY_CHANNEL: `sy-restart:${randomUUID()}` });
  }, 120_000);

  it('NATS: nodes keep serving locally, resubscribe and carry messages again', async () => {
    const server = await OwnServer.nats();
    await restartMidStream(server, { SY_BUS: 'nats', SY_BUS_URL: `127.0.0.1:${server.port}`, SY_CHANNEL: `sy-restart.${randomUUID()}` });
  }, 120_000);
});
