/** `switchyard/redis`: the Redis backends (ioredis is an optional peer dependency). */
export { RedisStore, type RedisStoreOptions } from './store.js';
export { RedisBus, type RedisBusOptions } from './bus.js';
export { RedisRegistry, type RedisRegistryOptions } from './registry.js';
