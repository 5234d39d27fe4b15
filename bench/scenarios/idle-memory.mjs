// idle-memory: N idle authenticated connections (10,000; 1,000 in --quick), each with one
// subscription of its own; the server's RSS growth per connection, measured inside the server
// process after full GCs: (RSS after the N connections − RSS before them) / N. Before the
// "before" figure the server is warmed with a few hundred connections that come and go, so
// lazily loaded code and JIT output are not charged to the connections. heap+external per
// connection is reported alongside.
import { connectMany, closeAll } from './shared.mjs';

export default {
  name: 'idle-memory',
  title: (p) => `${p.connections.toLocaleString('en-US')} idle authenticated connections, 1 subscription each: server RSS growth per connection`,
  primary: { key: 'rssPerConn', label: 'RSS per connection', better: 'lower', unit: 'B/conn' },
  columns: [
    { key: 'heapPerConn', label: 'heap+ext/conn', unit: 'B/conn', width: 14 },
    { key: 'connections', label: 'connections', unit: 'n' },
    { key: 'rssAfter', label: 'RSS after', unit: 'B', width: 10 },
  ],
  params: (quick) => ({ connections: quick ? 2000 : 10_000, warmConnections: 200, settleMs: quick ? 300 : 1000 }),
  fds: (p) => p.connections + 200,
  connections: (p) => p.connections + p.warmConnections,
  shrink: (p, maxFds) => ({ ...p, connections: Math.max(1000, maxFds - 300) }),
  extraTimeMs: (p) => p.connections * 4,
  async load(ctx) {
    const p = ctx.params;
    // Warm-up: the code paths of connect, subscribe and disconnect run before "before".
    const warm = await connectMany(ctx, {
      n: p.warmConnections,
      topicsFor: (i) => [`bench/warm/${i}`],
      tokenPrefix: 'warm',
      label: 'warm-up connections',
    });
    if (!p.keepWarm) {
      closeAll(warm.conns);
      await waitForConnections(ctx, 0, 5000);
    }
    const before = await ctx.rpc('memory');
    const { conns, ms } = await connectMany(ctx, {
      n: p.connections,
      topicsFor: (i) => [`bench/idle/${i}`],
      tokenPrefix: 'idle',
    });
    try {
      await ctx.sleep(p.settleMs);
      const after = await ctx.rpc('memory');
      const notes = [];
      const seen = after.app?.connections;
      const expected = p.connections + (p.keepWarm ? p.warmConnections : 0);
      if (typeof seen === 'number' && seen !== expected) notes.push(`server reports ${seen} connections, expected ${expected}`);
      if (!after.gc) notes.push('no global.gc in the server: figures include uncollected garbage');
      if (after.gcNote) notes.push(after.gcNote);
      const heap = (m) => m.heapUsed + m.external;
      return {
        rssPerConn: Math.round((after.rss - before.rss) / p.connections),
        // (a peer broker has no V8 heap to report)
        heapPerConn: typeof after.heapUsed === 'number' ? Math.round((heap(after) - heap(before)) / p.connections) : null,
        connections: p.connections,
        rssBefore: before.rss,
        rssAfter: after.rss,
        connectRate: Math.round((p.connections / ms) * 1000),
        setupMs: Math.round(ms),
        serverApp: after.app,
        notes,
      };
    } finally {
      closeAll(conns);
      closeAll(warm.conns);
    }
  },
};

/** Wait (bounded) until the server reports `n` connections, so closed ones are really gone. */
async function waitForConnections(ctx, n, ms) {
  const until = performance.now() + ms;
  while (performance.now() < until) {
    const s = await ctx.rpc('stats');
    if (s.app?.connections === n) return;
    if (typeof s.app?.connections !== 'number') {
      // a peer broker that does not count connections for us: give the closes a moment
      await ctx.sleep(Math.min(ms, 500));
      return;
    }
    await ctx.sleep(25);
  }
}
