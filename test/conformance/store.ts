/**
 * The Store conformance suite: what every Store promises (lib/store.ts), tested through that
 * interface only, so the memory store and every real backend run the same tests:
 *
 *   storeConformance('RedisStore', () => new RedisStore({ url }), { directQueue: { capacity: 100, overflow: 'drop-oldest' } });
 *
 * Each test gets a fresh store from `make` and closes it afterwards. Topics and principals carry a
 * random prefix per test, so a store on a shared server is not confused by earlier runs.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { HistoryLimits, HistoryPage, HistoryRecord, QueuedDirect, Store } from 'switchyard';
import { clockPast, eventually } from './wait.js';

type MakeStore = () => Promise<Store> | Store;

/** Every test's own bound, so that a slow database never meets vitest's default 5 s timeout. */
const DEFAULT_TIMEOUT_MS = 30_000;

/** What the suite needs to know about limits that belong to the implementation, not the interface. */
export interface StoreConformanceOptions {
  /**
   * How a store from `make` bounds each principal's direct queue (MemoryStore:
   * `maxQueuedPerPrincipal`). Omit when the suite cannot reach the bound cheaply.
   */
  directQueue?: {
    /** Most messages kept per principal. */
    capacity: number;
    /** Past the capacity: drop the oldest and keep the new one, or keep the old ones and refuse the new one. */
    overflow: 'drop-oldest' | 'refuse';
  };
  /** Makes a store whose direct queue is switched off (MemoryStore: `maxQueuedPerPrincipal: 0`). */
  makeWithoutDirectQueue?: MakeStore;
  /** Makes a store that keeps queued direct messages for `ttlMs` milliseconds (MemoryStore: `queuedTtlMs`). */
  makeWithDirectTtl?: (ttlMs: number) => Promise<Store> | Store;
  /**
   * True when two stores from `make` share one backend (Redis, PostgreSQL): the suite then checks
   * that two instances appending to one topic, or draining one principal, at once stay exact.
   */
  shared?: boolean;
  /**
   * Makes `store` lose `topic`'s history as a crash or restore would (MemoryStore: a new store;
   * Redis: the topic's keys deleted; PostgreSQL: its rows deleted), and resolves with the store to
   * go on with (the same one, or a new one; the callback closes any it replaces).
   */
  loseHistory?: (store: Store, topic: string) => Promise<Store>;
  /**
   * Counts the connections `store` holds open to its backend (Redis: CLIENT LIST by the store's
   * connection name; PostgreSQL: pg_stat_activity by application_name). The suite checks it
   * reaches 0 after close().
   */
  connections?: (store: Store) => Promise<number>;
  /** Timeout of each test, in milliseconds. Default 30,000. */
  timeoutMs?: number;
  /**
   * Tests this implementation is known to fail, by title, each with the reason. They are
   * registered as skipped, so the report still lists them; a title that names no test is an error.
   */
  knownFailures?: Record<string, string>;
}

/** Limits no test reaches unless it means to. */
const ROOMY: HistoryLimits = { maxMessages: 1000, maxAgeMs: 60 * 60 * 1000 };

/** Payloads of every JSON type, including strings a careless encoding would turn into something else. */
const JSON_PAYLOADS: unknown[] = [
  null,
  true,
  false,
  0,
  42,
  -1.5,
  1e21,
  Number.MAX_SAFE_INTEGER,
  '',
  'text',
  '{"looks":"like JSON"}',
  '123',
  'é 😀 \u2028 "quoted" \\ \u0000 end',
  [],
  [1, 'two', null, [3], { four: 4 }],
  {},
  { nested: { deep: [true, { x: null }] }, 'key with spaces': 1, '': 'empty key' },
];

/** Binary data as it arrives: every byte value (not valid UTF-8), a slice of a larger buffer, and nothing at all. */
function binaries(): Buffer[] {
  const pool = Buffer.from('xxxx\u0000\u00ff\u0001HELLOyyyy', 'latin1');
  return [Buffer.from(Array.from({ length: 256 }, (_, i) => i)), pool.subarray(4, 12), Buffer.alloc(0)];
}

const offsets = (page: HistoryPage): number[] => page.records.map((r) => r.offset);
const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

export function storeConformance(name: string, make: MakeStore, options: StoreConformanceOptions = {}): void {
  describe(`Store conformance: ${name}`, () => {
    let store: Store;
    let run: string;
    beforeEach(async () => {
      run = randomUUID().slice(0, 8);
      store = await make();
    });
    afterEach(async () => {
      // Optional: when make() failed, there is no store of this test to close.
      await store?.close();
    });

    const unusedFailures = new Set(Object.keys(options.knownFailures ?? {}));
    /** Registers a test, skipped when it does not apply or is a known failure of this implementation. */
    function test(title: string, fn: () => Promise<void>, applies = true): void {
      unusedFailures.delete(title);
      const known = options.knownFailures?.[title] !== undefined;
      (applies && !known ? it : it.skip)(title, fn, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
    }

    const topic = (label: string): string => `conformance/${run}/${label}`;
    const principal = (label: string): string => `${run}-${label}`;
    const record = (t: string, n: number, extra: Partial<Omit<HistoryRecord, 'offset' | 'epoch'>> = {}): Omit<HistoryRecord, 'offset' | 'epoch'> => ({
      topic: t,
      messageId: `m${n}`,
      payload: { n },
      sentAt: Date.now(),
      from: n % 2 === 0 ? null : 'alice',
      ...extra,
    });
    const direct = (target: string, n: number, extra: Partial<QueuedDirect> = {}): QueuedDirect => ({
      messageId: `d${n}`,
      from: n % 2 === 0 ? null : 'alice',
      target,
      payload: { n },
      sentAt: Date.now(),
      ...extra,
    });
    async function appendMany(t: string, count: number, limits = ROOMY): Promise<HistoryRecord[]> {
      const appended: HistoryRecord[] = [];
      for (let n = 1; n <= count; n++) appended.push(await store.appendHistory(record(t, n), limits));
      return appended;
    }

    describe('history offsets', () => {
      test("numbers a topic's records from 1, without gaps", async () => {
        const t = topic('a');
        const appended = await appendMany(t, 5);
        expect(appended.map((r) => r.offset)).toEqual([1, 2, 3, 4, 5]);
        expect(appended[0]).toEqual({ ...record(t, 1), sentAt: appended[0]!.sentAt, offset: 1, epoch: appended[0]!.epoch });
        const page = await store.readHistory(t, {}, ROOMY);
        expect(offsets(page)).toEqual([1, 2, 3, 4, 5]);
        expect(page.latestOffset).toBe(5);
      });

      test('numbers each topic on its own', async () => {
        const [a, b] = [topic('a'), topic('b')];
        const order = [a, b, a, a, b, a];
        const appended: number[] = [];
        for (const [i, t] of order.entries()) appended.push((await store.appendHistory(record(t, i), ROOMY)).offset);
        expect(appended).toEqual([1, 1, 2, 3, 2, 4]);
        expect((await store.readHistory(a, {}, ROOMY)).records.map((r) => r.messageId)).toEqual(['m0', 'm2', 'm3', 'm5']);
        expect((await store.readHistory(b, {}, ROOMY)).records.map((r) => r.messageId)).toEqual(['m1', 'm4']);
      });

      test('gives concurrent appends on one topic distinct, consecutive offsets', async () => {
        const t = topic('busy');
        const appended = await Promise.all(range(1, 50).map((n) => store.appendHistory(record(t, n), ROOMY)));
        expect(appended.map((r) => r.offset).sort((x, y) => x - y)).toEqual(range(1, 50));
        const page = await store.readHistory(t, {}, ROOMY);
        expect(offsets(page)).toEqual(range(1, 50));
        // Each record is kept under the offset its append was told.
        for (const r of appended) expect(page.records[r.offset - 1]!.messageId).toBe(r.messageId);
      });

      test('keeps counting after older records are evicted', async () => {
        const t = topic('a');
        const limits = { ...ROOMY, maxMessages: 2 };
        expect((await appendMany(t, 5, limits)).map((r) => r.offset)).toEqual([1, 2, 3, 4, 5]);
        const page = await store.readHistory(t, {}, limits);
        expect(offsets(page)).toEqual([4, 5]);
        expect(page.latestOffset).toBe(5);
      });
    });

    describe('readHistory', () => {
      test('answers latestOffset 0 and a complete empty page for a topic never written', async () => {
        await appendMany(topic('other'), 2);
        const empty = { records: [], latestOffset: 0, epoch: expect.any(String), complete: true };
        expect(await store.readHistory(topic('never'), {}, ROOMY)).toEqual(empty);
        expect(await store.readHistory(topic('never'), { since: 0 }, ROOMY)).toEqual(empty);
        expect(await store.readHistory(topic('never'), { limit: 5 }, ROOMY)).toEqual(empty);
      });

      test('returns every kept record, oldest first, without a query', async () => {
        const t = topic('a');
        const appended = await appendMany(t, 4);
        expect(await store.readHistory(t, {}, ROOMY)).toEqual({ records: appended, latestOffset: 4, epoch: appended[0]!.epoch, complete: true });
      });

      test('returns the newest `limit` records when `since` is absent', async () => {
        const t = topic('a');
        await appendMany(t, 5);
        const page = await store.readHistory(t, { limit: 2 }, ROOMY);
        expect(offsets(page)).toEqual([4, 5]);
        expect(page).toMatchObject({ latestOffset: 5, complete: true });
        expect(offsets(await store.readHistory(t, { limit: 50 }, ROOMY))).toEqual([1, 2, 3, 4, 5]);
        expect(offsets(await store.readHistory(t, { limit: 0 }, ROOMY))).toEqual([]);
      });

      test('returns the records after `since`, oldest first', async () => {
        const t = topic('a');
        await appendMany(t, 5);
        expect(offsets(await store.readHistory(t, { since: 2 }, ROOMY))).toEqual([3, 4, 5]);
        expect(await store.readHistory(t, { since: 0 }, ROOMY)).toMatchObject({ latestOffset: 5, complete: true });
        expect(offsets(await store.readHistory(t, { since: 0 }, ROOMY))).toEqual([1, 2, 3, 4, 5]);
      });

      test('returns the oldest `limit` records after `since`', async () => {
        const t = topic('a');
        await appendMany(t, 5);
        const page = await store.readHistory(t, { since: 1, limit: 2 }, ROOMY);
        expect(offsets(page)).toEqual([2, 3]);
        expect(page).toMatchObject({ latestOffset: 5, complete: true });
      });

      test('returns a complete empty page when `since` is the latest offset', async () => {
        const t = topic('a');
        await appendMany(t, 3);
        expect(await store.readHistory(t, { since: 3 }, ROOMY)).toEqual({ records: [], latestOffset: 3, epoch: expect.any(String), complete: true });
      });
    });

    describe('history limits', () => {
      test('keeps the newest maxMessages records', async () => {
        const t = topic('a');
        const limits = { ...ROOMY, maxMessages: 3 };
        const appended = await appendMany(t, 5, limits);
        expect(await store.readHistory(t, {}, limits)).toEqual({ records: appended.slice(2), latestOffset: 5, epoch: appended[0]!.epoch, complete: true });
        expect(offsets(await store.readHistory(t, { limit: 2 }, limits))).toEqual([4, 5]);
      });

      test('marks a page incomplete when `since` asks for evicted records', async () => {
        const t = topic('a');
        const limits = { ...ROOMY, maxMessages: 3 };
        await appendMany(t, 5, limits);
        const read = (since: number) => store.readHistory(t, { since }, limits);
        // Records 1 and 2 are gone: a client that saw fewer than 2 cannot be brought up to date.
        expect(await read(0)).toMatchObject({ complete: false, latestOffset: 5 });
        expect(offsets(await read(0))).toEqual([3, 4, 5]);
        expect((await read(1)).complete).toBe(false);
        expect(await read(2)).toMatchObject({ complete: true, latestOffset: 5 });
        expect(offsets(await read(2))).toEqual([3, 4, 5]);
        expect(offsets(await read(4))).toEqual([5]);
        expect((await read(4)).complete).toBe(true);
        expect(await read(5)).toMatchObject({ records: [], latestOffset: 5, complete: true });
      });

      test('keeps a long-running topic right: many times maxMessages appended, every read still exact', async () => {
        // Long enough to cross any internal compaction or wrap-around of a bounded buffer.
        const t = topic('long');
        const limits = { ...ROOMY, maxMessages: 100 };
        for (let n = 1; n <= 2500; n++) {
          await store.appendHistory(record(t, n), limits);
          if (n < 100) continue;
          // After every append: the window is exactly the newest 100 (a compaction point is where a bug would show).
          const all = offsets(await store.readHistory(t, {}, limits));
          if (all.length !== 100 || all[0] !== n - 99 || all[99] !== n) expect([n, all]).toEqual([n, range(n - 99, n)]);
          if (n % 250 !== 0 && n !== 2401) continue;
          const newest = await store.readHistory(t, { limit: 3 }, limits);
          expect(newest.records.map((r) => r.payload)).toEqual([{ n: n - 2 }, { n: n - 1 }, { n }]);
          const after = await store.readHistory(t, { since: n - 50, limit: 10 }, limits);
          expect(after).toMatchObject({ latestOffset: n, complete: true });
          expect(offsets(after)).toEqual(range(n - 49, n - 40));
          expect((await store.readHistory(t, { since: n - 101 }, limits)).complete).toBe(false);
        }
      });

      test('expires records older than maxAgeMs, marks pages that asked for them incomplete, and keeps counting', async () => {
        const t = topic('a');
        const limits = { maxMessages: 100, maxAgeMs: 70 };
        const read = (since?: number) => store.readHistory(t, since === undefined ? {} : { since }, limits);
        await store.appendHistory(record(t, 1), limits);
        await eventually(() => read(), (p) => p.records.length === 0, 'the first record to expire');

        // Record 2 is read at once, well inside its 70 ms; record 1 is gone.
        expect((await store.appendHistory(record(t, 2), limits)).offset).toBe(2);
        const [all, fromStart, afterFirst] = await Promise.all([read(), read(0), read(1)]);
        expect(offsets(all)).toEqual([2]);
        expect(all.latestOffset).toBe(2);
        expect(offsets(fromStart)).toEqual([2]);
        expect(fromStart.complete).toBe(false);
        expect(offsets(afterFirst)).toEqual([2]);
        expect(afterFirst.complete).toBe(true);

        const gone = await eventually(() => read(), (p) => p.records.length === 0, 'the second record to expire');
        expect(gone.latestOffset).toBe(2);
        expect(await read(1)).toMatchObject({ records: [], latestOffset: 2, complete: false });
        expect(await read(2)).toMatchObject({ records: [], latestOffset: 2, complete: true });
        expect((await store.appendHistory(record(t, 3), limits)).offset).toBe(3);
      });
    });

    describe('payloads', () => {
      test('keeps payloads of every JSON type, in history and in the direct queue', async () => {
        const t = topic('json');
        const inputs = JSON_PAYLOADS.map((payload, i) => record(t, i, { payload }));
        for (const input of inputs) await store.appendHistory(input, ROOMY);
        const page = await store.readHistory(t, {}, ROOMY);
        expect(page.records).toEqual(inputs.map((input, i) => ({ ...input, offset: i + 1, epoch: page.epoch })));
        expect(page.records.map((r) => r.payload)).toStrictEqual(JSON_PAYLOADS);

        // One principal each, so a store with a small queue bound keeps them all.
        const queued = JSON_PAYLOADS.map((payload, i) => direct(principal(`p${i}`), i, { payload }));
        for (const message of queued) expect(await store.enqueueDirect(message)).toBe(true);
        const drained = (await Promise.all(queued.map((m) => store.drainDirect(m.target)))).flat();
        expect(drained.map((m) => m.payload)).toStrictEqual(JSON_PAYLOADS);
        expect(drained).toEqual(queued);
      });

      test('keeps binary data byte for byte, in history and in the direct queue', async () => {
        const t = topic('bin');
        const datas = binaries();
        for (const [i, binary] of datas.entries()) await store.appendHistory(record(t, i, { payload: null, binary }), ROOMY);
        await store.appendHistory(record(t, 9, { payload: 'text' }), ROOMY);
        const { records } = await store.readHistory(t, {}, ROOMY);
        expect(records).toHaveLength(datas.length + 1);
        for (const [i, binary] of datas.entries()) {
          expect(Buffer.isBuffer(records[i]!.binary)).toBe(true);
          expect(records[i]!.binary!.toString('hex')).toBe(binary.toString('hex'));
        }
        // A text message stays one.
        expect(records.at(-1)!.binary).toBeUndefined();
        expect(records.at(-1)!.payload).toBe('text');

        const queued = [...datas.map((binary, i) => direct(principal(`p${i}`), i, { payload: null, binary })), direct(principal('text'), 9, { payload: 'text' })];
        for (const message of queued) expect(await store.enqueueDirect(message)).toBe(true);
        const drained = (await Promise.all(queued.map((m) => store.drainDirect(m.target)))).flat();
        expect(drained).toHaveLength(queued.length);
        for (const [i, binary] of datas.entries()) {
          expect(Buffer.isBuffer(drained[i]!.binary)).toBe(true);
          expect(drained[i]!.binary!.toString('hex')).toBe(binary.toString('hex'));
        }
        expect(drained.at(-1)!.binary).toBeUndefined();
      });
    });

    // What a store hands out or takes in is a copy: a host that reuses a buffer or edits an object
    // it published, or edits what broker.history() returned, must not rewrite what others replay.
    describe('isolation', () => {
      // Fresh objects on each call, so what a test edits cannot leak into what it expects.
      const original = (t: string, sentAt: number) => record(t, 1, { payload: { n: 1, tags: ['a'] }, binary: Buffer.from([1, 2, 3]), sentAt });
      const expected = (t: string, sentAt: number, epoch: string) => ({ ...original(t, sentAt), offset: 1, epoch });
      const epochOf = async (t: string) => (await store.readHistory(t, {}, ROOMY)).epoch;
      function scribble(r: { payload: unknown; binary?: Buffer; messageId: string; offset?: number; epoch?: string }): void {
        const payload = r.payload as { n: number; tags: string[] };
        payload.n = 2;
        payload.tags.push('b');
        r.binary![0] = 9;
        r.messageId = 'changed';
        if (r.offset !== undefined) r.offset = 99;
        if (r.epoch !== undefined) r.epoch = 'changed';
      }

      test('is not changed by editing a record appendHistory returned', async () => {
        const [t, at] = [topic('a'), Date.now()];
        scribble(await store.appendHistory(original(t, at), ROOMY));
        expect((await store.readHistory(t, {}, ROOMY)).records).toEqual([expected(t, at, await epochOf(t))]);
      });

      test('is not changed by editing a record readHistory returned', async () => {
        const [t, at] = [topic('a'), Date.now()];
        await store.appendHistory(original(t, at), ROOMY);
        const first = await store.readHistory(t, {}, ROOMY);
        const epoch = first.epoch;
        scribble(first.records[0]!);
        first.records.push({ ...expected(t, at, epoch), offset: 2 });
        expect((await store.readHistory(t, {}, ROOMY)).records).toEqual([expected(t, at, epoch)]);
      });

      test('is not changed by editing a record after appending it', async () => {
        const [t, at] = [topic('a'), Date.now()];
        const input = original(t, at);
        await store.appendHistory(input, ROOMY);
        scribble(input);
        expect((await store.readHistory(t, {}, ROOMY)).records).toEqual([expected(t, at, await epochOf(t))]);
      });

      test('is not changed by editing a direct message after queueing it', async () => {
        const bob = principal('bob');
        const message = direct(bob, 1, { payload: { n: 1, tags: ['a'] }, binary: Buffer.from([1, 2, 3]) });
        const copy = { ...message, payload: { n: 1, tags: ['a'] }, binary: Buffer.from([1, 2, 3]) };
        await store.enqueueDirect(message);
        scribble(message);
        expect(await store.drainDirect(bob)).toEqual([copy]);
      });
    });

    describe('direct queue', () => {
      test("drains a principal's messages oldest first, with every field", async () => {
        const bob = principal('bob');
        const sent = range(1, 4).map((n) => direct(bob, n));
        for (const message of sent) expect(await store.enqueueDirect(message)).toBe(true);
        expect(await store.drainDirect(bob)).toEqual(sent);
      });

      test('removes what it drains', async () => {
        const bob = principal('bob');
        await store.enqueueDirect(direct(bob, 1));
        expect(await store.drainDirect(bob)).toHaveLength(1);
        expect(await store.drainDirect(bob)).toEqual([]);
        const later = direct(bob, 2);
        await store.enqueueDirect(later);
        expect(await store.drainDirect(bob)).toEqual([later]);
      });

      test("keeps each principal's queue apart", async () => {
        const [bob, carol] = [principal('bob'), principal('carol')];
        const sent = [direct(bob, 1), direct(carol, 2), direct(bob, 3), direct(carol, 4), direct(bob, 5)];
        for (const message of sent) await store.enqueueDirect(message);
        expect(await store.drainDirect(bob)).toEqual(sent.filter((m) => m.target === bob));
        expect(await store.drainDirect(carol)).toEqual(sent.filter((m) => m.target === carol));
      });

      test('drains a principal with nothing queued to an empty list', async () => {
        await store.enqueueDirect(direct(principal('bob'), 1));
        expect(await store.drainDirect(principal('nobody'))).toEqual([]);
      });

      const bound = options.directQueue;
      test(
        "bounds each principal's queue to the store's capacity",
        async () => {
          const { capacity, overflow } = bound!;
          const [bob, carol] = [principal('bob'), principal('carol')];
          const sent = range(1, capacity + 2).map((n) => direct(bob, n));
          const answers: boolean[] = [];
          for (const message of sent) answers.push(await store.enqueueDirect(message));
          // A full queue is one principal's business.
          const other = direct(carol, 0);
          expect(await store.enqueueDirect(other)).toBe(true);
          if (overflow === 'drop-oldest') {
            expect(answers).toEqual(sent.map(() => true));
            expect(await store.drainDirect(bob)).toEqual(sent.slice(2));
          } else {
            expect(answers).toEqual(sent.map((_, i) => i < capacity));
            expect(await store.drainDirect(bob)).toEqual(sent.slice(0, capacity));
          }
          expect(await store.drainDirect(carol)).toEqual([other]);
          // Drained, the queue has room again.
          expect(await store.enqueueDirect(direct(bob, 99))).toBe(true);
        },
        bound !== undefined,
      );

      test(
        'keeps nothing and answers false when the queue is switched off',
        async () => {
          const off = await options.makeWithoutDirectQueue!();
          try {
            const bob = principal('bob');
            expect(await off.enqueueDirect(direct(bob, 1))).toBe(false);
            expect(await off.drainDirect(bob)).toEqual([]);
          } finally {
            await off.close();
          }
        },
        options.makeWithoutDirectQueue !== undefined,
      );

      test(
        'drains only messages younger than the queue TTL, each counted from its own time',
        async () => {
          const ttlMs = 100;
          const short = await options.makeWithDirectTtl!(ttlMs);
          try {
            const bob = principal('bob');
            // A first call may set things up (tables, scripts): not inside the 100 ms.
            await short.drainDirect(principal('warm-up'));
            const old = direct(bob, 1);
            expect(await short.enqueueDirect(old)).toBe(true);
            // Draining removes what it reads, so nothing can be watched: the clock has to pass.
            await clockPast(old.sentAt + ttlMs / 2);
            const younger = direct(bob, 2);
            expect(await short.enqueueDirect(younger)).toBe(true);
            // The first has expired; the second, queued later, has about 40 ms left.
            await clockPast(old.sentAt + ttlMs + 10);
            expect(await short.drainDirect(bob)).toEqual([younger]);
          } finally {
            await short.close();
          }
        },
        options.makeWithDirectTtl !== undefined,
      );
    });

    describe('epochs', () => {
      test("gives every record and page the topic's epoch, the same across appends and reads", async () => {
        const t = topic('a');
        const appended = await appendMany(t, 3);
        const epoch = appended[0]!.epoch;
        expect(typeof epoch).toBe('string');
        expect(epoch.length).toBeGreaterThan(0);
        expect(appended.map((r) => r.epoch)).toEqual([epoch, epoch, epoch]);
        const page = await store.readHistory(t, {}, ROOMY);
        expect(page.epoch).toBe(epoch);
        expect(page.records.map((r) => r.epoch)).toEqual([epoch, epoch, epoch]);
        expect((await store.readHistory(t, { limit: 1 }, ROOMY)).epoch).toBe(epoch);
      });

      test('gives a topic read before it was written the epoch its first record then gets', async () => {
        const t = topic('fresh');
        const before = await store.readHistory(t, {}, ROOMY);
        const first = await store.appendHistory(record(t, 1), ROOMY);
        expect(first.epoch).toBe(before.epoch);
        // A client that saw the empty topic is brought up to date without a gap.
        const page = await store.readHistory(t, { since: { offset: 0, epoch: before.epoch } }, ROOMY);
        expect(page).toMatchObject({ latestOffset: 1, epoch: before.epoch, complete: true });
        expect(offsets(page)).toEqual([1]);
      });

      test('answers `since` with the current epoch as it answers a bare offset', async () => {
        const t = topic('a');
        const { epoch } = (await appendMany(t, 5))[0]!;
        for (const offset of [0, 2, 5]) {
          const bare = await store.readHistory(t, { since: offset, limit: 2 }, ROOMY);
          expect(await store.readHistory(t, { since: { offset, epoch }, limit: 2 }, ROOMY)).toEqual(bare);
        }
        expect(offsets(await store.readHistory(t, { since: { offset: 2, epoch } }, ROOMY))).toEqual([3, 4, 5]);
      });

      test('marks a page asked from another epoch incomplete, and returns the kept records from the oldest', async () => {
        const t = topic('a');
        const { epoch } = (await appendMany(t, 4))[0]!;
        for (const offset of [0, 2, 4]) {
          const page = await store.readHistory(t, { since: { offset, epoch: `${epoch}-other` } }, ROOMY);
          expect(page).toMatchObject({ latestOffset: 4, epoch, complete: false });
          expect(offsets(page)).toEqual([1, 2, 3, 4]);
        }
        expect((await store.readHistory(t, { since: { offset: 0, epoch: 'never-was' } }, ROOMY)).complete).toBe(false);
        expect((await store.readHistory(topic('empty'), { since: { offset: 0, epoch: 'never-was' } }, ROOMY)).complete).toBe(false);
      });

      test(
        'changes the epoch after losing the history, and an old position stays incomplete even past its offset',
        async () => {
          const t = topic('lost');
          const before = await appendMany(t, 3);
          const old = { offset: 3, epoch: before[0]!.epoch };
          store = await options.loseHistory!(store, t);
          const after = await store.readHistory(t, { since: old }, ROOMY);
          expect(after.epoch).not.toBe(old.epoch);
          expect(after.complete).toBe(false);
          // The new history numbers from 1 again under its own epoch, and passes the old offset.
          const again = await appendMany(t, 5);
          expect(again.map((r) => r.offset)).toEqual([1, 2, 3, 4, 5]);
          expect(new Set(again.map((r) => r.epoch))).toEqual(new Set([after.epoch]));
          const stale = await store.readHistory(t, { since: old }, ROOMY);
          expect(stale).toMatchObject({ latestOffset: 5, epoch: after.epoch, complete: false });
          expect(offsets(stale)).toEqual([1, 2, 3, 4, 5]);
          const current = await store.readHistory(t, { since: { offset: 3, epoch: after.epoch } }, ROOMY);
          expect(current).toMatchObject({ complete: true });
          expect(offsets(current)).toEqual([4, 5]);
        },
        options.loseHistory !== undefined,
      );
    });

    describe('concurrency', () => {
      test('two drains of one principal at once split nothing and lose nothing', async () => {
        const bob = principal('bob');
        const count = Math.min(options.directQueue?.capacity ?? 20, 20);
        const sent = range(1, count).map((n) => direct(bob, n));
        for (const message of sent) expect(await store.enqueueDirect(message)).toBe(true);
        const drains = await Promise.all([store.drainDirect(bob), store.drainDirect(bob), store.drainDirect(bob)]);
        // One drain takes everything, in order; the others get nothing.
        expect(drains.map((d) => d.length).sort((x, y) => x - y)).toEqual([0, 0, count]);
        expect(drains.flat()).toEqual(sent);
      });

      test(
        'two store instances appending to one topic at once get gapless, distinct offsets',
        async () => {
          const other = await make();
          try {
            const t = topic('shared');
            const appends = range(1, 60).map((n) => (n % 2 === 0 ? store : other).appendHistory(record(t, n), ROOMY));
            const appended = await Promise.all(appends);
            expect(appended.map((r) => r.offset).sort((x, y) => x - y)).toEqual(range(1, 60));
            expect(new Set(appended.map((r) => r.epoch)).size).toBe(1);
            const [mine, theirs] = await Promise.all([store.readHistory(t, {}, ROOMY), other.readHistory(t, {}, ROOMY)]);
            expect(theirs).toEqual(mine);
            expect(offsets(mine)).toEqual(range(1, 60));
            for (const r of appended) expect(mine.records[r.offset - 1]!.messageId).toBe(r.messageId);
          } finally {
            await other.close();
          }
        },
        options.shared === true,
      );

      test(
        'two store instances draining one principal at once split nothing and lose nothing',
        async () => {
          const other = await make();
          try {
            const bob = principal('bob');
            const count = Math.min(options.directQueue?.capacity ?? 20, 20);
            for (let round = 0; round < 5; round++) {
              const sent = range(1, count).map((n) => direct(bob, round * 100 + n));
              for (const message of sent) expect(await (round % 2 === 0 ? store : other).enqueueDirect(message)).toBe(true);
              const drains = await Promise.all([store.drainDirect(bob), other.drainDirect(bob)]);
              const all = drains.flat();
              expect(all.map((m) => m.messageId).sort()).toEqual(sent.map((m) => m.messageId).sort());
              for (const d of drains) expect(d).toEqual(sent.filter((m) => d.some((x) => x.messageId === m.messageId)));
            }
          } finally {
            await other.close();
          }
        },
        options.shared === true,
      );
    });

    describe('lifecycle', () => {
      test(
        'leaves no connection open after close()',
        async () => {
          const own = await make();
          const t = topic('a');
          await own.appendHistory(record(t, 1), ROOMY);
          await own.readHistory(t, { limit: 1 }, ROOMY);
          await own.enqueueDirect(direct(principal('bob'), 1));
          await own.drainDirect(principal('bob'));
          expect(await options.connections!(own)).toBeGreaterThan(0);
          await own.close();
          await eventually(() => options.connections!(own), (n) => n === 0, 'the store to close its connections', 10_000);
        },
        options.connections !== undefined,
      );

      test('closes more than once', async () => {
        await store.appendHistory(record(topic('a'), 1), ROOMY);
        await store.close();
        await store.close();
        await Promise.all([store.close(), store.close()]);
      });
    });

    // Registered last, so it runs once every test above has been registered.
    if (options.knownFailures !== undefined) {
      it('names only tests that exist in knownFailures', () => {
        expect([...unusedFailures]).toEqual([]);
      });
    }
  });
}
