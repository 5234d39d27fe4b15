/** `switchyard/postgres`: the PostgreSQL store (pg is an optional peer dependency). */
export { PostgresStore, type PostgresStoreOptions } from './store.js';
export { migrations } from './schema.js';
