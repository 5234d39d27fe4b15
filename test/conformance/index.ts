/**
 * `switchyard/testing`: the conformance suites every Store, Bus and Registry implementation runs, shipped so
 * the author of a third-party backend runs them in a five-line test file (vitest is an optional
 * peer dependency, needed only here):
 *
 *   import { storeConformance } from 'switchyard/testing';
 *   storeConformance('MyStore', () => new MyStore(), { shared: true });
 */
export { storeConformance, type StoreConformanceOptions } from './store.js';
export { busConformance } from './bus.js';
export { registryConformance, type RegistryClusterOptions } from './registry.js';
