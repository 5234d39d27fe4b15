/**
 * The ioredis client a Redis store or registry works on: the one the host passed (never closed
 * by us), or one of our own from a URL or options, with short command timeouts so a hung Redis
 * answers as an error instead of holding a publish or a handshake.
 */
import { Redis, type RedisOptions } from 'ioredis';

export function redisClient(given: Redis | string | RedisOptions | undefined, commandTimeoutMs: number | undefined): { redis: Redis; owned: boolean } {
  if (given instanceof Redis) return { redis: given, owned: false };
  const defaults: RedisOptions = { commandTimeout: commandTimeoutMs ?? 2000, maxRetriesPerRequest: 1, enableAutoPipelining: true };
  const redis = typeof given === 'string' ? new Redis(given, defaults) : new Redis({ ...defaults, ...given });
  // Reconnecting is ioredis's job; a failed command rejects its own promise. Without a listener,
  // a connection error would be an unhandled 'error' event.
  redis.on('error', () => {});
  return { redis, owned: true };
}
