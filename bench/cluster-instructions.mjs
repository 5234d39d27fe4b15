// Instructions per publish on the delivering node, counted by valgrind's callgrind: the
// load-independent companion of cluster.mjs (whose wall-clock ratios drift with whatever else
// runs on the machine). The same fan-out (one topic, --subscribers on node B) in three layouts:
//   single  the publisher on node B, no bus;
//   cross   the publisher on node A, so B receives every message from Redis;
//   acks    as cross, both nodes with `clusterAcks`: B also answers every publish with its count.
// Node B runs bench/servers/cluster-node.mjs (the built package) under callgrind; node A, Redis
// and the clients run normally. After the warm-up the counters are zeroed, --publishes messages
// are published (at most 64 not yet delivered to every subscriber), and the counters are dumped
// once B has delivered all of them: every instruction B ran for exactly those publishes.
// single/cross is the cost ratio of a delivering node in a cluster (≥ 0.70 is the target for
// throughput per delivering node, when B is CPU-bound).
//
// --node=a counts node A (the publisher's node) instead, for the cost of acks where they are
// waited for (layouts cross and acks only).
//
//   npm run build && node bench/cluster-instructions.mjs [--subscribers=500] [--publishes=1000]
//                        [--warmup=500] [--runs=1] [--layouts=single,cross,acks] [--node=b]
import { execFileSync, spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import { fileURLToPath } from 'node:url';
import { LightWs } from './lib/wsclient.mjs';

const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const SUBS = Number(args.subscribers ?? 500);
const PUBLISHES = Number(args.publishes ?? 1000);
const WARMUP = Number(args.warmup ?? 500);
const RUNS = Number(args.runs ?? 1);
const NODE = args.node ?? 'b';
const LAYOUTS = (args.layouts ?? (NODE === 'a' ? 'cross,acks' : 'single,cross,acks')).split(',');
const nodeScript = fileURLToPath(new URL('./servers/cluster-node.mjs', import.meta.url));
const root = fileURLToPath(new URL('..', import.meta.url));

function startNode(env, valgrindOut) {
  const argv = valgrindOut
    ? ['valgrind', ['--tool=callgrind', `--callgrind-out-file=${valgrindOut}`, '--dump-instr=no', '--collect-jumps=no', process.execPath, '--single-threaded', nodeScript]]
    : [process.execPath, [nodeScript]];
  const child = spawn(argv[0], argv[1], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`node exited ${code}`)));
    readline.createInterface({ input: child.stdout }).once('line', (line) => resolve({ child, port: JSON.parse(line).port }));
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function measure(layout) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-cluster-cg-'));
  const channel = layout === 'single' ? undefined : `bench:cluster-cg:${randomUUID()}`;
  const env = { ...(channel && { BENCH_CHANNEL: channel }), ...(layout === 'acks' && { BENCH_ACKS: '1' }) };
  const b = await startNode(env, NODE === 'b' ? `${dir}/cg.out` : null);
  const a = layout === 'single' ? null : await startNode(env, NODE === 'a' ? `${dir}/cg.out` : null);
  const counted = NODE === 'a' ? a : b;
  const topic = 'bench/cluster';
  let delivered = 0;
  let published = 0;
  let limit = 0;
  let pub = null;
  // With a request id, as in cluster.mjs: the publisher's node writes an Ack per publish.
  const payload = (n) => JSON.stringify({ type: 'Broadcast', id: `p${n}`, data: { topic, payload: { seq: n, text: 'x'.repeat(80) } } });
  const pump = () => {
    while (pub && published < limit && published * SUBS - delivered < 64 * SUBS) pub.send(payload(++published));
  };
  const subs = [];
  for (let i = 0; i < SUBS; i += 25) {
    const batch = await Promise.all(
      Array.from({ length: Math.min(25, SUBS - i) }, (_, j) => {
        const ws = new LightWs({ host: '127.0.0.1', port: b.port, path: `/ws?token=s${i + j}`, onMessage: () => {
          delivered++;
          pump();
        } });
        return ws.connect(600_000).then(() => ws);
      }),
    );
    subs.push(...batch);
  }
  for (const s of subs) s.send(JSON.stringify({ type: 'Subscribe', data: { topics: [topic] } }));
  while (delivered < SUBS * 2) await sleep(20); // welcome and subscription status
  delivered = 0;
  pub = new LightWs({ host: '127.0.0.1', port: (a ?? b).port, path: '/ws?token=publisher', onMessage: () => {} });
  await pub.connect(600_000);
  const run = async (n) => {
    limit += n;
    pump();
    while (delivered < limit * SUBS) await sleep(20);
  };
  await run(WARMUP);
  execFileSync('callgrind_control', ['-z', String(counted.child.pid)], { stdio: 'ignore' });
  await run(PUBLISHES);
  if (NODE === 'a') await sleep(3000); // the last publishes' counts come back to A
  execFileSync('callgrind_control', ['-d', 'measured', String(counted.child.pid)], { stdio: 'ignore' });
  pub.destroy();
  for (const s of subs) s.destroy();
  for (const n of [a, b]) if (n) {
    n.child.removeAllListeners('exit');
    n.child.kill('SIGKILL');
    await new Promise((r) => n.child.once('exit', r));
  }
  const dump = fs.readdirSync(dir).find((f) => f.startsWith('cg.out.'));
  const total = Number(/^(?:summary|totals): (\d+)/m.exec(fs.readFileSync(path.join(dir, dump), 'utf8'))[1]);
  fs.rmSync(dir, { recursive: true, force: true });
  return total / PUBLISHES;
}

const results = Object.fromEntries(LAYOUTS.map((l) => [l, []]));
for (let r = 0; r < RUNS; r++) {
  for (const layout of LAYOUTS) {
    const per = await measure(layout);
    results[layout].push(per);
    process.stderr.write(`run ${r + 1} ${layout}: ${Math.round(per).toLocaleString('en')} instructions per publish on node ${NODE.toUpperCase()}\n`);
  }
}
const median = (xs) => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)];
console.log(`instructions per publish on node ${NODE.toUpperCase()} (${SUBS} subscribers on B, ${PUBLISHES} publishes, medians of ${RUNS}):`);
const single = results.single ? median(results.single) : undefined;
for (const l of LAYOUTS) {
  const m = median(results[l]);
  const vs = single && l !== 'single' ? `  single/${l} = ${(single / m).toFixed(3)} (per-delivering-node throughput ratio when B is CPU-bound)` : '';
  console.log(`  ${l.padEnd(6)} ${Math.round(m).toLocaleString('en').padStart(12)}${vs}`);
}
if (results.cross && results.acks) console.log(`  acks cost on ${NODE.toUpperCase()}: ${((median(results.acks) / median(results.cross) - 1) * 100).toFixed(1)}% instructions vs cross`);
process.exit(0);
