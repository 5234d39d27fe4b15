/**
 * PostgresStore: durable history, latest value and offline direct queue in PostgreSQL, shared by
 * every broker process that uses the same database and table prefix.
 *
 * Every operation is one statement (one round trip, one snapshot): an append bumps the topic's row
 * and inserts the record together, so concurrent appends from many processes get gapless offsets
 * and an aborted one leaves no gap; a drain is a `DELETE … RETURNING`, so of two drains at once
 * each message goes to exactly one.
 *
 * Connections: given a Pool, the store uses it and leaves it open (the host ends it, and handles
 * its 'error' events); given a connection string or pool options, it creates its own pool and ends
 * it in close().
 */
import { randomUUID } from 'node:crypto';
import pg from 'pg';
import type { HistoryLimits, HistoryPage, HistoryQuery, HistoryRecord, QueuedDirect, Store } from 'switchyard';
import { migrate } from './schema.js';

export interface PostgresStoreOptions {
  /**
   * The database: a Pool the host created and ends itself, or a connection string or pool options
   * for a pool the store creates and ends. Default `postgres://127.0.0.1:5432/` with libpq's
   * environment variables (PGUSER, PGDATABASE, …).
   */
  pool?: pg.Pool | pg.PoolConfig | string;
  /** Prefix of every table name: letters, digits and `_`, starting with a letter or `_`. Default `'switchyard_'`. */
  tablePrefix?: string;
  /** Most queued direct messages per principal; older ones are dropped first; 0 switches queueing off. Default 100. */
  maxQueuedPerPrincipal?: number;
  /** How long a queued direct message is kept, in milliseconds. Default 24 h. */
  queuedTtlMs?: number;
  /** Timeout of each query of a pool the store creates, in milliseconds. Default 5,000. */
  queryTimeoutMs?: number;
}

const DAY = 24 * 60 * 60 * 1000;
/** Every this many appends, one bounded sweep removes expired rows of every topic and queue. */
const SWEEP_EVERY = 256;
const SWEEP_ROWS = 500;

interface Row {
  offs: string | null;
  message_id: string;
  payload: string | null;
  data: Buffer | null;
  sent_at: string;
  sender: string | null;
}

interface PageRow extends Row {
  epoch: string;
  latest: string;
  first: string | null;
}

export class PostgresStore implements Store {
  readonly #pool: pg.Pool;
  readonly #owned: boolean;
  readonly #p: string;
  readonly #perPrincipal: number;
  readonly #queuedTtl: number;
  #ready: Promise<void> | undefined;
  #appends = 0;
  #closing: Promise<void> | undefined;

  constructor(options: PostgresStoreOptions = {}) {
    const prefix = options.tablePrefix ?? 'switchyard_';
    if (!/^[A-Za-z_][A-Za-z0-9_]{0,40}$/.test(prefix)) throw new TypeError('PostgresStore tablePrefix must be letters, digits and _ (at most 41), not starting with a digit');
    this.#p = prefix.toLowerCase();
    this.#perPrincipal = options.maxQueuedPerPrincipal ?? 100;
    this.#queuedTtl = options.queuedTtlMs ?? DAY;
    const given = options.pool;
    this.#owned = !(given instanceof pg.Pool);
    if (given instanceof pg.Pool) {
      this.#pool = given;
    } else {
      const timeout = options.queryTimeoutMs ?? 5000;
      const config: pg.PoolConfig = typeof given === 'string' ? { connectionString: given } : { ...given };
      this.#pool = new pg.Pool({ connectionTimeoutMillis: timeout, query_timeout: timeout, ...config });
      // An idle connection the server ends (restart, pg_terminate_backend) is dropped by the pool,
      // which opens another when needed; without a listener, that 'error' would crash the process.
      this.#pool.on('error', () => {});
    }
  }

  /** The pool the store uses (its own, or the one it was given). */
  get pool(): pg.Pool {
    return this.#pool;
  }

  /** Runs one statement once the tables exist (created by the first call; retried after a failure). */
  async #query<R extends pg.QueryResultRow>(sql: string, values: unknown[]): Promise<R[]> {
    this.#ready ??= migrate(this.#pool, this.#p).catch((err: unknown) => {
      this.#ready = undefined;
      throw err;
    });
    await this.#ready;
    return (await this.#pool.query<R>(sql, values)).rows;
  }

  async appendHistory(record: Omit<HistoryRecord, 'offset' | 'epoch'>, limits: HistoryLimits): Promise<HistoryRecord> {
    const p = this.#p;
    const rows = await this.#query<{ epoch: string; latest: string }>(
      `WITH t AS (
         INSERT INTO ${p}topics AS cur (topic, epoch, latest) VALUES ($1, $2, 1)
         ON CONFLICT (topic) DO UPDATE SET latest = cur.latest + 1
         RETURNING id, epoch, latest
       ), ins AS (
         INSERT INTO ${p}history (topic_id, offs, message_id, payload, data, sent_at, sender)
         SELECT id, latest, $3, $4, $5, $6, $7 FROM t
       ), trim AS (
         DELETE FROM ${p}history h USING t WHERE h.topic_id = t.id AND (h.offs <= t.latest - $8 OR h.sent_at < $9)
       )
       SELECT epoch, latest FROM t`,
      [record.topic, randomUUID(), record.messageId, jsonOf(record.payload), record.binary ?? null, record.sentAt, record.from, Math.max(1, limits.maxMessages), Date.now() - limits.maxAgeMs],
    );
    const { epoch, latest } = rows[0]!;
    if (++this.#appends % SWEEP_EVERY === 0) void this.#sweep(limits).catch(() => {});
    const appended: HistoryRecord = { topic: record.topic, offset: Number(latest), epoch, messageId: record.messageId, payload: record.payload, sentAt: record.sentAt, from: record.from };
    if (record.binary !== undefined) appended.binary = Buffer.from(record.binary);
    return appended;
  }

  async readHistory(topic: string, query: HistoryQuery, limits: HistoryLimits): Promise<HistoryPage> {
    const { since } = query;
    const wanted = since === undefined ? undefined : typeof since === 'number' ? { offset: since, epoch: '' } : since;
    let rows = await this.#page(topic, wanted, query.limit, limits);
    if (rows.length === 0) {
      // First read of a topic: its epoch starts now (a concurrent first append or read may win).
      await this.#query(`INSERT INTO ${this.#p}topics (topic, epoch, latest) VALUES ($1, $2, 0) ON CONFLICT (topic) DO NOTHING`, [topic, randomUUID()]);
      rows = await this.#page(topic, wanted, query.limit, limits);
    }
    const head = rows[0]!;
    const epoch = head.epoch;
    const latestOffset = Number(head.latest);
    const records = rows.filter((r) => r.offs !== null).map((r) => recordOf(topic, epoch, r));
    if (wanted === undefined) return { records, latestOffset, epoch, complete: true };
    const sameEpoch = wanted.epoch === '' || wanted.epoch === epoch;
    const from = sameEpoch ? wanted.offset : 0;
    const first = head.first === null ? latestOffset + 1 : Number(head.first);
    // Records are consecutive from the first asked for (a row expired out of order makes a hole).
    const consecutive = records.every((r, i) => r.offset === Math.max(from, first - 1) + 1 + i);
    const complete = sameEpoch && wanted.offset >= first - 1 && wanted.offset <= latestOffset && consecutive;
    return { records, latestOffset, epoch, complete };
  }

  /** One snapshot: the topic's row, its oldest kept offset, and the records asked for. */
  #page(topic: string, wanted: { offset: number; epoch: string } | undefined, limit: number | undefined, limits: HistoryLimits): Promise<PageRow[]> {
    const p = this.#p;
    const newest = wanted === undefined;
    return this.#query<PageRow>(
      `SELECT t.epoch, t.latest, f.first, r.offs, r.message_id, r.payload, r.data, r.sent_at, r.sender
       FROM ${p}topics t
       CROSS JOIN LATERAL (SELECT min(offs) AS first FROM ${p}history WHERE topic_id = t.id AND sent_at >= $2) f
       LEFT JOIN LATERAL (
         SELECT offs, message_id, payload, data, sent_at, sender FROM ${p}history
         WHERE topic_id = t.id AND sent_at >= $2 AND offs <= t.latest
           AND offs > CASE WHEN $4 = '' OR $4 = t.epoch THEN $3::bigint ELSE 0 END
         ORDER BY offs ${newest ? 'DESC' : 'ASC'} LIMIT $5
       ) r ON true
       WHERE t.topic = $1
       ORDER BY r.offs`,
      [topic, Date.now() - limits.maxAgeMs, wanted?.offset ?? 0, wanted?.epoch ?? '', limit ?? null],
    );
  }

  async enqueueDirect(message: QueuedDirect): Promise<boolean> {
    if (this.#perPrincipal <= 0) return false;
    const p = this.#p;
    // The new row plus the newest `capacity - 1` already queued are kept.
    await this.#query(
      `WITH ins AS (
         INSERT INTO ${p}queue (principal, message_id, payload, data, sent_at, sender) VALUES ($1, $2, $3, $4, $5, $6)
       )
       DELETE FROM ${p}queue WHERE id IN (
         SELECT id FROM ${p}queue WHERE principal = $1 ORDER BY id DESC OFFSET $7
       )`,
      [message.target, message.messageId, jsonOf(message.payload), message.binary ?? null, message.sentAt, message.from, this.#perPrincipal - 1],
    );
    return true;
  }

  async drainDirect(principalId: string): Promise<QueuedDirect[]> {
    const rows = await this.#query<Row & { id: string }>(
      `DELETE FROM ${this.#p}queue WHERE principal = $1 RETURNING id, message_id, payload, data, sent_at, sender, NULL AS offs`,
      [principalId],
    );
    rows.sort((a, b) => Number(a.id) - Number(b.id));
    const oldest = Date.now() - this.#queuedTtl;
    const out: QueuedDirect[] = [];
    for (const row of rows) {
      const sentAt = Number(row.sent_at);
      if (sentAt < oldest) continue;
      const direct: QueuedDirect = { messageId: row.message_id, from: row.sender, target: principalId, payload: payloadOf(row), sentAt };
      if (row.data !== null) direct.binary = row.data;
      out.push(direct);
    }
    return out;
  }

  /** Removes a bounded number of expired rows of any topic and any queue (idle ones included). */
  async #sweep(limits: HistoryLimits): Promise<void> {
    const p = this.#p;
    await this.#query(`DELETE FROM ${p}history WHERE ctid IN (SELECT ctid FROM ${p}history WHERE sent_at < $1 LIMIT ${SWEEP_ROWS})`, [Date.now() - limits.maxAgeMs]);
    await this.#query(`DELETE FROM ${p}queue WHERE id IN (SELECT id FROM ${p}queue ORDER BY id LIMIT ${SWEEP_ROWS}) AND sent_at < $1`, [Date.now() - this.#queuedTtl]);
  }

  /** Ends the pool if the store created it; a pool passed in stays open. */
  close(): Promise<void> {
    this.#closing ??= this.#owned ? this.#pool.end() : Promise.resolve();
    return this.#closing;
  }
}

function jsonOf(payload: unknown): string | null {
  return payload === undefined ? null : JSON.stringify(payload);
}

function payloadOf(row: Row): unknown {
  return row.payload === null ? undefined : JSON.parse(row.payload);
}

function recordOf(topic: string, epoch: string, row: Row): HistoryRecord {
  const record: HistoryRecord = { topic, offset: Number(row.offs), epoch, messageId: row.message_id, payload: payloadOf(row), sentAt: Number(row.sent_at), from: row.sender };
  if (row.data !== null) record.binary = row.data;
  return record;
}
