/**
 * The Registry conformance suite: what every Registry promises (lib/registry.ts), tested through
 * that interface only, so the memory registry and every real backend run the same tests:
 *
 *   registryConformance('RedisRegistry', (size, { ttlMs }) =>
 *     Array.from({ length: size }, () => new RedisRegistry({ redis: url, keyPrefix, ttlMs })));
 *
 * `makeCluster(size, { ttlMs })` returns `size` handles on one shared registry (a MemoryRegistry
 * shared by several brokers returns the same instance `size` times; a backed one, one client
 * each), whose entries expire `ttlMs` after their node's last heartbeat. Every test uses fresh
 * node, principal and token ids, so a backend shared with other runs is safe, and leaves what it
 * registered with `leave` before the handles close.
 */
import { randomUUID } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { AdmitLimits, Departure, Registry, RegistryEntry } from 'switchyard';

export interface RegistryClusterOptions {
  /** Entries of a node not heard from for this long are swept (ms). */
  ttlMs: number;
}

type MakeCluster = (size: number, options: RegistryClusterOptions) => Promise<Registry[]> | Registry[];

/** The ttl of the handles every test gets: long enough never to expire a node that heartbeats once per test. */
const LONG_TTL = 60_000;
/** The ttl of the expiry tests. */
const SHORT_TTL = 300;
const OPEN: AdmitLimits = { max: Infinity, exclusive: false };

const sorted = (entries: RegistryEntry[]): RegistryEntry[] =>
  [...entries].sort((a, b) => (a.node + a.connection).localeCompare(b.node + b.connection));

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it holds; rejects after `timeoutMs`. */
async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

export function registryConformance(name: string, makeCluster: MakeCluster): void {
  describe(`Registry conformance: ${name}`, () => {
    /** Every handle made by a test, with the nodes it used, released after it. */
    const made: Array<{ handles: Registry[]; nodes: string[] }> = [];
    /** A fresh principal id per use, so runs sharing a backend never see each other. */
    const principal = (label: string): string => `${label}:${randomUUID()}`;

    async function cluster(ttlMs = LONG_TTL): Promise<{ handles: Registry[]; nodes: string[] }> {
      const handles = await makeCluster(3, { ttlMs });
      const nodes = handles.map(() => `node-${randomUUID()}`);
      // Known and alive from the start, as a broker makes its node.
      await Promise.all(handles.map((h, i) => h.heartbeat(nodes[i]!)));
      const c = { handles, nodes };
      made.push(c);
      return c;
    }

    afterEach(async () => {
      for (const { handles, nodes } of made.splice(0)) {
        // Through the last handle: no test closes it early.
        const last = handles[handles.length - 1]!;
        await Promise.all(nodes.map((node) => last.leave(node)));
        await Promise.all(handles.map((h) => h.close()));
      }
    });

    it('knows nothing of a principal never admitted', async () => {
      const { handles } = await cluster();
      const nobody = principal('nobody');
      expect(await handles[0]!.count(nobody)).toBe(0);
      expect(await handles[0]!.nodes(nobody)).toEqual([]);
      expect(await handles[0]!.connections(nobody)).toEqual([]);
      expect(await handles[0]!.presence(nobody)).toEqual({ online: false, lastSeen: null });
    });

    it('counts connections per principal across nodes, lists each node once, and says which admission was first', async () => {
      const { handles, nodes } = await cluster();
      const [a, b, c] = handles as [Registry, Registry, Registry];
      const alice = principal('alice');
      const bob = principal('bob');
      expect(await a.admit(nodes[0]!, alice, 'c1', OPEN)).toEqual({ admitted: true, first: true });
      expect(await a.admit(nodes[0]!, alice, 'c2', OPEN)).toEqual({ admitted: true, first: false });
      expect(await b.admit(nodes[1]!, alice, 'c3', OPEN)).toEqual({ admitted: true, first: false });
      expect(await b.admit(nodes[1]!, bob, 'c4', OPEN)).toEqual({ admitted: true, first: true });
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
        expect(await h.presence(alice)).toEqual({ online: true, lastSeen: null });
      }
      expect(await c.nodes(bob)).toEqual([nodes[1]]);
    });

    it('refuses past max and while exclusive, on whichever node asks', async () => {
      const { handles, nodes } = await cluster();
      const [a, b, c] = handles as [Registry, Registry, Registry];
      const alice = principal('alice');
      const two = { max: 2, exclusive: false };
      expect(await a.admit(nodes[0]!, alice, 'c1', two)).toMatchObject({ admitted: true });
      expect(await b.admit(nodes[1]!, alice, 'c2', two)).toMatchObject({ admitted: true });
      expect(await c.admit(nodes[2]!, alice, 'c3', two)).toEqual({ admitted: false, reason: 'limit' });
      expect(await a.admit(nodes[0]!, alice, 'c4', two)).toEqual({ admitted: false, reason: 'limit' });
      expect(await c.count(alice)).toBe(2);
      await b.remove(nodes[1]!, alice, 'c2');
      expect(await c.admit(nodes[2]!, alice, 'c3', two)).toMatchObject({ admitted: true });

      const device = principal('device');
      const exclusive = { max: Infinity, exclusive: true };
      expect(await a.admit(nodes[0]!, device, 'd1', exclusive)).toEqual({ admitted: true, first: true });
      expect(await b.admit(nodes[1]!, device, 'd2', exclusive)).toEqual({ admitted: false, reason: 'exclusive' });
      // Exclusive is the new connection's property: a non-exclusive one beside it is a limit question only.
      expect(await b.admit(nodes[1]!, device, 'd3', OPEN)).toMatchObject({ admitted: true });
      await a.remove(nodes[0]!, device, 'd1');
      await b.remove(nodes[1]!, device, 'd3');
      expect(await c.admit(nodes[2]!, device, 'd4', exclusive)).toEqual({ admitted: true, first: true });
    });

    it('admits a connection admitted already once, and ignores removing one it does not know', async () => {
      const { handles, nodes } = await cluster();
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      await a.admit(nodes[0]!, alice, 'c1', OPEN);
      expect(await a.admit(nodes[0]!, alice, 'c1', { max: 1, exclusive: true })).toEqual({ admitted: true, first: false });
      expect(await b.count(alice)).toBe(1);
      expect(await a.remove(nodes[0]!, alice, 'unknown')).toEqual({ last: false });
      expect(await a.remove(nodes[1]!, alice, 'c1')).toEqual({ last: false }); // not that node's
      expect(await a.remove(nodes[0]!, principal('other'), 'c1')).toEqual({ last: false });
      expect(await b.count(alice)).toBe(1);
    });

    it('never admits past the limit, nor two exclusive connections, under concurrent admissions from several handles', async () => {
      const { handles, nodes } = await cluster();
      const alice = principal('alice');
      const attempts = Array.from({ length: 60 }, (_, i) => {
        const h = i % handles.length;
        return Promise.resolve(handles[h]!.admit(nodes[h]!, alice, `c${i}`, { max: 5, exclusive: false }));
      });
      const answers = await Promise.all(attempts);
      expect(answers.filter((a) => a.admitted)).toHaveLength(5);
      expect(answers.filter((a) => a.admitted && a.first)).toHaveLength(1);
      expect(answers.filter((a) => !a.admitted && a.reason === 'limit')).toHaveLength(55);
      expect(await handles[1]!.count(alice)).toBe(5);

      const device = principal('device');
      const exclusive = await Promise.all(
        Array.from({ length: 30 }, (_, i) => Promise.resolve(handles[i % 3]!.admit(nodes[i % 3]!, device, `d${i}`, { max: Infinity, exclusive: true }))),
      );
      expect(exclusive.filter((a) => a.admitted)).toEqual([{ admitted: true, first: true }]);
      expect(await handles[2]!.count(device)).toBe(1);
    });

    it('reports the last removal anywhere exactly once, and remembers when the principal was last seen', async () => {
      const { handles, nodes } = await cluster();
      const [a, b, c] = handles as [Registry, Registry, Registry];
      const alice = principal('alice');
      await a.admit(nodes[0]!, alice, 'c1', OPEN);
      await b.admit(nodes[1]!, alice, 'c2', OPEN);
      const before = Date.now();
      expect(await a.remove(nodes[0]!, alice, 'c1')).toEqual({ last: false });
      expect(await c.presence(alice)).toEqual({ online: true, lastSeen: null });
      const last = await b.remove(nodes[1]!, alice, 'c2');
      expect(last.last).toBe(true);
      expect(await b.remove(nodes[1]!, alice, 'c2')).toEqual({ last: false });
      const seen = await c.presence(alice);
      expect(seen.online).toBe(false);
      // The time the removal reports is the one every handle answers.
      expect(seen.lastSeen).toBe(last.lastSeen);
      // Clocks of the registry and the test may differ by a little (Redis TIME): within a minute.
      expect(Math.abs(seen.lastSeen! - before)).toBeLessThan(60_000);
      expect(await a.nodes(alice)).toEqual([]);
      // Concurrent removals of the last two connections: exactly one is last.
      const bob = principal('bob');
      await a.admit(nodes[0]!, bob, 'b1', OPEN);
      await b.admit(nodes[1]!, bob, 'b2', OPEN);
      const removals = await Promise.all([a.remove(nodes[0]!, bob, 'b1'), b.remove(nodes[1]!, bob, 'b2')].map((r) => Promise.resolve(r)));
      expect(removals.filter((r) => r.last)).toHaveLength(1);
    });

    it("leave forgets one node's connections only, reports who went offline by it, and can be called again", async () => {
      const { handles, nodes } = await cluster();
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      const bob = principal('bob');
      await a.admit(nodes[0]!, alice, 'c1', OPEN);
      await a.admit(nodes[0]!, bob, 'c2', OPEN);
      await a.admit(nodes[0]!, bob, 'c2b', OPEN);
      await b.admit(nodes[1]!, alice, 'c3', OPEN);
      const departed = await a.leave(nodes[0]!);
      expect(departed.map((d) => d.principal)).toEqual([bob]);
      expect(await a.leave(nodes[0]!)).toEqual([]);
      expect(await b.connections(alice)).toEqual([{ node: nodes[1]!, connection: 'c3' }]);
      expect(await b.count(bob)).toBe(0);
      expect(await b.nodes(bob)).toEqual([]);
      expect((await b.presence(bob)).online).toBe(false);
    });

    it('keeps principals apart, whatever characters their ids hold', async () => {
      const { handles, nodes } = await cluster();
      const [a, b] = handles as [Registry, Registry];
      const suffix = randomUUID();
      const ids = [`a:b/${suffix}`, `a:b/${suffix}:`, `ünï ${suffix} *`, `${suffix}{x}`, `}${suffix}{`];
      for (const [i, id] of ids.entries()) await a.admit(nodes[0]!, id, `c${i}`, OPEN);
      for (const [i, id] of ids.entries()) expect(await b.connections(id)).toEqual([{ node: nodes[0]!, connection: `c${i}` }]);
    });

    it('closing a handle is not leaving: the others still see what it registered', async () => {
      const { handles, nodes } = await cluster();
      const [a, b] = handles as [Registry, Registry];
      const alice = principal('alice');
      await a.admit(nodes[0]!, alice, 'c1', OPEN);
      await a.close();
      await a.close();
      expect(await b.count(alice)).toBe(1);
      await b.leave(nodes[0]!);
      expect(await b.count(alice)).toBe(0);
    });

    it('remembers a revoked token on every handle until it expires, and refuses admitting it', async () => {
      const { handles, nodes } = await cluster();
      const [a, b, c] = handles as [Registry, Registry, Registry];
      const token = `t-${randomUUID()}`;
      const brief = `t-${randomUUID()}`;
      const other = `t-${randomUUID()}`;
      expect(await b.revoked(token)).toBe(false);
      await a.revoke(token, Date.now() + 60_000);
      await a.revoke(brief, Date.now() + 400);
      await a.revoke(`t-${randomUUID()}`, Date.now() - 1000); // already expired: nothing to remember
      expect(await b.revoked(token)).toBe(true);
      expect(await c.revoked(other)).toBe(false);
      const alice = principal('alice');
      expect(await c.admit(nodes[2]!, alice, 'c1', { ...OPEN, tokenId: token })).toEqual({ admitted: false, reason: 'revoked' });
      expect(await c.count(alice)).toBe(0);
      expect(await c.admit(nodes[2]!, alice, 'c2', { ...OPEN, tokenId: other })).toEqual({ admitted: true, first: true });
      // Without a known expiry the registry's bounded default applies: still remembered now.
      const unknown = `t-${randomUUID()}`;
      await b.revoke(unknown);
      expect(await a.revoked(unknown)).toBe(true);
      await until(async () => !(await b.revoked(brief)), 'the brief revocation to expire');
      expect(await c.admit(nodes[2]!, alice, 'c3', { ...OPEN, tokenId: brief })).toMatchObject({ admitted: true });
    });

    describe('liveness', () => {
      it("sweeps a node that stopped heartbeating, once, whichever handles sweep, and reports its principals' departure once", async () => {
        const { handles, nodes } = await cluster(SHORT_TTL);
        const [a, b, c] = handles as [Registry, Registry, Registry];
        expect(a.ttlMs).toBe(SHORT_TTL);
        expect(a.heartbeatMs).toBeGreaterThan(0);
        const alice = principal('alice'); // only on the node that dies
        const bob = principal('bob'); // on the dying node and a live one
        await c.admit(nodes[2]!, alice, 'a1', OPEN);
        await c.admit(nodes[2]!, alice, 'a2', OPEN);
        await c.admit(nodes[2]!, bob, 'b1', OPEN);
        await a.admit(nodes[0]!, bob, 'b2', OPEN);
        const beforeDeath = Date.now();
        // Nodes 0 and 1 keep beating and sweeping, concurrently; node 2 is silent from now on.
        const departures: Departure[] = [];
        await until(async () => {
          await Promise.all([a.heartbeat(nodes[0]!), b.heartbeat(nodes[1]!)]);
          const swept = await Promise.all([a.sweep(), b.sweep(), a.sweep(), b.sweep()]);
          departures.push(...swept.flat());
          return (await a.count(alice)) === 0;
        }, 'the silent node to be swept');
        // A few more rounds: nothing is reported twice.
        for (let i = 0; i < 3; i++) departures.push(...(await Promise.all([a.sweep(), b.sweep()])).flat());
        expect(departures.map((d) => d.principal)).toEqual([alice]);
        expect(Math.abs(departures[0]!.lastSeen - beforeDeath)).toBeLessThan(60_000);
        expect(await b.count(bob)).toBe(1);
        expect(await b.connections(bob)).toEqual([{ node: nodes[0]!, connection: 'b2' }]);
        expect((await b.presence(alice)).online).toBe(false);
        // Nodes that kept beating were not swept.
        expect(await a.heartbeat(nodes[0]!)).toBe(true);
        // The swept node is told so by its next heartbeat, and can admit its connections again.
        expect(await c.heartbeat(nodes[2]!)).toBe(false);
        expect(await c.heartbeat(nodes[2]!)).toBe(true);
        expect(await c.admit(nodes[2]!, alice, 'a1', OPEN)).toEqual({ admitted: true, first: true });
      });

      it('knows a node from its first heartbeat on', async () => {
        const { handles } = await cluster();
        const node = `node-${randomUUID()}`;
        expect(await handles[0]!.heartbeat(node)).toBe(false);
        expect(await handles[1]!.heartbeat(node)).toBe(true);
        await handles[1]!.leave(node);
        expect(await handles[0]!.heartbeat(node)).toBe(false);
        await handles[0]!.leave(node);
      });
    });
  });
}
