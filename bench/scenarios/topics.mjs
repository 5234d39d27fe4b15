// topics: 2,000 subscribers (1,000 in --quick), each on its own topic; one publisher publishes to random topics
// (deterministic PRNG), paced by a window of un-acked publishes. Each publish reaches exactly
// one subscriber, so this measures the per-publish path (parse, route, serialise, ack), not
// fan-out. Metric: delivered messages per second.
//
// Every publish carries an id and is paced on its Ack, except in the `switchyard-noid` row
// (issue 17): the same load without ids, so no Acks, paced instead on deliveries (at most
// `window` sent and not yet counted, the same closed loop). The target line "topics with an id
// ≥ 85% of without" is the ratio of the two switchyard rows in the same run.
// Systems without publish acks (nats-server, mosquitto) keep the same number of publishes in
// flight, counted by deliveries (lib/closedloop.mjs). After the main window every system runs
// closed loops with 256 and 2,048 deliveries in flight on the same connections (columns
// `loop 256`, `loop 2,048`), acks received but not waited for: the like-for-like comparison.
import { connectMany, closeAll, createSinkFor, measureThroughput, payload, rng } from './shared.mjs';
import { mainPublisher, measureLoops } from '../lib/closedloop.mjs';

/** The variant key of the row without ids. */
export const NO_ID = 'switchyard-noid';

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
  variants: (systems, known) =>
    systems.filter((s) => !known[s].scenarios || known[s].scenarios.includes('topics')).flatMap((system) => [
      { system, key: system, label: known[system].label, requires: known[system].requires },
      ...(system === 'switchyard' ? [{ system, key: NO_ID, label: 'switchyard, no id' }] : []),
    ]),
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
      if (ctx.variant === NO_ID) {
        // No ids: no Acks to pace on and none in the loops below.
        const publisher = unackedPublisher({ conn: pub, sink, window: p.window, topicFor, expectedRecipients: 1 });
        return { ...(await measureThroughput(ctx, { publisher, sink, warmupMs: p.warmupMs, measureMs: p.measureMs })), setupMs: Math.round(setupMs) };
      }
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

/**
 * pacedPublisher's closed loop without ids (no Acks): at most `window` publishes sent whose
 * delivery is not yet counted (each reaches `expectedRecipients` subscribers), refilled once per
 * event-loop turn, so the refills go out corked in one write as they do after a burst of Acks.
 */
function unackedPublisher({ conn, sink, window, topicFor, expectedRecipients }) {
  const base = sink.count;
  let seq = 0;
  let running = false;
  let queued = false;
  const outstanding = () => seq * expectedRecipients - (sink.count - base);
  const pump = () => {
    queued = false;
    if (!running) return;
    conn.cork();
    while (outstanding() < window * expectedRecipients) {
      const s = ++seq;
      conn.publish(topicFor(s), payload(s), null);
    }
    conn.uncork();
  };
  sink.onCount = () => {
    if (running && !queued) {
      queued = true;
      setImmediate(pump);
    }
  };
  return {
    start() {
      running = true;
      pump();
    },
    stop() {
      running = false;
    },
    // No Acks: `acked` counts publishes sent (publishes/s), recipients the deliveries expected.
    stats: () => ({ published: seq, acked: seq, recipients: seq * expectedRecipients, errors: 0, mismatches: 0, lastError: null, inflight: 0, outstanding: outstanding() }),
    async drain(ms = 3000) {
      const until = performance.now() + ms;
      while (performance.now() < until && outstanding() > 0) await new Promise((r) => setTimeout(r, 10));
      return { inflight: 0, lost: outstanding() };
    },
  };
}
