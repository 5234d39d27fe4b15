/** RedisRegistry runs the shipped Registry conformance suite against the real Redis on this machine, one client per handle. */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import { RedisRegistry } from 'switchyard/redis';
import { registryConformance } from 'switchyard/testing';
import { REDIS_URL, RUN, skipWithout } from './store-services.js';

const skip = await skipWithout('Redis');
const keyPrefix = `sy-test:${RUN}:registry:`;
const admin = skip ? undefined : new Redis(REDIS_URL, { lazyConnect: true });

afterAll(async () => {
  if (admin === undefined) return;
  // Only this run's keys: SCAN by prefix, never FLUSH.
  for await (const keys of admin.scanStream({ match: `${keyPrefix}*`, count: 500 })) {
    if ((keys as string[]).length > 0) await admin.del(...(keys as string[]));
  }
  await admin.quit();
});

describe.skipIf(skip)('RedisRegistry', () => {
  registryConformance('RedisRegistry', (size, { ttlMs }) =>
    Array.from({ length: size }, () => new RedisRegistry({ redis: REDIS_URL, keyPrefix, ttlMs, heartbeatMs: Math.floor(ttlMs / 3) })),
  );

  it('leaves a client it was given open, and closes one it opened', async () => {
    const client = new Redis(REDIS_URL);
    const given = new RedisRegistry({ redis: client, keyPrefix });
    await given.close();
    expect(await client.ping()).toBe('PONG');
    await client.quit();
    const own = new RedisRegistry({ redis: REDIS_URL, keyPrefix });
    await own.count('x');
    await own.close();
    await expect(own.client.ping()).rejects.toThrow();
  });

  it('checks its options: braces in the prefix, a ttl not above the heartbeat; defaults 5 s and 15 s', async () => {
    expect(() => new RedisRegistry({ keyPrefix: 'a{b}:' })).toThrow(/keyPrefix/);
    expect(() => new RedisRegistry({ redis: REDIS_URL, heartbeatMs: 1000, ttlMs: 1000 })).toThrow(/ttlMs/);
    expect(() => new RedisRegistry({ redis: REDIS_URL, heartbeatMs: -1 })).toThrow(/heartbeatMs/);
    const registry = new RedisRegistry({ redis: REDIS_URL, keyPrefix });
    expect([registry.heartbeatMs, registry.ttlMs]).toEqual([5000, 15_000]);
    await registry.close();
  });
});
