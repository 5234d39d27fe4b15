/** The memory store runs the Store conformance suite, as every backend does. */
import { MemoryStore } from 'switchyard';
import { storeConformance } from 'switchyard/testing';

storeConformance('MemoryStore', () => new MemoryStore({ maxQueuedPerPrincipal: 5 }), {
  directQueue: { capacity: 5, overflow: 'drop-oldest' },
  makeWithoutDirectQueue: () => new MemoryStore({ maxQueuedPerPrincipal: 0 }),
  makeWithDirectTtl: (ttlMs) => new MemoryStore({ queuedTtlMs: ttlMs }),
  // A memory store loses everything with its process: the next one is a new store.
  loseHistory: async (store) => {
    await store.close();
    return new MemoryStore({ maxQueuedPerPrincipal: 5 });
  },
});
