/**
 * One broker node of examples/cluster: an http.Server with the envelope protocol on /ws, joined to
 * the other nodes through RedisBus on one Redis channel, with the cluster's registry (connection
 * limits, presence, where each principal is, revoked tokens) and store (offline direct messages)
 * in the same Redis, under keys prefixed with the channel name.
 *
 *   PORT=8091 npx tsx examples/cluster/node.ts     (REDIS_URL, default redis://127.0.0.1:6379; CHANNEL)
 *
 * Demo authentication: the token is the user name, allowed to read and write `demo/#`. A real host
 * checks its own tokens here (see examples/http-server).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createBroker, envelope, type Broker } from 'switchyard';
import { attach } from 'switchyard/http';
import { RedisBus, RedisRegistry, RedisStore } from 'switchyard/redis';

export interface ClusterNode {
  broker: Broker;
  port: number;
  stop(): Promise<void>;
}

export async function startNode(options: { port?: number; redisUrl?: string; channel?: string } = {}): Promise<ClusterNode> {
  const redis = options.redisUrl ?? 'redis://127.0.0.1:6379';
  const channel = options.channel ?? 'switchyard:example-cluster';
  const broker = createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    authenticate: ({ credentials }) => (credentials === undefined ? null : { id: credentials.token, grants: [{ topic: 'demo/#', access: 'readwrite' }] }),
    bus: new RedisBus({ connection: redis, channel }),
    registry: new RedisRegistry({ redis, keyPrefix: `${channel}:` }),
    store: new RedisStore({ redis, keyPrefix: `${channel}:` }),
  });
  // Bus gaps (a Redis restart) and failed publishes arrive here; a real host logs them.
  broker.on('error', (err: Error) => process.stderr.write(`[node ${broker.nodeId}] ${err.message}\n`));
  const server = http.createServer((_req, res) => res.writeHead(404).end());
  attach(broker, server);
  await new Promise<void>((done) => server.listen(options.port ?? 0, '127.0.0.1', done));
  return {
    broker,
    port: (server.address() as AddressInfo).port,
    stop: async () => {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const node = await startNode({ port: Number(process.env.PORT ?? 0), redisUrl: process.env.REDIS_URL, channel: process.env.CHANNEL });
  process.stdout.write(`${JSON.stringify({ listening: `ws://127.0.0.1:${node.port}/ws`, port: node.port, node: node.broker.nodeId })}\n`);
  const stop = () => void node.stop().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
