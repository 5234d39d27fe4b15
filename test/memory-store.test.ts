/** What the memory store adds beyond the conformance suite: epochs of evicted topics, budgets. */
import { describe, expect, it } from 'vitest';
import { MemoryStore, type HistoryLimits } from 'switchyard';
import { eventually } from './conformance/wait.js';

const ROOMY: HistoryLimits = { maxMessages: 1000, maxAgeMs: 60 * 60 * 1000 };
const record = (topic: string, n: number) => ({ topic, messageId: `m${n}`, payload: { n }, sentAt: Date.now(), from: null });

describe('MemoryStore epochs', () => {
  it('gives a topic whose history was evicted a new epoch, so an old position is never complete', async () => {
    const store = new MemoryStore({ maxHistoryTopics: 2 });
    const a1 = store.appendHistory(record('a', 1), ROOMY);
    store.appendHistory(record('a', 2), ROOMY);
    store.appendHistory(record('b', 1), ROOMY);
    store.appendHistory(record('c', 1), ROOMY); // evicts a, the least recently used
    const old = { offset: 2, epoch: a1.epoch };
    const after = await store.readHistory('a', { since: old }, ROOMY);
    expect(after).toMatchObject({ latestOffset: 0, complete: false });
    expect(after.epoch).not.toBe(a1.epoch);
    for (let n = 1; n <= 4; n++) store.appendHistory(record('a', n), ROOMY);
    const again = await store.readHistory('a', { since: old }, ROOMY);
    expect(again).toMatchObject({ latestOffset: 4, complete: false });
    expect(again.records.map((r) => r.offset)).toEqual([1, 2, 3, 4]);
    // Topics that were not evicted keep their epoch.
    expect((await store.readHistory('c', {}, ROOMY)).records[0]!.offset).toBe(1);
    await store.close();
  });

  it('gives two stores (two processes, a restart) different epochs for the same topic', async () => {
    const [one, two] = [new MemoryStore(), new MemoryStore()];
    expect(one.appendHistory(record('t', 1), ROOMY).epoch).not.toBe(two.appendHistory(record('t', 1), ROOMY).epoch);
    await Promise.all([one.close(), two.close()]);
  });
});

describe('MemoryStore byte budgets (issue 16 item 8)', () => {
  const KB60 = 'x'.repeat(60 * 1024);
  const MiB = 1024 * 1024;
  const direct = (target: string, n: number, payload: unknown = KB60) => ({ messageId: `d${n}`, from: null, target, payload, sentAt: Date.now() });

  it("bounds one principal's queue by bytes: 1,000 queued 60 KB messages keep about 1 MiB, the newest", async () => {
    const store = new MemoryStore({ maxQueuedPerPrincipal: 1000 });
    for (let n = 1; n <= 1000; n++) expect(await store.enqueueDirect(direct('bob', n))).toBe(true);
    expect(store.bytes.queued).toBeLessThanOrEqual(MiB);
    const drained = await store.drainDirect('bob');
    expect(drained.length).toBeGreaterThan(10);
    expect(drained.length).toBeLessThan(20);
    expect(drained.at(-1)!.messageId).toBe('d1000');
    expect(store.bytes.queued).toBe(0);
    await store.close();
  });

  it('refuses a direct message larger than the per-principal budget', async () => {
    const store = new MemoryStore({ maxQueuedBytesPerPrincipal: 10 * 1024 });
    expect(await store.enqueueDirect(direct('bob', 1))).toBe(false);
    expect(await store.enqueueDirect(direct('bob', 2, 'small'))).toBe(true);
    await store.close();
  });

  it('bounds all queues together by bytes, dropping the least recently used principals first', async () => {
    const store = new MemoryStore({ maxQueuedBytes: 2 * MiB });
    for (let p = 0; p < 100; p++) await store.enqueueDirect(direct(`user${p}`, p));
    expect(store.bytes.queued).toBeLessThanOrEqual(2 * MiB);
    expect(await store.drainDirect('user99')).toHaveLength(1);
    expect(await store.drainDirect('user0')).toEqual([]);
    await store.close();
  });

  it("bounds a topic's history by bytes, keeping the newest, and says a position before them is incomplete", async () => {
    const store = new MemoryStore();
    let epoch = '';
    for (let n = 1; n <= 100; n++) epoch = store.appendHistory({ ...record('t', n), payload: KB60 }, ROOMY).epoch;
    expect(store.bytes.history).toBeLessThanOrEqual(MiB);
    const page = await store.readHistory('t', { since: { offset: 0, epoch } }, ROOMY);
    expect(page.complete).toBe(false);
    expect(page.records.at(-1)!.offset).toBe(100);
    expect(page.records.length).toBeLessThan(20);
    // One record larger than the budget is still kept: the latest value is never lost to the budget.
    store.appendHistory({ ...record('t', 101), payload: 'y'.repeat(2 * MiB) }, ROOMY);
    expect((await store.readHistory('t', { limit: 1 }, ROOMY)).records[0]!.offset).toBe(101);
    await store.close();
  });

  it('bounds all history together by bytes: least recently used topics go, and come back under a new epoch', async () => {
    const store = new MemoryStore({ maxHistoryBytes: 2 * MiB });
    const first = store.appendHistory({ ...record('topic0', 1), payload: KB60 }, ROOMY);
    for (let t = 1; t < 100; t++) store.appendHistory({ ...record(`topic${t}`, 1), payload: KB60 }, ROOMY);
    expect(store.bytes.history).toBeLessThanOrEqual(2 * MiB);
    const page = await store.readHistory('topic0', { since: { offset: 1, epoch: first.epoch } }, ROOMY);
    expect(page).toMatchObject({ latestOffset: 0, complete: false });
    expect((await store.readHistory('topic99', {}, ROOMY)).records).toHaveLength(1);
    await store.close();
  });

  it('expires old history of an idle topic and old queued messages on its own timer, with no append or read', async () => {
    const store = new MemoryStore({ sweepIntervalMs: 20, queuedTtlMs: 50 });
    store.appendHistory({ ...record('idle', 1), payload: KB60 }, { maxMessages: 100, maxAgeMs: 50 });
    await store.enqueueDirect(direct('away', 1));
    expect(store.bytes.history).toBeGreaterThan(60 * 1024);
    expect(store.bytes.queued).toBeGreaterThan(60 * 1024);
    await eventually(() => store.bytes, (b) => b.history === 0 && b.queued === 0, 'the sweep to free the idle topic and queue', 10_000);
    // The topic keeps its offsets and epoch: the next record is 2, not a new history.
    expect(store.appendHistory(record('idle', 2), ROOMY).offset).toBe(2);
    await store.close();
  });
});
