/**
 * RedisStore: history, latest value and the offline direct queue in Redis, shared by every broker
 * process that uses the same server and key prefix.
 *
 * One Lua script per append numbers the record (epoch, offset increment, XADD with MAXLEN, age
 * trim, expiry) atomically, so concurrent appends from many processes get gapless offsets. Keys
 * carry a `{hash tag}` per topic or principal, so every script touches one cluster slot.
 *
 * Connections: given connection options (or a URL), the store opens its client and closes it in
 * close(); given a client (`new Redis(...)`), it uses it and leaves it open: the host closes it.
 */
import { randomUUID } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import { redisClient } from './client.js';
import type { HistoryLimits, HistoryPage, HistoryQuery, HistoryRecord, QueuedDirect, Store } from 'switchyard';
import { APPEND, DRAIN, ENQUEUE, READ } from './scripts.js';

export interface RedisStoreOptions {
  /**
   * The Redis to use: a client the host opened and closes itself, or a URL or connection options
   * for a client the store opens and closes. Default `redis://127.0.0.1:6379`. A client the store
   * opens has `enableAutoPipelining: true` (concurrent appends share one write and one read); give
   * a client of your own the same option, or each append costs its own round trip.
   */
  redis?: Redis | RedisOptions | string;
  /** Prefix of every key; must not contain `{` or `}`. Default `'switchyard:'`. */
  keyPrefix?: string;
  /** Most queued direct messages per principal; older ones are dropped first; 0 switches queueing off. Default 100. */
  maxQueuedPerPrincipal?: number;
  /** How long a queued direct message is kept, in milliseconds. Default 24 h. */
  queuedTtlMs?: number;
  /**
   * How long a topic's epoch and offset outlive its last append, in milliseconds (at least the
   * history's maxAgeMs). Past it the topic starts a new epoch. Default 7 days.
   */
  metaTtlMs?: number;
  /** Timeout of each command of a client the store opens, in milliseconds. Default 2,000. */
  commandTimeoutMs?: number;
}

const DAY = 24 * 60 * 60 * 1000;

/** The JSON header of a kept message: id, sender, payload (absent when undefined). */
interface Header {
  m: string;
  f: string | null;
  p?: unknown;
}

/** A script as ioredis runs it: by SHA, loaded again on NOSCRIPT, auto-pipelined; replies as Buffers. */
type ScriptFn = (...args: Array<string | number | Buffer>) => Promise<unknown>;

const SCRIPTS = { switchyardAppend: [2, APPEND], switchyardRead: [2, READ], switchyardEnqueue: [1, ENQUEUE], switchyardDrain: [1, DRAIN] } as const;
type ScriptName = keyof typeof SCRIPTS;

/**
 * Defines the scripts on the client (ioredis's defineCommand: EVALSHA with EVAL on NOSCRIPT, and
 * auto-pipelining) and returns their Buffer-reply forms, bound to the client.
 */
function defineScripts(redis: Redis): Record<ScriptName, ScriptFn> {
  const out: Partial<Record<ScriptName, ScriptFn>> = {};
  for (const [name, [numberOfKeys, lua]] of Object.entries(SCRIPTS) as Array<[ScriptName, readonly [number, string]]>) {
    redis.defineCommand(name, { numberOfKeys, lua });
    const fn: ScriptFn = Reflect.get(redis, `${name}Buffer`);
    out[name] = fn.bind(redis);
  }
  return out as Record<ScriptName, ScriptFn>;
}

export class RedisStore implements Store {
  readonly #redis: Redis;
  readonly #owned: boolean;
  readonly #run: Record<ScriptName, ScriptFn>;
  readonly #prefix: string;
  readonly #perPrincipal: number;
  readonly #queuedTtl: number;
  readonly #metaTtl: number;
  #closing: Promise<void> | undefined;
  /** One connection, one script per append, run in the order sent: offsets follow call order. */
  readonly ordersAppends = true;

  constructor(options: RedisStoreOptions = {}) {
    const prefix = options.keyPrefix ?? 'switchyard:';
    if (/[{}]/.test(prefix)) throw new TypeError('RedisStore keyPrefix must not contain { or }');
    this.#prefix = prefix;
    this.#perPrincipal = options.maxQueuedPerPrincipal ?? 100;
    this.#queuedTtl = options.queuedTtlMs ?? DAY;
    this.#metaTtl = options.metaTtlMs ?? 7 * DAY;
    const { redis, owned } = redisClient(options.redis, options.commandTimeoutMs);
    this.#redis = redis;
    this.#owned = owned;
    this.#run = defineScripts(this.#redis);
  }

  /** The client the store uses (its own, or the one it was given). */
  get client(): Redis {
    return this.#redis;
  }

  #topicKeys(topic: string): [string, string] {
    const base = `${this.#prefix}history:{${topic}}`;
    return [`${base}:meta`, `${base}:stream`];
  }

  async appendHistory(record: Omit<HistoryRecord, 'offset' | 'epoch'>, limits: HistoryLimits): Promise<HistoryRecord> {
    const header: Header = { m: record.messageId, f: record.from, p: record.payload };
    const args: Array<string | number | Buffer> = [
      randomUUID(),
      Math.max(1, limits.maxMessages),
      Date.now() - limits.maxAgeMs,
      Math.max(1, Math.ceil(limits.maxAgeMs)),
      Math.max(this.#metaTtl, Math.ceil(limits.maxAgeMs)),
      record.sentAt,
      JSON.stringify(header),
    ];
    if (record.binary !== undefined) args.push(record.binary);
    const [epoch, offset] = (await this.#run.switchyardAppend(...this.#topicKeys(record.topic), ...args)) as [Buffer, number];
    const appended: HistoryRecord = { topic: record.topic, offset, epoch: epoch.toString(), messageId: record.messageId, payload: record.payload, sentAt: record.sentAt, from: record.from };
    if (record.binary !== undefined) appended.binary = Buffer.from(record.binary);
    return appended;
  }

  async readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    const { since } = query;
    const limit = query.limit ?? -1;
    const wanted = since === undefined ? undefined : typeof since === 'number' ? { offset: since, epoch: '' } : since;
    const args: Array<string | number> = [randomUUID(), Date.now() - limits.maxAgeMs, Math.max(this.#metaTtl, Math.ceil(limits.maxAgeMs))];
    args.push(...(wanted === undefined ? ['newest', 0, limit, ''] : ['since', wanted.offset, limit, wanted.epoch]));
    const reply = (await this.#run.switchyardRead(...this.#topicKeys(topic), ...args)) as [Buffer, number, number, Entry[]];
    const epoch = reply[0].toString();
    const [, latestOffset, first, entries] = reply;
    const records = entries.map((e) => recordOf(topic, epoch, e));
    if (wanted === undefined) {
      if (limit > 0) records.reverse();
      return { records, latestOffset, epoch, complete: true };
    }
    const sameEpoch = wanted.epoch === '' || wanted.epoch === epoch;
    const complete = sameEpoch && wanted.offset >= first - 1 && wanted.offset <= latestOffset;
    return { records, latestOffset, epoch, complete };
  }

  async enqueueDirect(message: QueuedDirect): Promise<boolean> {
    if (this.#perPrincipal <= 0) return false;
    const header = JSON.stringify({ m: message.messageId, f: message.from, p: message.payload, t: message.sentAt });
    const length = Buffer.allocUnsafe(4);
    length.writeUInt32BE(Buffer.byteLength(header));
    const parts: Buffer[] = [length, Buffer.from(header)];
    if (message.binary !== undefined) parts.push(Buffer.from([1]), message.binary);
    await this.#run.switchyardEnqueue(this.#queueKey(message.target), this.#perPrincipal, this.#queuedTtl, Buffer.concat(parts));
    return true;
  }

  async drainDirect(principalId: string): Promise<QueuedDirect[]> {
    const items = (await this.#run.switchyardDrain(this.#queueKey(principalId))) as Buffer[];
    const oldest = Date.now() - this.#queuedTtl;
    const out: QueuedDirect[] = [];
    for (const item of items) {
      const size = item.readUInt32BE(0);
      const header = JSON.parse(item.toString('utf8', 4, 4 + size)) as Header & { t: number };
      if (header.t < oldest) continue;
      const direct: QueuedDirect = { messageId: header.m, from: header.f, target: principalId, payload: header.p, sentAt: header.t };
      if (item.length > 4 + size) direct.binary = Buffer.from(item.subarray(5 + size));
      out.push(direct);
    }
    return out;
  }

  #queueKey(principal: string): string {
    return `${this.#prefix}queue:{${principal}}`;
  }

  /** Closes the client if the store opened it (waiting for its replies); a client passed in stays open. */
  close(): Promise<void> {
    this.#closing ??= this.#owned ? quit(this.#redis) : Promise.resolve();
    return this.#closing;
  }
}

/** A stream entry as Redis returns it: [id, [field, value, ...]]. */
type Entry = [Buffer, Buffer[]];

function recordOf(topic: string, epoch: string, [id, fields]: Entry): HistoryRecord {
  let sentAt = 0;
  let header: Header = { m: '', f: null };
  let binary: Buffer | undefined;
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const name = fields[i]!.toString();
    const value = fields[i + 1]!;
    if (name === 't') sentAt = Number(value.toString());
    else if (name === 'h') header = JSON.parse(value.toString('utf8')) as Header;
    else if (name === 'b') binary = value;
  }
  const offset = Number(id.toString().split('-', 1)[0]);
  const record: HistoryRecord = { topic, offset, epoch, messageId: header.m, payload: header.p, sentAt, from: header.f };
  if (binary !== undefined) record.binary = binary;
  return record;
}

async function quit(redis: Redis): Promise<void> {
  try {
    await redis.quit();
  } catch {
    // Not connected (or the server is gone): drop the socket and stop reconnecting.
    redis.disconnect();
  }
}
