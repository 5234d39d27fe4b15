/**
 * Ordered delivery of history topics on a cluster. The store numbers a topic's messages, but they
 * reach a node by two roads: its own publishes, straight from the append, and other nodes', over
 * the bus; with several nodes publishing, offset 6 can arrive before 5. Every delivery that
 * carries an offset goes through here, and each topic with subscribers on this node is handed to
 * them in offset order, with no gap and no duplicate, whichever nodes publish:
 *
 * - per topic, the epoch and the next offset due. The one due is delivered at once (a single
 *   publishing node, whose offsets come consecutively, never waits); an earlier one is a
 *   duplicate and dropped; a later one waits, at most `reorderWaitMs`, for the ones before it.
 *   Past that wait (or `reorderMaxBuffered` waiting), the missing range is read from the store
 *   (every offset below one seen is already appended) and delivered in order with what waited.
 * - A bus gap (BusObserver.gap) reads every topic from the last offset delivered, the same way:
 *   what other nodes published meanwhile is delivered from the store, in order, before live
 *   messages (those that came first are dropped as duplicates).
 * - A topic's sequence starts where this node's first subscriber to it joined: a subscribe to a
 *   concrete history topic reads the topic's position from the store before it is answered (the
 *   seam with Subscribe.recover, which reads after it, has no hole), and a topic only a wildcard
 *   subscription covers starts at the first message that arrives after it.
 * - What cannot be had (the store no longer keeps it, or failed, or the wait overflowed while a
 *   read was out) is skipped, never waited on forever, and reported on the `error` event
 *   (SY_ERR_BUS_GAP with `topic` and the `lost` offsets); an epoch change starts the topic again.
 *
 * State exists only for topics with subscribers on this node (dropped by a sweep once the last is
 * gone), at most `reorderMaxTopics` of them; past that, new topics are delivered as they arrive
 * (unordered) and the cap is reported. Only used with a bus and history: a single node's
 * deliveries are already in offset order (lib/dispatch.ts).
 */
import { isThenable, type Awaitable } from './awaitable.js';
import { BrokerError } from './errors.js';
import type { Delivery } from './protocol.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { HistoryLimits, HistoryPage, HistoryRecord, Store } from './store.js';
import { guardStore } from './store-guard.js';

type Publish = Delivery & { kind: 'publish' };

export interface OrderingSettings {
  /** How long a message waits for the ones before it before they are read from the store, ms. */
  waitMs: number;
  /** Messages waiting per topic; reaching it reads the store at once (or skips, if a read is out). */
  maxBuffered: number;
  /** Topics ordered at once on this node; past it, new topics are delivered unordered. */
  maxTopics: number;
}

export interface OrderingParts {
  store: Store;
  limits: HistoryLimits;
  storeTimeoutMs: number;
  router: Router;
  settings: OrderingSettings;
  keepsHistory(topic: string): boolean;
  isPattern(topic: string): boolean;
  report(error: unknown, context: Record<string, unknown>): void;
}

/** A message waiting for its turn; `done` tells a local publisher how many it reached. */
interface Waiting {
  delivery: Publish;
  exclude: Session | null;
  done: ((recipients: number) => void) | null;
}

/** `next` while the topic's position is being read from the store: everything waits. */
const ANCHORING = -1;
/** `next` when nothing says where the topic starts: the next message does. */
const UNANCHORED = 0;
/** How often topics without subscribers here are forgotten, ms. */
const SWEEP_MS = 1000;

class TopicOrder {
  readonly topic: string;
  epoch = '';
  /** Offset of the next message to deliver (or ANCHORING / UNANCHORED). */
  next = UNANCHORED;
  readonly waiting = new Map<number, Waiting>();
  timer: NodeJS.Timeout | undefined;
  reading = false;
  /** A gap was reported while a read was out: read again after it. */
  again = false;
  /** The anchoring read, for subscribes to wait on. */
  anchored: Promise<void> | undefined;

  constructor(topic: string) {
    this.topic = topic;
  }
}

export class Ordering {
  readonly #p: OrderingParts;
  readonly #topics = new Map<string, TopicOrder>();
  /**
   * Local publishes of ordered topics whose append is out, with the connection they exclude: a
   * store read that finds one first delivers it as its publish would (and keeps the count).
   */
  readonly #local = new Map<string, { exclude: Session; recipients: number }>();
  #sweeper: NodeJS.Timeout | undefined;
  #capReported = false;
  #closed = false;

  constructor(parts: OrderingParts) {
    this.#p = parts;
  }

  /** Topics ordered now (for tests and stats). */
  get topics(): number {
    return this.#topics.size;
  }

  /**
   * A connection here subscribed to `patterns`: each concrete history topic this node does not
   * order yet starts at its position in the store. Resolves once known (undefined: nothing to wait for).
   */
  anchor(patterns: string[]): Promise<void> | undefined {
    let reads: Array<Promise<void>> | undefined;
    for (const topic of patterns) {
      if (this.#p.isPattern(topic) || !this.#p.keepsHistory(topic)) continue;
      let order = this.#topics.get(topic);
      if (order === undefined) {
        order = this.#create(topic);
        if (order === undefined) continue;
      }
      if (order.next === UNANCHORED) {
        order.next = ANCHORING;
        order.anchored = this.#anchor(order);
      }
      if (order.anchored !== undefined) (reads ??= []).push(order.anchored);
    }
    return reads && Promise.all(reads).then(() => undefined);
  }

  /** Another node's message: the connections it reached here, now or once its turn comes. */
  deliver(delivery: Publish): Awaitable<number> {
    return this.#arrive(delivery, null, false);
  }

  /** This node's publish, numbered by the store: the connections it reached here, now or once its turn comes. */
  deliverLocal(delivery: Publish, exclude: Session | null): Awaitable<number> {
    if (this.#local.size > 0 && exclude !== null) {
      const local = this.#local.get(delivery.messageId);
      if (local !== undefined) {
        this.#local.delete(delivery.messageId);
        if (local.recipients >= 0) return local.recipients; // a store read delivered it already
      }
    }
    return this.#arrive(delivery, exclude, true);
  }

  /** Before a local append answers: who its publish excludes, in case a store read finds it first. */
  publishing(topic: string, messageId: string, exclude: Session | null, appended: PromiseLike<unknown>): void {
    if (exclude === null || !this.#topics.has(topic)) return;
    this.#local.set(messageId, { exclude, recipients: -1 });
    appended.then(undefined, () => this.#local.delete(messageId));
  }

  /** The bus lost messages: every ordered topic reads what it missed from the store. */
  catchUp(): void {
    for (const order of this.#topics.values()) {
      if (order.reading) order.again = true;
      else if (order.next > 0) void this.#read(order);
    }
  }

  close(): void {
    this.#closed = true;
    clearInterval(this.#sweeper);
    for (const order of this.#topics.values()) {
      clearTimeout(order.timer);
      for (const w of order.waiting.values()) w.done?.(0);
    }
    this.#topics.clear();
    this.#local.clear();
  }

  #arrive(d: Publish, exclude: Session | null, local: boolean): Awaitable<number> {
    let order = this.#topics.get(d.topic);
    if (order === undefined) {
      if (this.#closed || !this.#p.router.has(d.topic)) return 0; // nobody here to order it for
      order = this.#create(d.topic);
      if (order === undefined) return this.#fanout(d, exclude);
    }
    const offset = d.offset!;
    if (order.next > 0 && d.epoch === order.epoch) {
      // The common case: the one due, nothing waiting.
      if (offset === order.next && order.waiting.size === 0) {
        order.next++;
        return this.#fanout(d, exclude);
      }
      if (offset < order.next) return 0; // delivered already (from the store, or a second copy)
    }
    return this.#place(order, d, exclude, local);
  }

  #place(order: TopicOrder, d: Publish, exclude: Session | null, local: boolean): Awaitable<number> {
    const offset = d.offset!;
    if (order.next === ANCHORING) {
      if (order.waiting.has(offset)) return 0;
      const placed = this.#wait(order, d, exclude, local);
      // The store is slow to say where the topic stands: start from what came instead.
      if (order.waiting.size >= this.#p.settings.maxBuffered) this.#start(order, undefined);
      return placed;
    }
    if (order.next === UNANCHORED) {
      order.epoch = d.epoch!;
      order.next = offset;
    } else if (d.epoch !== order.epoch) {
      // The store lost the topic's history and started again: what waits is of the old one.
      this.#skip(order, 'history epoch changed');
      order.epoch = d.epoch!;
      order.next = offset;
    }
    if (offset < order.next) return 0;
    if (offset === order.next) {
      order.next++;
      const recipients = this.#fanout(d, exclude);
      this.#drain(order);
      return recipients;
    }
    if (order.waiting.has(offset)) return 0;
    const placed = this.#wait(order, d, exclude, local);
    if (order.waiting.size >= this.#p.settings.maxBuffered) {
      if (order.reading) this.#skip(order, `${this.#p.settings.maxBuffered} messages waiting while the store was read`);
      else void this.#read(order);
    } else if (!order.reading && order.timer === undefined) {
      order.timer = setTimeout(() => void this.#read(order), this.#p.settings.waitMs);
      order.timer.unref();
    }
    return placed;
  }

  #wait(order: TopicOrder, delivery: Publish, exclude: Session | null, local: boolean): Awaitable<number> {
    const waiting: Waiting = { delivery, exclude, done: null };
    order.waiting.set(delivery.offset!, waiting);
    if (!local) return 0;
    return new Promise<number>((resolve) => (waiting.done = resolve));
  }

  /** Delivers what waited and is now due. */
  #drain(order: TopicOrder): void {
    let w: Waiting | undefined;
    while ((w = order.waiting.get(order.next)) !== undefined) {
      order.waiting.delete(order.next++);
      this.#hand(w);
    }
    if (order.waiting.size === 0 && order.timer !== undefined) {
      clearTimeout(order.timer);
      order.timer = undefined;
    }
  }

  /**
   * Gives up on the offsets missing below `until`: delivers what waits below it in order and
   * reports the holes (and, with a finite `until`, the range up to it) as lost.
   */
  #skip(order: TopicOrder, reason: string, until = Infinity): void {
    const offsets = [...order.waiting.keys()].filter((o) => o < until).sort((a, b) => a - b);
    for (const offset of offsets) {
      if (offset > order.next) this.#lost(order, order.next, offset - 1, reason);
      const w = order.waiting.get(offset)!;
      order.waiting.delete(offset);
      order.next = offset + 1;
      this.#hand(w);
    }
    if (until !== Infinity && until > order.next) {
      this.#lost(order, order.next, until - 1, reason);
      order.next = until;
    }
    this.#drain(order);
  }

  /** Reads the topic from the last offset delivered and delivers what it finds with what waited. */
  async #read(order: TopicOrder): Promise<void> {
    clearTimeout(order.timer);
    order.timer = undefined;
    if (order.reading || order.next <= 0) return;
    order.reading = true;
    const { store, limits, storeTimeoutMs } = this.#p;
    let page: HistoryPage;
    try {
      page = await guardStore('order', storeTimeoutMs, store.readHistory(order.topic, { since: { offset: order.next - 1, epoch: order.epoch } }, limits));
    } catch (err) {
      order.reading = false;
      if (this.#topics.get(order.topic) !== order) return;
      this.#p.report(err, { during: 'ordering', topic: order.topic });
      this.#skip(order, 'store unavailable');
      return;
    }
    order.reading = false;
    if (this.#topics.get(order.topic) !== order) return;
    const again = order.again;
    order.again = false;
    this.#apply(order, page);
    if (again) void this.#read(order);
  }

  #apply(order: TopicOrder, page: HistoryPage): void {
    if (page.epoch !== order.epoch) {
      // The history we were in is gone: deliver what waited, go on from the new one's end.
      this.#skip(order, 'history epoch changed');
      this.#p.report(
        new BrokerError('SY_ERR_BUS_GAP', `${order.topic}: the store lost its history (new epoch); delivery goes on after offset ${page.latestOffset}`),
        { during: 'ordering', topic: order.topic, epoch: page.epoch, reason: 'history epoch changed' },
      );
      order.epoch = page.epoch;
      order.next = page.latestOffset + 1;
      return;
    }
    for (const record of page.records) {
      if (record.offset < order.next) continue;
      if (record.offset > order.next) this.#skip(order, 'no longer kept by the store', record.offset);
      const w = order.waiting.get(record.offset);
      order.next = record.offset + 1;
      if (w !== undefined) {
        order.waiting.delete(record.offset);
        this.#hand(w);
      } else this.#fromStore(record);
    }
    // What is missing below the store's newest is gone; above it, it was appended after the read.
    this.#skip(order, 'no longer kept by the store', page.latestOffset + 1);
    if (order.waiting.size > 0 && order.timer === undefined) {
      order.timer = setTimeout(() => void this.#read(order), this.#p.settings.waitMs);
      order.timer.unref();
    }
  }

  /** Reads where a topic stands, so its sequence starts there (see anchor). */
  async #anchor(order: TopicOrder): Promise<void> {
    const { store, limits, storeTimeoutMs } = this.#p;
    let page: HistoryPage | undefined;
    try {
      page = await guardStore('order', storeTimeoutMs, store.readHistory(order.topic, { limit: 0 }, limits));
    } catch (err) {
      this.#p.report(err, { during: 'ordering', topic: order.topic });
    }
    order.anchored = undefined;
    if (this.#topics.get(order.topic) === order && order.next === ANCHORING) this.#start(order, page);
  }

  /** Ends anchoring: the sequence starts at the store's position (or, without one, at the lowest that came). */
  #start(order: TopicOrder, page: HistoryPage | undefined): void {
    order.next = UNANCHORED;
    if (page !== undefined) {
      order.epoch = page.epoch;
      order.next = page.latestOffset + 1;
      // What arrived meanwhile came after the subscribe: it is delivered, from the lowest.
      for (const [offset, w] of order.waiting) if (w.delivery.epoch === page.epoch && offset < order.next) order.next = offset;
    }
    const waiting = [...order.waiting.values()].sort((a, b) => a.delivery.offset! - b.delivery.offset!);
    order.waiting.clear();
    for (const w of waiting) {
      const placed = this.#place(order, w.delivery, w.exclude, w.done !== null);
      if (w.done !== null) {
        if (isThenable(placed)) placed.then(w.done);
        else w.done(placed);
      }
    }
  }

  #create(topic: string): TopicOrder | undefined {
    if (this.#topics.size >= this.#p.settings.maxTopics && !this.#evict()) {
      if (!this.#capReported) {
        this.#capReported = true;
        this.#p.report(new BrokerError('SY_ERR_BACKEND', `more than ${this.#p.settings.maxTopics} history topics to order: further ones are delivered as they arrive`), { during: 'ordering', topic });
      }
      return undefined;
    }
    const order = new TopicOrder(topic);
    this.#topics.set(topic, order);
    if (this.#sweeper === undefined) {
      this.#sweeper = setInterval(() => this.#sweep(), SWEEP_MS);
      this.#sweeper.unref();
    }
    return order;
  }

  /** Frees a slot at the cap: the oldest topic nobody here subscribes to any more. */
  #evict(): boolean {
    for (const order of this.#topics.values()) {
      if (this.#idle(order)) {
        this.#topics.delete(order.topic);
        return true;
      }
    }
    return false;
  }

  #idle(order: TopicOrder): boolean {
    return order.waiting.size === 0 && !order.reading && order.next !== ANCHORING && !this.#p.router.has(order.topic);
  }

  /** Forgets the topics nobody here subscribes to any more. */
  #sweep(): void {
    for (const order of this.#topics.values()) if (this.#idle(order)) this.#topics.delete(order.topic);
    if (this.#topics.size < this.#p.settings.maxTopics) this.#capReported = false;
    if (this.#topics.size === 0) {
      clearInterval(this.#sweeper);
      this.#sweeper = undefined;
    }
  }

  #hand(w: Waiting): void {
    const recipients = this.#fanout(w.delivery, w.exclude);
    w.done?.(recipients);
  }

  #fromStore(record: HistoryRecord): void {
    const local = this.#local.get(record.messageId);
    const delivery: Publish = {
      kind: 'publish',
      topic: record.topic,
      payload: record.payload,
      messageId: record.messageId,
      sentAt: record.sentAt,
      from: record.from,
      binary: record.binary,
      offset: record.offset,
      epoch: record.epoch,
    };
    const recipients = this.#fanout(delivery, local?.exclude ?? null);
    if (local !== undefined) local.recipients = recipients;
  }

  #fanout(delivery: Publish, exclude: Session | null): number {
    return this.#p.router.fanout(delivery.topic, delivery, exclude);
  }

  #lost(order: TopicOrder, from: number, to: number, reason: string): void {
    this.#p.report(
      new BrokerError('SY_ERR_BUS_GAP', `${order.topic}: messages ${from} to ${to} could not be delivered in order (${reason})`),
      { during: 'ordering', topic: order.topic, epoch: order.epoch, lost: { from, to }, reason },
    );
  }
}
