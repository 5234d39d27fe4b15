// Peer brokers (nats-server, mosquitto): not Node code, so the bench "server" process is a thin
// wrapper that writes a config into a fresh temp dir, starts the broker on spare 127.0.0.1 ports
// (never the machine's shared services on 4222 / 1883), waits until its WebSocket port accepts
// connections, and reports the BROKER's pid to run.mjs: the load generator reads that pid's CPU
// from /proc at the window's edges, exactly as for the Node servers. The wrapper itself idles
// (it only answers IPC), and the broker inherits its CPU pinning and open-file limit.
//
// The broker must never outlive the step: it is started through `setpriv --pdeathsig KILL` when
// available (the kernel kills it when the wrapper dies, even by SIGKILL), run.mjs kills the
// reported pid as well (procs.mjs), and the wrapper kills it on disconnect / SIGTERM.
//
// Importing this module has no side effects: run.mjs uses `peerBinary()` to report a peer that is
// not installed as "not installed" without starting anything.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { readConfig, serve, fail } from './common.mjs';

/**
 * Each peer's config, written into a fresh temp dir per step: `ports` spare 127.0.0.1 ports are
 * allocated first (the first is the WebSocket port). Also used by peers-instructions.mjs.
 */
export const PEER_CONFIGS = {
  // nats-server: WebSocket without TLS or compression, a client TCP port and a monitoring port
  // (/varz), no auth, defaults otherwise (max_pending 64 MB per client, write_deadline 10 s).
  nats: {
    ports: 3,
    setup: (dir, [ws, client, monitor]) => ({
      args: ['-c', 'nats.conf'],
      files: {
        'nats.conf': [
          `listen: "127.0.0.1:${client}"`,
          `http: "127.0.0.1:${monitor}"`,
          'max_connections: 1000000',
          'websocket {',
          `  listen: "127.0.0.1:${ws}"`,
          '  no_tls: true',
          '  compression: false',
          '}',
          '',
        ].join('\n'),
      },
    }),
  },
  // mosquitto: `listener N` + `protocol websockets`, anonymous, no persistence, TCP_NODELAY.
  // 2.0.11 refuses to start when its only listener is a websockets one ("Unable to start any
  // listening sockets"), so a plain MQTT listener on a second spare port comes along, unused.
  mosquitto: {
    ports: 2,
    unsupported: /[Ww]ebsockets support not available|not compiled with websockets/,
    setup: (dir, [ws, tcp]) => ({
      args: ['-c', 'mosquitto.conf'],
      files: {
        'mosquitto.conf': [
          // As root, mosquitto would switch to the `mosquitto` user, which clears the parent-death
          // signal that ties it to the step; stay the user we are.
          ...(process.getuid?.() === 0 ? ['user root'] : []),
          'allow_anonymous true',
          'persistence false',
          'log_dest stderr',
          'log_type error',
          'log_type warning',
          'connection_messages false',
          'set_tcp_nodelay true',
          'max_keepalive 65535',
          `listener ${tcp} 127.0.0.1`,
          `listener ${ws} 127.0.0.1`,
          'protocol websockets',
          '',
        ].join('\n'),
      },
    }),
  },
};

/** Where each peer's binary is looked for: an env override, the Debian path, then $PATH. */
export const PEER_BINARIES = {
  nats: { env: 'BENCH_NATS_SERVER', name: 'nats-server', debian: '/usr/sbin/nats-server' },
  mosquitto: { env: 'BENCH_MOSQUITTO', name: 'mosquitto', debian: '/usr/sbin/mosquitto' },
};

function executable(p) {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Path of the peer's binary, or null when it is not installed. */
export function peerBinary(system) {
  const b = PEER_BINARIES[system];
  if (!b) return null;
  if (process.env[b.env]) return executable(process.env[b.env]) ? process.env[b.env] : null;
  if (executable(b.debian)) return b.debian;
  for (const dir of (process.env.PATH ?? '').split(':')) {
    if (dir && executable(path.join(dir, b.name))) return path.join(dir, b.name);
  }
  return null;
}

/** The binary's version line (`nats-server: v2.9.10`, `mosquitto version 2.0.11`), or null. */
export function peerVersion(system) {
  const bin = peerBinary(system);
  if (!bin) return null;
  try {
    const args = system === 'nats' ? ['--version'] : ['-h'];
    let text;
    try {
      text = execFileSync(bin, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 3000 });
    } catch (err) {
      text = `${err.stdout ?? ''}${err.stderr ?? ''}`; // mosquitto -h exits non-zero
    }
    const m = /v?(\d+\.\d+\.\d+)/.exec(text);
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

/** A port nothing listens on right now (the kernel's pick for port 0, released at once). */
export function sparePort(host = '127.0.0.1') {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

export function canConnect(host, port) {
  return new Promise((resolve) => {
    const s = net.connect({ host, port });
    const done = (ok) => {
      s.destroy();
      resolve(ok);
    };
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
    s.setTimeout(500, () => done(false));
  });
}

let pdeathsig = null;
function hasPdeathsig() {
  if (pdeathsig === null) {
    try {
      pdeathsig = /pdeathsig/.test(execFileSync('setpriv', ['--help'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }));
    } catch {
      pdeathsig = false;
    }
  }
  return pdeathsig;
}

/** CPU time (µs, like process.cpuUsage) and RSS (bytes) of a process, from /proc. */
function procFigures(pid) {
  const tps = 100;
  let cpu = { user: 0, system: 0 };
  let rss = NaN;
  try {
    const text = fs.readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    cpu = { user: (Number(f[11]) / tps) * 1e6, system: (Number(f[12]) / tps) * 1e6 };
    const status = fs.readFileSync(`/proc/${pid}/status`, 'latin1');
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    if (m) rss = Number(m[1]) * 1024;
  } catch {
    // gone
  }
  return { cpu, rss };
}

/**
 * Start a peer broker and serve it to run.mjs.
 * @param {object} o
 * @param {'nats'|'mosquitto'} o.system
 * @param {number} o.ports  spare ports to allocate; the first is the WebSocket port
 * @param {(dir: string, ports: number[], options: object) => {args: string[], files: Record<string, string>}} o.setup
 * @param {(pid: number, ports: number[]) => Promise<object|undefined>} [o.appStats]  broker-side counters (memory rpc only)
 * @param {string} [o.gcNote]  a note for memory figures (e.g. Go's GC cannot be forced from outside)
 * @param {RegExp} [o.unsupported]  broker output that means "this build cannot do WebSocket"
 */
export async function runPeer(o) {
  const config = readConfig();
  const host = '127.0.0.1';
  const bin = peerBinary(o.system);
  if (!bin) return fail(new Error(`${PEER_BINARIES[o.system].name} is not installed`));
  const ports = [];
  for (let i = 0; i < (o.ports ?? PEER_CONFIGS[o.system].ports); i++) {
    let p;
    do p = await sparePort(host);
    while (ports.includes(p));
    ports.push(p);
  }
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `bench-${o.system}-`));
  const { args, files } = (o.setup ?? PEER_CONFIGS[o.system].setup)(dir, ports, config.options ?? {});
  for (const [name, text] of Object.entries(files)) fs.writeFileSync(path.join(dir, name), text);
  const cmd = hasPdeathsig() ? 'setpriv' : bin;
  const argv = hasPdeathsig() ? ['--pdeathsig', 'KILL', '--', bin, ...args] : args;
  const child = spawn(cmd, argv, { cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
  const tail = [];
  const keep = (chunk) => {
    for (const l of chunk.toString().split('\n')) {
      if (!l) continue;
      tail.push(l);
      if (tail.length > 30) tail.shift();
    }
  };
  child.stdout.on('data', keep);
  child.stderr.on('data', keep);
  let exited = null;
  child.once('exit', (code, signal) => {
    exited = signal ?? code;
  });
  const removeDir = () => fs.rmSync(dir, { recursive: true, force: true });
  const kill = () => {
    try {
      if (exited === null) child.kill('SIGKILL');
    } catch {
      // gone
    }
  };
  process.on('exit', () => {
    kill();
    removeDir();
  });

  // Wait (bounded) for the WebSocket port.
  const until = performance.now() + 10_000;
  let up = false;
  while (!up && exited === null && performance.now() < until) {
    up = await canConnect(host, ports[0]);
    if (!up) await new Promise((r) => setTimeout(r, 50));
  }
  if (!up) {
    kill();
    const out = tail.join('\n    ');
    if ((o.unsupported ?? PEER_CONFIGS[o.system].unsupported)?.test(out)) {
      // Installed, but this build cannot serve WebSocket: the step reads n/a, not FAILED.
      serve({
        system: o.system,
        port: 0,
        info: { peerSupported: false, peerError: `${PEER_BINARIES[o.system].name} cannot serve WebSocket here: ${tail.at(-1) ?? ''}` },
        close: async () => {},
      });
      return;
    }
    return fail(new Error(`${PEER_BINARIES[o.system].name} did not open ${host}:${ports[0]} (${exited === null ? 'timeout' : `exited ${exited}`})\n    ${out}`));
  }
  removeDir(); // the broker has read its config
  const version = peerVersion(o.system);
  serve({
    system: o.system,
    port: ports[0],
    pid: child.pid,
    info: { peerSupported: true, binary: bin, version, ports },
    snapshot: async (forMemory) => {
      const { cpu, rss } = procFigures(child.pid);
      const app = forMemory && o.appStats ? await o.appStats(child.pid, ports).catch(() => undefined) : undefined;
      return {
        pid: child.pid,
        at: performance.now(),
        cpu,
        elu: null,
        rss,
        heapUsed: NaN,
        external: NaN,
        arrayBuffers: NaN,
        app,
        // no in-process GC to force: C (mosquitto) has none; Go's (nats-server) runs on its own
        gc: 'n/a',
        gcNote: o.gcNote,
      };
    },
    close: async () => kill(),
  });
}
