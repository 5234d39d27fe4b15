/**
 * What a bus says about its link reaches the host on the broker's `error` event (lib/cluster.ts),
 * without a network: a MemoryBus whose observer the test drives as a network bus would.
 */
import { afterEach, expect, it } from 'vitest';
import { envelope, MemoryBus, MemoryHub, type BusHandler, type BusObserver } from 'switchyard';
import { start, tokenAuth, until, type Running } from './helpers.js';

/** A MemoryBus that keeps the observer its broker hands to start(). */
class WatchedBus extends MemoryBus {
  observer: BusObserver | undefined;
  override async start(nodeId: string, handler: BusHandler, observer?: BusObserver): Promise<void> {
    this.observer = observer;
    await super.start(nodeId, handler);
  }
}

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

it('reports a lost link, the gap and bus errors on the error event', async () => {
  const bus = new WatchedBus(new MemoryHub());
  running = await start({ endpoints: [{ path: '/ws', protocol: envelope() }], authenticate: tokenAuth, bus });
  const errors: Array<Error & { code?: string; context?: Record<string, unknown> }> = [];
  running.broker.on('error', (err) => errors.push(err));
  await until(() => bus.observer !== undefined, 'the bus to be started');
  bus.observer!.down!({ since: 1000, reason: 'connection closed' });
  bus.observer!.gap!({ since: 1000, until: 1250, durationMs: 250, reason: 'connection closed' });
  const cause = new Error('ECONNRESET');
  bus.observer!.error!(cause);
  expect(errors.map((e) => [e.code, e.context])).toEqual([
    ['SY_ERR_BUS_GAP', { bus: 'down', since: 1000, reason: 'connection closed' }],
    ['SY_ERR_BUS_GAP', { bus: 'gap', since: 1000, until: 1250, durationMs: 250, reason: 'connection closed' }],
    ['SY_ERR_BACKEND', {}],
  ]);
  expect(errors[1]!.message).toMatch(/250 ms/);
  expect(errors[2]!.cause).toBe(cause);
});
