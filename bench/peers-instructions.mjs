// Instructions per delivery for the peer brokers (nats-server, mosquitto) and switchyard on the
// same load, counted by valgrind's callgrind: user-space work that does not depend on how busy
// the machine is, for a comparison the shared 2-core box cannot give by wall clock.
//
//   npm run build && node bench/peers-instructions.mjs [--systems=switchyard,nats,mosquitto]
//        [--subscribers=200] [--warmup=4000] [--publishes=10000] [--runs=3] [--inflight=64]
//
// The load is topics' (each subscriber on its own topic, publishes to random topics, one
// delivery each, ~100-byte payloads), as a closed loop of `--inflight` deliveries sent and not yet
// counted (acks, where sent, are read but not waited for), so every system gets the same frames.
// The server runs under callgrind (switchyard through bench/instructions.mjs --serve, the same
// settings as servers/switchyard.mjs; the peers with their bench config, servers/external.mjs);
// after the warm-up the counters are zeroed (callgrind_control -z), the measured batch is
// published and counted, and the counters dumped (-d). Counted: every instruction of every
// thread of the server (nats-server's Go runtime included; valgrind runs one thread at a time);
// not counted: the kernel (system calls: one write per delivery and one read per publish for all).
// Instructions are not time (they ignore cache misses and the kernel), but on the same machine
// they rank user-space work per delivery reliably.
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { PEER_CONFIGS, peerBinary, peerVersion, sparePort, canConnect } from './servers/external.mjs';
import { makeDriver, createSink } from './lib/drivers.mjs';
import { payload, rng } from './lib/harness.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const systems = (args.systems ?? 'switchyard,nats,mosquitto').split(',').filter(Boolean);
const subscribers = Number(args.subscribers ?? 200);
const warmup = Number(args.warmup ?? 4000);
const publishes = Number(args.publishes ?? 10_000);
const runs = Number(args.runs ?? 3);
const inflight = Number(args.inflight ?? 64);

try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('valgrind is not installed (Debian: apt-get install valgrind)');
  process.exit(2);
}

// Never leave a server under valgrind behind, whatever ends this process.
const servers = new Set();
process.on('exit', () => {
  for (const s of servers) if (s.exitCode === null) s.kill('SIGKILL');
});
for (const sig of ['SIGINT', 'SIGTERM']) process.on(sig, () => process.exit(130));

const summary = [];
for (const system of systems) {
  if (system !== 'switchyard' && !PEER_CONFIGS[system]) throw new Error(`unknown system ${system}`);
  if (system !== 'switchyard' && !peerBinary(system)) {
    console.log(`${system}: not installed`);
    summary.push({ system, median: null });
    continue;
  }
  const results = [];
  for (let run = 1; run <= runs; run++) {
    const r = await measure(system);
    results.push(r);
    console.log(`${system} run ${run}/${runs}: ${Math.round(r).toLocaleString('en-US')} instructions per delivery (${publishes.toLocaleString('en-US')} deliveries, ${subscribers} subscribers)`);
  }
  const sorted = [...results].sort((a, b) => a - b);
  summary.push({ system, median: sorted[Math.floor(sorted.length / 2)], min: sorted[0], max: sorted.at(-1) });
}
console.log('');
for (const s of summary) {
  const v = s.system === 'switchyard' ? '' : ` ${peerVersion(s.system) ?? ''}`;
  console.log(`${`${s.system}${v}`.padEnd(22)} ${s.median === null ? 'not installed' : `median ${Math.round(s.median).toLocaleString('en-US')} instructions per delivery (runs ${Math.round(s.min).toLocaleString('en-US')}–${Math.round(s.max).toLocaleString('en-US')})`}`);
}
process.exit(0);

async function measure(system) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `sy-peer-cg-${system}-`));
  const cg = ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.out`, '--dump-instr=no', '--collect-jumps=no'];
  let port;
  let argv;
  let cwd = dir;
  if (system === 'switchyard') {
    port = await sparePort();
    // --single-threaded: V8 compiles and collects on the main thread (see instructions.mjs)
    argv = [...cg, process.execPath, '--single-threaded', path.join(here, 'instructions.mjs'), `--serve=${port}`];
    cwd = path.resolve(here, '..');
  } else {
    const cfg = PEER_CONFIGS[system];
    const ports = [];
    while (ports.length < cfg.ports) {
      const p = await sparePort();
      if (!ports.includes(p)) ports.push(p);
    }
    const { args: a, files } = cfg.setup(dir, ports, {});
    for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
    port = ports[0];
    argv = [...cg, peerBinary(system), ...a];
  }
  // Go's asynchronous preemption (SIGURG) trips a callgrind assertion; cooperative preemption
  // only (GODEBUG=asyncpreemptoff=1) runs nats-server under it. One CPU, as in the bench.
  const env = { ...process.env, GODEBUG: 'asyncpreemptoff=1', GOMAXPROCS: '1' };
  const server = spawn('valgrind', argv, { cwd, env, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  server.stderr.on('data', (d) => (stderr = (stderr + d).slice(-4000)));
  servers.add(server);
  const exited = new Promise((resolve) => server.once('exit', resolve));
  try {
    const until = performance.now() + 120_000;
    while (!(await canConnect('127.0.0.1', port))) {
      if (server.exitCode !== null || performance.now() > until) throw new Error(`${system} under valgrind did not listen:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 200));
    }
    const driver = await makeDriver(system, { host: '127.0.0.1', port });
    const sink = createSink(1000);
    const conns = [];
    for (let i = 0; i < subscribers; i++) {
      const c = await driver.connect({ token: `u${i}`, sink }, 600_000);
      await c.subscribe([`bench/topics/${i}`], 600_000);
      c.ready();
      conns.push(c);
    }
    const pub = await driver.connect({ token: 'publisher' }, 600_000);
    const random = rng(42); // the same topic sequence every run, as in scenarios/topics.mjs
    const topic = () => `bench/topics/${Math.floor(random() * subscribers)}`;
    await burst(pub, sink, warmup, topic);
    execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
    await burst(pub, sink, publishes, topic);
    execFileSync('callgrind_control', ['-d', 'measured', String(server.pid)], { stdio: 'ignore' });
    for (const c of [...conns, pub]) c.destroy();
    // (the server exits as it answers: a reset here is fine)
    if (system === 'switchyard') await new Promise((resolve) => http.get(`http://127.0.0.1:${port}/quit`, (res) => res.resume().on('end', resolve)).on('error', resolve));
    else server.kill('SIGTERM');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 30_000))]);
    const dumps = fs.readdirSync(dir).filter((f) => f.startsWith('cg.out.'));
    // the -d dump is the one whose trigger names "measured"
    const text = dumps.map((f) => fs.readFileSync(path.join(dir, f), 'utf8')).find((t) => /measured/.test(t.slice(0, 2000)));
    if (!text) throw new Error(`no callgrind dump for the measured batch in ${dumps.join(', ')}`);
    const total = Number(/^(?:summary|totals): (\d+)/m.exec(text)[1]);
    return total / publishes;
  } finally {
    if (server.exitCode === null) server.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** Publish `n` messages keeping `inflight` deliveries outstanding; resolves when all are counted. */
function burst(pub, sink, n, topic) {
  return new Promise((resolve) => {
    const start = sink.count;
    let sent = 0;
    let queued = false;
    const pump = () => {
      queued = false;
      pub.cork();
      while (sent - (sink.count - start) < inflight && sent < n) {
        sent++;
        pub.publish(topic(), payload(sent), () => {});
      }
      pub.uncork();
    };
    sink.onCount = () => {
      if (sink.count - start >= n) {
        sink.onCount = null;
        resolve();
        return;
      }
      if (!queued) {
        queued = true;
        queueMicrotask(pump);
      }
    };
    if (n === 0) resolve();
    else pump();
  });
}
