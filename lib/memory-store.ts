/**
 * The in-memory Store: bounded everywhere, so one process needs nothing else.
 *
 * It keeps snapshots, as a real backend does: payloads are stored as JSON text and Buffers as
 * copies, and every read builds fresh records, so a host that edits or reuses an object after
 * publishing it cannot rewrite history or queued messages. Appending answers synchronously
 * (no promise per publish), and a topic's history is a window over an array that is compacted
 * now and then, so trimming the oldest record costs O(1) amortised.
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
}

/** A kept message: the payload as JSON text (undefined stays undefined), binary data copied. */
interface Kept {
  messageId: string;
  json: string | undefined;
  binary: Buffer | undefined;
  sentAt: number;
  from: string | null;
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
}

export class MemoryStore implements Store {
  readonly #perPrincipal: number;
  readonly #ttl: number;
  readonly #queues: LRUCache<string, KeptDirect[]>;
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
    this.#queues = new LRUCache({ max: options.maxQueuedPrincipals ?? 10_000, ttl: this.#ttl });
    this.#history = new LRUCache({
      max: options.maxHistoryTopics ?? 10_000,
      dispose: (_value, _key, reason) => {
        if (reason === 'evict' || reason === 'delete') this.#generation++;
      },
    });
  }

  get #epoch(): string {
    return `${this.#instance}.${this.#generation}`;
  }

  async enqueueDirect(message: QueuedDirect): Promise<boolean> {
    if (this.#perPrincipal <= 0) return false;
    const queue = this.#queues.get(message.target) ?? [];
    queue.push({ ...keep(message), target: message.target });
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
    const out: QueuedDirect[] = [];
    for (const m of queue) {
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
      history = { records: [], start: 0, next: 1, epoch: this.#epoch };
      this.#history.set(record.topic, history);
    }
    const offset = history.next++;
    const { epoch } = history;
    history.records.push({ ...keep(record), offset });
    trim(history, limits, Date.now());
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
    trim(history, limits, Date.now());
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
    this.#queues.clear();
    this.#history.clear();
  }
}

function keep(message: { messageId: string; payload: unknown; binary?: Buffer | undefined; sentAt: number; from: string | null }): Kept {
  return {
    messageId: message.messageId,
    json: message.payload === undefined ? undefined : JSON.stringify(message.payload),
    binary: message.binary === undefined ? undefined : Buffer.from(message.binary),
    sentAt: message.sentAt,
    from: message.from,
  };
}

function revive(kept: Kept): unknown {
  return kept.json === undefined ? undefined : JSON.parse(kept.json);
}

function recordOf(topic: string, epoch: string, kept: KeptRecord): HistoryRecord {
  const record: HistoryRecord = { topic, offset: kept.offset, epoch, messageId: kept.messageId, payload: revive(kept), sentAt: kept.sentAt, from: kept.from };
  if (kept.binary !== undefined) record.binary = Buffer.from(kept.binary);
  return record;
}

/** Drops records past `maxMessages` or older than `maxAgeMs` from the front of the window. */
function trim(history: TopicHistory, limits: HistoryLimits, now: number): void {
  const { records } = history;
  let start = Math.max(history.start, records.length - limits.maxMessages);
  const oldest = now - limits.maxAgeMs;
  while (start < records.length && records[start]!.sentAt < oldest) start++;
  if (start === history.start) return;
  if (start >= 1024 && start * 2 >= records.length) {
    // Compact once the dropped part is at least half the array: amortised O(1) per record.
    records.splice(0, start);
    start = 0;
  } else {
    // Release the dropped records' payloads now rather than at the next compaction.
    for (let i = history.start; i < start; i++) records[i] = EVICTED;
  }
  history.start = start;
}

const EVICTED: KeptRecord = { messageId: '', json: undefined, binary: undefined, sentAt: 0, from: null, offset: 0 };
