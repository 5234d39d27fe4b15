// fanout: 1 publisher, 1,000 subscribers on one topic, ~100-byte JSON payloads.
// The publisher keeps a window of un-acked publishes (and a bound on deliveries not yet counted),
// so the server always has work queued but is never buried under an unbounded backlog.
// Metric: delivered messages per second, summed over all subscribers, in a fixed window after
// warm-up.
// Systems without publish acks (nats-server, mosquitto) keep the same number of publishes in
// flight, counted by deliveries (window × subscribers; lib/closedloop.mjs).
import { connectMany, closeAll, createSinkFor, measureThroughput } from './shared.mjs';
import { mainPublisher } from '../lib/closedloop.mjs';

export const FANOUT_TOPIC = 'bench/fanout';

export function fanoutParams(quick) {
  return {
    subscribers: 1000,
    window: 16,
    maxOutstandingPerSub: 32,
    warmupMs: quick ? 300 : 1500,
    measureMs: quick ? 800 : 4000,
  };
}

/** The fan-out load, shared with the history scenario. `after(result)` runs before teardown. */
export async function runFanout(ctx, after) {
  const p = ctx.params;
  const sink = createSinkFor();
  const { conns, ms: setupMs } = await connectMany(ctx, {
    n: p.subscribers,
    concurrency: 250,
    sink,
    topicsFor: () => [FANOUT_TOPIC],
    expectTopicFor: () => (t) => t === FANOUT_TOPIC,
  });
  const pub = await ctx.driver.connect({ token: 'publisher' });
  try {
    const publisher = mainPublisher(ctx, {
      conn: pub,
      sink,
      window: p.window,
      maxOutstanding: p.subscribers * p.maxOutstandingPerSub,
      topicFor: () => FANOUT_TOPIC,
      expectedRecipients: p.subscribers,
    });
    const r = await measureThroughput(ctx, { publisher, sink, warmupMs: p.warmupMs, measureMs: p.measureMs });
    r.setupMs = Math.round(setupMs);
    if (after) await after(r);
    return r;
  } finally {
    pub.destroy();
    closeAll(conns);
  }
}

export default {
  name: 'fanout',
  title: '1 publisher → 1,000 subscribers, one topic',
  primary: { key: 'rate', label: 'delivered msg/s', better: 'higher', unit: 'msg/s' },
  columns: [{ key: 'publishRate', label: 'publishes/s', unit: 'msg/s' }],
  params: fanoutParams,
  fds: (p) => p.subscribers + 50,
  load: (ctx) => runFanout(ctx),
};
