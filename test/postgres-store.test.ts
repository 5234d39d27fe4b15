/** PostgresStore runs the shipped Store conformance suite against the real PostgreSQL on this machine. */
import { afterAll, describe } from 'vitest';
import pg from 'pg';
import type { Store } from 'switchyard';
import { PostgresStore, type PostgresStoreOptions } from 'switchyard/postgres';
import { storeConformance } from 'switchyard/testing';
import { POSTGRES_URL, RUN, skipWithout } from './store-services.js';

const skip = await skipWithout('PostgreSQL');
const tablePrefix = `sy_test_${RUN}_`;
const admin = skip ? undefined : new pg.Pool({ connectionString: POSTGRES_URL, max: 2 });
const names = new WeakMap<Store, string>();
let made = 0;
const make = (options: PostgresStoreOptions = {}): PostgresStore => {
  const application_name = `sy-test-${RUN}-${++made}`;
  const store = new PostgresStore({ pool: { connectionString: POSTGRES_URL, application_name }, tablePrefix, maxQueuedPerPrincipal: 5, ...options });
  names.set(store, application_name);
  return store;
};

afterAll(async () => {
  if (admin === undefined) return;
  // Only this run's tables.
  for (const table of ['history', 'topics', 'queue', 'schema']) await admin.query(`DROP TABLE IF EXISTS ${tablePrefix}${table}`);
  await admin.end();
});

describe.skipIf(skip)('PostgresStore', () => {
  storeConformance('PostgresStore', () => make(), {
    directQueue: { capacity: 5, overflow: 'drop-oldest' },
    makeWithoutDirectQueue: () => make({ maxQueuedPerPrincipal: 0 }),
    makeWithDirectTtl: (ttlMs) => make({ queuedTtlMs: ttlMs }),
    shared: true,
    // The long-running test makes ~5,000 round trips: on a busy shared machine that is minutes.
    timeoutMs: 180_000,
    // The topic's row gone (a restore without it, a manual cleanup): its history is lost.
    loseHistory: async (store, topic) => {
      await admin!.query(`DELETE FROM ${tablePrefix}topics WHERE topic = $1`, [topic]);
      return store;
    },
    connections: async (store) => {
      const { rows } = await admin!.query<{ n: number }>('SELECT count(*)::int AS n FROM pg_stat_activity WHERE application_name = $1', [names.get(store)]);
      return rows[0]!.n;
    },
  });
});
