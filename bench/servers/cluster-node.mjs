// One switchyard node for bench/cluster.mjs: the built package (dist/, through the package's
// self-reference), bench settings as in switchyard.mjs, and RedisBus on BENCH_CHANNEL when given
// (no bus otherwise: a single node), with `clusterAcks` when BENCH_ACKS is set; with
// BENCH_STORE_PREFIX the bench topic keeps history in a RedisStore. Prints {"port"} on stdout once
// listening.
import http from 'node:http';

const { createBroker, envelope } = await import('switchyard');
const channel = process.env.BENCH_CHANNEL;
const bus = channel ? new (await import('switchyard/redis')).RedisBus({ connection: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', channel, probeIntervalMs: 0, startTimeoutMs: 120_000 }) : undefined;
// BENCH_STORE_PREFIX: the bench topic keeps history in a RedisStore with that key prefix.
const prefix = process.env.BENCH_STORE_PREFIX;
const store = prefix ? new (await import('switchyard/redis')).RedisStore({ redis: process.env.REDIS_URL ?? 'redis://127.0.0.1:6379', keyPrefix: prefix }) : undefined;
const broker = createBroker({
  endpoints: [{ path: '/ws', protocol: envelope() }],
  authenticate: async ({ credentials }) => (credentials?.token ? { id: credentials.token, grants: [{ topic: '#', access: 'readwrite' }] } : null),
  limits: { rate: false, maxBufferedBytes: 16 * 1024 * 1024, maxConnections: 1_000_000 },
  heartbeat: false,
  ...(bus && { bus }),
  ...(process.env.BENCH_ACKS && { clusterAcks: true }),
  ...(store && { store, history: { topics: ['bench/#'] } }),
});
broker.on('error', (err) => process.stderr.write(`cluster-node: ${err.message}\n`));
const server = http.createServer((_req, res) => res.writeHead(404).end());
const { attach } = await import('switchyard/http');
attach(broker, server);
server.listen(0, '127.0.0.1', () => process.stdout.write(`${JSON.stringify({ port: server.address().port })}\n`));
process.on('SIGTERM', () => void broker.close().then(() => process.exit(0)));
