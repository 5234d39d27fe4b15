/**
 * The memory store's bounds at their exact edges: queue budgets per principal and in total, the
 * queue and topic LRUs, history trimming by count, age and bytes, epochs of dropped topics, the
 * sweep. Sizes are measured through `store.bytes` (a message costs its JSON text, its binary data
 * and a fixed overhead), never hard-coded. Written from `npm run mutate` survivors (issue 19).
 */
import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryStore, type HistoryLimits, type MemoryStoreOptions, type QueuedDirect } from 'switchyard';

const ROOMY: HistoryLimits = { maxMessages: 1000, maxAgeMs: 60 * 60 * 1000 };
const HOUR = 60 * 60 * 1000;

const stores: MemoryStore[] = [];
afterEach(async () => {
  await Promise.all(stores.splice(0).map((s) => s.close()));
});
function store(options: MemoryStoreOptions = {}): MemoryStore {
  const s = new MemoryStore({ sweepIntervalMs: 0, ...options });
  stores.push(s);
  return s;
}

/** A direct message of a fixed size: ids and payloads of equal length cost equal bytes. */
const direct = (target: string, n: number, extra: Partial<QueuedDirect> = {}): QueuedDirect => ({
  messageId: `d${String(n).padStart(3, '0')}`,
  from: null,
  target,
  payload: 'x'.repeat(100),
  sentAt: Date.now(),
  ...extra,
});
const rec = (topic: string, n: number, extra: { sentAt?: number; payload?: unknown } = {}) => ({
  topic,
  messageId: `m${String(n).padStart(3, '0')}`,
  payload: 'x'.repeat(100),
  sentAt: Date.now(),
  from: null,
  ...extra,
});

/** What one direct message from `direct()` costs, measured on a store of its own. */
async function directSize(): Promise<number> {
  const s = store();
  await s.enqueueDirect(direct('probe', 1));
  return s.bytes.queued;
}
function recordSize(): number {
  const s = store();
  s.appendHistory(rec('probe', 1), ROOMY);
  return s.bytes.history;
}
const ids = (messages: Array<{ messageId: string }>) => messages.map((m) => m.messageId);

describe('what a kept message costs', () => {
  it('grows by exactly the JSON text, the binary data, the sender and the id added', async () => {
    const s = store();
    await s.enqueueDirect(direct('a', 1));
    const base = s.bytes.queued;
    expect(base).toBeGreaterThan(102); // the JSON text "xxx…" plus a fixed overhead
    await s.enqueueDirect(direct('b', 2, { payload: 'x'.repeat(150) }));
    expect(s.bytes.queued).toBe(2 * base + 50);
    await s.enqueueDirect(direct('c', 3, { binary: Buffer.alloc(1000) }));
    expect(s.bytes.queued).toBe(3 * base + 50 + 1000);
    await s.enqueueDirect(direct('d', 4, { from: 'alice' }));
    expect(s.bytes.queued).toBe(4 * base + 50 + 1000 + 5);
    await s.enqueueDirect(direct('e', 5, { messageId: 'd005-longer' }));
    expect(s.bytes.queued).toBe(5 * base + 50 + 1000 + 5 + 7);
    await s.enqueueDirect(direct('f', 6, { payload: undefined }));
    expect(s.bytes.queued).toBe(6 * base + 50 + 1000 + 5 + 7 - 102);
    const h = store();
    h.appendHistory(rec('t', 1), ROOMY);
    expect(h.bytes.history).toBe(base); // same id length, payload and sender: same cost
    h.appendHistory(rec('u', 2, { payload: { binary: true } }), ROOMY);
    expect(h.bytes.history).toBe(2 * base - 102 + JSON.stringify({ binary: true }).length);
  });
});

describe('direct queue budgets', () => {
  it('holds messages whose bytes add up to exactly the per-principal budget, and drops the oldest past it', async () => {
    const size = await directSize();
    const s = store({ maxQueuedBytesPerPrincipal: 3 * size });
    for (let n = 1; n <= 3; n++) expect(await s.enqueueDirect(direct('bob', n))).toBe(true);
    expect(s.bytes.queued).toBe(3 * size);
    expect(await s.enqueueDirect(direct('bob', 4))).toBe(true);
    expect(s.bytes.queued).toBe(3 * size);
    expect(ids(await s.drainDirect('bob'))).toEqual(['d002', 'd003', 'd004']);
    expect(s.bytes.queued).toBe(0);
  });

  it('accepts one message exactly as large as the per-principal budget, refuses one byte more', async () => {
    const size = await directSize();
    const s = store({ maxQueuedBytesPerPrincipal: size });
    expect(await s.enqueueDirect(direct('bob', 1, { payload: 'x'.repeat(101) }))).toBe(false);
    expect(s.bytes.queued).toBe(0);
    expect(await s.drainDirect('bob')).toEqual([]);
    expect(await s.enqueueDirect(direct('bob', 2))).toBe(true);
    expect(ids(await s.drainDirect('bob'))).toEqual(['d002']);
  });

  it('keeps the newest maxQueuedPerPrincipal messages, oldest first', async () => {
    const s = store({ maxQueuedPerPrincipal: 2 });
    for (let n = 1; n <= 5; n++) expect(await s.enqueueDirect(direct('bob', n))).toBe(true);
    expect(s.bytes.queued).toBe(2 * (await directSize()));
    expect(ids(await s.drainDirect('bob'))).toEqual(['d004', 'd005']);
  });

  it('refuses every message with a negative maxQueuedPerPrincipal, as with 0', async () => {
    const s = store({ maxQueuedPerPrincipal: -1 });
    expect(await s.enqueueDirect(direct('bob', 1))).toBe(false);
    expect(await s.drainDirect('bob')).toEqual([]);
    expect(s.bytes.queued).toBe(0);
  });

  it('never sets the total budget below one principal’s: a full queue fits whatever maxQueuedBytes says', async () => {
    const size = await directSize();
    const s = store({ maxQueuedBytesPerPrincipal: 4 * size, maxQueuedBytes: size });
    for (let n = 1; n <= 4; n++) await s.enqueueDirect(direct('bob', n));
    expect(ids(await s.drainDirect('bob'))).toEqual(['d001', 'd002', 'd003', 'd004']);
  });

  it('holds exactly the total budget across principals, and past it drops the least recently used queue', async () => {
    const size = await directSize();
    const s = store({ maxQueuedBytesPerPrincipal: 2 * size, maxQueuedBytes: 3 * size });
    await s.enqueueDirect(direct('ann', 1));
    await s.enqueueDirect(direct('bob', 2));
    await s.enqueueDirect(direct('ann', 3)); // ann is now the most recently used
    expect(s.bytes.queued).toBe(3 * size); // exactly the budget: nothing dropped
    await s.enqueueDirect(direct('cat', 4)); // past it: bob, the least recently used, goes
    expect(s.bytes.queued).toBe(3 * size);
    expect(await s.drainDirect('bob')).toEqual([]);
    expect(ids(await s.drainDirect('ann'))).toEqual(['d001', 'd003']);
    expect(ids(await s.drainDirect('cat'))).toEqual(['d004']);
  });

  it('drops the least recently used principal past maxQueuedPrincipals, and frees its bytes', async () => {
    const size = await directSize();
    const s = store({ maxQueuedPrincipals: 2 });
    await s.enqueueDirect(direct('ann', 1));
    await s.enqueueDirect(direct('bob', 2));
    await s.enqueueDirect(direct('ann', 3));
    await s.enqueueDirect(direct('cat', 4));
    expect(s.bytes.queued).toBe(3 * size);
    expect(await s.drainDirect('bob')).toEqual([]);
    expect(ids(await s.drainDirect('ann'))).toEqual(['d001', 'd003']);
  });

  it('skips messages older than queuedTtlMs when draining, and keeps younger ones', async () => {
    const s = store({ queuedTtlMs: HOUR });
    const now = Date.now();
    await s.enqueueDirect(direct('bob', 1, { sentAt: now - HOUR - 60_000 }));
    await s.enqueueDirect(direct('bob', 2, { sentAt: now - HOUR + 60_000 }));
    await s.enqueueDirect(direct('bob', 3, { sentAt: now }));
    expect(ids(await s.drainDirect('bob'))).toEqual(['d002', 'd003']);
  });
});

describe('the sweep of queued messages', () => {
  it('drops the messages older than queuedTtlMs at the given time, to the millisecond, and frees their bytes', async () => {
    const size = await directSize();
    const s = store({ queuedTtlMs: HOUR });
    const now = Date.now();
    await s.enqueueDirect(direct('bob', 1, { sentAt: now - HOUR - 1 }));
    await s.enqueueDirect(direct('bob', 2, { sentAt: now - HOUR }));
    await s.enqueueDirect(direct('bob', 3, { sentAt: now }));
    await s.enqueueDirect(direct('ann', 4, { sentAt: now - 2 * HOUR }));
    await s.enqueueDirect(direct('cat', 5, { sentAt: now }));
    s.sweep(now);
    expect(s.bytes.queued).toBe(3 * size); // d002, exactly queuedTtlMs old, stays
    s.sweep(now + 1);
    expect(s.bytes.queued).toBe(2 * size);
    expect(ids(await s.drainDirect('bob'))).toEqual(['d003']);
    expect(await s.drainDirect('ann')).toEqual([]);
    expect(ids(await s.drainDirect('cat'))).toEqual(['d005']);
    expect(s.bytes.queued).toBe(0);
  });

  it('keeps a queue with nothing expired untouched', async () => {
    const size = await directSize();
    const s = store({ queuedTtlMs: HOUR });
    const now = Date.now();
    for (let n = 1; n <= 3; n++) await s.enqueueDirect(direct('bob', n, { sentAt: now }));
    s.sweep(now + HOUR);
    expect(s.bytes.queued).toBe(3 * size);
    expect(ids(await s.drainDirect('bob'))).toEqual(['d001', 'd002', 'd003']);
  });
});

describe('history trimming', () => {
  it('keeps the newest maxMessages records and frees the bytes of the others', async () => {
    const size = recordSize();
    const s = store();
    const limits = { maxMessages: 3, maxAgeMs: HOUR };
    for (let n = 1; n <= 5; n++) s.appendHistory(rec('t', n), limits);
    expect(s.bytes.history).toBe(3 * size);
    const page = await s.readHistory('t', {}, limits);
    expect(page.records.map((r) => [r.offset, r.messageId])).toEqual([
      [3, 'm003'],
      [4, 'm004'],
      [5, 'm005'],
    ]);
  });

  it('says a position just before the oldest kept record is complete, and one earlier is not', async () => {
    const s = store();
    const limits = { maxMessages: 3, maxAgeMs: HOUR };
    let epoch = '';
    for (let n = 1; n <= 5; n++) epoch = s.appendHistory(rec('t', n), limits).epoch;
    const at = async (offset: number) => s.readHistory('t', { since: { offset, epoch } }, limits);
    expect(await at(2)).toMatchObject({ complete: true, latestOffset: 5 });
    expect((await at(2)).records.map((r) => r.offset)).toEqual([3, 4, 5]);
    expect(await at(1)).toMatchObject({ complete: false });
    expect((await at(1)).records.map((r) => r.offset)).toEqual([3, 4, 5]);
    expect((await at(4)).records.map((r) => r.offset)).toEqual([5]);
    expect(await at(5)).toMatchObject({ complete: true, records: [] });
    expect(await at(6)).toMatchObject({ complete: false, records: [] }); // a history this store no longer has
    expect((await s.readHistory('t', { since: { offset: 2, epoch }, limit: 2 }, limits)).records.map((r) => r.offset)).toEqual([3, 4]);
    expect((await s.readHistory('t', { since: 2, limit: 1 }, limits)).records.map((r) => r.offset)).toEqual([3]);
  });

  it('expires records older than maxAgeMs at read, the newest too, and keeps counting', async () => {
    const s = store();
    const now = Date.now();
    const limits = { maxMessages: 100, maxAgeMs: HOUR };
    s.appendHistory(rec('t', 1, { sentAt: now - HOUR - 60_000 }), limits);
    s.appendHistory(rec('t', 2, { sentAt: now - HOUR + 60_000 }), limits);
    const page = await s.readHistory('t', {}, limits);
    expect(page.records.map((r) => r.offset)).toEqual([2]);
    const all = await s.readHistory('t', {}, { maxMessages: 100, maxAgeMs: 30_000 });
    expect(all).toMatchObject({ records: [], latestOffset: 2 });
    expect(s.bytes.history).toBe(0);
    expect(s.appendHistory(rec('t', 3), limits).offset).toBe(3);
  });

  it('holds records whose bytes add up to exactly the per-topic budget, and drops the oldest past it', async () => {
    const size = recordSize();
    const s = store({ maxHistoryBytesPerTopic: 3 * size });
    for (let n = 1; n <= 3; n++) s.appendHistory(rec('t', n), ROOMY);
    expect(s.bytes.history).toBe(3 * size);
    expect((await s.readHistory('t', {}, ROOMY)).records.map((r) => r.offset)).toEqual([1, 2, 3]);
    s.appendHistory(rec('t', 4), ROOMY);
    expect(s.bytes.history).toBe(3 * size);
    expect((await s.readHistory('t', {}, ROOMY)).records.map((r) => r.offset)).toEqual([2, 3, 4]);
  });

  it('sweeps an idle topic with the limits of its last append, at the given time', async () => {
    const size = recordSize();
    const s = store();
    const now = Date.now();
    s.appendHistory(rec('t', 1, { sentAt: now - 2000 }), { maxMessages: 100, maxAgeMs: HOUR });
    s.appendHistory(rec('t', 2, { sentAt: now - 1000 }), { maxMessages: 100, maxAgeMs: 1500 });
    s.appendHistory(rec('u', 1, { sentAt: now - 2000 }), ROOMY);
    s.sweep(now);
    expect(s.bytes.history).toBe(2 * size); // t's first record went; u's is within its hour
    s.sweep(now + 1000);
    expect(s.bytes.history).toBe(size);
  });

  it('reads right after many trims of a long-lived topic (past the point where the window is compacted)', async () => {
    const s = store();
    const limits = { maxMessages: 10, maxAgeMs: HOUR };
    for (let n = 1; n <= 2600; n++) {
      s.appendHistory(rec('t', n), limits);
      if (n % 500 === 0 || n === 1035 || n === 2070) {
        const page = await s.readHistory('t', {}, limits);
        expect(page.records.map((r) => r.offset), String(n)).toEqual(Array.from({ length: 10 }, (_, i) => n - 9 + i));
        expect(page.records.map((r) => r.messageId)).toEqual(Array.from({ length: 10 }, (_, i) => `m${String(n - 9 + i).padStart(3, '0')}`));
      }
    }
    expect(s.bytes.history).toBe(10 * recordSize() + 10 * 1); // four-digit ids cost one byte more
  });
});

describe('history across topics', () => {
  it('never sets the total budget below one topic’s', async () => {
    const size = recordSize();
    const s = store({ maxHistoryBytesPerTopic: 3 * size, maxHistoryBytes: size });
    for (let n = 1; n <= 3; n++) s.appendHistory(rec('t', n), ROOMY);
    expect((await s.readHistory('t', {}, ROOMY)).records.map((r) => r.offset)).toEqual([1, 2, 3]);
  });

  it('holds exactly the total budget, and past it drops the least recently used topic under a new epoch', async () => {
    const size = recordSize();
    const s = store({ maxHistoryBytesPerTopic: 2 * size, maxHistoryBytes: 3 * size });
    const a = s.appendHistory(rec('a', 1), ROOMY);
    const b = s.appendHistory(rec('b', 1), ROOMY);
    s.appendHistory(rec('a', 2), ROOMY);
    expect(s.bytes.history).toBe(3 * size);
    s.appendHistory(rec('c', 1), ROOMY); // b goes
    expect(s.bytes.history).toBe(3 * size);
    const lost = await s.readHistory('b', { since: { offset: 0, epoch: b.epoch } }, ROOMY);
    expect(lost).toMatchObject({ records: [], latestOffset: 0, complete: false });
    expect(lost.epoch).not.toBe(b.epoch);
    const kept = await s.readHistory('a', { since: { offset: 0, epoch: a.epoch } }, ROOMY);
    expect(kept).toMatchObject({ complete: true, epoch: a.epoch });
    expect(kept.records.map((r) => r.offset)).toEqual([1, 2]);
  });

  it('answers a topic never written as complete from offset 0 of the current epoch only', async () => {
    const s = store();
    const first = await s.readHistory('none', {}, ROOMY);
    expect(first).toMatchObject({ records: [], latestOffset: 0, complete: true });
    expect(await s.readHistory('none', { since: 0 }, ROOMY)).toMatchObject({ complete: true, epoch: first.epoch });
    expect(await s.readHistory('none', { since: { offset: 0, epoch: first.epoch } }, ROOMY)).toMatchObject({ complete: true });
    expect(await s.readHistory('none', { since: { offset: 3, epoch: first.epoch } }, ROOMY)).toMatchObject({ complete: false });
    expect(await s.readHistory('none', { since: { offset: 0, epoch: 'elsewhere' } }, ROOMY)).toMatchObject({ complete: false });
  });
});

describe('defaults', () => {
  it('keeps a queued direct message for 24 hours', async () => {
    const s = store();
    const now = Date.now();
    await s.enqueueDirect(direct('bob', 1, { sentAt: now - 25 * HOUR }));
    await s.enqueueDirect(direct('bob', 2, { sentAt: now - 23 * HOUR }));
    expect(ids(await s.drainDirect('bob'))).toEqual(['d002']);
  });

  it('holds more than one principal’s or topic’s budget (1 MiB) in total', async () => {
    const big = 'x'.repeat(700 * 1024);
    const s = store();
    for (const p of ['ann', 'bob', 'cat']) expect(await s.enqueueDirect(direct(p, 1, { payload: big }))).toBe(true);
    for (const t of ['a', 'b', 'c']) s.appendHistory(rec(t, 1, { payload: big }), ROOMY);
    for (const p of ['ann', 'bob', 'cat']) expect(await s.drainDirect(p)).toHaveLength(1);
    for (const t of ['a', 'b', 'c']) expect((await s.readHistory(t, {}, ROOMY)).records).toHaveLength(1);
  });

  it('keeps queues for 10,000 principals, and drops the least recently used past that', async () => {
    const s = store();
    for (let p = 0; p <= 10_000; p++) await s.enqueueDirect(direct(`user${p}`, 1, { payload: null }));
    expect(await s.drainDirect('user0')).toEqual([]);
    expect(await s.drainDirect('user1')).toHaveLength(1);
    expect(await s.drainDirect('user10000')).toHaveLength(1);
  });
});

describe('the sweep timer and its bounds', () => {
  it('never sweeps with sweepIntervalMs 0 (a store sweeping every millisecond, started after it, shows time passed)', async () => {
    const brief = { maxMessages: 100, maxAgeMs: 1 };
    const never = new MemoryStore({ sweepIntervalMs: 0 });
    const often = new MemoryStore({ sweepIntervalMs: 1 });
    stores.push(never, often);
    // Date held still for the append: under load a millisecond passing between the record's
    // sentAt and the append would expire it (maxAgeMs 1) before it is ever held.
    const clock = vi.spyOn(Date, 'now').mockReturnValue(Date.now());
    never.appendHistory(rec('t', 1), brief);
    clock.mockRestore();
    const held = never.bytes.history;
    expect(held).toBeGreaterThan(0);
    // Timers of one duration fire in the order they were set, so a timer `never` had set
    // (setInterval(…, 0) runs every millisecond) runs before each of `often`'s sweeps: once
    // `often` has freed a record that expired after `never`'s, and then swept once more,
    // such a timer would have freed `never`'s record too.
    for (let round = 0; round < 2; round++) {
      often.appendHistory(rec('t', round), brief);
      while (often.bytes.history > 0) await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(never.bytes.history).toBe(held);
  });

  it('visits at most 1,000 topics and 1,000 principals per sweep, least recently used first', async () => {
    const size = recordSize();
    const qsize = await directSize();
    const s = store({ queuedTtlMs: HOUR });
    const now = Date.now();
    const limits = { maxMessages: 100, maxAgeMs: HOUR };
    for (let t = 0; t < 1002; t++) s.appendHistory(rec(`topic${t}`, 1, { sentAt: now }), limits);
    for (let p = 0; p < 1002; p++) await s.enqueueDirect(direct(`user${p}`, 1, { sentAt: now }));
    expect(s.bytes).toEqual({ history: 1002 * size, queued: 1002 * qsize });
    const later = now + 2 * HOUR; // everything has expired by then
    s.sweep(later);
    // The two most recently used topics and principals were not visited yet.
    expect(s.bytes).toEqual({ history: 2 * size, queued: 2 * qsize });
    // Regression: the next sweep visited the same 1,000 least recently used topics again (kept,
    // emptied, for their offsets and epoch) and never reached the others.
    s.sweep(later);
    expect(s.bytes).toEqual({ history: 0, queued: 0 });
    expect(await s.readHistory('topic1001', {}, ROOMY)).toMatchObject({ records: [], latestOffset: 1 });
  });

  it('reaches every idle topic on later sweeps, however many emptied ones it has swept before', async () => {
    const size = recordSize();
    const s = store();
    const now = Date.now();
    const limits = { maxMessages: 100, maxAgeMs: HOUR };
    for (let t = 0; t < 1500; t++) s.appendHistory(rec(`old${t}`, 1, { sentAt: now }), limits);
    s.sweep(now + 2 * HOUR); // empties old0..old999
    for (let t = 0; t < 3; t++) s.appendHistory(rec(`new${t}`, 1, { sentAt: now + 2 * HOUR }), limits);
    expect(s.bytes.history).toBe(503 * size);
    s.sweep(now + 2 * HOUR); // old1000..old1499 have expired; the new ones have not
    expect(s.bytes.history).toBe(3 * size);
  });

  it('expires history at exactly maxAgeMs, to the millisecond, at the time given', async () => {
    const size = recordSize();
    // The append trims by age on the clock too: hold Date still so a busy machine's passing
    // millisecond between `now` and the append cannot expire the record before the sweeps.
    vi.useFakeTimers({ toFake: ['Date'] });
    try {
      const s = store();
      const now = Date.now();
      s.appendHistory(rec('t', 1, { sentAt: now - 1000 }), { maxMessages: 100, maxAgeMs: 1000 });
      s.sweep(now);
      expect(s.bytes.history).toBe(size);
      s.sweep(now + 1);
      expect(s.bytes.history).toBe(0);
    } finally {
      vi.useRealTimers();
    }
  });
});

describe('edges of what is kept', () => {
  it('keeps the newest record even when it alone is larger than the total history budget', async () => {
    const size = recordSize();
    const s = store({ maxHistoryBytesPerTopic: size, maxHistoryBytes: 2 * size });
    s.appendHistory(rec('small', 1), ROOMY);
    const big = s.appendHistory(rec('big', 1, { payload: 'y'.repeat(10 * size) }), ROOMY);
    const page = await s.readHistory('big', { since: { offset: 0, epoch: big.epoch } }, ROOMY);
    expect(page).toMatchObject({ complete: true, epoch: big.epoch, latestOffset: 1 });
    expect(page.records.map((r) => r.messageId)).toEqual(['m001']);
    expect((await s.readHistory('small', {}, ROOMY)).records).toEqual([]); // the other topic made room
  });

  it('keeps a message with no JSON payload (binary only) in history and in the queue', async () => {
    const s = store();
    const binary = Buffer.from([0, 1, 2, 255]);
    s.appendHistory({ ...rec('t', 1), payload: undefined, binary }, ROOMY);
    await s.enqueueDirect(direct('bob', 1, { payload: undefined, binary }));
    const [record] = (await s.readHistory('t', {}, ROOMY)).records;
    expect(record!.payload).toBeUndefined();
    expect(record!.binary).toEqual(binary);
    const [message] = await s.drainDirect('bob');
    expect(message!.payload).toBeUndefined();
    expect(message!.binary).toEqual(binary);
  });

  it('frees everything it held on close', async () => {
    const s = store();
    s.appendHistory(rec('t', 1), ROOMY);
    await s.enqueueDirect(direct('bob', 1));
    expect(s.bytes.history).toBeGreaterThan(0);
    await s.close();
    expect(s.bytes).toEqual({ history: 0, queued: 0 });
  });
});
