/**
 * The token bucket behind `limits.rate`, on an injected clock, and the `retry_after_ms` a
 * limited client is told over the wire. Written from `npm run mutate` survivors (issue 19).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { TokenBucket } from '../lib/rate-limit.js';
import { connect, type Running, startEnvelope, until } from './helpers.js';

describe('TokenBucket (clock injected)', () => {
  it('starts full, then says exactly how long until the next token', () => {
    const bucket = new TokenBucket(2, 3, 1000);
    expect([bucket.take(1000), bucket.take(1000), bucket.take(1000)]).toEqual([0, 0, 0]);
    expect(bucket.take(1000)).toBe(500); // 2 per second: one token every 500 ms
    expect(bucket.take(1250)).toBe(250); // half a token refilled
    expect(bucket.take(1500)).toBe(0);
    expect(bucket.take(1500)).toBe(500);
  });

  it('rounds the wait up to a whole millisecond, never to 0', () => {
    const bucket = new TokenBucket(3, 1, 0);
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(0)).toBe(334); // 1000/3 = 333.3…
    expect(bucket.take(333)).toBe(1);
    expect(bucket.take(334)).toBe(0);
  });

  it('holds at most `burst` tokens however long it idles', () => {
    const bucket = new TokenBucket(10, 2, 0);
    expect(bucket.take(0)).toBe(0);
    expect(bucket.take(3_600_000)).toBe(0);
    expect(bucket.take(3_600_000)).toBe(0);
    expect(bucket.take(3_600_000)).toBe(100);
  });

  it('refills in proportion to the elapsed time and counts from the last refill', () => {
    const bucket = new TokenBucket(4, 4, 0);
    for (let i = 0; i < 4; i++) bucket.take(0);
    expect(bucket.take(0)).toBe(250);
    expect(bucket.take(500)).toBe(0); // 2 tokens back
    expect(bucket.take(500)).toBe(0);
    expect(bucket.take(500)).toBe(250);
    expect(bucket.take(600)).toBe(150);
  });

  it('ignores a clock that goes backwards', () => {
    const bucket = new TokenBucket(1, 1, 10_000);
    expect(bucket.take(10_000)).toBe(0);
    expect(bucket.take(5_000)).toBe(1000); // no refill, no negative elapsed time
    expect(bucket.take(10_500)).toBe(500);
  });

  it('uses the real clock by default', () => {
    const bucket = new TokenBucket(1, 1);
    expect(bucket.take()).toBe(0);
    const wait = bucket.take();
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(1000);
  });
});

describe('retry_after_ms over the wire', () => {
  let running: Running | undefined;
  afterEach(async () => {
    await running?.stop();
    running = undefined;
  });

  it('is a whole number of milliseconds no longer than one token takes to come back', async () => {
    running = await startEnvelope({ limits: { rate: { perSecond: 4, burst: 1 }, rateAbuseStrikes: 100 } });
    const c = await connect(running.url('/ws?token=a'));
    c.sendJson({ type: 'Ping', data: {}, id: 'p0' });
    c.sendJson({ type: 'Ping', data: {}, id: 'p1' });
    await until(() => c.frames.some((f) => f.type === 'Error'), 'the 429');
    const error = c.frames.find((f) => f.type === 'Error')!;
    expect(error.data.code).toBe(429);
    const wait = error.data.details.retry_after_ms as number;
    expect(Number.isInteger(wait)).toBe(true);
    expect(wait).toBeGreaterThan(0);
    expect(wait).toBeLessThanOrEqual(250);
    await c.close();
  });
});
