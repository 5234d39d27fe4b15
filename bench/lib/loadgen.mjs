// The load generator: one process, forked by run.mjs for one (scenario, system, run) step.
// It imports the scenario module, runs its `load(ctx)` against the server whose port it is
// given, and sends back one result. Server-side figures (CPU, memory, counters) are fetched
// through run.mjs, which relays `rpc` messages to the server process.
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { makeDriver } from './drivers.mjs';

let nextRpc = 0;
const rpcWaiters = new Map();

function rpc(method, args, timeoutMs = 15_000) {
  const id = ++nextRpc;
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      rpcWaiters.delete(id);
      reject(new Error(`server rpc ${method} timed out`));
    }, timeoutMs);
    rpcWaiters.set(id, { resolve, reject, timer });
    process.send({ type: 'rpc', id, method, args });
  });
}

function log(text) {
  process.send?.({ type: 'log', text });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function run(msg) {
  const mod = await import(pathToFileURL(msg.scenarioFile).href);
  const scenario = mod.default;
  const driver = await makeDriver(msg.system, { host: msg.host, port: msg.port, clientKind: msg.clientKind });
  const addresses = msg.localAddresses?.length ? msg.localAddresses : [undefined];
  const ctx = {
    system: msg.system,
    variant: msg.variant,
    params: msg.params,
    serverInfo: msg.serverInfo ?? {},
    serverPid: msg.serverPid,
    clockTicks: msg.clockTicks,
    driver,
    rpc,
    log,
    sleep,
    now: () => performance.now(),
    /** Spread connections over several loopback source addresses when one would run out of ports. */
    localAddress: (i) => addresses[i % addresses.length],
    deadline: performance.now() + msg.timeoutMs,
  };
  return scenario.load(ctx);
}

process.on('message', (msg) => {
  if (!msg) return;
  if (msg.type === 'rpc-result') {
    const w = rpcWaiters.get(msg.id);
    if (!w) return;
    rpcWaiters.delete(msg.id);
    clearTimeout(w.timer);
    if (msg.error) w.reject(new Error(`server rpc failed: ${msg.error}`));
    else w.resolve(msg.result);
    return;
  }
  if (msg.type === 'run') {
    run(msg).then(
      (result) => process.send({ type: 'result', result }),
      (err) => process.send({ type: 'error', error: String(err?.stack ?? err) }),
    );
  }
});

// Never outlive the orchestrator.
process.on('disconnect', () => process.exit(0));
process.on('SIGTERM', () => process.exit(0));
process.send({ type: 'ready', pid: process.pid });
