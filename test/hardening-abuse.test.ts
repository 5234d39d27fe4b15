/**
 * Finding 7 of issue 16: strikes counted refusals in a row and reset on every accepted frame, so
 * a client at 10× the rate limit (one frame let in by each refill) was never closed. Abuse is now
 * judged over a window (AbuseMeter): sustained abuse closes with 1008, a brief burst does not.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TokenBucket, AbuseMeter } from '../lib/rate-limit.js';
import { connect, startEnvelope, type Running } from './helpers.js';

/**
 * Drives a token bucket and an abuse meter with a virtual clock: `perSecond` frames a second
 * for `seconds`, evenly spaced. Returns the time (ms) of the close, or null if never closed.
 */
function drive(meter: AbuseMeter, bucket: TokenBucket, perSecond: number, seconds: number, start = 0): number | null {
  const frames = Math.round(perSecond * seconds);
  for (let i = 0; i < frames; i++) {
    const now = start + (i * 1000) / perSecond;
    const refused = bucket.take(now) > 0;
    if (meter.record(refused, now) && refused) return now;
  }
  return null;
}

describe('rate-limit abuse judged over a window (issue 16, finding 7), virtual clock', () => {
  const RATE = 100;
  const BURST = 200;
  const WINDOW = 4_000;
  const STRIKES = 50;

  it('closes a client at 10x the rate within a few seconds', () => {
    const bucket = new TokenBucket(RATE, BURST, 0);
    const closedAt = drive(new AbuseMeter(WINDOW, STRIKES, 0), bucket, 10 * RATE, 10);
    expect(closedAt).not.toBeNull();
    expect(closedAt!).toBeLessThan(3_000);
    expect(closedAt!).toBeGreaterThan(1_000); // not on the first refusals: it has to be sustained
  });

  it('closes a client at 2x the rate, but not one 20% over it', () => {
    expect(drive(new AbuseMeter(WINDOW, STRIKES, 0), new TokenBucket(RATE, BURST, 0), 2 * RATE, 30)).not.toBeNull();
    expect(drive(new AbuseMeter(WINDOW, STRIKES, 0), new TokenBucket(RATE, BURST, 0), 1.2 * RATE, 60)).toBeNull();
  });

  it('does not close a brief burst far past the bucket, nor bursts that come back after a pause', () => {
    const bucket = new TokenBucket(RATE, BURST, 0);
    const meter = new AbuseMeter(WINDOW, STRIKES, 0);
    // 1,000 frames at once (800 refused), five times, 3 s apart, normal traffic in between.
    for (let round = 0; round < 5; round++) {
      const t = round * 3_000;
      for (let i = 0; i < 1_000; i++) expect(meter.record(bucket.take(t) > 0, t)).toBe(false);
      expect(drive(meter, bucket, RATE / 2, 2.9, t + 50)).toBeNull();
    }
  });

  it('the old rule (refusals in a row) would never have closed the 10x client', () => {
    // What the previous code did, for the record: one accepted frame per refill resets the count.
    const bucket = new TokenBucket(RATE, BURST, 0);
    let inARow = 0;
    let maxInARow = 0;
    for (let i = 0; i < 10 * RATE * 10; i++) {
      if (bucket.take(i) > 0) maxInARow = Math.max(maxInARow, ++inARow);
      else inARow = 0;
    }
    expect(maxInARow).toBeLessThan(STRIKES);
  });
});

describe('over real sockets', () => {
  let running: Running | undefined;
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  it('a client sending at 10x the rate is closed 1008; one that bursts once is not', async () => {
    running = await startEnvelope({ limits: { rate: { perSecond: 50, burst: 50 }, rateAbuseStrikes: 20, rateAbuseWindowMs: 1_000 } });
    const abuser = await connect(running.url('/ws?token=abuser'));
    const burster = await connect(running.url('/ws?token=burster'));
    for (let i = 0; i < 200; i++) burster.sendJson({ type: 'Ping', data: {} });
    const started = Date.now();
    // 10 frames every 20 ms: 500/s against 50/s, until the server closes it (bounded).
    const timer = setInterval(() => {
      for (let i = 0; i < 10; i++) abuser.sendJson({ type: 'Ping', data: {} });
    }, 20);
    const closed = await Promise.race([abuser.closed, new Promise<null>((r) => setTimeout(() => r(null), 15_000))]);
    clearInterval(timer);
    expect(closed?.code).toBe(1008);
    console.info(`abuse: 10x client closed ${Date.now() - started} ms after it started (window 1,000 ms)`);
    expect((await burster.request('Ping', {})).type).toBe('Ack');
    await burster.close();
  });
});
