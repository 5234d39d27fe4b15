// Instructions per handshake (connect + authenticate + subscribe + close), counted by valgrind's
// callgrind in the server: the load-independent figure for connection churn, as
// bench/instructions.mjs is for publishes. Wall-clock connect rates on this shared 2-core VM swing
// by 2× from minute to minute; this repeats to within a few tenths of a percent.
//
//   npm run build && node bench/churn-instructions.mjs [--systems=raw,switchyard] [--close=echo,server]
//        [--warmup=1500] [--handshakes=1500] [--concurrency=1] [--runs=1] [--node-flags=--single-threaded]
//
// Each server is the bench's own (servers/raw-ws.mjs, servers/switchyard.mjs) under callgrind.
// This process runs the connect scenario's loop (lib/drivers.mjs, the light client): `concurrency`
// workers (default 1: with more in flight, how many handshakes one event-loop turn handles
// depends on how slow valgrind and the machine are, and the count moved by ~8%) each connect
// with a token, wait for the welcome, subscribe to one topic, wait for the Ack and close; `close`
// is the client's behaviour (LightWs.close: echo = the scenario's client closes first, server =
// its server closes first; also client, drop). After the warm-up
// and after the measured batch it waits until every client socket has closed, so the counters
// (zeroed with callgrind_control -z, dumped with -d) hold exactly the measured handshakes' work,
// teardown included. User space only: the kernel's TCP work (TIME_WAIT, the FIN exchange) is not
// counted; use perf for that (PROFILING.md).
import { execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { makeDriver } from './lib/drivers.mjs';

const here = path.dirname(fileURLToPath(import.meta.url));
const args = Object.fromEntries(process.argv.slice(2).map((a) => a.replace(/^--/, '').split('=')));
const systems = (args.systems ?? 'raw,switchyard').split(',');
const closes = (args.close ?? 'echo,server').split(',');
const warmup = Number(args.warmup ?? 1500);
const handshakes = Number(args.handshakes ?? 1500);
const concurrency = Number(args.concurrency ?? 1);
const runs = Number(args.runs ?? 1);
const nodeFlags = (args['node-flags'] ?? '--single-threaded').split(' ').filter(Boolean);
const FILES = { raw: 'raw-ws.mjs', switchyard: 'switchyard.mjs' };
// --servers=DIR: the servers (and, through the package's self-reference, the build) of another
// checkout or a copy of one, to compare two builds without rebuilding in between.
const serversDir = args.servers ?? path.join(here, 'servers');

try {
  execFileSync('valgrind', ['--version'], { stdio: 'ignore' });
} catch {
  console.error('valgrind is not installed (Debian: apt-get install valgrind)');
  process.exit(2);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let failures = 0;

async function listening(port, exited) {
  for (let i = 0; i < 3000; i++) {
    if (exited.done) throw new Error('server exited before listening');
    const ok = await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(200);
  }
  throw new Error('server did not listen within 600 s');
}

/** `n` handshakes by `concurrency` workers; resolves when every socket has closed. */
async function churn(driver, n, close, from) {
  let next = 0;
  const closed = [];
  const worker = async () => {
    while (next < n) {
      const i = from + next++;
      let c = null;
      try {
        c = await driver.connect({ token: `c${i}` }, 600_000);
        await c.subscribe([`bench/connect/${i}`], 600_000);
      } catch (err) {
        // valgrind makes a cold server slow: a handshake may time out (408) during the warm-up
        failures++;
        c?.destroy();
        continue;
      }
      const socket = c.ws.socket;
      closed.push(socket.destroyed ? Promise.resolve() : new Promise((r) => socket.once('close', r)));
      c.close(close);
    }
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
  await Promise.all(closed);
}

const results = [];
for (const close of closes) {
  for (const system of systems) {
    for (let run = 1; run <= runs; run++) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sy-churn-'));
      const port = 20_000 + Math.floor(Math.random() * 20_000);
      const config = JSON.stringify({ host: '127.0.0.1', port, options: {} });
      const server = spawn(
        'valgrind',
        ['--tool=callgrind', `--callgrind-out-file=${dir}/cg.out`, '--dump-instr=no', '--collect-jumps=no', process.execPath, ...nodeFlags, path.join(serversDir, FILES[system]), config],
        { stdio: ['ignore', 'ignore', 'pipe'] },
      );
      const exited = { done: false };
      const gone = new Promise((resolve) => server.once('exit', () => resolve((exited.done = true))));
      process.once('exit', () => server.kill('SIGKILL'));
      await listening(port, exited);
      const driver = await makeDriver(system, { host: '127.0.0.1', port });
      await churn(driver, warmup, close, 0);
      await sleep(500); // closes the server has not yet seen through (its 'close' events) settle
      execFileSync('callgrind_control', ['-z', String(server.pid)], { stdio: 'ignore' });
      await churn(driver, handshakes, close, warmup);
      await sleep(500);
      execFileSync('callgrind_control', ['-d', 'measured', String(server.pid)], { stdio: 'ignore' });
      server.kill('SIGTERM');
      await gone;
      const dump = fs.readdirSync(dir).find((f) => f.startsWith('cg.out.'));
      const text = fs.readFileSync(path.join(dir, dump), 'utf8');
      const total = Number(/^(?:summary|totals): (\d+)/m.exec(text)[1]);
      fs.rmSync(dir, { recursive: true, force: true });
      const per = total / handshakes;
      if (failures > 0) console.log(`  (${failures} handshakes failed, e.g. timed out while the server warmed up under valgrind)`);
      failures = 0;
      results.push({ close, system, per });
      console.log(`close=${close} · ${system} · run ${run}/${runs}: ${Math.round(per).toLocaleString('en-US')} instructions per handshake`);
    }
  }
}
for (const close of closes) {
  const med = (s) => {
    const xs = results.filter((r) => r.close === close && r.system === s).map((r) => r.per).sort((a, b) => a - b);
    return xs[xs.length >> 1];
  };
  if (systems.includes('raw') && systems.includes('switchyard')) {
    console.log(`close=${close}: switchyard / raw ws = ${(med('switchyard') / med('raw')).toFixed(3)} (instructions per handshake, user space)`);
  }
}
process.exit(0);
