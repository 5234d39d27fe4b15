/**
 * The in-memory Registry. One instance passed to several brokers in one process makes them one
 * cluster's registry (as a MemoryHub does for their buses); a broker given none gets its own,
 * which knows only that broker's connections.
 *
 * Every method answers synchronously where the interface allows it, so a single node's
 * connect and disconnect cost no promise. Entries do not expire unless `ttlMs` is given (the
 * nodes of one process live and die together).
 */
import type { Admission, AdmitLimits, Departure, PresenceRecord, Registry, RegistryEntry, Removal } from './registry.js';

export interface MemoryRegistryOptions {
  /** Entries of a node not heard from for this long are swept, in ms. Default 0: never. */
  ttlMs?: number;
  /** How often brokers heartbeat and sweep, in ms. Default a third of `ttlMs`. */
  heartbeatMs?: number;
  /** How long a revoked token is remembered when its expiry is unknown, in ms. Default 24 h. */
  revocationTtlMs?: number;
  /** Most revoked tokens and `last_seen` times kept (the oldest are forgotten first). Default 100,000 each. */
  maxRemembered?: number;
}

const ADMITTED_FIRST: Admission = Object.freeze({ admitted: true, first: true });
const ADMITTED: Admission = Object.freeze({ admitted: true, first: false });
const REFUSED_LIMIT: Admission = Object.freeze({ admitted: false, reason: 'limit' });
const REFUSED_EXCLUSIVE: Admission = Object.freeze({ admitted: false, reason: 'exclusive' });
const REFUSED_REVOKED: Admission = Object.freeze({ admitted: false, reason: 'revoked' });
const NOT_LAST: Removal = Object.freeze({ last: false });

export class MemoryRegistry implements Registry {
  readonly heartbeatMs: number;
  readonly ttlMs: number;
  readonly #revocationTtl: number;
  /** principal → connection id → node id. */
  readonly #byPrincipal = new Map<string, Map<string, string>>();
  /** node id → connection id → principal (so leave() and sweep() cost that node's entries only). */
  readonly #byNode = new Map<string, Map<string, string>>();
  /** node id → its last heartbeat (ms since the epoch). */
  readonly #alive = new Map<string, number>();
  /** principal → when it went offline; insertion-ordered, the oldest dropped past `#max` (cheaper than an LRU on every disconnect). */
  readonly #lastSeen = new Map<string, number>();
  readonly #max: number;
  /** token id → when it stops being remembered; insertion-ordered, the oldest dropped past `#max`. */
  readonly #revoked = new Map<string, number>();

  constructor(options: MemoryRegistryOptions = {}) {
    this.ttlMs = options.ttlMs ?? 0;
    this.heartbeatMs = this.ttlMs > 0 ? (options.heartbeatMs ?? Math.max(1, Math.floor(this.ttlMs / 3))) : 0;
    this.#revocationTtl = options.revocationTtlMs ?? 24 * 60 * 60 * 1000;
    const max = options.maxRemembered ?? 100_000;
    this.#max = max;
  }

  admit(node: string, principal: string, connection: string, limits: AdmitLimits): Admission {
    if (limits.tokenId !== undefined && this.revoked(limits.tokenId)) return REFUSED_REVOKED;
    let conns = this.#byPrincipal.get(principal);
    const count = conns?.size ?? 0;
    if (conns !== undefined && conns.get(connection) === node) return ADMITTED;
    if (limits.exclusive && count > 0) return REFUSED_EXCLUSIVE;
    if (count >= limits.max) return REFUSED_LIMIT;
    if (conns === undefined) this.#byPrincipal.set(principal, (conns = new Map()));
    const previous = conns.get(connection);
    if (previous !== undefined) this.#byNode.get(previous)?.delete(connection);
    conns.set(connection, node);
    let entries = this.#byNode.get(node);
    if (entries === undefined) this.#byNode.set(node, (entries = new Map()));
    entries.set(connection, principal);
    return count === 0 ? ADMITTED_FIRST : ADMITTED;
  }

  remove(node: string, principal: string, connection: string): Removal {
    const conns = this.#byPrincipal.get(principal);
    if (conns?.get(connection) !== node) return NOT_LAST;
    conns.delete(connection);
    const entries = this.#byNode.get(node);
    entries?.delete(connection);
    if (entries?.size === 0) this.#byNode.delete(node);
    if (conns.size > 0) return NOT_LAST;
    this.#byPrincipal.delete(principal);
    const lastSeen = Date.now();
    this.#seen(principal, lastSeen);
    return { last: true, lastSeen };
  }

  async connections(principal: string): Promise<RegistryEntry[]> {
    const entries: RegistryEntry[] = [];
    for (const [connection, node] of this.#byPrincipal.get(principal) ?? []) entries.push({ node, connection });
    return entries;
  }

  async count(principal: string): Promise<number> {
    return this.#byPrincipal.get(principal)?.size ?? 0;
  }

  async nodes(principal: string): Promise<string[]> {
    return [...new Set(this.#byPrincipal.get(principal)?.values() ?? [])];
  }

  async presence(principal: string): Promise<PresenceRecord> {
    if (this.#byPrincipal.has(principal)) return { online: true, lastSeen: null };
    return { online: false, lastSeen: this.#lastSeen.get(principal) ?? null };
  }

  async heartbeat(node: string): Promise<boolean> {
    const known = this.#alive.has(node);
    this.#alive.set(node, Date.now());
    return known;
  }

  async sweep(): Promise<Departure[]> {
    if (this.ttlMs <= 0) return [];
    const cutoff = Date.now() - this.ttlMs;
    const departures: Departure[] = [];
    for (const [node, beat] of [...this.#alive]) {
      if (beat >= cutoff) continue;
      this.#alive.delete(node);
      departures.push(...this.#forget(node, beat));
    }
    return departures;
  }

  async leave(node: string): Promise<Departure[]> {
    this.#alive.delete(node);
    return this.#forget(node, Date.now());
  }

  async revoke(tokenId: string, expiresAt?: number): Promise<void> {
    const until = expiresAt ?? Date.now() + this.#revocationTtl;
    if (until <= Date.now()) return;
    const revoked = this.#revoked;
    revoked.delete(tokenId);
    revoked.set(tokenId, Math.max(until, revoked.get(tokenId) ?? 0));
    if (revoked.size > this.#max) revoked.delete(revoked.keys().next().value!);
  }

  revoked(tokenId: string): boolean {
    const until = this.#revoked.get(tokenId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#revoked.delete(tokenId);
    return false;
  }

  async close(): Promise<void> {}

  #seen(principal: string, at: number): void {
    const seen = this.#lastSeen;
    seen.delete(principal);
    seen.set(principal, at);
    if (seen.size > this.#max) seen.delete(seen.keys().next().value!);
  }

  /** Removes a node's entries; the principals left with none went offline (last seen `at`). */
  #forget(node: string, at: number): Departure[] {
    const entries = this.#byNode.get(node);
    if (entries === undefined) return [];
    this.#byNode.delete(node);
    const departures: Departure[] = [];
    for (const [connection, principal] of entries) {
      const conns = this.#byPrincipal.get(principal);
      if (conns?.get(connection) !== node) continue;
      conns.delete(connection);
      if (conns.size > 0) continue;
      this.#byPrincipal.delete(principal);
      this.#seen(principal, at);
      departures.push({ principal, lastSeen: at });
    }
    return departures;
  }
}
