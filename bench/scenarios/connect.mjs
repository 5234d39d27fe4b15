// connect: authenticated connect + subscribe handshakes per second, 200 at a time, in both
// directions of the close. Each worker opens a connection with a token, waits until it is usable
// (envelope: the connected Status; Socket.IO: its connect event), subscribes to one topic and
// waits for the Ack, counts one handshake, closes the connection and starts the next.
//
// Who closes first (the variants; each direction's rows are compared with raw ws in the same
// direction):
// - client closes first (keys `raw`, `socketio`, `switchyard`): what browsers and client
//   libraries do when they are done. The envelope client sends Close 1000 and ends its side of TCP
//   when the server's Close arrives, as the `ws` client does (RFC 6455 §7.1.1 lets it close "at
//   any time after sending and receiving a Close message"); Socket.IO's client disconnects
//   (`socket.disconnect()`, over `ws`, the same).
// - server closes first (keys `*-server-close`): the envelope client sends Close 1000 and waits
//   for the server to close TCP (the RFC's SHOULD, so TIME_WAIT stays on the server side); the
//   Socket.IO client asks its server to disconnect it (`bye`), which starts the close there.
import { openWindow, percentile } from './shared.mjs';

// The peers (bench/servers/nats.mjs, mosquitto.mjs) close the same two ways through their clients (lib/peers.mjs).
const LABELS = { raw: 'raw ws', socketio: 'Socket.IO', switchyard: 'switchyard', nats: 'nats-server', mosquitto: 'mosquitto' };
const SERVER = '-server-close';

export default {
  name: 'connect',
  title: 'authenticated connect + subscribe + close, concurrency 200; client closes first, (srv): server closes first',
  primary: { key: 'rate', label: 'handshakes/s', better: 'higher', unit: 'conn/s' },
  columns: [
    { key: 'p50', label: 'p50', unit: 'ms', width: 9 },
    { key: 'p99', label: 'p99', unit: 'ms', width: 9 },
    // Server CPU time per handshake (user + system): steadier than the rate on a busy machine.
    { key: 'cpuUs', label: 'srv µs/conn', unit: 'n', width: 12 },
    { key: 'sysUs', label: 'of it kernel', unit: 'n', width: 13 },
  ],
  variants: (systems) => {
    const known = systems.filter((s) => LABELS[s] !== undefined);
    return [
      ...known.map((s) => ({ system: s, key: s, label: LABELS[s] })),
      ...known.map((s) => ({ system: s, key: `${s}${SERVER}`, label: `${LABELS[s]} (srv)` })),
    ];
  },
  /** The row a variant's ratio is taken against: raw ws closing the same way. */
  baselineOf: (key) => (key.endsWith(SERVER) ? `raw${SERVER}` : 'raw'),
  // The handshake path warms up slowly (JIT): at 0.3 s of warm-up both servers spend ~3× the CPU
  // per handshake they spend after 2 s, so the warm-up here is longer than elsewhere.
  params: (quick) => ({ concurrency: 200, warmupMs: quick ? 1000 : 3000, measureMs: quick ? 800 : 4000, maxHandshakes: 200_000 }),
  fds: (p) => p.concurrency * 3 + 200,
  // open at once: the workers' connections (closed ones leave TIME_WAIT behind)
  connections: (p) => p.concurrency,
  async load(ctx) {
    const p = ctx.params;
    // BENCH_PARAMS='{"close":"…"}' forces one client behaviour for every variant (experiments):
    // echo (end TCP once the server's Close arrives), server (wait for the server's FIN),
    // client (end TCP right behind the Close frame), drop (destroy without a Close frame).
    const close = p.close ?? (String(ctx.variant).endsWith(SERVER) ? 'server' : 'echo');
    let next = 0;
    let completed = 0;
    let failed = 0;
    let firstError = null;
    let recording = false;
    const times = [];
    let running = true;
    const worker = async () => {
      while (running && next < p.maxHandshakes && performance.now() < ctx.deadline) {
        const i = next++;
        const t0 = performance.now();
        let c = null;
        try {
          c = await ctx.driver.connect({ token: `c${i}`, localAddress: ctx.localAddress(i) }, 10_000);
          await c.subscribe([`bench/connect/${i}`], 10_000);
          if (recording && times.length < 1_000_000) times.push(performance.now() - t0);
          completed++;
        } catch (err) {
          failed++;
          firstError ??= String(err?.message ?? err);
        } finally {
          c?.close(close);
        }
      }
    };
    const workers = Array.from({ length: p.concurrency }, worker);
    await ctx.sleep(p.warmupMs);
    const w = await openWindow(ctx);
    const c0 = completed;
    const f0 = failed;
    recording = true;
    await ctx.sleep(p.measureMs);
    recording = false;
    const c1 = completed;
    const f1 = failed;
    const m = await w.end();
    running = false;
    await Promise.race([Promise.all(workers), ctx.sleep(5000)]);
    const sorted = Float64Array.from(times).sort();
    const notes = [];
    if (f1 - f0 > 0) notes.push(`${f1 - f0} handshakes failed in the window (first: ${firstError})`);
    else if (failed > 0) notes.push(`${failed} handshakes failed outside the window (first: ${firstError})`);
    const n = c1 - c0;
    return {
      rate: Math.round((n / m.elapsedMs) * 1000),
      p50: Math.round(percentile(sorted, 50) * 100) / 100,
      p99: Math.round(percentile(sorted, 99) * 100) / 100,
      cpuUs: n > 0 && typeof m.serverCpu === 'number' ? Math.round(((m.serverCpu / 100) * m.elapsedMs * 1000) / n) : null,
      sysUs: n > 0 && typeof m.serverSys === 'number' ? Math.round(((m.serverSys / 100) * m.elapsedMs * 1000) / n) : null,
      failed: f1 - f0,
      ...m,
      notes,
    };
  },
};
