/** examples/realtime-service with STORE=redis://… and STORE=postgres://…: history survives a restart. */
import { afterAll, describe, expect, it } from 'vitest';
import { Redis } from 'ioredis';
import pg from 'pg';
import { start } from '../examples/realtime-service/server.js';
import { connect } from './helpers.js';
import { POSTGRES_URL, REDIS_URL, RUN, skipWithout } from './store-services.js';

const backends = [
  { name: 'redis', url: REDIS_URL, skip: await skipWithout('Redis'), prefix: `sy_example_${RUN}` },
  { name: 'postgres', url: POSTGRES_URL, skip: await skipWithout('PostgreSQL'), prefix: `sy_example_${RUN}_` },
];

afterAll(async () => {
  if (!backends[0]!.skip) {
    const admin = new Redis(REDIS_URL);
    for await (const keys of admin.scanStream({ match: `sy_example_${RUN}:*` })) if ((keys as string[]).length) await admin.del(...(keys as string[]));
    await admin.quit();
  }
  if (!backends[1]!.skip) {
    const admin = new pg.Pool({ connectionString: POSTGRES_URL, max: 1 });
    for (const t of ['history', 'topics', 'queue', 'schema']) await admin.query(`DROP TABLE IF EXISTS sy_example_${RUN}_${t}`);
    await admin.end();
  }
});

for (const backend of backends) {
  describe.skipIf(backend.skip)(`examples/realtime-service with STORE=${backend.name}://…`, () => {
    it('keeps history across a restart of the service, so a client recovers what it missed', async () => {
      const options = { port: 0, secret: 'x'.repeat(32), logger: false as const, store: backend.url, storePrefix: backend.prefix };
      const topic = `chat.${RUN}`;
      let service = await start(options);
      let position = { offset: 0, epoch: '' };
      try {
        for (let n = 1; n <= 3; n++) {
          const { offset, epoch } = await service.broker.publish(topic, { n });
          if (n === 1) position = { offset: offset!, epoch: epoch! };
        }
      } finally {
        await service.close();
      }
      service = await start(options);
      try {
        const { token } = await service.issueToken('ann');
        const client = await connect(`${service.wsUrl}?token=${token}`);
        await client.request('Subscribe', { topics: [topic], recover: { [topic]: position } });
        const status = client.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
        expect(status.data.details.recovered).toEqual({ [topic]: true });
        expect(client.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload.n)).toEqual([2, 3]);
        await client.close();
      } finally {
        await service.close();
      }
    }, 60_000);
  });
}
