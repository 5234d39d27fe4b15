// Publishers paced by deliveries rather than acks, for systems without publish acknowledgements
// (nats-server's core PUB, MQTT QoS 0) and for the closed-loop columns every system runs.
//
// A closed loop with N deliveries in flight: the publisher keeps (publishes sent × recipients per
// publish) − deliveries counted ≤ N, refilling in batches as deliveries are counted. Acks, where a
// system sends them, are received and checked (errors, recipient counts) but do not gate the
// loop, so every system runs under the same bound.
import { performance } from 'node:perf_hooks';
import { pacedPublisher, measureThroughput, payload } from './harness.mjs';

/**
 * Same interface as harness.pacedPublisher (start, stop, stats, drain), so measureThroughput
 * takes either. `stats().acked` counts publishes whose deliveries have all been counted (for
 * systems without acks) or publishes acked (with acks), which is what publishes/s reports.
 */
export function closedLoopPublisher({ conn, sink, inflight, topicFor, expectedRecipients, acks }) {
  let seq = 0;
  let running = false;
  let count0 = sink.count;
  let acked = 0;
  let recipients = 0;
  let errors = 0;
  let mismatches = 0;
  let lastError = null;
  let pumpQueued = false;
  const delivered = () => sink.count - count0;
  const outstanding = () => seq * expectedRecipients - delivered();
  // Refill once a quarter of the loop has drained: batches go out corked, one write each.
  const refillAt = Math.max(0, inflight - Math.max(expectedRecipients, Math.floor(inflight / 4)));
  const onAck = acks
    ? (d) => {
        acked++;
        if (d && d.error) {
          errors++;
          lastError ??= d.error;
        } else if (typeof d?.recipients === 'number') {
          recipients += d.recipients;
          if (d.recipients !== expectedRecipients) mismatches++;
        } else mismatches++;
      }
    : undefined;
  const pump = () => {
    pumpQueued = false;
    if (!running || outstanding() > refillAt) return;
    conn.cork();
    // At least one publish whenever nothing is in flight (N smaller than one publish's fan-out).
    while (outstanding() + expectedRecipients <= inflight || outstanding() <= 0) {
      const s = ++seq;
      conn.publish(topicFor(s), payload(s), onAck);
    }
    conn.uncork();
  };
  sink.onCount = () => {
    if (running && !pumpQueued && outstanding() <= refillAt) {
      // deliveries arrive in bursts (one socket read holds many): refill once per burst
      pumpQueued = true;
      queueMicrotask(pump);
    }
  };
  return {
    start() {
      if (seq === 0) count0 = sink.count;
      running = true;
      pump();
    },
    stop() {
      running = false;
    },
    stats: () => ({
      published: seq,
      acked: acks ? acked : Math.floor(delivered() / expectedRecipients),
      recipients,
      errors,
      mismatches,
      lastError,
      inflight: acks ? seq - acked : 0,
      outstanding: outstanding(),
    }),
    /** Wait (bounded) until every delivery is counted (and, with acks, every publish acked). */
    async drain(ms = 3000) {
      const until = performance.now() + ms;
      while (performance.now() < until && (outstanding() > 0 || (acks && acked < seq))) {
        await new Promise((r) => setTimeout(r, 10));
      }
      return { inflight: acks ? seq - acked : 0, lost: Math.max(0, outstanding()) };
    },
  };
}

/**
 * The publisher a throughput scenario's main measurement uses: the ack-paced one (a window of
 * `window` un-acked publishes) where the system acks publishes, else a closed loop with the same
 * number of publishes in flight (window × recipients deliveries).
 */
export function mainPublisher(ctx, { conn, sink, window, maxOutstanding, topicFor, expectedRecipients }) {
  if (ctx.driver.acks) return pacedPublisher({ conn, sink, window, maxOutstanding, topicFor, expectedRecipients });
  return closedLoopPublisher({ conn, sink, inflight: window * expectedRecipients, topicFor, expectedRecipients, acks: false });
}

/**
 * After the main window, the same connections run closed loops with each of `loops` deliveries
 * in flight (e.g. [256, 2048]); result keys `loop256`, `loop2048` (deliveries/s) and their CPU
 * figures under `loops`. Notes from a loop are prefixed with its bound. `acks: false` publishes
 * without asking for acks (a row measuring publishes without ids); by default, where the system
 * has them.
 */
export async function measureLoops(ctx, { conn, sink, loops, topicFor, expectedRecipients, warmupMs, measureMs, acks = ctx.driver.acks }) {
  const out = { loops: {} };
  const notes = [];
  for (const n of loops ?? []) {
    const publisher = closedLoopPublisher({ conn, sink, inflight: n, topicFor, expectedRecipients, acks: acks && ctx.driver.acks });
    const r = await measureThroughput(ctx, { publisher, sink, warmupMs, measureMs });
    out[`loop${n}`] = r.rate;
    out.loops[n] = { rate: r.rate, publishRate: r.publishRate, serverCpu: r.serverCpu, loadgenCpu: r.loadgenCpu, otherCpu: r.otherCpu, lost: r.lost };
    for (const note of r.notes) notes.push(`closed loop ${n}: ${note}`);
    if ((r.otherCpu ?? 0) > 15) notes.push(`NOISY: closed loop ${n}: other processes used ${Math.round(r.otherCpu)}% of a core`);
  }
  return { ...out, notes };
}
