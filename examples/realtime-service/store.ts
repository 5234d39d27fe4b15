/**
 * Where the service keeps history and offline direct messages, from one setting (`STORE`):
 *
 *   (unset)                 a MemoryStore: nothing to install, lost on restart
 *   redis://host:6379       RedisStore   (npm install ioredis)
 *   postgres://user@host/db PostgresStore (npm install pg)
 *
 * The backend packages are imported only when named, so `npm start` needs neither.
 */
import { MemoryStore, type Store } from 'switchyard';

export async function storeFrom(url: string | undefined, prefix = 'realtime_'): Promise<Store> {
  if (url === undefined || url === '' || url === 'memory') return new MemoryStore();
  const scheme = new URL(url).protocol;
  if (scheme === 'redis:' || scheme === 'rediss:') {
    const { RedisStore } = await import('switchyard/redis');
    return new RedisStore({ redis: url, keyPrefix: `${prefix.replace(/[{}]/g, '')}:` });
  }
  if (scheme === 'postgres:' || scheme === 'postgresql:') {
    const { PostgresStore } = await import('switchyard/postgres');
    return new PostgresStore({ pool: url, tablePrefix: prefix });
  }
  throw new Error(`STORE must be redis://…, postgres://… or unset (memory), not ${scheme}`);
}
