/**
 * The Store extension point: what the broker keeps beyond live connections. The memory
 * implementation is in memory-store.ts; real backends live in adapters/ and run the same
 * conformance suite (test/conformance/store.ts).
 */
import type { Awaitable } from './awaitable.js';

/** A direct message waiting for its target to connect. */
export interface QueuedDirect {
  messageId: string;
  from: string | null;
  target: string;
  payload: unknown;
  /** Data of a binary direct message. */
  binary?: Buffer;
  sentAt: number;
}

/** A message kept in a topic's history. */
export interface HistoryRecord {
  topic: string;
  /** Per-topic offset, 1 for the first message ever kept on the topic, no gaps. */
  offset: number;
  messageId: string;
  payload: unknown;
  /** Binary data of a binary broadcast, if it was one. */
  binary?: Buffer;
  sentAt: number;
  from: string | null;
}

export interface HistoryQuery {
  /** Return records with an offset greater than this one. */
  since?: number;
  /** At most this many records (the newest ones when `since` is absent). */
  limit?: number;
}

export interface HistoryPage {
  records: HistoryRecord[];
  /** Offset of the newest record kept on the topic (0 when none ever was). */
  latestOffset: number;
  /**
   * False when `since` asked for records that are no longer kept (expired or evicted), or is past
   * `latestOffset` (the client saw a history this store no longer has, e.g. after a restart), so
   * the client cannot be brought up to date without a gap.
   */
  complete: boolean;
}

export interface HistoryLimits {
  /** Most records kept per topic. */
  maxMessages: number;
  /** Oldest record kept, in milliseconds. */
  maxAgeMs: number;
}

export interface Store {
  /** Keeps a direct message for an offline principal; false when it was not kept (queue full, disabled). */
  enqueueDirect(message: QueuedDirect): Promise<boolean>;
  /** Removes and returns a principal's queued direct messages, oldest first, unexpired only. */
  drainDirect(principalId: string): Promise<QueuedDirect[]>;
  /**
   * Appends to a topic's history and returns the record with its new offset. May answer
   * synchronously (the memory store does), so a publish to a history topic costs no promise.
   */
  appendHistory(record: Omit<HistoryRecord, 'offset'>, limits: HistoryLimits): Awaitable<HistoryRecord>;
  /** Reads a topic's history. */
  readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage>;
  /** Releases everything the store holds open. Idempotent. */
  close(): Promise<void>;
}
