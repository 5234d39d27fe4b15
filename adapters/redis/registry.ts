/**
 * RedisRegistry: the cluster Registry (lib/registry.ts) in Redis, shared by every broker process
 * that uses the same server and key prefix.
 *
 * - Every operation that decides something is one Lua script, so it is atomic against every
 *   node: an admission counts and adds in one step (two nodes never both admit past the limit),
 *   a removal says whether it emptied the principal, a sweep removes a dead node's entries and
 *   reports the principals it left with none, each once whichever nodes sweep concurrently.
 * - Liveness: each broker calls `heartbeat` every `heartbeatMs` (default 5 s), which records the
 *   Redis server's time for its node in a sorted set; a node whose last heartbeat is older than
 *   `ttlMs` (default 15 s) is dead, and the next sweep (every live broker sweeps after each
 *   heartbeat) removes its entries. A node killed with SIGKILL therefore stops counting, and its
 *   principals are announced offline, within `ttlMs + heartbeatMs` (20 s by default) plus one
 *   Redis round trip. Times are the Redis server's (TIME), so the nodes' clocks do not matter.
 * - Keys: every key carries the one hash tag `{registry}` behind the key prefix, so all scripts
 *   touch one slot (they also run on Redis Cluster, where the registry lives on one shard):
 *   `<prefix>{registry}:alive` (node → last heartbeat), `:c:<principal>` (connection → node),
 *   `:n:<node>` (connection → principal), `:seen:<principal>` (last seen, expiring after
 *   `lastSeenTtlMs`), `:revoked:<tokenId>` (expiring when the token does).
 *
 * Connections: given connection options (or a URL), the registry opens its client and closes it
 * in close(); given a client (`new Redis(...)`), it uses it and leaves it open.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { redisClient } from './client.js';
import type { Admission, AdmitLimits, Departure, PresenceRecord, Registry, RegistryEntry, Removal } from 'switchyard';

export interface RedisRegistryOptions {
  /**
   * The Redis to use: a client the host opened and closes itself, or a URL or connection options
   * for a client the registry opens and closes. Default `redis://127.0.0.1:6379`.
   */
  redis?: Redis | RedisOptions | string;
  /** Prefix of every key; must not contain `{` or `}`. Default `'switchyard:'`. */
  keyPrefix?: string;
  /** How often each broker refreshes its node and sweeps dead ones, in ms. Default 5,000. */
  heartbeatMs?: number;
  /** How long a node's entries outlive its last heartbeat, in ms; more than `heartbeatMs`. Default 3 × heartbeatMs (15,000). */
  ttlMs?: number;
  /** How long a revoked token is remembered when its expiry is unknown, in ms. Default 24 h. */
  revocationTtlMs?: number;
  /** How long a principal's `last_seen` is kept after it went offline, in ms. Default 7 days. */
  lastSeenTtlMs?: number;
  /** Timeout of each command of a client the registry opens, in ms. Default 2,000. */
  commandTimeoutMs?: number;
}

const DAY = 24 * 60 * 60 * 1000;

/** Redis server time in ms, as every script reads it. */
const NOW = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
`;

/** Removes a node's entries; appends each principal left with none (and `at`) to `out`. */
const FORGET = `
local function forget(base, node, at, seenTtl, out)
  local nkey = base .. ':n:' .. node
  local entries = redis.call('HGETALL', nkey)
  redis.call('DEL', nkey)
  for i = 1, #entries, 2 do
    local conn, principal = entries[i], entries[i + 1]
    local ckey = base .. ':c:' .. principal
    if redis.call('HGET', ckey, conn) == node then
      redis.call('HDEL', ckey, conn)
      if redis.call('EXISTS', ckey) == 0 then
        redis.call('SET', base .. ':seen:' .. principal, at, 'PX', seenTtl)
        out[#out + 1] = principal
        out[#out + 1] = at
      end
    end
  end
end
`;

/**
 * KEYS: principal's connections, node's entries, the token's revocation (the first key again
 * when there is no token). ARGV: node, connection, principal, max (-1: none), exclusive (1/0),
 * check token (1/0). Returns 1 admitted first, 0 admitted, -1 limit, -2 exclusive, -3 revoked.
 */
const ADMIT = `
if ARGV[6] == '1' and redis.call('EXISTS', KEYS[3]) == 1 then return -3 end
local held = redis.call('HGET', KEYS[1], ARGV[2])
if held == ARGV[1] then return 0 end
local n = redis.call('HLEN', KEYS[1])
if ARGV[5] == '1' and n > 0 then return -2 end
local max = tonumber(ARGV[4])
if max >= 0 and n >= max then return -1 end
redis.call('HSET', KEYS[1], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])
if n == 0 then return 1 end
return 0
`;

/** KEYS: principal's connections, node's entries, principal's last seen. ARGV: node, connection, last-seen ttl. Returns the last-seen time when last, else 0. */
const REMOVE = `
if redis.call('HGET', KEYS[1], ARGV[2]) ~= ARGV[1] then return 0 end
redis.call('HDEL', KEYS[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
${NOW}
redis.call('SET', KEYS[3], now, 'PX', ARGV[3])
return now
`;

/** KEYS: principal's connections, last seen. Returns {connections, last seen or ''}. */
const PRESENCE = `
local seen = redis.call('GET', KEYS[2])
return {redis.call('HLEN', KEYS[1]), seen or ''}
`;

/** KEYS: alive. ARGV: node, ttl. Records the heartbeat; returns 1 when the node was alive before it. */
const HEARTBEAT = `
${NOW}
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
redis.call('ZADD', KEYS[1], now, ARGV[1])
if score and tonumber(score) >= now - tonumber(ARGV[2]) then return 1 end
return 0
`;

/** KEYS: alive. ARGV: base, ttl, last-seen ttl, most nodes per call. Returns {principal, lastSeen, ...}. */
const SWEEP = `
${FORGET}
${NOW}
local dead = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. (now - tonumber(ARGV[2])), 'WITHSCORES', 'LIMIT', 0, tonumber(ARGV[4]))
local out = {}
for i = 1, #dead, 2 do
  redis.call('ZREM', KEYS[1], dead[i])
  forget(ARGV[1], dead[i], tonumber(dead[i + 1]), ARGV[3], out)
end
return out
`;

/** KEYS: alive. ARGV: base, node, last-seen ttl. Returns {principal, lastSeen, ...}. */
const LEAVE = `
${FORGET}
${NOW}
redis.call('ZREM', KEYS[1], ARGV[2])
local out = {}
forget(ARGV[1], ARGV[2], now, ARGV[3], out)
return out
`;

type ScriptFn = (...args: Array<string | number>) => Promise<unknown>;
const SCRIPTS = {
  switchyardRegistryAdmit: [3, ADMIT],
  switchyardRegistryRemove: [3, REMOVE],
  switchyardRegistryPresence: [2, PRESENCE],
  switchyardRegistryHeartbeat: [1, HEARTBEAT],
  switchyardRegistrySweep: [1, SWEEP],
  switchyardRegistryLeave: [1, LEAVE],
} as const;
type ScriptName = keyof typeof SCRIPTS;

const ADMISSIONS: Record<string, Admission> = {
  '1': Object.freeze({ admitted: true, first: true }),
  '0': Object.freeze({ admitted: true, first: false }),
  '-1': Object.freeze({ admitted: false, reason: 'limit' }),
  '-2': Object.freeze({ admitted: false, reason: 'exclusive' }),
  '-3': Object.freeze({ admitted: false, reason: 'revoked' }),
};
const NOT_LAST: Removal = Object.freeze({ last: false });
/** Dead nodes one sweep call removes at most (the next sweep takes the rest). */
const NODES_PER_SWEEP = 16;

export class RedisRegistry implements Registry {
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly #redis: Redis;
  readonly #owned: boolean;
  readonly #run: Record<ScriptName, ScriptFn>;
  readonly #base: string;
  readonly #alive: string;
  readonly #revocationTtl: number;
  readonly #seenTtl: number;
  #closing: Promise<void> | undefined;

  constructor(options: RedisRegistryOptions = {}) {
    const prefix = options.keyPrefix ?? 'switchyard:';
    if (/[{}]/.test(prefix)) throw new TypeError('RedisRegistry keyPrefix must not contain { or }');
    this.heartbeatMs = positive('heartbeatMs', options.heartbeatMs, 5000);
    this.ttlMs = positive('ttlMs', options.ttlMs, 3 * this.heartbeatMs);
    if (this.ttlMs <= this.heartbeatMs) throw new TypeError('RedisRegistry ttlMs must be more than heartbeatMs');
    this.#revocationTtl = positive('revocationTtlMs', options.revocationTtlMs, DAY);
    this.#seenTtl = positive('lastSeenTtlMs', options.lastSeenTtlMs, 7 * DAY);
    this.#base = `${prefix}{registry}`;
    this.#alive = `${this.#base}:alive`;
    const { redis, owned } = redisClient(options.redis, options.commandTimeoutMs);
    this.#redis = redis;
    this.#owned = owned;
    const run: Partial<Record<ScriptName, ScriptFn>> = {};
    for (const [name, [numberOfKeys, lua]] of Object.entries(SCRIPTS) as Array<[ScriptName, readonly [number, string]]>) {
      this.#redis.defineCommand(name, { numberOfKeys, lua });
      run[name] = (Reflect.get(this.#redis, name) as ScriptFn).bind(this.#redis);
    }
    this.#run = run as Record<ScriptName, ScriptFn>;
  }

  /** The client the registry uses (its own, or the one it was given). */
  get client(): Redis {
    return this.#redis;
  }

  #conns(principal: string): string {
    return `${this.#base}:c:${principal}`;
  }

  #entries(node: string): string {
    return `${this.#base}:n:${node}`;
  }

  #seen(principal: string): string {
    return `${this.#base}:seen:${principal}`;
  }

  #revokedKey(tokenId: string): string {
    return `${this.#base}:revoked:${tokenId}`;
  }

  async admit(node: string, principal: string, connection: string, limits: AdmitLimits): Promise<Admission> {
    const conns = this.#conns(principal);
    const token = limits.tokenId;
    const max = Number.isFinite(limits.max) ? Math.max(0, Math.floor(limits.max)) : -1;
    const reply = await this.#run.switchyardRegistryAdmit(
      conns,
      this.#entries(node),
      token === undefined ? conns : this.#revokedKey(token),
      node,
      connection,
      principal,
      max,
      limits.exclusive ? 1 : 0,
      token === undefined ? 0 : 1,
    );
    const admission = ADMISSIONS[String(reply)];
    if (admission === undefined) throw new Error(`RedisRegistry: unexpected admit reply ${String(reply)}`);
    return admission;
  }

  async remove(node: string, principal: string, connection: string): Promise<Removal> {
    const reply = await this.#run.switchyardRegistryRemove(this.#conns(principal), this.#entries(node), this.#seen(principal), node, connection, this.#seenTtl);
    return typeof reply === 'number' && reply > 0 ? { last: true, lastSeen: reply } : NOT_LAST;
  }

  async connections(principal: string): Promise<RegistryEntry[]> {
    const all = await this.#redis.hgetall(this.#conns(principal));
    return Object.entries(all).map(([connection, node]) => ({ node, connection }));
  }

  async count(principal: string): Promise<number> {
    return this.#redis.hlen(this.#conns(principal));
  }

  async nodes(principal: string): Promise<string[]> {
    return [...new Set(Object.values(await this.#redis.hgetall(this.#conns(principal))))];
  }

  async presence(principal: string): Promise<PresenceRecord> {
    const [count, seen] = (await this.#run.switchyardRegistryPresence(this.#conns(principal), this.#seen(principal))) as [number, string];
    if (count > 0) return { online: true, lastSeen: null };
    return { online: false, lastSeen: seen === '' ? null : Number(seen) };
  }

  async heartbeat(node: string): Promise<boolean> {
    return (await this.#run.switchyardRegistryHeartbeat(this.#alive, node, this.ttlMs)) === 1;
  }

  async sweep(): Promise<Departure[]> {
    return departures(await this.#run.switchyardRegistrySweep(this.#alive, this.#base, this.ttlMs, this.#seenTtl, NODES_PER_SWEEP));
  }

  async leave(node: string): Promise<Departure[]> {
    return departures(await this.#run.switchyardRegistryLeave(this.#alive, this.#base, node, this.#seenTtl));
  }

  async revoke(tokenId: string, expiresAt?: number): Promise<void> {
    const key = this.#revokedKey(tokenId);
    if (expiresAt === undefined) {
      await this.#redis.set(key, '1', 'PX', this.#revocationTtl);
      return;
    }
    if (!(expiresAt > Date.now())) return;
    await this.#redis.set(key, '1', 'PXAT', Math.ceil(expiresAt));
  }

  async revoked(tokenId: string): Promise<boolean> {
    return (await this.#redis.exists(this.#revokedKey(tokenId))) === 1;
  }

  /** Closes the client if the registry opened it (waiting for its replies); a client passed in stays open. */
  close(): Promise<void> {
    this.#closing ??= this.#owned ? quit(this.#redis) : Promise.resolve();
    return this.#closing;
  }
}

function departures(reply: unknown): Departure[] {
  const flat = reply as Array<string | number>;
  const out: Departure[] = [];
  for (let i = 0; i + 1 < flat.length; i += 2) out.push({ principal: String(flat[i]), lastSeen: Number(flat[i + 1]) });
  return out;
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value > 0) || !Number.isFinite(value)) throw new TypeError(`RedisRegistry ${name} must be a positive number`);
  return value;
}

async function quit(redis: Redis): Promise<void> {
  try {
    await redis.quit();
  } catch {
    redis.disconnect();
  }
}
