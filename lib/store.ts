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

/**
 * Where a client is in a topic's history: the last offset it saw, and the epoch that offset
 * belongs to. The epoch is an opaque id that a store creates with the topic's first record (or
 * first read) and changes whenever it lost that history (a restart without persistence, an
 * evicted or expired topic, a restore): offsets of another epoch say nothing about this one.
 */
export interface HistoryPosition {
  offset: number;
  epoch: string;
}

/** What a Subscribe recovers from, per topic: a position, or a bare offset (of the current epoch). */
export type RecoverFrom = Record<string, HistoryPosition | number>;

/** A message kept in a topic's history. */
export interface HistoryRecord {
  topic: string;
  /** Per-topic offset, 1 for the first message ever kept on the topic (in this epoch), no gaps. */
  offset: number;
  /** The epoch of the topic's history this offset belongs to. */
  epoch: string;
  messageId: string;
  payload: unknown;
  /** Binary data of a binary broadcast, if it was one. */
  binary?: Buffer;
  sentAt: number;
  from: string | null;
}

export interface HistoryQuery {
  /**
   * Return records with an offset greater than this one. A position from another epoch makes the
   * page incomplete and returns the kept records from the oldest; a bare number is taken to be of
   * the topic's current epoch.
   */
  since?: HistoryPosition | number;
  /** At most this many records (the newest ones when `since` is absent). */
  limit?: number;
}

export interface HistoryPage {
  records: HistoryRecord[];
  /** Offset of the newest record kept on the topic (0 when none ever was). */
  latestOffset: number;
  /** The epoch of the topic's history (created by this read when the topic had none). */
  epoch: string;
  /**
   * False when `since` is of another epoch, asked for records that are no longer kept (expired or
   * evicted), or is past `latestOffset` (the client saw a history this store no longer has), so
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
  appendHistory(record: Omit<HistoryRecord, 'offset' | 'epoch'>, limits: HistoryLimits): Awaitable<HistoryRecord>;
  /**
   * True when appends to one topic get offsets in the order they were called, even while earlier
   * ones have not answered (RedisStore: one connection, one script each). The broker then has
   * several appends of a topic at the store at once; otherwise (the default) it waits for each
   * topic's append to answer before it makes the next, so deliveries stay in offset order.
   */
  readonly ordersAppends?: boolean;
  /** Reads a topic's history. */
  readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage>;
  /** Releases everything the store holds open. Idempotent. */
  close(): Promise<void>;
}

/** The offset and epoch `since` names (a bare number is of `current`, the topic's epoch). */
export function positionOf(since: HistoryPosition | number | undefined, current: string): HistoryPosition | undefined {
  if (since === undefined) return undefined;
  return typeof since === 'number' ? { offset: since, epoch: current } : since;
}

/** A position as a client sends it: a bare offset (of the topic's current epoch) or `{offset, epoch}`; undefined when it is neither. */
export function positionFrom(value: unknown): HistoryPosition | number | undefined {
  const isOffset = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 0;
  if (isOffset(value)) return value;
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return undefined;
  const offset: unknown = Object.hasOwn(value, 'offset') ? (value as Record<string, unknown>).offset : undefined;
  const epoch: unknown = Object.hasOwn(value, 'epoch') ? (value as Record<string, unknown>).epoch : undefined;
  if (!isOffset(offset) || typeof epoch !== 'string' || epoch.length === 0 || epoch.length > 200) return undefined;
  return { offset, epoch };
}
