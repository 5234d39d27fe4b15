/**
 * The messages a node publishes in one turn leave in one frame (adapters/bus-link.ts), on RedisBus
 * and NatsBus: a raw subscriber on the channel sees one frame holding them in order; the other
 * node receives each, in order; a turn's messages past BATCH_CHARS go in more than one frame, and
 * a message bigger than that alone still goes through.
 */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { connect as natsConnect } from 'nats';
import { afterEach, describe, expect, it } from 'vitest';
import type { Bus, BusMessage } from 'switchyard';
import { NatsBus } from 'switchyard/nats';
import { RedisBus } from 'switchyard/redis';
import { BATCH_CHARS } from '../adapters/bus-link.js';
import { until } from './cluster/procs.js';
import { NATS_SERVERS, REDIS_URL, serviceUp } from './cluster/services.js';

let cleanup: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const step of cleanup.reverse()) await step();
  cleanup = [];
});

const notify = (node: string, n: number, text = ''): BusMessage => ({ v: 1, node, kind: 'notify', target: 'all', data: { n, text }, sentAt: 1 });

interface Case {
  name: string;
  port: number;
  make: (channel: string) => Bus;
  tap: (channel: string) => Promise<string[]>;
}

const cases: Case[] = [
  {
    name: 'RedisBus',
    port: 6379,
    make: (channel) => new RedisBus({ connection: REDIS_URL, channel: `sy-batch:${channel}`, probeIntervalMs: 0 }),
    tap: async (channel) => {
      const redis = new Redis(REDIS_URL);
      cleanup.push(async () => redis.disconnect());
      const frames: string[] = [];
      redis.on('message', (_c: string, frame: string) => frames.push(frame));
      await redis.subscribe(`sy-batch:${channel}`);
      return frames;
    },
  },
  {
    name: 'NatsBus',
    port: 4222,
    make: (channel) => new NatsBus({ connection: { servers: NATS_SERVERS }, subject: `sy-batch.${channel}`, probeIntervalMs: 0 }),
    tap: async (channel) => {
      const nc = await natsConnect({ servers: NATS_SERVERS });
      cleanup.push(() => nc.close());
      const frames: string[] = [];
      nc.subscribe(`sy-batch.${channel}`, { callback: (_e, msg) => frames.push(msg.string()) });
      await nc.flush();
      return frames;
    },
  },
];

for (const c of cases) {
  describe(`${c.name} batches a turn's messages`, async () => {
    if (!(await serviceUp(c.name === 'RedisBus' ? 'Redis' : 'NATS', c.port))) return;

    async function pair(): Promise<{ a: Bus; received: BusMessage[]; frames: string[] }> {
      const channel = randomUUID();
      const frames = await c.tap(channel);
      const a = c.make(channel);
      const b = c.make(channel);
      cleanup.push(() => a.close(), () => b.close());
      const received: BusMessage[] = [];
      await a.start('node-a', () => undefined);
      await b.start('node-b', (m) => received.push(m));
      return { a, received, frames };
    }

    it('sends the messages of one turn in one frame, received one by one in order', async () => {
      const { a, received, frames } = await pair();
      await Promise.all([1, 2, 3].map((n) => a.publish(notify('node-a', n))));
      await a.publish(notify('node-a', 4)); // a later turn: a frame of its own, a lone message
      await until(() => received.length === 4 && frames.filter((f) => f.startsWith('node-a\n')).length >= 2, 'four messages, and the frames on the tap');
      expect(received.map((m) => (m as { data: { n: number } }).data.n)).toEqual([1, 2, 3, 4]);
      const mine = frames.filter((f) => f.startsWith('node-a\n'));
      expect(mine).toHaveLength(2);
      expect(JSON.parse(mine[0]!.slice('node-a\n'.length))).toEqual([1, 2, 3].map((n) => notify('node-a', n)));
      expect(JSON.parse(mine[1]!.slice('node-a\n'.length))).toEqual(notify('node-a', 4));
    });

    it('splits a turn past BATCH_CHARS, and sends a bigger message alone', async () => {
      const { a, received, frames } = await pair();
      const third = 'x'.repeat(Math.floor(BATCH_CHARS / 3));
      const big = 'y'.repeat(BATCH_CHARS + 10);
      await Promise.all([notify('node-a', 1, third), notify('node-a', 2, third), notify('node-a', 3, third), notify('node-a', 4, big), notify('node-a', 5)].map((m) => a.publish(m)));
      await until(() => received.length === 5 && frames.filter((f) => f.startsWith('node-a\n')).length >= 4, 'five messages, and the frames on the tap');
      expect(received.map((m) => (m as { data: { n: number } }).data.n)).toEqual([1, 2, 3, 4, 5]);
      // [1, 2] fill a frame; 3 would overflow it and starts the next; 4 is bigger than a frame and
      // goes alone; 5 follows it in the last frame of the turn.
      const bodies = frames.filter((f) => f.startsWith('node-a\n')).map((f) => JSON.parse(f.slice('node-a\n'.length)) as BusMessage | BusMessage[]);
      const ns = (m: BusMessage) => (m as { data: { n: number } }).data.n;
      expect(bodies.map((b) => (Array.isArray(b) ? b.map(ns) : ns(b)))).toEqual([[1, 2], 3, 4, 5]);
    });
  });
}
