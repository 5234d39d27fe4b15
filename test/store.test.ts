/** The memory store runs the Store conformance suite, as every backend does. */
import { MemoryStore } from 'switchyard';
import { storeConformance } from './conformance/store.js';

// MemoryStore keeps and hands out the very objects it is given (the record it appends is the one
// appendHistory returns and readHistory returns later; payload objects and Buffers are not copied),
// so editing any of them rewrites stored history and queued messages. Reported, not fixed here:
// lib/memory-store.ts is being changed elsewhere. Remove an entry once its test passes.
const ALIASING = 'MemoryStore shares objects with its callers instead of copying them';

storeConformance('MemoryStore', () => new MemoryStore({ maxQueuedPerPrincipal: 5 }), {
  directQueue: { capacity: 5, overflow: 'drop-oldest' },
  makeWithoutDirectQueue: () => new MemoryStore({ maxQueuedPerPrincipal: 0 }),
  makeWithDirectTtl: (ttlMs) => new MemoryStore({ queuedTtlMs: ttlMs }),
  knownFailures: {
    'is not changed by editing a record appendHistory returned': ALIASING,
    'is not changed by editing a record readHistory returned': ALIASING,
    'is not changed by editing a record after appending it': ALIASING,
    'is not changed by editing a direct message after queueing it': ALIASING,
  },
});
