/** RedisStore runs the shipped Store conformance suite against the real Redis on this machine. */
import { afterAll, describe } from 'vitest';
import { Redis } from 'ioredis';
import type { Store } from 'switchyard';
import { RedisStore, type RedisStoreOptions } from 'switchyard/redis';
import { storeConformance } from 'switchyard/testing';
import { REDIS_URL, RUN, skipWithout } from './store-services.js';

const skip = await skipWithout('Redis');
const keyPrefix = `sy-test:${RUN}:`;
const admin = skip ? undefined : new Redis(REDIS_URL, { lazyConnect: true });
const names = new WeakMap<Store, string>();
let made = 0;
const make = (options: RedisStoreOptions = {}): RedisStore => {
  const connectionName = `sy-test-${RUN}-${++made}`;
  const store = new RedisStore({ redis: { ...redisOptions(), connectionName }, keyPrefix, maxQueuedPerPrincipal: 5, ...options });
  names.set(store, connectionName);
  return store;
};

function redisOptions() {
  const { hostname, port } = new URL(REDIS_URL);
  return { host: hostname, port: Number(port || 6379) };
}

afterAll(async () => {
  if (admin === undefined) return;
  // Only this run's keys: SCAN by prefix, never FLUSH.
  const stream = admin.scanStream({ match: `${keyPrefix}*`, count: 500 });
  for await (const keys of stream) if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
  await admin.quit();
});

describe.skipIf(skip)('RedisStore', () => {
  storeConformance('RedisStore', () => make(), {
    directQueue: { capacity: 5, overflow: 'drop-oldest' },
    makeWithoutDirectQueue: () => make({ maxQueuedPerPrincipal: 0 }),
    makeWithDirectTtl: (ttlMs) => make({ queuedTtlMs: ttlMs }),
    shared: true,
    // The topic's metadata gone (evicted, expired, or a restart without persistence).
    loseHistory: async (store, topic) => {
      await admin!.del(`${keyPrefix}history:{${topic}}:meta`);
      return store;
    },
    connections: async (store) => {
      const list = (await admin!.call('CLIENT', 'LIST')) as string;
      return list.split('\n').filter((line) => line.includes(` name=${names.get(store)} `)).length;
    },
  });
});
