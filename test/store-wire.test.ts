/**
 * History epochs and store failures on the wire (envelope): positions carry {offset, epoch}; a
 * position of another epoch is never recovered silently; a store that fails or hangs answers the
 * requests that need it with Error 503 + retry_after_ms, fast, while live traffic flows.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, type HistoryLimits, type HistoryPage, type HistoryQuery, type HistoryRecord, type QueuedDirect, type Store } from 'switchyard';
import { connectAs, startEnvelope, type Running } from './helpers.js';

const running: Running[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((r) => r.stop()));
});

async function broker(store: Store = new MemoryStore(), storeTimeoutMs?: number): Promise<Running> {
  const r = await startEnvelope({ history: { topics: ['chat/#'] }, store, ...(storeTimeoutMs !== undefined && { storeTimeoutMs }) });
  running.push(r);
  return r;
}

/** The memory store, until `down` is set: then every call hangs (or fails), as a cut backend does. */
class BreakableStore implements Store {
  readonly inner = new MemoryStore();
  down: 'hang' | 'fail' | null = null;
  #broken<T>(): Promise<T> {
    return this.down === 'fail' ? Promise.reject(new Error('connection lost')) : new Promise<T>(() => {});
  }
  async enqueueDirect(m: QueuedDirect): Promise<boolean> {
    return this.down ? this.#broken() : this.inner.enqueueDirect(m);
  }
  async drainDirect(id: string): Promise<QueuedDirect[]> {
    return this.down ? this.#broken() : this.inner.drainDirect(id);
  }
  async appendHistory(r: Omit<HistoryRecord, 'offset' | 'epoch'>, l: HistoryLimits): Promise<HistoryRecord> {
    return this.down ? this.#broken() : this.inner.appendHistory(r, l);
  }
  async readHistory(t: string, q: HistoryQuery, l: HistoryLimits): Promise<HistoryPage> {
    return this.down ? this.#broken() : this.inner.readHistory(t, q, l);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

describe('history epochs on the wire', () => {
  it('carries the epoch beside every offset: Ack, delivery, History, and Status positions after recovery', async () => {
    const r = await broker();
    const [pub, sub] = [await connectAs(r, 'alice'), await connectAs(r, 'bob')];
    await sub.request('Subscribe', { topics: ['chat/a'] });
    const acks = [];
    for (let n = 1; n <= 3; n++) acks.push((await pub.request('Broadcast', { topic: 'chat/a', payload: { n } })).data);
    const epoch = acks[0].epoch as string;
    expect(typeof epoch).toBe('string');
    expect(acks.map((a) => [a.offset, a.epoch])).toEqual([[1, epoch], [2, epoch], [3, epoch]]);
    for (let n = 1; n <= 3; n++) expect((await sub.nextOf('Broadcast')).data.metadata).toMatchObject({ offset: n, epoch });

    await sub.request('History', { topic: 'chat/a', since: { offset: 1, epoch } });
    const page = sub.frames.filter((f) => f.type === 'History').at(-1)!.data;
    expect(page).toMatchObject({ topic: 'chat/a', latest_offset: 3, epoch, complete: true });
    expect(page.messages.map((m: { metadata: unknown }) => m.metadata)).toEqual([2, 3].map((offset) => ({ sent_at: expect.any(Number), message_id: expect.any(String), offset, epoch })));

    const late = await connectAs(r, 'carol');
    await late.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': { offset: 1, epoch } } });
    const status = late.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
    expect(status.data.details).toMatchObject({ recovered: { 'chat/a': true }, positions: { 'chat/a': { offset: 3, epoch } } });
    expect(late.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.metadata.offset)).toEqual([2, 3]);
  });

  it('never recovers a position of another epoch silently: after a restart on an empty store the client is told recovered: false', async () => {
    const first = await broker();
    const pub = await connectAs(first, 'alice');
    let old = { offset: 0, epoch: '' };
    for (let n = 1; n <= 3; n++) {
      const ack = (await pub.request('Broadcast', { topic: 'chat/a', payload: { n } })).data;
      old = { offset: ack.offset, epoch: ack.epoch };
    }
    await first.stop();
    running.splice(running.indexOf(first), 1);

    // The restarted broker's store lost everything; its new history passes the old offset.
    const second = await broker();
    for (let n = 1; n <= 5; n++) await second.broker.publish('chat/a', { n: 100 + n });
    const client = await connectAs(second, 'bob');
    await client.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': old } });
    const status = client.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!;
    expect(status.data.details.recovered).toEqual({ 'chat/a': false });
    const now = status.data.details.positions['chat/a'];
    expect(now.epoch).not.toBe(old.epoch);
    expect(now.offset).toBe(5);
    // What the new epoch kept is replayed from its oldest record: the client can rebuild.
    expect(client.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload.n)).toEqual([101, 102, 103, 104, 105]);

    // A bare offset keeps today's meaning (of the current epoch).
    const bare = await connectAs(second, 'carol');
    await bare.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': 3 } });
    expect(bare.frames.find((f) => f.type === 'Status' && f.data.status === 'subscribed')!.data.details.recovered).toEqual({ 'chat/a': true });

    await client.request('History', { topic: 'chat/a', since: old });
    expect(client.frames.filter((f) => f.type === 'History').at(-1)!.data).toMatchObject({ complete: false, epoch: now.epoch, latest_offset: 5 });
  });

  it('refuses a malformed position with Error 400', async () => {
    const r = await broker();
    const c = await connectAs(r, 'alice');
    for (const bad of [{ offset: -1, epoch: 'e' }, { offset: 1 }, { offset: 1, epoch: 7 }, 'x', { offset: 1.5, epoch: 'e' }]) {
      expect((await c.request('Subscribe', { topics: ['chat/a'], recover: { 'chat/a': bad } })).data.code).toBe(400);
      expect((await c.request('History', { topic: 'chat/a', since: bad })).data.code).toBe(400);
    }
  });
});

describe('a store that fails or hangs', () => {
  for (const down of ['hang', 'fail'] as const) {
    it(`answers what needs the store with 503 + retry_after_ms within the timeout (${down}), and live traffic flows`, async () => {
      const store = new BreakableStore();
      const r = await broker(store, 300);
      const [pub, sub] = [await connectAs(r, 'alice'), await connectAs(r, 'bob')];
      await sub.request('Subscribe', { topics: ['chat/a', 'live/x'] });
      expect((await pub.request('Broadcast', { topic: 'chat/a', payload: 1 })).type).toBe('Ack');
      store.down = down;

      // Without the broker's bound a hung store would hang this request past the helper's 5 s.
      const refused = await pub.request('Broadcast', { topic: 'chat/a', payload: 2 });
      expect(refused.type).toBe('Error');
      expect(refused.data.code).toBe(503);
      expect(refused.data.details.retry_after_ms).toBeGreaterThan(0);
      expect((await pub.request('DirectMessage', { target_user: 'nobody', payload: 'x' })).data.code).toBe(503);
      expect((await pub.request('History', { topic: 'chat/a' })).data.code).toBe(503);

      // Live traffic on topics without history, and new connections, are untouched.
      expect((await pub.request('Broadcast', { topic: 'live/x', payload: 'still here' })).type).toBe('Ack');
      expect((await sub.nextOf('Broadcast', (f) => f.data.topic === 'live/x')).data.payload).toBe('still here');
      const fresh = await connectAs(r, 'dave');
      expect((await fresh.request('Ping', {})).type).toBe('Ack');

      // The store comes back: publishing with history works again, with the next offset.
      store.down = null;
      expect((await pub.request('Broadcast', { topic: 'chat/a', payload: 3 })).data.offset).toBe(2);
    });
  }
});
