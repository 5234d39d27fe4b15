/** The in-memory Store: bounded everywhere, so one process needs nothing else. */
import { LRUCache } from 'lru-cache';
import type { HistoryLimits, HistoryPage, HistoryQuery, HistoryRecord, QueuedDirect, Store } from './store.js';

export interface MemoryStoreOptions {
  /** Most queued direct messages per principal; older ones are dropped first. Default 100. */
  maxQueuedPerPrincipal?: number;
  /** Most principals with a queue; the least recently used queue is dropped past it. Default 10,000. */
  maxQueuedPrincipals?: number;
  /** How long a queued direct message is kept, in milliseconds. Default 24 h. */
  queuedTtlMs?: number;
  /** Most topics with history; the least recently used topic's history is dropped past it. Default 10,000. */
  maxHistoryTopics?: number;
}

interface TopicHistory {
  records: HistoryRecord[];
  next: number;
}

export class MemoryStore implements Store {
  readonly #perPrincipal: number;
  readonly #ttl: number;
  readonly #queues: LRUCache<string, QueuedDirect[]>;
  readonly #history: LRUCache<string, TopicHistory>;

  constructor(options: MemoryStoreOptions = {}) {
    this.#perPrincipal = options.maxQueuedPerPrincipal ?? 100;
    this.#ttl = options.queuedTtlMs ?? 24 * 60 * 60 * 1000;
    this.#queues = new LRUCache({ max: options.maxQueuedPrincipals ?? 10_000, ttl: this.#ttl });
    this.#history = new LRUCache({ max: options.maxHistoryTopics ?? 10_000 });
  }

  async enqueueDirect(message: QueuedDirect): Promise<boolean> {
    if (this.#perPrincipal <= 0) return false;
    let queue = this.#queues.get(message.target);
    if (queue === undefined) {
      queue = [];
    }
    queue.push(message);
    if (queue.length > this.#perPrincipal) queue.shift();
    // set() again so the queue's expiry counts from its newest message.
    this.#queues.set(message.target, queue);
    return true;
  }

  async drainDirect(principalId: string): Promise<QueuedDirect[]> {
    const queue = this.#queues.get(principalId);
    if (queue === undefined) return [];
    this.#queues.delete(principalId);
    const oldest = Date.now() - this.#ttl;
    return queue.filter((m) => m.sentAt >= oldest);
  }

  async appendHistory(record: Omit<HistoryRecord, 'offset'>, limits: HistoryLimits): Promise<HistoryRecord> {
    let history = this.#history.get(record.topic);
    if (history === undefined) {
      history = { records: [], next: 1 };
      this.#history.set(record.topic, history);
    }
    const stored: HistoryRecord = { ...record, offset: history.next++ };
    history.records.push(stored);
    trim(history, limits, Date.now());
    return stored;
  }

  async readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    const history = this.#history.get(topic);
    if (history === undefined) return { records: [], latestOffset: 0, complete: query.since === undefined || query.since === 0 };
    trim(history, limits, Date.now());
    const latestOffset = history.next - 1;
    const { records } = history;
    if (query.since === undefined) {
      const limit = query.limit ?? records.length;
      return { records: records.slice(Math.max(0, records.length - limit)), latestOffset, complete: true };
    }
    const since = query.since;
    const first = records[0]?.offset ?? history.next;
    // Nothing between `since` and the first kept record may have been lost; and an offset past
    // the newest one means the client saw a history this store no longer has (a restart).
    const complete = since >= first - 1 && since <= latestOffset;
    const start = records.findIndex((r) => r.offset > since);
    const tail = start === -1 ? [] : records.slice(start);
    return { records: query.limit === undefined ? tail : tail.slice(0, query.limit), latestOffset, complete };
  }

  async close(): Promise<void> {
    this.#queues.clear();
    this.#history.clear();
  }
}

function trim(history: TopicHistory, limits: HistoryLimits, now: number): void {
  const { records } = history;
  let drop = Math.max(0, records.length - limits.maxMessages);
  const oldest = now - limits.maxAgeMs;
  while (drop < records.length && records[drop]!.sentAt < oldest) drop++;
  if (drop > 0) records.splice(0, drop);
}
