/**
 * A Broadcast to a history topic on an asynchronous store is pipelined (the connection's next
 * frames are handled while its append is in flight), so when it fails, another request may be
 * in flight by then. Its Error must name its own id, and the request in flight still gets its own
 * reply (DESIGN.md "Acks": exactly one Ack or Error per id): whether the store's append rejects
 * (Error 503) or throws at once while queued behind an earlier append of the topic (Error 500).
 * Real sockets; the store holds each call until the test releases it.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore, type HistoryLimits, type HistoryPage, type HistoryQuery, type HistoryRecord, type QueuedDirect, type Store } from 'switchyard';
import { connectAs, startEnvelope, until, type Client, type Frame, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

interface Held {
  release: () => void;
  fail: (err: Error) => void;
}

/** A memory store whose appends and history reads answer when the test says; `boom` payloads throw at once. */
class HeldStore implements Store {
  readonly inner = new MemoryStore();
  readonly appends: Held[] = [];
  readonly reads: Held[] = [];
  constructor(readonly ordersAppends: boolean) {}
  appendHistory(r: Omit<HistoryRecord, 'offset' | 'epoch'>, l: HistoryLimits): Promise<HistoryRecord> {
    if (r.payload === 'boom') throw new TypeError('store refused the record');
    // A store may throw anything, not only an Error.
    if (typeof r.payload === 'object' && r.payload !== null && 'throws' in r.payload) throw (r.payload as { throws: unknown }).throws;
    const record = this.inner.appendHistory(r, l);
    return new Promise((resolve, reject) => this.appends.push({ release: () => resolve(record), fail: reject }));
  }
  readHistory(t: string, q: HistoryQuery, l: HistoryLimits): Promise<HistoryPage> {
    const page = this.inner.readHistory(t, q, l);
    return new Promise((resolve, reject) => this.reads.push({ release: () => resolve(page), fail: reject }));
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

async function broker(store: Store): Promise<Client> {
  running = await startEnvelope({ history: { topics: ['chat/#'] }, store });
  return connectAs(running, 'alice');
}

/** Every Ack and Error naming `id`. */
function repliesTo(c: Client, id: string): Frame[] {
  return c.frames.filter((f) => (f.type === 'Ack' && f.data.message_id === id) || (f.type === 'Error' && f.data.details?.message_id === id));
}

describe('a pipelined Broadcast that fails while another request is in flight', () => {
  it('a rejected append: Error 503 names the Broadcast, and the History in flight gets its own Ack', async () => {
    const store = new HeldStore(true);
    const c = await broker(store);
    c.sendJson({ type: 'Broadcast', data: { topic: 'chat/a', payload: 1 }, id: 'b1' });
    await until(() => store.appends.length === 1, 'the append in flight');
    c.sendJson({ type: 'History', data: { topic: 'chat/a' }, id: 'h1' });
    await until(() => store.reads.length === 1, 'the history read in flight');
    store.appends[0]!.fail(new Error('connection lost'));
    const error = await c.nextOf('Error');
    expect(error.data).toMatchObject({ code: 503, details: { message_id: 'b1' } });
    store.reads[0]!.release();
    expect(await c.nextOf('Ack')).toEqual({ type: 'Ack', data: { message_id: 'h1', status: 'ok' } });
    await c.roundTrip();
    expect(repliesTo(c, 'b1')).toHaveLength(1);
    expect(repliesTo(c, 'h1')).toHaveLength(1);
    await c.close();
  });

  it('an append that throws at once behind an earlier one: Error 500 names that Broadcast, the others get theirs', async () => {
    const store = new HeldStore(false);
    const c = await broker(store);
    const errors: Error[] = [];
    running!.broker.on('error', (e) => errors.push(e));
    c.sendJson({ type: 'Broadcast', data: { topic: 'chat/a', payload: 1 }, id: 'b1' });
    await until(() => store.appends.length === 1, 'the first append in flight');
    // Queued behind b1's append (this store does not number concurrent appends in call order).
    c.sendJson({ type: 'Broadcast', data: { topic: 'chat/a', payload: 'boom' }, id: 'b2' });
    c.sendJson({ type: 'History', data: { topic: 'chat/b' }, id: 'h1' });
    await until(() => store.reads.length === 1, 'the history read in flight');
    store.appends[0]!.release();
    expect((await c.nextOf('Ack')).data).toMatchObject({ message_id: 'b1', status: 'delivered' });
    const error = await c.nextOf('Error');
    expect(error.data).toMatchObject({ code: 500, details: { message_id: 'b2' } });
    expect(errors.map((e) => e.message)).toEqual(['store refused the record']);
    store.reads[0]!.release();
    expect(await c.nextOf('Ack')).toEqual({ type: 'Ack', data: { message_id: 'h1', status: 'ok' } });
    await c.roundTrip();
    for (const id of ['b1', 'b2', 'h1']) expect(repliesTo(c, id), id).toHaveLength(1);
    await c.close();
  });

  it('a Broadcast without id whose append fails: its Error names no request, and the History in flight gets only its Ack', async () => {
    const store = new HeldStore(true);
    const c = await broker(store);
    c.sendJson({ type: 'Broadcast', data: { topic: 'chat/a', payload: 1 } });
    await until(() => store.appends.length === 1, 'the append in flight');
    c.sendJson({ type: 'History', data: { topic: 'chat/a' }, id: 'h1' });
    await until(() => store.reads.length === 1, 'the history read in flight');
    store.appends[0]!.fail(new Error('connection lost'));
    const error = await c.nextOf('Error');
    expect(error.data).toEqual({ code: 503, message: expect.any(String), details: { retry_after_ms: expect.any(Number) } });
    store.reads[0]!.release();
    expect(await c.nextOf('Ack')).toEqual({ type: 'Ack', data: { message_id: 'h1', status: 'ok' } });
    await c.roundTrip();
    expect(repliesTo(c, 'h1')).toHaveLength(1);
    await c.close();
  });

  it.each([
    ['a string', 'quota exceeded', 'quota exceeded'],
    ['null', null, 'null'],
    ['a number', 7, '7'],
  ])('an append that throws %s behind an earlier one: Error 500 names that Broadcast, the host is told what was thrown', async (_name, thrown, text) => {
    const store = new HeldStore(false);
    const c = await broker(store);
    const errors: Error[] = [];
    running!.broker.on('error', (e) => errors.push(e));
    c.sendJson({ type: 'Broadcast', data: { topic: 'chat/a', payload: 1 }, id: 'b1' });
    await until(() => store.appends.length === 1, 'the first append in flight');
    c.sendJson({ type: 'Broadcast', data: { topic: 'chat/a', payload: { throws: thrown } }, id: 'b2' });
    c.sendJson({ type: 'History', data: { topic: 'chat/b' }, id: 'h1' });
    await until(() => store.reads.length === 1, 'the history read in flight');
    store.appends[0]!.release();
    expect((await c.nextOf('Ack')).data).toMatchObject({ message_id: 'b1', status: 'delivered' });
    expect((await c.nextOf('Error')).data).toMatchObject({ code: 500, details: { message_id: 'b2' } });
    expect(errors.map((e) => e.message)).toEqual([text]);
    store.reads[0]!.release();
    expect(await c.nextOf('Ack')).toEqual({ type: 'Ack', data: { message_id: 'h1', status: 'ok' } });
    await c.roundTrip();
    for (const id of ['b1', 'b2', 'h1']) expect(repliesTo(c, id), id).toHaveLength(1);
    await c.close();
  });
});
