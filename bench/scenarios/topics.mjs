// topics: 2,000 subscribers (1,000 in --quick), each on its own topic; one publisher publishes to random topics
// (deterministic PRNG), paced by a window of un-acked publishes. Each publish reaches exactly
// one subscriber, so this measures the per-publish path (parse, route, serialise, ack), not
// fan-out. Metric: delivered messages per second.
// Systems without publish acks (nats-server, mosquitto) keep the same number of publishes in
// flight, counted by deliveries (lib/closedloop.mjs). After the main window every system runs
// closed loops with 256 and 2,048 deliveries in flight on the same connections (columns
// `loop 256`, `loop 2,048`), acks received but not waited for: the like-for-like comparison.
import { connectMany, closeAll, createSinkFor, measureThroughput, rng } from './shared.mjs';
import { mainPublisher, measureLoops } from '../lib/closedloop.mjs';

export default {
  name: 'topics',
  title: (p) => `${p.subscribers.toLocaleString('en-US')} subscribers, each on its own topic; 1 publisher to random topics`,
  primary: { key: 'rate', label: 'delivered msg/s', better: 'higher', unit: 'msg/s' },
  columns: [
    { key: 'loop256', label: 'loop 256', unit: 'msg/s' },
    { key: 'loop2048', label: 'loop 2,048', unit: 'msg/s' },
  ],
  params: (quick) => ({
    subscribers: quick ? 1000 : 2000,
    window: 64,
    maxOutstanding: 4096,
    warmupMs: quick ? 300 : 1500,
    measureMs: quick ? 800 : 4000,
    loops: [256, 2048],
    loopWarmupMs: quick ? 200 : 700,
    loopMeasureMs: quick ? 600 : 3000,
  }),
  fds: (p) => p.subscribers + 50,
  async load(ctx) {
    const p = ctx.params;
    const topic = (i) => `bench/topics/${i}`;
    const sink = createSinkFor();
    const { conns, ms: setupMs } = await connectMany(ctx, {
      n: p.subscribers,
      sink,
      topicsFor: (i) => [topic(i)],
      expectTopicFor: (i) => (t) => t === topic(i),
    });
    const pub = await ctx.driver.connect({ token: 'publisher' });
    const random = rng(42);
    try {
      const topicFor = () => topic(Math.floor(random() * p.subscribers));
      const publisher = mainPublisher(ctx, { conn: pub, sink, window: p.window, maxOutstanding: p.maxOutstanding, topicFor, expectedRecipients: 1 });
      const r = await measureThroughput(ctx, { publisher, sink, warmupMs: p.warmupMs, measureMs: p.measureMs });
      const l = await measureLoops(ctx, { conn: pub, sink, loops: p.loops, topicFor, expectedRecipients: 1, warmupMs: p.loopWarmupMs, measureMs: p.loopMeasureMs });
      return { ...r, ...l, notes: [...r.notes, ...l.notes], setupMs: Math.round(setupMs) };
    } finally {
      pub.destroy();
      closeAll(conns);
    }
  },
};
