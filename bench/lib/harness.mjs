// Building blocks the scenarios share, all running inside the load generator process.
import { readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';

/** ~100 bytes of JSON once serialised: {"seq":…,"t":…,"body":"…"}. */
const BODY = 'switchyard-bench-'.padEnd(56, 'x');
export function payload(seq) {
  return { seq, t: performance.now(), body: BODY };
}

/** Small deterministic PRNG (xorshift32), so runs publish the same topic sequence. */
export function rng(seed = 0x9e3779b9) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/**
 * Open `n` connections, `concurrency` at a time, each subscribed to `topicsFor(i)`, and switch
 * them to counting mode. Bounded by `deadline` (performance.now() ms); fails if any connection
 * fails, because a scenario with missing subscribers would report a wrong rate.
 */
export async function connectMany(ctx, { n, concurrency = 200, sink, topicsFor, expectTopicFor, tokenPrefix = 'u', label = 'connections' }) {
  const conns = new Array(n);
  let next = 0;
  let done = 0;
  let firstError = null;
  const started = performance.now();
  let lastLog = started;
  const worker = async () => {
    while (next < n && firstError === null) {
      if (performance.now() > ctx.deadline) {
        firstError = new Error(`deadline reached after ${done}/${n} ${label}`);
        return;
      }
      const i = next++;
      try {
        const c = await ctx.driver.connect({
          token: `${tokenPrefix}${i}`,
          sink,
          expectTopic: expectTopicFor ? expectTopicFor(i) : undefined,
          localAddress: ctx.localAddress(i),
        });
        conns[i] = c;
        const topics = topicsFor ? topicsFor(i) : null;
        if (topics && topics.length) await c.subscribe(topics);
        c.ready();
        done++;
        const now = performance.now();
        if (now - lastLog > 2000) {
          lastLog = now;
          ctx.log(`  … ${done}/${n} ${label}`);
        }
      } catch (err) {
        firstError ??= new Error(`${label} #${i}: ${err?.message ?? err}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker));
  if (firstError) {
    closeAll(conns);
    throw firstError;
  }
  return { conns, ms: performance.now() - started };
}

export function closeAll(conns) {
  for (const c of conns) {
    try {
      c?.destroy();
    } catch {
      // already gone
    }
  }
}

/** CPU time (user, system) of a process in ms from /proc/<pid>/stat, or null off Linux. */
export function procCpu(pid, ticksPerSecond = 100) {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, 'latin1');
    const f = text.slice(text.lastIndexOf(')') + 2).split(' ');
    // fields 14 and 15 of stat(5), counted after the ")" that ends the command name
    return { user: (Number(f[11]) / ticksPerSecond) * 1000, system: (Number(f[12]) / ticksPerSecond) * 1000 };
  } catch {
    return null;
  }
}

/** Busy CPU time of the whole machine in ms (all cores), from /proc/stat, or null. */
export function machineBusy(ticksPerSecond = 100) {
  try {
    const line = readFileSync('/proc/stat', 'latin1').split('\n', 1)[0];
    const f = line.trim().split(/\s+/).slice(1).map(Number);
    // user nice system idle iowait irq softirq steal
    const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] || 0);
    return (busy / ticksPerSecond) * 1000;
  } catch {
    return null;
  }
}

/**
 * Snapshot both sides at the start of a measurement window; `end()` returns the deltas:
 * elapsed ms, CPU of this process and of the server as % of one core, the server's event-loop
 * utilisation, and the server's RSS at the end.
 *
 * The server's CPU is read from /proc/<pid>/stat at the window's exact edges (10 ms ticks), not
 * asked of the server: a saturated server answers IPC late, and its own snapshots would then
 * cover the wrong interval. Its event-loop utilisation needs the server's answer, so it is only
 * reported when the server answered in time.
 */
export async function openWindow(ctx) {
  const pid = ctx.serverPid;
  const tps = ctx.clockTicks ?? 100;
  const stats0 = ctx.rpc('stats', undefined, 3000).catch(() => null);
  const p0 = procCpu(pid, tps);
  const b0 = machineBusy(tps);
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  const elu0 = performance.eventLoopUtilization();
  return {
    t0,
    /** Closes the window at once (synchronously), then collects the server's answers. */
    async end() {
      const t1 = performance.now();
      const p1 = procCpu(pid, tps);
      const b1 = machineBusy(tps);
      const cpu = process.cpuUsage(cpu0);
      const elu = performance.eventLoopUtilization(elu0);
      const elapsed = t1 - t0;
      const [server0, server1] = await Promise.all([stats0, ctx.rpc('stats', undefined, 600).catch(() => null)]);
      const lateMs = performance.now() - t1;
      const sElapsed = server0 && server1 ? server1.at - server0.at : 0;
      let serverCpu = null;
      let serverSys = null;
      let serverCpuSource = null;
      if (p0 && p1) {
        serverCpu = (p1.user + p1.system - p0.user - p0.system) / elapsed;
        serverSys = (p1.system - p0.system) / elapsed;
        serverCpuSource = '/proc';
      } else if (sElapsed > 0) {
        serverCpu = (server1.cpu.user - server0.cpu.user + (server1.cpu.system - server0.cpu.system)) / 1000 / sElapsed;
        serverSys = (server1.cpu.system - server0.cpu.system) / 1000 / sElapsed;
        serverCpuSource = 'ipc';
      }
      // ELU comes from the server's own snapshots: only meaningful if they bracket the window.
      // (peer brokers are not Node: no ELU)
      const eluValid = Boolean(server0?.elu && server1?.elu) && sElapsed > elapsed * 0.8 && sElapsed < elapsed * 1.2;
      const sIdle = eluValid ? server1.elu.idle - server0.elu.idle : 0;
      const sActive = eluValid ? server1.elu.active - server0.elu.active : 0;
      const loadgenCpu = ((cpu.user + cpu.system) / 1000 / elapsed) * 100;
      // Everything else the machine did meanwhile (other processes, kernel threads): on a shared
      // box this is what makes a figure untrustworthy, so it is reported with every figure.
      const otherCpu = b0 !== null && b1 !== null && serverCpu !== null ? Math.max(0, ((b1 - b0) / elapsed) * 100 - serverCpu * 100 - loadgenCpu) : null;
      return {
        elapsedMs: elapsed,
        otherCpu: otherCpu === null ? null : round1(otherCpu),
        loadgenCpu: round1(loadgenCpu),
        loadgenSys: round1((cpu.system / 1000 / elapsed) * 100),
        loadgenElu: round1(elu.utilization * 100),
        serverCpu: serverCpu === null ? null : round1(serverCpu * 100),
        serverSys: serverSys === null ? null : round1(serverSys * 100),
        serverCpuSource,
        serverElu: eluValid ? round1((sActive / (sActive + sIdle || 1)) * 100) : null,
        serverStatsLateMs: Math.round(lateMs),
        serverRss: server1?.rss ?? null,
        serverApp: server1?.app ?? null,
      };
    },
  };
}

export function round1(x) {
  return Math.round(x * 10) / 10;
}

/**
 * A publisher paced by flow control: at most `window` publishes un-acked, and at most
 * `maxOutstanding` deliveries sent but not yet counted by the subscribers, so the server is kept
 * busy but its send buffers cannot grow without bound when the subscribers lag.
 */
export function pacedPublisher({ conn, sink, window, maxOutstanding, topicFor, expectedRecipients }) {
  let seq = 0;
  let inflight = 0;
  let acked = 0;
  let recipients = 0;
  let errors = 0;
  let mismatches = 0;
  let lastError = null;
  let running = false;
  let blocked = false;
  let inflightExpected = 0;
  const outstanding = () => recipients + inflightExpected - sink.count;

  const onAck = (d) => {
    inflight--;
    acked++;
    inflightExpected -= expectedRecipients;
    if (d && d.error) {
      errors++;
      lastError ??= d.error;
    } else {
      const r = d?.recipients;
      if (typeof r === 'number') {
        recipients += r;
        if (r !== expectedRecipients) mismatches++;
      } else {
        mismatches++;
      }
    }
    // Acks arrive in bursts (one socket read holds many): refill once per burst, so the
    // refills go out corked in one write instead of one syscall per publish.
    if (running && !pumpQueued) {
      pumpQueued = true;
      queueMicrotask(pump);
    }
  };
  let pumpQueued = false;
  const pump = () => {
    pumpQueued = false;
    if (!running) return;
    const lim = maxOutstanding;
    if (inflight >= window) return;
    if (outstanding() >= lim) {
      blocked = true;
      return;
    }
    blocked = false;
    conn.cork();
    while (inflight < window && outstanding() < lim) {
      const s = ++seq;
      inflight++;
      inflightExpected += expectedRecipients;
      conn.publish(topicFor(s), payload(s), onAck);
    }
    conn.uncork();
    if (inflight < window) blocked = true;
  };
  sink.onCount = () => {
    if (blocked && outstanding() < maxOutstanding / 2) pump();
  };
  return {
    start() {
      running = true;
      pump();
    },
    stop() {
      running = false;
    },
    stats: () => ({ published: seq, acked, recipients, errors, mismatches, lastError, inflight, outstanding: outstanding() }),
    /** Wait (bounded) until every publish is acked and every delivery counted. */
    async drain(ms = 3000) {
      const until = performance.now() + ms;
      while (performance.now() < until && (inflight > 0 || outstanding() > 0)) {
        await new Promise((r) => setTimeout(r, 10));
      }
      return { inflight, lost: outstanding() };
    },
  };
}

/**
 * The throughput scenarios (fanout, topics, wildcards, history): warm up, open a window, count
 * deliveries, close the window, drain, and report.
 */
export async function measureThroughput(ctx, { publisher, sink, warmupMs, measureMs }) {
  publisher.start();
  await ctx.sleep(warmupMs);
  const w = await openWindow(ctx);
  const c0 = sink.count;
  const p0 = publisher.stats().acked;
  await ctx.sleep(measureMs);
  const c1 = sink.count;
  const p1 = publisher.stats().acked;
  const tEnd = performance.now();
  const m = await w.end();
  publisher.stop();
  const tDrain = performance.now();
  const drained = await publisher.drain();
  const st = publisher.stats();
  if (process.env.BENCH_DEBUG) ctx.log(`[debug] window end ${Math.round(tDrain - tEnd)} ms, drain ${Math.round(performance.now() - tDrain)} ms`);
  const rate = ((c1 - c0) / m.elapsedMs) * 1000;
  const notes = [];
  if (st.errors) notes.push(`${st.errors} publishes answered with Error (first: ${JSON.stringify(st.lastError)})`);
  if (st.mismatches) notes.push(`${st.mismatches} acks reported an unexpected recipient count`);
  if (drained.lost > 0) notes.push(`${drained.lost} deliveries acked but not received after drain`);
  if (drained.inflight > 0) notes.push(`${drained.inflight} publishes never acked`);
  if (sink.bad) notes.push(`${sink.bad}/${sink.sampled} sampled deliveries malformed: ${sink.badExamples.join('; ')}`);
  return {
    rate: Math.round(rate),
    publishRate: Math.round(((p1 - p0) / m.elapsedMs) * 1000),
    ...m,
    delivered: c1 - c0,
    sampled: sink.sampled,
    badSamples: sink.bad,
    lost: drained.lost,
    notes,
  };
}

/** Nearest-rank percentile of a sorted Float64Array. */
export function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const k = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[k];
}
