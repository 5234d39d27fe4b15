// The system under test: switchyard, imported from the built package (dist/, through the
// package's self-reference), mounted on a bare http.Server with the envelope protocol on /ws.
// Bench settings: any non-empty ?token= is a principal with read/write on '#', no rate limit,
// no heartbeat, a large send buffer. config.options.history, when present, is passed through as
// the broker's `history` option (the history scenario); if the broker refuses it, the server
// starts without it and reports `historySupported: false`, so the row reads "n/a".
import http from 'node:http';
import { readConfig, serve, fail } from './common.mjs';

const config = readConfig();
const opts = config.options ?? {};

async function main() {
  const { createBroker, envelope } = await import('switchyard');
  const { attach } = await import('switchyard/http');

  const base = {
    endpoints: [{ path: '/ws', protocol: envelope() }],
    authenticate: async ({ credentials }) =>
      credentials?.token ? { id: credentials.token, grants: [{ topic: '#', access: 'readwrite' }] } : null,
    limits: { rate: false, maxBufferedBytes: 16 * 1024 * 1024, maxConnections: 1_000_000 },
    heartbeat: false,
    // BENCH_SWITCHYARD_OPTIONS='{"history":{"topics":["bench/#"]}}' (experiments, not reports)
    ...(process.env.BENCH_SWITCHYARD_OPTIONS ? JSON.parse(process.env.BENCH_SWITCHYARD_OPTIONS) : {}),
  };

  const info = {};
  let cleanup = async () => {};
  // config.options.store: 'redis' or 'postgres' (the history scenario's durable rows), on the
  // servers BENCH_REDIS / BENCH_POSTGRES name (default: this machine's), under a fresh prefix.
  if (opts.store) {
    const run = `bench_${process.pid}_${Date.now().toString(36)}`;
    if (opts.store === 'redis') {
      const { RedisStore } = await import('switchyard/redis');
      const store = new RedisStore({ redis: process.env.BENCH_REDIS ?? 'redis://127.0.0.1:6379', keyPrefix: `${run}:` });
      base.store = store;
      // Before the broker closes the store: this run's keys only (SCAN by prefix, never FLUSH).
      cleanup = async () => {
        for await (const keys of store.client.scanStream({ match: `${run}:*` })) if (keys.length) await store.client.del(...keys);
      };
    } else {
      const { PostgresStore } = await import('switchyard/postgres');
      const store = new PostgresStore({ pool: process.env.BENCH_POSTGRES ?? 'postgres://postgres@127.0.0.1:5432/test', tablePrefix: `${run}_` });
      base.store = store;
      cleanup = async () => {
        for (const t of ['history', 'topics', 'queue', 'schema']) await store.pool.query(`DROP TABLE IF EXISTS ${run}_${t}`);
      };
    }
    info.store = opts.store;
  }
  let broker;
  if (opts.history) {
    try {
      broker = createBroker({ ...base, history: opts.history });
      info.historyRequested = opts.history;
      info.historySupported = true; // provisional: the load generator confirms with a History request
    } catch (err) {
      info.historySupported = false;
      info.historyError = String(err?.message ?? err);
      broker = createBroker(base);
    }
  } else {
    broker = createBroker(base);
  }

  const server = http.createServer((req, res) => {
    res.writeHead(404).end();
  });
  attach(broker, server);
  server.on('error', fail);
  server.listen(config.port ?? 0, config.host ?? '127.0.0.1', () => {
    serve({
      system: 'switchyard',
      port: server.address().port,
      info,
      stats: () => broker.stats(),
      rpc: {
        // How many records the broker keeps for a topic: confirms history is really on (or off).
        history: async ({ topic }) => {
          if (typeof broker.history !== 'function') return { supported: false, reason: 'broker.history() does not exist' };
          try {
            const page = await broker.history(topic, { limit: 1 });
            return { supported: true, records: page.latestOffset ?? page.records.length };
          } catch (err) {
            // e.g. SY_ERR_… "<topic> keeps no history" when the option is off for the topic
            return { supported: true, records: 0, error: String(err?.message ?? err) };
          }
        },
      },
      close: async () => {
        await cleanup().catch(() => {});
        await broker.close();
        await new Promise((r) => server.close(r));
      },
    });
  });
}

main().catch(fail);
