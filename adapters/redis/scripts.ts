/**
 * The Lua scripts of RedisStore. Each runs atomically on the server and touches the keys of one
 * topic or one principal only (all under one `{hash tag}`), so they also run on Redis Cluster.
 *
 * History of a topic: a hash `meta` {epoch, offset} and a stream whose entry ids are the offsets
 * (`<offset>-0`), each entry `t` (sentAt, first, so the age trim reads it at a fixed place), `h`
 * (JSON header) and optionally `b` (binary data). A missing `meta` means the history was lost
 * (never written, flushed, restarted without persistence, expired): the next append or read
 * starts a new epoch and drops any stream left without its meta.
 */

/** Creates the epoch when `meta` is missing; then drops stream entries older than the cutoff. */
const COMMON = `
local function ensure(meta, stream, candidate, metaTtl)
  local epoch = redis.call('HGET', meta, 'epoch')
  if epoch then return epoch end
  redis.call('DEL', stream)
  redis.call('HSET', meta, 'epoch', candidate, 'offset', 0)
  redis.call('PEXPIRE', meta, metaTtl)
  return candidate
end
local function trimAge(stream, cutoff)
  -- Usually the oldest entry is young enough: one entry read, nothing trimmed.
  local oldest = redis.call('XRANGE', stream, '-', '+', 'COUNT', 1)
  if #oldest == 0 or tonumber(oldest[1][2][2]) >= cutoff then return end
  for _ = 1, 8 do
    local head = redis.call('XRANGE', stream, '-', '+', 'COUNT', 32)
    if #head == 0 then return end
    for _, entry in ipairs(head) do
      if tonumber(entry[2][2]) >= cutoff then
        redis.call('XTRIM', stream, 'MINID', entry[1])
        return
      end
    end
    local last = tonumber(string.match(head[#head][1], '^(%d+)'))
    redis.call('XTRIM', stream, 'MINID', (last + 1) .. '-0')
  end
end
`;

/**
 * KEYS: meta, stream. ARGV: candidate epoch, maxMessages, age cutoff (ms since the epoch), stream
 * TTL ms, meta TTL ms, sentAt, header JSON, [binary]. Returns {epoch, offset}.
 */
export const APPEND = `${COMMON}
local epoch = ensure(KEYS[1], KEYS[2], ARGV[1], ARGV[5])
local offset = redis.call('HINCRBY', KEYS[1], 'offset', 1)
if ARGV[8] then
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], offset .. '-0', 't', ARGV[6], 'h', ARGV[7], 'b', ARGV[8])
else
  redis.call('XADD', KEYS[2], 'MAXLEN', ARGV[2], offset .. '-0', 't', ARGV[6], 'h', ARGV[7])
end
trimAge(KEYS[2], tonumber(ARGV[3]))
redis.call('PEXPIRE', KEYS[2], ARGV[4])
redis.call('PEXPIRE', KEYS[1], ARGV[5])
return {epoch, offset}
`;

/**
 * KEYS: meta, stream. ARGV: candidate epoch, age cutoff, meta TTL ms, mode, since, limit (-1: none),
 * epoch of `since` ('' for the current one). Modes: 'newest' (the newest `limit`, or all), 'since'
 * (oldest first after `since`, or from the oldest kept when `since` is of another epoch). Returns
 * {epoch, latest offset, first kept offset (latest + 1 when none is kept), entries}.
 */
export const READ = `${COMMON}
local epoch = ensure(KEYS[1], KEYS[2], ARGV[1], ARGV[3])
trimAge(KEYS[2], tonumber(ARGV[2]))
local latest = tonumber(redis.call('HGET', KEYS[1], 'offset'))
local limit = tonumber(ARGV[6])
local entries
if ARGV[4] == 'newest' then
  if limit < 0 then
    entries = redis.call('XRANGE', KEYS[2], '-', '+')
  elseif limit == 0 then
    entries = {}
  else
    entries = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', limit)
  end
  return {epoch, latest, 0, entries}
end
local since = tonumber(ARGV[5])
if ARGV[7] ~= '' and ARGV[7] ~= epoch then since = 0 end
local head = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)
local first = latest + 1
if #head > 0 then first = tonumber(string.match(head[1][1], '^(%d+)')) end
if limit == 0 then
  entries = {}
elseif limit < 0 then
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+')
else
  entries = redis.call('XRANGE', KEYS[2], (since + 1) .. '-0', '+', 'COUNT', limit)
end
return {epoch, latest, first, entries}
`;

/** KEYS: queue. ARGV: capacity, TTL ms, entry. Keeps the newest `capacity`. */
export const ENQUEUE = `
redis.call('RPUSH', KEYS[1], ARGV[3])
redis.call('LTRIM', KEYS[1], -tonumber(ARGV[1]), -1)
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
`;

/** KEYS: queue. Takes the whole queue at once: of two drains at the same moment, one gets it all. */
export const DRAIN = `
local items = redis.call('LRANGE', KEYS[1], 0, -1)
redis.call('DEL', KEYS[1])
return items
`;
