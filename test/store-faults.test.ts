/**
 * Faults with real processes and real servers:
 * - a broker process on each durable store, killed with SIGKILL while it publishes, restarted: a
 *   client resumes from its last position with no gap and no duplicate, and the direct messages
 *   queued before the kill are delivered once;
 * - Redis killed under a running broker (our own redis-server on a spare port, never the shared
 *   one) and PostgreSQL connections terminated: what needs the store gets 503 + retry_after_ms
 *   at once, live traffic flows, and the store reconnects by itself.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import net from 'node:net';
import { once } from 'node:events';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import { RedisStore } from 'switchyard/redis';
import { PostgresStore } from 'switchyard/postgres';
import { Client, connect, startEnvelope, until, type Running } from './helpers.js';
import { POSTGRES_URL, REDIS_URL, RUN, skipWithout } from './store-services.js';

const skipRedis = await skipWithout('Redis');
const skipPostgres = await skipWithout('PostgreSQL');
const FIXTURE = new URL('./fixtures/store-broker.ts', import.meta.url).pathname;
const children = new Set<ChildProcess>();
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const child of children) child.kill('SIGKILL');
  children.clear();
});
afterAll(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

/** Starts the fixture broker; resolves with its port once it listens. */
async function startChild(env: Record<string, string>): Promise<{ child: ChildProcess; port: number }> {
  const child = spawn(process.execPath, ['--import', 'tsx', FIXTURE], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  children.add(child);
  let out = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      const line = out.split('\n').find((l) => l.startsWith('{'));
      if (line) resolve((JSON.parse(line) as { port: number }).port);
    });
    child.once('exit', (code) => reject(new Error(`broker process exited (${code}) before listening`)));
  });
  return { child, port };
}

async function kill(child: ChildProcess): Promise<void> {
  const exited = once(child, 'exit');
  child.kill('SIGKILL');
  await exited;
  children.delete(child);
}

const offsetsOf = (c: Client, topic: string): number[] => c.frames.filter((f) => f.type === 'Broadcast' && f.data.topic === topic).map((f) => f.data.metadata.offset as number);

interface Durable {
  name: string;
  skip: boolean;
  env: Record<string, string>;
  /** A store on the same backend, for checking what is left and for cleaning up. */
  open: () => RedisStore | PostgresStore;
  cleanup: () => Promise<void>;
}

const durables: Durable[] = [
  {
    name: 'RedisStore',
    skip: skipRedis,
    env: { STORE: REDIS_URL, PREFIX: `sy-fault:${RUN}:` },
    open: () => new RedisStore({ redis: REDIS_URL, keyPrefix: `sy-fault:${RUN}:` }),
    cleanup: async () => {
      const admin = new Redis(REDIS_URL);
      for await (const keys of admin.scanStream({ match: `sy-fault:${RUN}:*` })) if ((keys as string[]).length) await admin.del(...(keys as string[]));
      await admin.quit();
    },
  },
  {
    name: 'PostgresStore',
    skip: skipPostgres,
    env: { STORE: POSTGRES_URL, PREFIX: `sy_fault_${RUN}_` },
    open: () => new PostgresStore({ pool: POSTGRES_URL, tablePrefix: `sy_fault_${RUN}_` }),
    cleanup: async () => {
      const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
      for (const t of ['history', 'topics', 'queue', 'schema']) await admin.query(`DROP TABLE IF EXISTS sy_fault_${RUN}_${t}`);
      await admin.end();
    },
  },
];

for (const durable of durables) {
  describe.skipIf(durable.skip)(`a broker process on ${durable.name} killed with SIGKILL while publishing`, () => {
    it('resumes a client from its last position with no gap and no duplicate, and delivers queued direct messages once', async () => {
      cleanups.push(durable.cleanup);
      const topic = `chat/${RUN}`;
      const zed = `zed-${RUN}`;
      const env = { ...durable.env, PUBLISH_TOPIC: topic };
      const first = await startChild(env);
      const url = (port: number, id: string) => `ws://127.0.0.1:${port}/ws?token=${id}`;

      const reader = await connect(url(first.port, 'reader'));
      await reader.request('Subscribe', { topics: [topic] });
      const sender = await connect(url(first.port, 'sender'));
      const queued: string[] = [];
      for (let i = 0; i < 5; i++) {
        const reply = await sender.request('DirectMessage', { target_user: zed, payload: { dm: i } });
        expect(reply.data).toMatchObject({ code: 404, details: { queued: true } });
        queued.push(`dm${i}`);
      }
      await until(() => offsetsOf(reader, topic).length >= 30, 'deliveries before the kill', 20_000);
      await kill(first.child);
      await reader.closed;

      const seen = offsetsOf(reader, topic);
      const lastFrame = reader.frames.filter((f) => f.type === 'Broadcast').at(-1)!;
      const position = { offset: lastFrame.data.metadata.offset as number, epoch: lastFrame.data.metadata.epoch as string };
      // Live deliveries before the kill began at the first offset this reader saw, with no gap.
      expect(seen).toEqual(Array.from({ length: seen.length }, (_, i) => seen[0]! + i));

      const second = await startChild(env);
      const back = await connect(url(second.port, 'reader'));
      await back.request('Subscribe', { topics: [topic], recover: { [topic]: position } });
      const status = back.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
      expect(status.data.details.recovered).toEqual({ [topic]: true });
      await until(() => offsetsOf(back, topic).length >= 30, 'deliveries after the restart', 20_000);
      const resumed = offsetsOf(back, topic);
      expect(resumed).toEqual(Array.from({ length: resumed.length }, (_, i) => position.offset + 1 + i));
      expect(new Set(back.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.metadata.epoch))).toEqual(new Set([position.epoch]));

      const target = await connect(url(second.port, zed));
      await until(() => target.frames.filter((f) => f.type === 'DirectMessage').length >= 5, 'the queued direct messages', 20_000);
      expect(target.frames.filter((f) => f.type === 'DirectMessage').map((f) => f.data.payload)).toEqual([0, 1, 2, 3, 4].map((dm) => ({ dm })));
      // Delivered once: nothing is left queued for another connection or process to drain.
      const check = durable.open();
      try {
        expect(await check.drainDirect(zed)).toEqual([]);
      } finally {
        await check.close();
      }
      await Promise.all([back.close(), target.close(), sender.close()]);
      await kill(second.child);
    }, 120_000);
  });
}

/** A port nobody listens on right now. */
async function sparePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Our own redis-server (no persistence), so killing it touches nobody else. */
async function ownRedis(port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  children.add(child);
  // Polled with a bound: a fresh connection attempt every 50 ms until one answers PING.
  const deadline = Date.now() + 10_000;
  for (;;) {
    const probe = new Redis({ port, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
    probe.on('error', () => {});
    const up = await probe.connect().then(() => probe.ping()).then(() => true, () => false);
    probe.disconnect();
    if (up) break;
    if (Date.now() > deadline) throw new Error(`redis-server on port ${port} did not answer`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return child;
}

/** Publishes until `accept` takes the reply (bounded), returning it. */
async function publishUntil(c: Client, topic: string, accept: (reply: { type: string; data: Record<string, unknown> }) => boolean, what: string): Promise<{ type: string; data: Record<string, any> }> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const reply = await c.request('Broadcast', { topic, payload: 'probe' });
    if (accept(reply)) return reply;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; last reply ${JSON.stringify(reply)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function liveStillFlows(r: Running, pub: Client, sub: Client, n: number): Promise<void> {
  expect((await pub.request('Broadcast', { topic: 'live/x', payload: n })).type).toBe('Ack');
  expect((await sub.nextOf('Broadcast', (f) => f.data.topic === 'live/x' && f.data.payload === n)).data.payload).toBe(n);
  const fresh = await connect(r.url(`/ws?token=${encodeURIComponent(`fresh${n}`)}`));
  expect((await fresh.request('Ping', {})).type).toBe('Ack');
  await fresh.close();
}

describe.skipIf(skipRedis)('Redis killed under a running broker', () => {
  it('answers store publishes with 503 + retry_after_ms, keeps live traffic flowing, and reconnects by itself', async () => {
    const port = await sparePort();
    let redis = await ownRedis(port);
    const store = new RedisStore({ redis: { port, host: '127.0.0.1' }, keyPrefix: `sy-cut:${RUN}:` });
    const r = await startEnvelope({ history: { topics: ['chat/#'] }, store, storeTimeoutMs: 500, limits: { rate: false } });
    try {
      const pub = await connect(r.url('/ws?token=alice'));
      const sub = await connect(r.url('/ws?token=bob'));
      await sub.request('Subscribe', { topics: ['chat/a', 'live/x'] });
      const before = await pub.request('Broadcast', { topic: 'chat/a', payload: 'before' });
      expect(before.data).toMatchObject({ offset: 1 });

      await kill(redis);
      const refused = await publishUntil(pub, 'chat/a', (reply) => reply.type === 'Error', 'a refused publish');
      expect(refused.data).toMatchObject({ code: 503, details: { retry_after_ms: expect.any(Number) } });
      await liveStillFlows(r, pub, sub, 1);

      // Redis is back (empty: no persistence); the store reconnects on its own. The history it
      // had is gone, so the topic starts a new epoch: an old position will say recovered: false.
      redis = await ownRedis(port);
      const after = await publishUntil(pub, 'chat/a', (reply) => reply.type === 'Ack', 'a publish once Redis is back');
      expect(after.data.offset).toBe(1);
      expect(after.data.epoch).not.toBe(before.data.epoch);
      await liveStillFlows(r, pub, sub, 2);
    } finally {
      await r.stop();
      await kill(redis).catch(() => {});
    }
  }, 120_000);
});

describe.skipIf(skipPostgres)("PostgreSQL terminating the store's connections", () => {
  it('answers store publishes with a reply every time (Ack, or 503 + retry_after_ms), keeps live traffic flowing, and reconnects by itself', async () => {
    const application_name = `sy-cut-${RUN}`;
    const prefix = `sy_cut_${RUN}_`;
    const store = new PostgresStore({ pool: { connectionString: POSTGRES_URL, application_name, max: 4 }, tablePrefix: prefix });
    const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    const r = await startEnvelope({ history: { topics: ['chat/#'] }, store, storeTimeoutMs: 1000, limits: { rate: false } });
    try {
      const pub = await connect(r.url('/ws?token=alice'));
      const sub = await connect(r.url('/ws?token=bob'));
      await sub.request('Subscribe', { topics: ['chat/a', 'live/x'] });
      expect((await pub.request('Broadcast', { topic: 'chat/a', payload: 0 })).type).toBe('Ack');

      const terminate = async () =>
        (await admin.query<{ n: number }>('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [application_name])).rows[0]!.n;
      let terminated = 0;
      const replies: Array<{ type: string; data: Record<string, any> }> = [];
      for (let round = 0; round < 10; round++) {
        // Publishes in flight while their connections are cut.
        const inflight = Array.from({ length: 5 }, (_, i) => pub.request('Broadcast', { topic: 'chat/a', payload: round * 10 + i }));
        terminated += await terminate();
        replies.push(...(await Promise.all(inflight)));
      }
      expect(terminated).toBeGreaterThan(0);
      for (const reply of replies) {
        if (reply.type === 'Ack') continue;
        expect(reply.data).toMatchObject({ code: 503, details: { retry_after_ms: expect.any(Number) } });
      }
      await liveStillFlows(r, pub, sub, 1);
      const after = await publishUntil(pub, 'chat/a', (reply) => reply.type === 'Ack', 'a publish after the terminations');
      // Gapless: every acknowledged publish has its own offset, the last one the newest.
      const acked = [...replies.filter((x) => x.type === 'Ack'), after].map((x) => x.data.offset as number);
      expect(new Set(acked).size).toBe(acked.length);
      expect(Math.max(...acked)).toBe(after.data.offset);
    } finally {
      await r.stop();
      for (const t of ['history', 'topics', 'queue', 'schema']) await admin.query(`DROP TABLE IF EXISTS ${prefix}${t}`);
      await admin.end();
    }
  }, 120_000);
});
