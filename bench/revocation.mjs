// How long a revocation takes to close a connection on another node (issue 13: within 100 ms).
//
//   node --import tsx bench/revocation.mjs [--rounds=30]
//
// Two broker processes (test/fixtures/cluster-node.ts) on the local Redis (RedisBus and
// RedisRegistry). Each round connects a client to node 2 with a fresh token
// id, asks node 1 to revoke that token id, and times from the moment the command is written to
// node 1's stdin to the client's close event (4002). The figure includes the stdin hop and the
// client's own event loop, so it is an upper bound of the broker's part. Prints median, p90, max.
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import WebSocket from 'ws';
import { NodeProcess } from '../test/cluster/nodes.ts';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const rounds = Number(args.rounds ?? 30);
const bus = 'redis';
const prefix = `sy-bench:revocation:${randomUUID()}:`;
const env = { SY_BUS: bus, SY_CHANNEL: `${prefix}bus`, SY_REGISTRY: 'redis', SY_KEY_PREFIX: prefix };

const [n1, n2] = await Promise.all([NodeProcess.start(env), NodeProcess.start(env)]);
const times = [];
try {
  for (let i = 0; i < rounds; i++) {
    const tokenId = `tid-${randomUUID()}`;
    const ws = new WebSocket(n2.url(`user-${i}:#|tid=${tokenId}`));
    await new Promise((resolve, reject) => {
      ws.once('message', resolve); // the Welcome: admitted
      ws.once('error', reject);
    });
    const closed = new Promise((resolve) => ws.once('close', (code) => resolve([code, performance.now()])));
    const start = performance.now();
    void n1.command({ cmd: 'revoke', tokenId });
    const [code, at] = await closed;
    if (code !== 4002) throw new Error(`round ${i}: closed ${code}, not 4002`);
    times.push(at - start);
  }
} finally {
  await Promise.all([n1.kill('SIGTERM'), n2.kill('SIGTERM')]);
  // What the run left in Redis (remembered revocations, registry entries).
  const redis = new Redis('redis://127.0.0.1:6379');
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}
times.sort((a, b) => a - b);
const at = (q) => times[Math.min(times.length - 1, Math.floor(q * times.length))];
console.log(`revocation on another node (${bus}, ${rounds} rounds): median ${at(0.5).toFixed(1)} ms, p90 ${at(0.9).toFixed(1)} ms, max ${times.at(-1).toFixed(1)} ms`);
