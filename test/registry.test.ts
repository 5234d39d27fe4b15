/** The memory registry runs the Registry conformance suite, as every backend does: one instance shared by the nodes. */
import { MemoryRegistry } from 'switchyard';
import { registryConformance } from './conformance/registry.js';

registryConformance('MemoryRegistry', (size) => {
  const shared = new MemoryRegistry();
  return Array.from({ length: size }, () => shared);
});
