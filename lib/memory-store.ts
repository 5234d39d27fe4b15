/**
 * The in-memory Store: bounded everywhere, so one process needs nothing else.
 *
 * It keeps snapshots, as a real backend does: payloads are stored as JSON text and Buffers as
 * copies, and every read builds fresh records, so a host that edits or reuses an object after
 * publishing it cannot rewrite history or queued messages. Appending answers synchronously
 * (no promise per publish), and a topic's history is a window over an array that is compacted
 * now and then, so trimming the oldest record costs O(1) amortised.
 *
 * Memory is bounded by count and by bytes (the size of a kept message is its JSON text's length,
 * its binary data, and a fixed overhead): per principal, per topic, and in total, and a timer
 * (unref'd, visiting a bounded number of the least recently used entries per tick) expires old
 * history of idle topics and queued messages nobody drains, without waiting for an append or read.
 */
import { randomUUID } from 'node:crypto';
import { LRUCache } from 'lru-cache';
import { positionOf, type HistoryLimits, type HistoryPage, type HistoryQuery, type HistoryRecord, type QueuedDirect, type Store } from './store.js';

export interface MemoryStoreOptions {
  /** Most queued direct messages per principal; older ones are dropped first. Default 100. */
  maxQueuedPerPrincipal?: number;
  /** Most principals with a queue; the least recently used queue is dropped past it. Default 10,000. */
  maxQueuedPrincipals?: number;
  /** How long a queued direct message is kept, in milliseconds. Default 24 h. */
  queuedTtlMs?: number;
  /** Most topics with history; the least recently used topic's history is dropped past it. Default 10,000. */
  maxHistoryTopics?: number;
  /** Most bytes queued per principal; the oldest messages are dropped first. Default 1 MiB. */
  maxQueuedBytesPerPrincipal?: number;
  /** Most bytes queued in total; the least recently used principal's queue is dropped first. Default 64 MiB. */
  maxQueuedBytes?: number;
  /** Most bytes of history per topic; the oldest records are dropped first (the newest one is always kept). Default 1 MiB. */
  maxHistoryBytesPerTopic?: number;
  /** Most bytes of history in total; the least recently used topic's history is dropped first. Default 128 MiB. */
  maxHistoryBytes?: number;
  /** How often expired history and queued messages are swept, in milliseconds (0: never). Default 30,000. */
  sweepIntervalMs?: number;
}

const MiB = 1024 * 1024;
/** Entries the sweep visits per tick, least recently used first: a tick's work stays bounded. */
const SWEEP_VISITS = 1000;
/** What a kept message costs beyond its payload: the object, its id, its slot. */
const OVERHEAD = 96;

/** A kept message: the payload as JSON text (undefined stays undefined), binary data copied. */
interface Kept {
  messageId: string;
  json: string | undefined;
  binary: Buffer | undefined;
  sentAt: number;
  from: string | null;
  /** Approximate bytes held. */
  size: number;
}

interface KeptRecord extends Kept {
  offset: number;
}

interface KeptDirect extends Kept {
  target: string;
}

interface TopicHistory {
  /** Kept records are `records[start..]`, oldest first, offsets consecutive. */
  records: KeptRecord[];
  start: number;
  /** Offset the next record gets. */
  next: number;
  epoch: string;
  /** Bytes of the kept records. */
  bytes: number;
  /** The limits of the last append, for the sweep. */
  limits: HistoryLimits;
}

interface Queue {
  items: KeptDirect[];
  bytes: number;
}

export class MemoryStore implements Store {
  readonly #perPrincipal: number;
  readonly #ttl: number;
  readonly #queueBytesPerPrincipal: number;
  readonly #queueBytesTotal: number;
  readonly #historyBytesPerTopic: number;
  readonly #historyBytesTotal: number;
  #queueBytes = 0;
  #historyBytes = 0;
  readonly #sweeper: NodeJS.Timeout | undefined;
  readonly #queues: LRUCache<string, Queue>;
  readonly #history: LRUCache<string, TopicHistory>;
  /**
   * Epochs: every store starts a new one (what it held before is gone). A topic takes the epoch
   * current when its history is created, and a topic never kept (or dropped) reads as of the
   * current epoch, so reading creates nothing. Dropping a topic's history moves the epoch on, so
   * the topic, created again, never reuses the epoch its lost records had.
   */
  readonly #instance = randomUUID();
  #generation = 0;

  constructor(options: MemoryStoreOptions = {}) {
    this.#perPrincipal = options.maxQueuedPerPrincipal ?? 100;
    this.#ttl = options.queuedTtlMs ?? 24 * 60 * 60 * 1000;
    this.#queueBytesPerPrincipal = options.maxQueuedBytesPerPrincipal ?? MiB;
    this.#queueBytesTotal = Math.max(options.maxQueuedBytes ?? 64 * MiB, this.#queueBytesPerPrincipal);
    this.#historyBytesPerTopic = options.maxHistoryBytesPerTopic ?? MiB;
    this.#historyBytesTotal = Math.max(options.maxHistoryBytes ?? 128 * MiB, this.#historyBytesPerTopic);
    this.#queues = new LRUCache({
      max: options.maxQueuedPrincipals ?? 10_000,
      ttl: this.#ttl,
      dispose: (queue) => {
        this.#queueBytes -= queue.bytes;
      },
    });
    this.#history = new LRUCache({
      max: options.maxHistoryTopics ?? 10_000,
      dispose: (history, _key, reason) => {
        this.#historyBytes -= history.bytes;
        if (reason === 'evict' || reason === 'delete') this.#generation++;
      },
    });
    const every = options.sweepIntervalMs ?? 30_000;
    if (every > 0) {
      this.#sweeper = setInterval(() => this.sweep(), every);
      this.#sweeper.unref();
    }
  }

  /** Bytes held now by queued direct messages and by history (approximate; for tests and stats). */
  get bytes(): { queued: number; history: number } {
    return { queued: this.#queueBytes, history: this.#historyBytes };
  }

  /**
   * Drops expired history records and queued messages of the least recently used topics and
   * principals (at most 1,000 of each per call; topics with no records left are passed over, not
   * counted). Runs on the store's timer; callable by tests.
   */
  sweep(now = Date.now()): void {
    let visits = 0;
    for (const history of this.#history.rvalues()) {
      if (history === undefined) break;
      // A topic whose records have all gone stays (for its offsets and epoch) with nothing to
      // expire: it is not a visit, or the sweep would revisit the same emptied topics every tick
      // and never reach the others.
      if (history.start === history.records.length) continue;
      if (++visits > SWEEP_VISITS) break;
      this.#historyBytes -= trim(history, history.limits, this.#historyBytesPerTopic, now);
    }
    visits = 0;
    this.#queues.purgeStale();
    const oldest = now - this.#ttl;
    const empty: string[] = [];
    for (const principal of this.#queues.rkeys()) {
      const queue = this.#queues.peek(principal, { allowStale: true });
      if (++visits > SWEEP_VISITS || queue === undefined) break;
      let dropped = 0;
      while (dropped < queue.items.length && queue.items[dropped]!.sentAt < oldest) queue.bytes -= queue.items[dropped++]!.size;
      if (dropped === 0) continue;
      this.#queueBytes -= queue.items.slice(0, dropped).reduce((n, m) => n + m.size, 0);
      queue.items.splice(0, dropped);
      if (queue.items.length === 0) empty.push(principal);
    }
    for (const principal of empty) this.#queues.delete(principal);
  }

  get #epoch(): string {
    return `${this.#instance}.${this.#generation}`;
  }

  async enqueueDirect(message: QueuedDirect): Promise<boolean> {
    if (this.#perPrincipal <= 0) return false;
    const kept: KeptDirect = { ...keep(message), target: message.target };
    if (kept.size > this.#queueBytesPerPrincipal) return false;
    let queue = this.#queues.get(message.target);
    if (queue === undefined) {
      queue = { items: [], bytes: 0 };
      // set() first, so the queue is counted (and disposed of) as the LRU's own.
      this.#queues.set(message.target, queue);
    }
    queue.items.push(kept);
    queue.bytes += kept.size;
    this.#queueBytes += kept.size;
    while (queue.items.length > this.#perPrincipal || queue.bytes > this.#queueBytesPerPrincipal) {
      const dropped = queue.items.shift()!;
      queue.bytes -= dropped.size;
      this.#queueBytes -= dropped.size;
    }
    // set() again so the queue's expiry counts from its newest message.
    this.#queues.set(message.target, queue);
    // Past the total budget, the least recently used principals' queues go (never this one).
    while (this.#queueBytes > this.#queueBytesTotal && this.#queues.size > 1) this.#queues.pop();
    return true;
  }

  async drainDirect(principalId: string): Promise<QueuedDirect[]> {
    const queue = this.#queues.get(principalId);
    if (queue === undefined) return [];
    this.#queues.delete(principalId);
    const oldest = Date.now() - this.#ttl;
    const out: QueuedDirect[] = [];
    for (const m of queue.items) {
      if (m.sentAt < oldest) continue;
      const direct: QueuedDirect = { messageId: m.messageId, from: m.from, target: m.target, payload: revive(m), sentAt: m.sentAt };
      if (m.binary !== undefined) direct.binary = Buffer.from(m.binary);
      out.push(direct);
    }
    return out;
  }

  /** Synchronous: the record is numbered and kept before this returns. */
  appendHistory(record: Omit<HistoryRecord, 'offset' | 'epoch'>, limits: HistoryLimits): HistoryRecord {
    let history = this.#history.get(record.topic);
    if (history === undefined) {
      history = { records: [], start: 0, next: 1, epoch: this.#epoch, bytes: 0, limits };
      this.#history.set(record.topic, history);
    }
    const offset = history.next++;
    const { epoch } = history;
    const kept: KeptRecord = { ...keep(record), offset };
    history.records.push(kept);
    history.bytes += kept.size;
    history.limits = limits;
    this.#historyBytes += kept.size - trim(history, limits, this.#historyBytesPerTopic, Date.now());
    // Past the total budget, the least recently used topics' histories go (never this one).
    while (this.#historyBytes > this.#historyBytesTotal && this.#history.size > 1) this.#history.pop();
    const appended: HistoryRecord = { topic: record.topic, offset, epoch, messageId: record.messageId, payload: record.payload, sentAt: record.sentAt, from: record.from };
    if (record.binary !== undefined) appended.binary = record.binary;
    return appended;
  }

  async readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    const history = this.#history.get(topic);
    if (history === undefined) {
      const epoch = this.#epoch;
      const since = positionOf(query.since, epoch);
      return { records: [], latestOffset: 0, epoch, complete: since === undefined || (since.epoch === epoch && since.offset === 0) };
    }
    this.#historyBytes -= trim(history, limits, this.#historyBytesPerTopic, Date.now());
    const { records, start, epoch } = history;
    const latestOffset = history.next - 1;
    const kept = records.length - start;
    const first = latestOffset - kept + 1; // offset of records[start] (or next, when none is kept)
    let from: number;
    let to: number;
    let complete = true;
    if (query.since === undefined) {
      to = records.length;
      from = Math.max(start, to - (query.limit ?? kept));
    } else {
      const position = positionOf(query.since, epoch)!;
      // Another epoch's offsets say nothing about this one: replay from the oldest kept record.
      const since = position.epoch === epoch ? position.offset : 0;
      // Nothing between `since` and the first kept record may have been lost; and an offset past
      // the newest one means the client saw a history this store no longer has (a restart).
      complete = position.epoch === epoch && since >= first - 1 && since <= latestOffset;
      from = start + Math.min(kept, Math.max(0, since - first + 1));
      to = query.limit === undefined ? records.length : Math.min(records.length, from + query.limit);
    }
    const out: HistoryRecord[] = [];
    for (let i = from; i < to; i++) out.push(recordOf(topic, epoch, records[i]!));
    return { records: out, latestOffset, epoch, complete };
  }

  async close(): Promise<void> {
    clearInterval(this.#sweeper);
    this.#queues.clear();
    this.#history.clear();
  }
}

function keep(message: { messageId: string; payload: unknown; binary?: Buffer | undefined; sentAt: number; from: string | null }): Kept {
  const json = message.payload === undefined ? undefined : JSON.stringify(message.payload);
  const binary = message.binary === undefined ? undefined : Buffer.from(message.binary);
  const size = OVERHEAD + message.messageId.length + (json?.length ?? 0) + (binary?.length ?? 0) + (message.from?.length ?? 0);
  return { messageId: message.messageId, json, binary, sentAt: message.sentAt, from: message.from, size };
}

function revive(kept: Kept): unknown {
  return kept.json === undefined ? undefined : JSON.parse(kept.json);
}

function recordOf(topic: string, epoch: string, kept: KeptRecord): HistoryRecord {
  const record: HistoryRecord = { topic, offset: kept.offset, epoch, messageId: kept.messageId, payload: revive(kept), sentAt: kept.sentAt, from: kept.from };
  if (kept.binary !== undefined) record.binary = Buffer.from(kept.binary);
  return record;
}

/**
 * Drops records past `maxMessages` or `maxBytes` (the newest is always kept) or older than
 * `maxAgeMs` from the front of the window; returns the bytes it freed.
 */
function trim(history: TopicHistory, limits: HistoryLimits, maxBytes: number, now: number): number {
  const { records } = history;
  let start = Math.max(history.start, records.length - limits.maxMessages);
  let freed = 0;
  for (let i = history.start; i < start; i++) freed += records[i]!.size;
  const oldest = now - limits.maxAgeMs;
  while (start < records.length && (records[start]!.sentAt < oldest || (history.bytes - freed > maxBytes && start < records.length - 1))) {
    freed += records[start++]!.size;
  }
  if (start === history.start) return 0;
  history.bytes -= freed;
  if (start >= 1024 && start * 2 >= records.length) {
    // Compact once the dropped part is at least half the array: amortised O(1) per record.
    records.splice(0, start);
    start = 0;
  } else {
    // Release the dropped records' payloads now rather than at the next compaction.
    for (let i = history.start; i < start; i++) records[i] = EVICTED;
  }
  history.start = start;
  return freed;
}

const EVICTED: KeptRecord = { messageId: '', json: undefined, binary: undefined, sentAt: 0, from: null, offset: 0, size: 0 };
