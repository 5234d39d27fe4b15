// Cross-node fan-out over RedisBus, as a ratio of single-node fan-out in the same run.
//
//   npm run build && node bench/cluster.mjs [--subscribers=500] [--runs=3] [--measure=4000] [--history]
//
// With --history the topic keeps history in a RedisStore on the shared Redis (every layout, a key
// prefix per round, deleted after it): every publish is appended and numbered, and on two nodes
// every delivery goes through the ordering of history topics (lib/ordering.ts).
// Three layouts, interleaved round by round, each on fresh node processes (bench/servers/
// cluster-node.mjs), the delivering node pinned to CPU 0 and the other node to CPU 1:
//   single  one node, no bus: publisher and subscribers on it (the baseline);
//   local   two nodes on one Redis channel, publisher and subscribers on node B (B also
//           publishes every message to Redis: the cost of being in a cluster);
//   cross   publisher on node A, subscribers on node B: every delivery crossed Redis.
// The load generator is this process (bench/lib/wsclient.mjs, counting frames without parsing).
// Flow control: the publisher keeps at most `window` publishes not yet delivered to every
// subscriber (counted at the subscribers, since a publish on node A is acked before node B
// delivers), so no layout buries a node in backlog. Metric: deliveries per second at node B.
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LightWs } from './lib/wsclient.mjs';

const arg = (name, fallback) => Number(process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1] ?? fallback);
const SUBS = arg('subscribers', 500);
const RUNS = arg('runs', 3);
const WARMUP = arg('warmup', 1500);
const MEASURE = arg('measure', 4000);
const WINDOW = arg('window', 64);
const node = fileURLToPath(new URL('./servers/cluster-node.mjs', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));
const HISTORY = process.argv.includes('--history');

function startNode(cpu, channel, prefix) {
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, node], {
    cwd: root,
    env: { ...process.env, ...(channel && { BENCH_CHANNEL: channel }), ...(prefix && { BENCH_STORE_PREFIX: prefix }) },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`node exited ${code}`)));
    readline.createInterface({ input: child.stdout }).once('line', (line) => resolve({ child, port: JSON.parse(line).port }));
  });
}

async function connect(port, token, onMessage) {
  const ws = new LightWs({ host: '127.0.0.1', port, path: `/ws?token=${token}`, onMessage });
  await ws.connect();
  return ws;
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(layout) {
  const channel = layout === 'single' ? undefined : `bench:cluster:${randomUUID()}`;
  const prefix = HISTORY ? `bench:cluster:${randomUUID()}:` : undefined;
  const b = await startNode(0, channel, prefix);
  const a = layout === 'single' ? null : await startNode(1, channel, prefix);
  const topic = 'bench/cluster';
  let delivered = 0;
  let published = 0;
  let pub;
  const payload = JSON.stringify({ type: 'Broadcast', data: { topic, payload: { seq: 0, text: 'x'.repeat(80) } } });
  const pump = () => {
    while (pub && published * SUBS - delivered < WINDOW * SUBS) {
      published++;
      pub.send(payload);
    }
  };
  let welcomed = 0;
  const subs = [];
  for (let i = 0; i < SUBS; i += 50) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(50, SUBS - i) }, (_, j) =>
        connect(b.port, `s${i + j}`, () => {
          delivered++;
          if (pub) pump();
        }),
      ),
    );
    subs.push(...batch);
  }
  // Welcome and Status frames were counted as deliveries: subscribe, wait for them, then reset.
  for (const s of subs) s.send(JSON.stringify({ type: 'Subscribe', data: { topics: [topic] } }));
  const deadline = Date.now() + 30_000;
  while (delivered < SUBS * 2 && Date.now() < deadline) await sleep(10);
  welcomed = delivered;
  if (welcomed < SUBS * 2) throw new Error(`only ${welcomed} of ${SUBS * 2} welcomes and subscription statuses`);
  delivered = 0;
  pub = await connect(layout === 'cross' ? a.port : b.port, 'publisher', () => {});
  pump();
  await sleep(WARMUP);
  const start = delivered;
  const t0 = performance.now();
  await sleep(MEASURE);
  const rate = ((delivered - start) * 1000) / (performance.now() - t0);
  const p = pub;
  pub = null;
  p.destroy();
  for (const s of subs) s.destroy();
  for (const n of [a, b]) if (n) {
    n.child.kill('SIGKILL');
    await new Promise((r) => n.child.once('exit', r));
  }
  if (prefix) await dropKeys(prefix);
  return rate;
}

async function dropKeys(prefix) {
  const { Redis } = await import('ioredis');
  const admin = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const keys = [];
  for await (const batch of admin.scanStream({ match: `${prefix}*`, count: 500 })) keys.push(...batch);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
}

const layouts = ['single', 'local', 'cross'];
const rates = Object.fromEntries(layouts.map((l) => [l, []]));
for (let run = 0; run < RUNS; run++) {
  for (const layout of layouts) {
    const rate = await measure(layout);
    rates[layout].push(rate);
    process.stderr.write(`run ${run + 1} ${layout}: ${Math.round(rate).toLocaleString('en')} deliveries/s\n`);
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const base = median(rates.single);
console.log(`fan-out 1 → ${SUBS} subscribers on node B${HISTORY ? ', history topic (RedisStore)' : ''}, medians of ${RUNS} (deliveries/s):`);
for (const l of layouts) {
  const m = median(rates[l]);
  const ratios = rates[l].map((r, i) => (r / rates.single[i]).toFixed(2)).join(', ');
  console.log(`  ${l.padEnd(6)} ${Math.round(m).toLocaleString('en').padStart(10)}  ${(m / base).toFixed(2)}× single  (per round: ${ratios})`);
}
