/** The memory registry runs the Registry conformance suite, as every backend does: one instance shared by the nodes. */
import { MemoryRegistry } from 'switchyard';
import { registryConformance } from './conformance/registry.js';

registryConformance('MemoryRegistry', (size, { ttlMs }) => {
  const shared = new MemoryRegistry({ ttlMs });
  return Array.from({ length: size }, () => shared);
});
