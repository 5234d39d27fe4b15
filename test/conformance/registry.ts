/**
 * The Registry conformance suite: what every Registry promises (lib/registry.ts), tested through
 * that interface only, so the memory registry and every real backend run the same tests:
 *
 *   registryConformance('RedisRegistry', (size) => Array.from({ length: size }, () => new RedisRegistry({ url, prefix })));
 *
 * `makeCluster(size)` returns `size` handles on one shared registry (a MemoryRegistry shared by
 * several brokers returns the same instance `size` times; a backed one, one client each). Every
 * test uses fresh node and principal ids, so a backend shared with other runs is safe, and leaves
 * what it registered with `leave` before the handles close.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { Registry, RegistryEntry } from 'switchyard';

type MakeCluster = (size: number) => Promise<Registry[]> | Registry[];

const sorted = (entries: RegistryEntry[]): RegistryEntry[] =>
  [...entries].sort((a, b) => (a.node + a.connection).localeCompare(b.node + b.connection));

export function registryConformance(name: string, makeCluster: MakeCluster): void {
  describe(`Registry conformance: ${name}`, () => {
    let handles: Registry[] = [];
    let nodes: string[] = [];
    /** A fresh principal id per use, so runs sharing a backend never see each other. */
    const principal = (label: string): string => `${label}:${randomUUID()}`;

    beforeEach(async () => {
      handles = await makeCluster(3);
      nodes = handles.map(() => `node-${randomUUID()}`);
    });

    afterEach(async () => {
      await Promise.all(handles.map((h, i) => h.leave(nodes[i]!)));
      await Promise.all(handles.map((h) => h.close()));
    });

    it('knows nothing of a principal never added', async () => {
      const nobody = principal('nobody');
      expect(await handles[0]!.count(nobody)).toBe(0);
      expect(await handles[0]!.nodes(nobody)).toEqual([]);
      expect(await handles[0]!.connections(nobody)).toEqual([]);
    });

    it('counts connections per principal across nodes, and lists each node once', async () => {
      const [a, b, c] = handles as [Registry, Registry, Registry];
      const alice = principal('alice');
      const bob = principal('bob');
      await a.add(nodes[0]!, alice, 'c1');
      await a.add(nodes[0]!, alice, 'c2');
      await b.add(nodes[1]!, alice, 'c3');
      await b.add(nodes[1]!, bob, 'c4');
      // Any handle sees what the others registered.
      for (const h of handles) {
        expect(await h.count(alice)).toBe(3);
        expect((await h.nodes(alice)).sort()).toEqual([nodes[0], nodes[1]].sort());
        expect(sorted(await h.connections(alice))).toEqual(
          sorted([
            { node: nodes[0]!, connection: 'c1' },
            { node: nodes[0]!, connection: 'c2' },
            { node: nodes[1]!, connection: 'c3' },
          ]),
        );
        expect(await h.count(bob)).toBe(1);
      }
      expect(await c.nodes(bob)).toEqual([nodes[1]]);
    });

    it('counts a connection added twice once, and ignores removing one it does not know', async () => {
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      await a.add(nodes[0]!, alice, 'c1');
      await a.add(nodes[0]!, alice, 'c1');
      expect(await b.count(alice)).toBe(1);
      await a.remove(nodes[0]!, alice, 'unknown');
      await a.remove(nodes[0]!, principal('other'), 'c1');
      expect(await b.count(alice)).toBe(1);
    });

    it('forgets removed connections, and a principal with none is connected nowhere', async () => {
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      await a.add(nodes[0]!, alice, 'c1');
      await b.add(nodes[1]!, alice, 'c2');
      await a.remove(nodes[0]!, alice, 'c1');
      expect(await a.nodes(alice)).toEqual([nodes[1]]);
      expect(await a.connections(alice)).toEqual([{ node: nodes[1]!, connection: 'c2' }]);
      await b.remove(nodes[1]!, alice, 'c2');
      expect(await a.count(alice)).toBe(0);
      expect(await a.nodes(alice)).toEqual([]);
    });

    it("leave forgets one node's connections only, and can be called again", async () => {
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      const bob = principal('bob');
      await a.add(nodes[0]!, alice, 'c1');
      await a.add(nodes[0]!, bob, 'c2');
      await b.add(nodes[1]!, alice, 'c3');
      await a.leave(nodes[0]!);
      await a.leave(nodes[0]!);
      expect(await b.connections(alice)).toEqual([{ node: nodes[1]!, connection: 'c3' }]);
      expect(await b.count(bob)).toBe(0);
      expect(await b.nodes(bob)).toEqual([]);
    });

    it('keeps principals apart, whatever characters their ids hold', async () => {
      const [a, b] = handles as [Registry, Registry];
      const suffix = randomUUID();
      const ids = [`a:b/${suffix}`, `a:b/${suffix}:`, `ünï ${suffix} *`, `${suffix}{x}`];
      for (const [i, id] of ids.entries()) await a.add(nodes[0]!, id, `c${i}`);
      for (const [i, id] of ids.entries()) expect(await b.connections(id)).toEqual([{ node: nodes[0]!, connection: `c${i}` }]);
    });

    it('closing a handle is not leaving: the others still see what it registered', async () => {
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      await a.add(nodes[0]!, alice, 'c1');
      await a.close();
      await a.close();
      expect(await b.count(alice)).toBe(1);
      await b.leave(nodes[0]!);
      expect(await b.count(alice)).toBe(0);
    });
  });
}
