/** RedisBus runs the Bus conformance suite on the shared Redis, on a channel and client name of its own. */
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll } from 'vitest';
import { RedisBus } from 'switchyard/redis';
import { busConformance } from './conformance/bus.js';
import { REDIS_URL, serviceUp } from './cluster/services.js';

const name = `sy-bus-${randomUUID().slice(0, 8)}`;
const admin = new Redis(REDIS_URL, { lazyConnect: true });
const openConnections = async () => ((await admin.client('LIST')) as string).split('\n').filter((line) => line.includes(` name=${name} `)).length;
afterAll(() => admin.disconnect());
if (await serviceUp('Redis', 6379)) {
  busConformance('RedisBus', (size) => {
    const channel = `sy-test:${randomUUID()}`;
    return Array.from({ length: size }, () => new RedisBus({ connection: REDIS_URL, channel, connectionName: name }));
  }, { openConnections });
}
