/**
 * Publishes waiting on an asynchronous store are pipelined: one connection's Broadcasts to a
 * history topic append concurrently (a slow store no longer bounds a publisher to one publish
 * per round trip), yet every subscriber receives each topic in offset order, even when the store
 * answers the later appends first, and a failed append's Error names its own request. A store
 * that does not promise offsets in call order gets one append at a time per topic.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, type HistoryLimits, type HistoryPage, type HistoryQuery, type HistoryRecord, type QueuedDirect, type Store } from 'switchyard';
import { connectAs, startEnvelope, until, type Running } from './helpers.js';

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

/** Numbers appends at once (memory store) but answers only when the test releases them. */
class HeldStore implements Store {
  readonly inner = new MemoryStore();
  constructor(readonly ordersAppends: boolean) {}
  readonly held: Array<{ release: () => void; fail: (err: Error) => void; messageId: string }> = [];
  async appendHistory(r: Omit<HistoryRecord, 'offset' | 'epoch'>, l: HistoryLimits): Promise<HistoryRecord> {
    const record = await this.inner.appendHistory(r, l);
    return new Promise((resolve, reject) => this.held.push({ release: () => resolve(record), fail: reject, messageId: r.messageId }));
  }
  readHistory(t: string, q: HistoryQuery, l: HistoryLimits): Promise<HistoryPage> {
    return Promise.resolve(this.inner.readHistory(t, q, l));
  }
  enqueueDirect(m: QueuedDirect): Promise<boolean> {
    return Promise.resolve(this.inner.enqueueDirect(m));
  }
  drainDirect(id: string): Promise<QueuedDirect[]> {
    return Promise.resolve(this.inner.drainDirect(id));
  }
  close(): Promise<void> {
    return Promise.resolve(this.inner.close());
  }
}

async function broker(store: Store): Promise<Running> {
  const r = await startEnvelope({ history: { topics: ['chat/#'] }, store });
  running.push(r);
  return r;
}

describe('publishes pipelined through an asynchronous store', () => {
  it('appends one connection\'s Broadcasts concurrently and delivers them in offset order when the store answers last-first', async () => {
    const store = new HeldStore(true);
    const r = await broker(store);
    const [pub, sub] = [await connectAs(r, 'alice'), await connectAs(r, 'bob')];
    await sub.request('Subscribe', { topics: ['chat/a'] });
    const replies = [1, 2, 3, 4, 5].map((n) => pub.request('Broadcast', { topic: 'chat/a', payload: { n } }));
    // All five are at the store at once (one at a time, this would wait for ever).
    await until(() => store.held.length === 5, 'five appends in flight');
    for (const h of [...store.held].reverse()) h.release();
    const acks = await Promise.all(replies);
    expect(acks.map((a) => [a.type, a.data.offset])).toEqual([1, 2, 3, 4, 5].map((n) => ['Ack', n]));
    const got = [];
    for (let i = 0; i < 5; i++) got.push((await sub.nextOf('Broadcast')).data);
    expect(got.map((d) => [d.metadata.offset, d.payload.n])).toEqual([[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);
  });

  it('names the failed request in its Error while later ones succeed', async () => {
    const store = new HeldStore(true);
    const r = await broker(store);
    const pub = await connectAs(r, 'alice');
    const replies = [1, 2, 3].map((n) => pub.request('Broadcast', { topic: 'chat/a', payload: { n } }));
    await until(() => store.held.length === 3, 'three appends in flight');
    store.held[2]!.release();
    store.held[0]!.fail(new Error('connection lost'));
    store.held[1]!.release();
    const [first, second, third] = await Promise.all(replies);
    expect(first!.type).toBe('Error');
    expect(first!.data).toMatchObject({ code: 503, details: { message_id: 'r1' } });
    expect([second!.type, third!.type]).toEqual(['Ack', 'Ack']);
  });

  it('gives a store without ordersAppends one append at a time per topic, topics side by side', async () => {
    const store = new HeldStore(false);
    const r = await broker(store);
    const pub = await connectAs(r, 'alice');
    const replies = ['chat/a', 'chat/a', 'chat/b', 'chat/a'].map((topic, n) => pub.request('Broadcast', { topic, payload: { n } }));
    await until(() => store.held.length === 2, 'one append per topic');
    await pub.roundTrip();
    expect(store.held.length).toBe(2);
    store.held[0]!.release();
    await until(() => store.held.length === 3, 'the next append of chat/a');
    store.held[1]!.release();
    store.held[2]!.release();
    await until(() => store.held.length === 4, 'the last append of chat/a');
    store.held[3]!.release();
    const acks = await Promise.all(replies);
    expect(acks.map((a) => a.data.offset)).toEqual([1, 2, 1, 3]);
  });
});
