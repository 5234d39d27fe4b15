// Cross-node fan-out over RedisBus, as a ratio of single-node fan-out in the same run, and the cost
// of cluster-wide acks.
//
//   npm run build && node bench/cluster.mjs [--subscribers=500] [--runs=3] [--measure=4000] [--history]
//
// With --history the topic keeps history in a RedisStore on the shared Redis (every layout, a key
// prefix per round, deleted after it): every publish is appended and numbered, and on two nodes
// every delivery goes through the ordering of history topics (lib/ordering.ts).
// Four layouts, interleaved round by round, each on fresh node processes (bench/servers/
// cluster-node.mjs), the delivering node pinned to CPU 0 and the other node to CPU 1:
//   single  one node, no bus: publisher and subscribers on it (the baseline);
//   local   two nodes on one Redis channel, publisher and subscribers on node B (B also
//           publishes every message to Redis: the cost of being in a cluster);
//   cross   publisher on node A, subscribers on node B: every delivery crossed Redis;
//   acks    as cross, both nodes with `clusterAcks`: B answers every publish with its count
//           and A holds each Ack until B's count is in.
// The load generator is this process (bench/lib/wsclient.mjs, counting frames without parsing).
// Flow control: the publisher keeps at most `window` publishes not yet delivered to every
// subscriber (counted at the subscribers, since a publish on node A is acked before node B
// delivers), so no layout buries a node in backlog. Broadcasts carry a request id (Acks are sent).
// Metrics: deliveries per second at node B (wall clock: on a shared machine it moves with whatever
// else runs, Redis and the load generator included), and deliveries per CPU-second of node B
// (utime + stime from /proc: what one delivering node costs, much less sensitive to the others).
// For a load-independent figure use bench/cluster-instructions.mjs (callgrind).
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
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

const TICK = Number(execFileSync('getconf', ['CLK_TCK']).toString().trim()) || 100;

/** CPU seconds (user + system) a process has used so far. */
function cpuSeconds(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / TICK; // utime, stime (fields 14 and 15)
}

function startNode(cpu, channel, prefix, acks) {
  const child = spawn('taskset', ['-c', String(cpu), process.execPath, node], {
    cwd: root,
    env: { ...process.env, ...(channel && { BENCH_CHANNEL: channel }), ...(prefix && { BENCH_STORE_PREFIX: prefix }), ...(acks && { BENCH_ACKS: '1' }) },
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
  const acks = layout === 'acks';
  const b = await startNode(0, channel, prefix, acks);
  const a = layout === 'single' ? null : await startNode(1, channel, prefix, acks);
  const topic = 'bench/cluster';
  let delivered = 0;
  let published = 0;
  let pub;
  const payload = JSON.stringify({ type: 'Broadcast', data: { topic, payload: { seq: 0, text: 'x'.repeat(80) } } });
  const pump = () => {
    while (pub && published * SUBS - delivered < WINDOW * SUBS) {
      published++;
      pub.send(`${payload.slice(0, -1)},"id":"p${published}"}`);
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
  let acked = 0;
  pub = await connect(a !== null && layout !== 'local' ? a.port : b.port, 'publisher', () => acked++);
  pump();
  await sleep(WARMUP);
  const start = delivered;
  const published0 = published;
  const acked0 = acked;
  const cpuB = cpuSeconds(b.child.pid);
  const cpuA = a && cpuSeconds(a.child.pid);
  const t0 = performance.now();
  await sleep(MEASURE);
  const seconds = (performance.now() - t0) / 1000;
  const count = delivered - start;
  const result = {
    rate: count / seconds,
    perCpu: count / (cpuSeconds(b.child.pid) - cpuB),
    // CPU of node A per publish (µs), for the layouts where A publishes.
    aPerPublish: a && layout !== 'local' ? ((cpuSeconds(a.child.pid) - cpuA) * 1e6) / (published - published0) : null,
    acksPerSecond: (acked - acked0) / seconds,
  };
  const p = pub;
  pub = null;
  p.destroy();
  for (const s of subs) s.destroy();
  for (const n of [a, b]) if (n) {
    n.child.kill('SIGKILL');
    await new Promise((r) => n.child.once('exit', r));
  }
  if (prefix) await dropKeys(prefix);
  return result;
}

async function dropKeys(prefix) {
  const { Redis } = await import('ioredis');
  const admin = new Redis(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const keys = [];
  for await (const batch of admin.scanStream({ match: `${prefix}*`, count: 500 })) keys.push(...batch);
  if (keys.length > 0) await admin.del(...keys);
  await admin.quit();
}

const layouts = ['single', 'local', 'cross', 'acks'];
const results = Object.fromEntries(layouts.map((l) => [l, []]));
for (let run = 0; run < RUNS; run++) {
  for (const layout of layouts) {
    const r = await measure(layout);
    results[layout].push(r);
    const a = r.aPerPublish === null ? '' : `, node A ${r.aPerPublish.toFixed(1)} µs CPU per publish`;
    process.stderr.write(`run ${run + 1} ${layout}: ${Math.round(r.rate).toLocaleString('en')} deliveries/s, ${Math.round(r.perCpu).toLocaleString('en')} per CPU-second of node B${a}, ${Math.round(r.acksPerSecond).toLocaleString('en')} Acks/s\n`);
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
const fmt = (n) => Math.round(n).toLocaleString('en').padStart(10);
const rounds = (l, key, base) => results[l].map((r, i) => (r[key] / results[base][i][key]).toFixed(2)).join(', ');
console.log(`fan-out 1 → ${SUBS} subscribers on node B${HISTORY ? ', history topic (RedisStore)' : ''}, medians of ${RUNS}:`);
console.log('  layout  deliveries/s           per CPU-second of B');
for (const l of layouts) {
  const rate = median(results[l].map((r) => r.rate));
  const cpu = median(results[l].map((r) => r.perCpu));
  const base = (key) => median(results.single.map((r) => r[key]));
  console.log(`  ${l.padEnd(6)} ${fmt(rate)} ${(rate / base('rate')).toFixed(2)}×  ${fmt(cpu)} ${(cpu / base('perCpu')).toFixed(2)}× single  (per round: ${rounds(l, 'rate', 'single')} | ${rounds(l, 'perCpu', 'single')})`);
}
const aCost = (l) => median(results[l].map((r) => r.aPerPublish));
console.log(`cluster-wide acks (acks vs cross): deliveries/s ${(median(results.acks.map((r) => r.rate)) / median(results.cross.map((r) => r.rate))).toFixed(2)}×, per CPU-second of B ${(median(results.acks.map((r) => r.perCpu)) / median(results.cross.map((r) => r.perCpu))).toFixed(2)}×, node A CPU per publish ${aCost('cross').toFixed(1)} → ${aCost('acks').toFixed(1)} µs (per round: ${rounds('acks', 'rate', 'cross')} | ${rounds('acks', 'perCpu', 'cross')})`);
