// Shared plumbing for the bench servers: each system under test runs in its own process, forked
// by run.mjs with an IPC channel. The server measures itself (CPU, event-loop utilisation,
// memory after GC) and answers over IPC, so the load generator never has to guess from outside.
import { performance } from 'node:perf_hooks';

/** The JSON config run.mjs passes as argv[2]: { host, port, options }. */
export function readConfig() {
  const raw = process.argv[2];
  return raw ? JSON.parse(raw) : { host: '127.0.0.1', port: 0, options: {} };
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Full GC several times, so RSS and heap figures are not full of garbage waiting to be swept. */
async function collect() {
  if (typeof globalThis.gc !== 'function') return false;
  for (let i = 0; i < 3; i++) {
    globalThis.gc();
    await sleep(20);
  }
  return true;
}

function snapshot(appStats) {
  const mem = process.memoryUsage();
  return {
    pid: process.pid,
    at: performance.now(),
    cpu: process.cpuUsage(),
    elu: performance.eventLoopUtilization(),
    rss: mem.rss,
    heapUsed: mem.heapUsed,
    external: mem.external,
    arrayBuffers: mem.arrayBuffers,
    app: safe(appStats),
  };
}

function safe(fn) {
  try {
    return fn ? fn() : undefined;
  } catch (err) {
    return { error: String(err?.message ?? err) };
  }
}

/**
 * Wire the process to run.mjs: report `ready`, answer RPCs, and exit when the parent goes away.
 * @param {object} o
 * @param {string} o.system
 * @param {number} o.port            the port actually listened on
 * @param {() => object} [o.stats]   system-specific counters (connections, subscriptions…)
 * @param {() => Promise<void>} o.close
 * @param {object} [o.info]          extra facts for the report (e.g. history supported or not)
 * @param {Record<string, (args: object) => unknown>} [o.rpc]  system-specific extra methods
 * @param {number} [o.pid]           the process that does the work, when it is not this one (a
 *                                   peer broker this process started: its CPU is read from /proc)
 * @param {(gc: boolean) => Promise<object>} [o.snapshot]  replaces the in-process stats/memory
 *                                   snapshot (peer brokers: /proc figures of o.pid)
 */
export function serve(o) {
  let closing = false;
  const shutdown = async (code) => {
    if (closing) return;
    closing = true;
    const force = setTimeout(() => process.exit(code), 2000);
    force.unref();
    try {
      await o.close();
    } catch {
      // the process is going away either way
    }
    process.exit(code);
  };

  process.on('message', async (msg) => {
    if (!msg || msg.type !== 'rpc') return;
    let result;
    let error;
    try {
      switch (msg.method) {
        case 'stats':
          result = o.snapshot ? await o.snapshot(false) : snapshot(o.stats);
          break;
        case 'memory': {
          if (o.snapshot) {
            result = await o.snapshot(true);
            break;
          }
          const gc = await collect();
          result = { ...snapshot(o.stats), gc };
          break;
        }
        case 'close':
          result = { ok: true };
          setImmediate(() => shutdown(0));
          break;
        default:
          if (!o.rpc?.[msg.method]) throw new Error(`unknown rpc ${msg.method}`);
          result = await o.rpc[msg.method](msg.args ?? {});
      }
    } catch (err) {
      error = String(err?.stack ?? err);
    }
    process.send?.({ type: 'rpc-result', id: msg.id, result, error });
  });
  // The orchestrator died or let go: never outlive it.
  process.on('disconnect', () => shutdown(0));
  process.on('SIGTERM', () => shutdown(0));
  process.on('SIGINT', () => shutdown(0));
  process.send?.({ type: 'ready', system: o.system, port: o.port, pid: o.pid ?? process.pid, info: o.info ?? {} });
}

/** Report a startup failure to run.mjs and exit non-zero. */
export function fail(err) {
  process.send?.({ type: 'failed', error: String(err?.stack ?? err) });
  setTimeout(() => process.exit(1), 50);
}
