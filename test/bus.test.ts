/** The memory bus runs the Bus conformance suite, as every backend does: buses on one MemoryHub are one cluster. */
import { MemoryBus, MemoryHub } from 'switchyard';
import { busConformance } from './conformance/bus.js';

busConformance('MemoryBus', (size) => {
  const hub = new MemoryHub();
  return Array.from({ length: size }, () => new MemoryBus(hub));
});
