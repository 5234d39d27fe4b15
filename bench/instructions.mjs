// Instructions per publish, counted by valgrind's callgrind: a figure that repeats to within
// ~0.2% run after run, where wall-clock rates on a shared VM drift by 15-20%. Use it to judge a
// change to the publish path worth a few percent; use run.mjs for rates and ratios.
//
//   npm run build && node bench/instructions.mjs [--subscribers=200] [--warmup=4000]
//                        [--publishes=10000] [--runs=3] [--node-flags=--single-threaded]
//                        [--ids=on|off|both]
//
// --ids: `on` (the default) gives every publish an id and paces on its Ack; `off` publishes
// without ids (no Acks) and paces on deliveries counted; `both` alternates the two in each run,
// both paced on deliveries (the only difference is the id and its Ack), and prints the ratio.
//
// The server (the built package in dist/, the same settings as servers/switchyard.mjs) runs
// under callgrind; this process connects the subscribers (one topic each) and a publisher that
// keeps 64 publishes in flight to random topics. After the warm-up it zeroes the counters
// (callgrind_control -z), publishes the measured batch and dumps them (callgrind_control -d), so
// the figure is every instruction the server ran for exactly those publishes: JavaScript, V8's
// compiler and GC (on the main thread: see nodeFlags), libuv. The kernel is not counted (system
// calls are outside user space); JIT frames have no names in callgrind's output (use perf for
// where the time goes). To compare two builds, run it in each checkout (after npm run build).
// Needs valgrind (Debian package `valgrind`); the server runs ~50x slower under it, so keep the
// numbers modest.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));

if (args.serve !== undefined) await serve(Number(args.serve));
else await measure();

/** The server side: the system under test, stopped by GET /quit so callgrind writes its files. */
async function serve(port) {
  const { createBroker, envelope } = await import('switchyard');
  const { attach } = await import('switchyard/http');
  const broker = createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    authenticate: async ({ credentials }) => (credentials?.token ? { id: credentials.token, grants: [{ topic: '#', access: 'readwrite' }] } : null),
    limits: { rate: false, maxBufferedBytes: 16 * 1024 * 1024, maxConnections: 1_000_000 },
    heartbeat: false,
  });
  const server = http.createServer((req, res) => {
    if (req.url !== '/quit') return res.writeHead(404).end();
    res.end();
    setImmediate(() => process.exit(0));
  });
  attach(broker, server);
  // Port 0: the kernel picks a free one (a random pick collided with other processes' ports).
  server.listen(port, '127.0.0.1', () => process.stdout.write(`listening ${server.address().port}\n`));
}

async function measure() {
  const subscribers = Number(args.subscribers ?? 200);
  const warmup = Number(args.warmup ?? 4000);
  const publishes = Number(args.publishes ?? 10_000);
  const runs = Number(args.runs ?? 3);
  // --single-threaded: V8 compiles and collects on the main thread, at points fixed by the work
  // done rather than by how slow valgrind makes the clock. With background compiler and GC
  // threads, the same build gave counts 12% apart.
  const nodeFlags = (args['node-flags'] ?? '--single-threaded').split(' ').filter(Boolean);
  try {
    execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
  } catch {
    console.error('valgrind is not installed (Debian: apt-get install valgrind)');
    process.exit(2);
  }
  const { makeDriver, createSink } = await import('./lib/drivers.mjs');
  const { payload, rng } = await import('./lib/harness.mjs');
  const ids = args.ids ?? 'on';
  if (!['on', 'off', 'both'].includes(ids)) throw new Error(`--ids must be on, off or both, not ${ids}`);
  const modes = ids === 'both' ? ['id', 'no id'] : [ids === 'on' ? 'id' : 'no id'];
  const paceOnDeliveries = ids !== 'on';
  const results = new Map(modes.map((m) => [m, []]));
  for (let round = 0; round < runs * modes.length; round++) {
    const run = Math.floor(round / modes.length) + 1;
    // Alternate which mode goes first from run to run.
    const mode = modes[(round + run - 1) % modes.length];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-callgrind-'));
    const server = spawn(
      'valgrind',
      ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.out`, '--dump-instr=no', '--collect-jumps=no', process.execPath, ...nodeFlags, fileURLToPath(import.meta.url), '--serve=0'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const exited = new Promise((resolve) => server.once('exit', resolve));
    const port = await new Promise((resolve, reject) => {
      let out = '';
      server.stdout.on('data', (d) => {
        out += d;
        const m = /listening (\d+)/.exec(out);
        if (m) resolve(Number(m[1]));
      });
      server.once('exit', (code) => reject(new Error(`server exited (${code}) before listening`)));
    });
    const driver = await makeDriver('switchyard', { host: '127.0.0.1', port });
    const sink = createSink(1000);
    const withId = mode === 'id';
    for (let i = 0; i < subscribers; i++) {
      const c = await driver.connect({ token: `u${i}`, sink }, 600_000);
      await c.subscribe([`bench/topics/${i}`], 600_000);
      c.ready();
    }
    const pub = await driver.connect({ token: 'publisher' }, 600_000);
    const random = rng(42); // the same topic sequence every run, as in scenarios/topics.mjs
    const topic = () => `bench/topics/${Math.floor(random() * subscribers)}`;
    const send = paceOnDeliveries ? (n) => paced(pub, sink, n, topic, payload, withId) : (n) => burst(pub, n, topic, payload);
    await send(warmup);
    execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
    await send(publishes);
    execFileSync('callgrind_control', ['-d', 'measured', String(server.pid)], { stdio: 'ignore' });
    await new Promise((resolve) => http.get(`http://127.0.0.1:${port}/quit`, (res) => res.resume().on('end', resolve)));
    await exited;
    const dump = fs.readdirSync(dir).find((f) => f.startsWith('cg.out.'));
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(fs.readFileSync(path.join(dir, dump), 'utf8'))[1]);
    fs.rmSync(dir, { recursive: true, force: true });
    results.get(mode).push(total / publishes);
    const label = modes.length > 1 || ids === 'off' ? `, ${mode}` : '';
    console.log(`run ${run}/${runs}${label}: ${Math.round(total / publishes).toLocaleString('en-US')} instructions per publish (${publishes.toLocaleString('en-US')} publishes, ${subscribers} subscribers)`);
  }
  const medians = new Map();
  for (const [mode, list] of results) {
    const sorted = [...list].sort((a, b) => a - b);
    medians.set(mode, sorted[Math.floor(sorted.length / 2)]);
    const label = modes.length > 1 || ids === 'off' ? ` (${mode})` : '';
    console.log(`median${label}: ${Math.round(medians.get(mode)).toLocaleString('en-US')} instructions per publish`);
  }
  if (modes.length > 1) {
    const extra = medians.get('id') - medians.get('no id');
    console.log(`an id costs ${Math.round(extra).toLocaleString('en-US')} instructions per publish; no id / id = ${(medians.get('no id') / medians.get('id')).toFixed(3)} (the rate ratio id / no id if the server is the bound)`);
  }
  process.exit(0);
}

/**
 * Publishes `n` messages keeping at most 64 not yet delivered (each reaches one subscriber),
 * refilled once per event-loop turn; with `withId` each also carries an id and its Ack is
 * awaited at the end. Resolves when every delivery (and Ack) has arrived.
 */
function paced(pub, sink, n, topic, payload, withId) {
  return new Promise((resolve) => {
    const base = sink.count;
    let sent = 0;
    let acked = withId ? 0 : n;
    let queued = false;
    const check = () => {
      if (sink.count - base === n && acked === n) {
        sink.onCount = null;
        resolve();
        return true;
      }
      return false;
    };
    const pump = () => {
      queued = false;
      if (check()) return;
      pub.cork();
      while (sent - (sink.count - base) < 64 && sent < n) {
        sent++;
        pub.publish(topic(), payload(sent), withId ? onAck : null);
      }
      pub.uncork();
    };
    const later = () => {
      if (!queued) {
        queued = true;
        setImmediate(pump);
      }
    };
    const onAck = () => {
      acked++;
      later();
    };
    sink.onCount = later;
    if (n === 0) resolve();
    else pump();
  });
}

/** Publishes `n` messages keeping 64 in flight; resolves when all are acknowledged. */
function burst(pub, n, topic, payload) {
  return new Promise((resolve) => {
    let sent = 0;
    let acked = 0;
    let queued = false;
    const pump = () => {
      queued = false;
      pub.cork();
      while (sent - acked < 64 && sent < n) {
        sent++;
        pub.publish(topic(), payload(sent), onAck);
      }
      pub.uncork();
    };
    const onAck = () => {
      if (++acked === n) return resolve();
      if (!queued) {
        queued = true;
        queueMicrotask(pump);
      }
    };
    if (n === 0) resolve();
    else pump();
  });
}
