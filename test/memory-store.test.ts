/** What the memory store adds beyond the conformance suite: epochs of evicted topics, budgets. */
import { describe, expect, it } from 'vitest';
import { MemoryStore, type HistoryLimits } from 'switchyard';

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
