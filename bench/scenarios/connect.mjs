// connect: authenticated connect + subscribe handshakes per second, 200 at a time. Each worker
// opens a connection with a token, waits until it is usable (envelope: the connected Status;
// Socket.IO: its connect event), subscribes to one topic and waits for the Ack, counts one
// handshake, closes the connection (the server closes TCP first, as RFC 6455 asks, so TIME_WAIT
// stays on the server side) and starts the next.
import { openWindow, percentile } from './shared.mjs';

export default {
  name: 'connect',
  title: 'authenticated connect + subscribe handshakes, concurrency 200',
  primary: { key: 'rate', label: 'handshakes/s', better: 'higher', unit: 'conn/s' },
  columns: [
    { key: 'p50', label: 'p50', unit: 'ms', width: 9 },
    { key: 'p99', label: 'p99', unit: 'ms', width: 9 },
  ],
  // The handshake path warms up slowly (JIT): at 0.3 s of warm-up both servers spend ~3× the CPU
  // per handshake they spend after 2 s, so the warm-up here is longer than elsewhere.
  params: (quick) => ({ concurrency: 200, warmupMs: quick ? 1000 : 3000, measureMs: quick ? 800 : 4000, maxHandshakes: 200_000 }),
  fds: (p) => p.concurrency * 3 + 200,
  // open at once: the workers' connections (closed ones leave TIME_WAIT on the server side)
  connections: (p) => p.concurrency,
  async load(ctx) {
    const p = ctx.params;
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
          c?.close();
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
    return {
      rate: Math.round(((c1 - c0) / m.elapsedMs) * 1000),
      p50: Math.round(percentile(sorted, 50) * 100) / 100,
      p99: Math.round(percentile(sorted, 99) * 100) / 100,
      failed: f1 - f0,
      ...m,
      notes,
    };
  },
};
