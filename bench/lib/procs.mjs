// Child processes for one bench step: the server under test and the load generator.
// Every child is registered in `children` the moment it is forked and killed by `killAll()`,
// which run.mjs calls after each step, on error, on SIGINT/SIGTERM and on exit.
import { fork } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const BENCH = path.resolve(here, '..');

export const children = new Set();
/** Peer brokers (nats-server, mosquitto) started by a server wrapper: killed with it. */
const brokers = new Set();

function killBroker(pid) {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    // already gone
  }
  brokers.delete(pid);
}

export function killAll(signal = 'SIGKILL') {
  for (const pid of [...brokers]) killBroker(pid);
  for (const c of children) {
    try {
      if (c.exitCode === null && c.signalCode === null) c.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** Soft and hard limits on open files for this process (children inherit them). */
export function fileLimits() {
  try {
    const text = fs.readFileSync('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\S+)\s+(\S+)/m.exec(text);
    const num = (s) => (s === 'unlimited' ? Infinity : Number(s));
    if (m) return { soft: num(m[1]), hard: num(m[2]) };
  } catch {
    // not Linux
  }
  return { soft: 1024, hard: 1024 };
}

/** Number of ephemeral ports the kernel hands out per (source address, destination) pair. */
export function ephemeralPorts() {
  try {
    const [lo, hi] = fs.readFileSync('/proc/sys/net/ipv4/ip_local_port_range', 'utf8').trim().split(/\s+/).map(Number);
    return hi - lo + 1;
  } catch {
    return 16_384;
  }
}

/**
 * fork() through node-wrap.sh when the child must be pinned to a CPU (`cpu`) or needs more open
 * files than the soft limit (`nofile`); the IPC channel survives the shell's exec.
 */
function forkWith(modulePath, args, { nofile, cpu, execArgv, stdio, role }) {
  // BENCH_PROFILE=server|loadgen|both writes V8 CPU profiles to bench/results/ (git-ignored).
  const prof = process.env.BENCH_PROFILE;
  if (prof && (prof === role || prof === 'both')) {
    execArgv = [...execArgv, '--cpu-prof', `--cpu-prof-dir=${path.join(BENCH, 'results')}`, `--cpu-prof-name=${role}-${path.basename(modulePath, '.mjs')}-${Date.now()}.cpuprofile`];
  }
  const opts = { execArgv, stdio, env: { ...process.env } };
  if (nofile || cpu !== undefined) {
    opts.execPath = path.join(BENCH, 'lib', 'node-wrap.sh');
    opts.env.BENCH_NODE = process.execPath;
    if (nofile) opts.env.BENCH_NOFILE = String(nofile);
    if (cpu !== undefined) opts.env.BENCH_CPU = String(cpu);
  }
  const child = fork(modulePath, args, opts);
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

function waitFor(child, predicate, what, timeoutMs, tail) {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`${what}: no answer within ${timeoutMs} ms${tailText(tail)}`)), timeoutMs);
    const onMessage = (m) => {
      const r = predicate(m);
      if (r === undefined) return;
      if (r instanceof Error) done(r);
      else done(null, r);
    };
    const onExit = (code, signal) => done(new Error(`${what}: process exited (${signal ?? code})${tailText(tail)}`));
    const done = (err, value) => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
      if (err) reject(err);
      else resolve(value);
    };
    child.on('message', onMessage);
    child.on('exit', onExit);
  });
}

function tailText(tail) {
  const lines = tail?.lines ?? [];
  return lines.length ? `\n    last output:\n    ${lines.slice(-15).join('\n    ')}` : '';
}

function captureTail(stream, tail) {
  let partial = '';
  stream?.on('data', (chunk) => {
    const text = partial + chunk.toString();
    const lines = text.split('\n');
    partial = lines.pop() ?? '';
    for (const l of lines) {
      tail.lines.push(l);
      if (tail.lines.length > 40) tail.lines.shift();
    }
  });
}

/** Fork a bench server; resolves with { child, port, pid, info, tail } once it listens. */
export async function startServer(file, config, { nofile, cpu, flags = [], timeoutMs = 20_000 } = {}) {
  const tail = { lines: [] };
  const child = forkWith(path.join(BENCH, 'servers', file), [JSON.stringify(config)], {
    nofile,
    cpu,
    role: 'server',
    execArgv: ['--expose-gc', '--max-old-space-size=8192', ...flags],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  captureTail(child.stdout, tail);
  captureTail(child.stderr, tail);
  const ready = await waitFor(
    child,
    (m) => (m?.type === 'ready' ? m : m?.type === 'failed' ? new Error(`server failed to start: ${m.error}`) : undefined),
    `server ${file}`,
    timeoutMs,
    tail,
  );
  // A peer wrapper reports its broker's pid: that process dies with the wrapper (the wrapper
  // asks the kernel for it too, see servers/external.mjs), whichever way the step ends.
  if (ready.pid && ready.pid !== child.pid) {
    brokers.add(ready.pid);
    if (child.exitCode !== null || child.signalCode !== null) killBroker(ready.pid);
    else child.once('exit', () => killBroker(ready.pid));
  }
  return { child, port: ready.port, pid: ready.pid, info: ready.info ?? {}, tail };
}

/** Fork a load generator; `relayTo(server)` then forwards its rpc requests to the server. */
export async function startLoadgen({ nofile, cpu, onLog } = {}) {
  const tail = { lines: [] };
  const child = forkWith(path.join(BENCH, 'lib', 'loadgen.mjs'), [], {
    nofile,
    cpu,
    role: 'loadgen',
    execArgv: ['--max-old-space-size=8192'],
    stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
  });
  captureTail(child.stdout, tail);
  captureTail(child.stderr, tail);
  let server = null;
  child.on('message', (m) => {
    if (m?.type === 'rpc') {
      if (server?.child.connected) server.child.send(m);
    } else if (m?.type === 'log') {
      onLog?.(m.text);
    }
  });
  await waitFor(child, (m) => (m?.type === 'ready' ? m : undefined), 'load generator', 10_000, tail);
  return {
    child,
    tail,
    relayTo(s) {
      server = s;
      s.child.on('message', (m) => {
        if (m?.type === 'rpc-result' && child.connected) child.send(m);
      });
    },
  };
}

/** Run one scenario in the load generator; rejects if it errors, dies, the server dies, or time runs out. */
export function runLoad(loadgen, server, msg, timeoutMs) {
  let cancel = () => {};
  const serverDied = new Promise((_, reject) => {
    const onExit = (code, signal) =>
      reject(new Error(`server process exited during the run (${signal ?? code})${tailText(server.tail)}`));
    server.child.once('exit', onExit);
    cancel = () => server.child.off('exit', onExit);
  });
  const result = waitFor(
    loadgen.child,
    (m) =>
      m?.type === 'result' ? m.result : m?.type === 'error' ? new Error(`load generator: ${m.error}`) : undefined,
    'load generator run',
    timeoutMs,
    loadgen.tail,
  );
  // Whichever loses the race must not become an unhandled rejection.
  result.catch(() => {});
  serverDied.catch(() => {});
  loadgen.child.send({ type: 'run', timeoutMs: timeoutMs - 2000, ...msg });
  return Promise.race([result, serverDied]).finally(cancel);
}

/**
 * Kill a child and wait (bounded) for it to be reaped. SIGKILL, unless CPU profiles are being
 * taken: then SIGTERM first, so V8 can write the profile on exit.
 */
export function stop(child, timeoutMs = 4000) {
  if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const t = setTimeout(() => {
      child.kill('SIGKILL');
      resolve();
    }, timeoutMs);
    child.once('exit', () => {
      clearTimeout(t);
      resolve();
    });
    child.kill(process.env.BENCH_PROFILE ? 'SIGTERM' : 'SIGKILL');
  });
}
