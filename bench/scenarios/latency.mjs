// latency: one publisher sends 2,000 publishes/s (open loop, on a schedule, not waiting for acks)
// to one topic with 100 subscribers; every delivery's end-to-end latency is measured.
// The payload carries the publisher's send time (performance.now(), taken just before the send);
// publisher and subscribers live in the same load-generator process, so both ends read the same
// monotonic clock with microsecond resolution. Every delivery in the window is recorded (the
// driver pulls "t" out of the raw frame without parsing it); p50 / p99 / max over all of them.
import { connectMany, closeAll, createSinkFor, openWindow, payload, percentile, rng } from './shared.mjs';

const TOPIC = 'bench/latency';

/** The latency load at a given publish rate (latency-low reuses it at a rate raw ws can carry). */
export function makeLatency({ name, rate, note, fullOnly = false }) {
  return {
    name,
    fullOnly,
    note,
    title: `${rate.toLocaleString('en-US')} publishes/s → 100 subscribers, end-to-end latency`,
    primary: { key: 'p99', label: 'p99 latency', better: 'lower', unit: 'ms' },
    columns: [
      { key: 'p50', label: 'p50', unit: 'ms', width: 9 },
      { key: 'max', label: 'max', unit: 'ms', width: 9 },
      { key: 'publishRate', label: 'publishes/s', unit: 'msg/s' },
    ],
    params: (quick) => ({
      subscribers: 100,
      rate,
      warmupMs: quick ? 300 : 1500,
      measureMs: quick ? 1000 : 4000,
    }),
    fds: (p) => p.subscribers + 50,
    async load(ctx) {
      const p = ctx.params;
      const sink = createSinkFor();
      const { conns, ms: setupMs } = await connectMany(ctx, {
        n: p.subscribers,
        sink,
        topicsFor: () => [TOPIC],
        expectTopicFor: () => (t) => t === TOPIC,
      });
      const pub = await ctx.driver.connect({ token: 'publisher' });
      // Every delivery in the window counts toward count, mean and max; percentiles come from
      // all of them while they fit in the buffer, then from a uniform reservoir sample (algorithm
      // R) so a backlogged system cannot bias them toward the start of the window.
      const capacity = Math.ceil(p.rate * p.subscribers * (p.measureMs / 1000) * 1.1);
      const samples = new Float64Array(capacity);
      let seen = 0;
      let sum = 0;
      let max = 0;
      let recording = false;
      let missingT = 0;
      const random = rng(1234);
      sink.onT = (t) => {
        if (!recording) return;
        const d = performance.now() - t;
        if (!(d >= 0)) {
          missingT++;
          return;
        }
        seen++;
        sum += d;
        if (d > max) max = d;
        if (seen <= capacity) samples[seen - 1] = d;
        else {
          const j = Math.floor(random() * seen);
          if (j < capacity) samples[j] = d;
        }
      };
      let scheduled = 0;
      let sent = 0;
      let skipped = 0;
      let acked = 0;
      let ackErrors = 0;
      const onAck = (d) => {
        acked++;
        if (d?.error) ackErrors++;
      };
      const start = performance.now();
      const maxBacklog = p.rate; // one second of publishes not yet acked: the server is drowning
      // Systems without publish acks (nats-server, mosquitto): a publish is done once all its
      // deliveries are counted.
      const done = ctx.driver.acks ? () => acked : () => Math.floor(sink.count / p.subscribers);
      let timer;
      const tick = () => {
        const due = Math.floor(((performance.now() - start) * p.rate) / 1000) - scheduled;
        if (due > 0) {
          scheduled += due;
          if (sent - done() > maxBacklog) {
            skipped += due; // open loop, but never bury the server without bound
          } else {
            pub.cork();
            for (let k = 0; k < due; k++) pub.publish(TOPIC, payload(++sent), onAck);
            pub.uncork();
          }
        }
        timer = setTimeout(tick, 1);
      };
      try {
        tick();
        await ctx.sleep(p.warmupMs);
        const w = await openWindow(ctx);
        const sent0 = sent;
        const skipped0 = skipped;
        recording = true;
        await ctx.sleep(p.measureMs);
        recording = false;
        const sentInWindow = sent - sent0;
        const skippedInWindow = skipped - skipped0;
        const m = await w.end();
        clearTimeout(timer);
        const n = Math.min(seen, capacity);
        const sorted = samples.subarray(0, n).sort();
        const notes = [];
        const achieved = (sentInWindow / m.elapsedMs) * 1000;
        const deliveryRate = (seen / m.elapsedMs) * 1000;
        const expected = p.rate * p.subscribers;
        let saturated = skippedInWindow > 0 || achieved < p.rate * 0.95 || deliveryRate < expected * 0.95;
        if (skippedInWindow) notes.push(`SATURATED: ${skippedInWindow} publishes skipped in the window (more than ${maxBacklog} un-acked)`);
        else if (achieved < p.rate * 0.95) notes.push(`SATURATED: publish rate reached only ${Math.round(achieved)}/s of ${p.rate}/s`);
        const p50 = percentile(sorted, 50);
      if (p50 > 50 && !saturated) {
        // On loopback an unsaturated server answers in about a millisecond; a median in the tens
        // of milliseconds means messages are waiting in a queue.
        saturated = true;
        notes.push(`SATURATED: p50 ${p50.toFixed(1)} ms, messages are queueing`);
      }
      if (deliveryRate < expected * 0.95) {
          notes.push(`SATURATED: ${Math.round(deliveryRate).toLocaleString('en-US')} deliveries/s of the ${expected.toLocaleString('en-US')}/s offered; latency is queueing delay`);
        }
        if (ackErrors) notes.push(`${ackErrors} publishes answered with Error`);
        if (missingT) notes.push(`${missingT} deliveries without a readable timestamp`);
        if (sink.bad) notes.push(`${sink.bad}/${sink.sampled} sampled deliveries malformed: ${sink.badExamples.join('; ')}`);
        return {
          p50: round3(percentile(sorted, 50)),
          p90: round3(percentile(sorted, 90)),
          p99: round3(percentile(sorted, 99)),
          p999: round3(percentile(sorted, 99.9)),
          max: round3(max),
          mean: round3(sum / seen),
          samples: seen,
          saturated: saturated ? 1 : 0,
          publishRate: Math.round(achieved),
          deliveryRate: Math.round(deliveryRate),
          ...m,
          setupMs: Math.round(setupMs),
          notes,
        };
      } finally {
        clearTimeout(timer);
        pub.destroy();
        closeAll(conns);
      }
    },
  };
}

export default makeLatency({ name: 'latency', rate: 2000 });

function round3(x) {
  return Math.round(x * 1000) / 1000;
}
