// topics: 2,000 subscribers (1,000 in --quick), each on its own topic; one publisher publishes to random topics
// (deterministic PRNG), paced by a window of un-acked publishes. Each publish reaches exactly
// one subscriber, so this measures the per-publish path (parse, route, serialise, ack), not
// fan-out. Metric: delivered messages per second.
import { connectMany, closeAll, createSinkFor, pacedPublisher, measureThroughput, rng } from './shared.mjs';

export default {
  name: 'topics',
  title: (p) => `${p.subscribers.toLocaleString('en-US')} subscribers, each on its own topic; 1 publisher to random topics`,
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
      const publisher = pacedPublisher({
        conn: pub,
        sink,
        window: p.window,
        maxOutstanding: p.maxOutstanding,
        topicFor: () => topic(Math.floor(random() * p.subscribers)),
        expectedRecipients: 1,
      });
      return { ...(await measureThroughput(ctx, { publisher, sink, warmupMs: p.warmupMs, measureMs: p.measureMs })), setupMs: Math.round(setupMs) };
    } finally {
      pub.destroy();
      closeAll(conns);
    }
  },
};
