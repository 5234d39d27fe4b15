// wildcards: like `topics` (2,000 subscribers, 1,000 in --quick, random publishes, one recipient per publish), but
// switchyard's subscriptions are a mix of exact topics, `+` and `#` patterns, so every publish
// goes through wildcard matching:
//   i % 4 = 0  bench/wild/<i>/x        exact            publishes to bench/wild/<i>/x
//   i % 4 = 1  bench/wild/<i>/+        one level        publishes to bench/wild/<i>/x
//   i % 4 = 2  bench/wild/<i>/#        rest of levels   publishes to bench/wild/<i>/x/y
//   i % 4 = 3  bench/+/<i>/x           inner wildcard   publishes to bench/wild/<i>/x
// Each published topic matches exactly one subscriber's pattern (checked via the Ack's
// recipients). raw ws and Socket.IO have no wildcards: they subscribe to the exact topic that
// will be published (the equivalent routing result), which the output says. nats-server and
// mosquitto match the same patterns themselves (NATS as subjects: `bench.*.7.x`, `bench.wild.7.>`).
import { connectMany, closeAll, createSinkFor, measureThroughput, rng } from './shared.mjs';
import { mainPublisher } from '../lib/closedloop.mjs';

const published = (i) => (i % 4 === 2 ? `bench/wild/${i}/x/y` : `bench/wild/${i}/x`);
const pattern = (i) => [`bench/wild/${i}/x`, `bench/wild/${i}/+`, `bench/wild/${i}/#`, `bench/+/${i}/x`][i % 4];

export default {
  name: 'wildcards',
  title: (p) => `${p.subscribers.toLocaleString('en-US')} subscribers on mixed exact / + / # patterns; 1 publisher to random topics`,
  note: 'switchyard, nats-server and mosquitto match wildcards; raw ws and Socket.IO subscribe to the exact topics that get published (same routing result, no matching)',
  primary: { key: 'rate', label: 'delivered msg/s', better: 'higher', unit: 'msg/s' },
  params: (quick) => ({
    subscribers: quick ? 1000 : 2000,
    window: 64,
    maxOutstanding: 4096,
    warmupMs: quick ? 300 : 1500,
    measureMs: quick ? 800 : 4000,
  }),
  fds: (p) => p.subscribers + 50,
  async load(ctx) {
    const p = ctx.params;
    const wild = ctx.driver.wildcards;
    const sink = createSinkFor();
    const { conns, ms: setupMs } = await connectMany(ctx, {
      n: p.subscribers,
      sink,
      topicsFor: (i) => [wild ? pattern(i) : published(i)],
      expectTopicFor: (i) => (t) => t === published(i),
    });
    const pub = await ctx.driver.connect({ token: 'publisher' });
    const random = rng(7);
    try {
      const publisher = mainPublisher(ctx, {
        conn: pub,
        sink,
        window: p.window,
        maxOutstanding: p.maxOutstanding,
        topicFor: () => published(Math.floor(random() * p.subscribers)),
        expectedRecipients: 1,
      });
      const r = await measureThroughput(ctx, { publisher, sink, warmupMs: p.warmupMs, measureMs: p.measureMs });
      r.setupMs = Math.round(setupMs);
      r.matching = wild ? 'wildcards' : 'exact-topic equivalent';
      return r;
    } finally {
      pub.destroy();
      closeAll(conns);
    }
  },
};
