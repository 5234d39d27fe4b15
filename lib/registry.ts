/**
 * The Registry extension point: what must be known cluster-wide about connections. Each node
 * admits its own connections; any node can ask where a principal is connected, whether it is
 * online, and which tokens were revoked. The memory implementation is in memory-registry.ts;
 * real ones (Redis) live in adapters/ and run the same conformance suite
 * (test/conformance/registry.ts, shipped in `switchyard/testing`).
 *
 * Calls carry the node id, so one MemoryRegistry can serve several brokers in one process (as
 * one MemoryHub serves their buses), and a backed registry can be one handle per broker.
 *
 * What the broker relies on:
 * - `admit` is atomic across every handle: two nodes never both admit past `max`, and of
 *   concurrent admissions of a principal with none, exactly one is `first`.
 * - `remove` (and `sweep`, `leave`) report a principal's last connection exactly once: the
 *   online/offline transition is announced by the node that saw it, once for the cluster.
 * - Liveness: a node calls `heartbeat` every `heartbeatMs`; a node not heard from for `ttlMs` is
 *   dead, and the next `sweep` (by any live node) removes its entries, once.
 *
 * Methods may answer synchronously (the memory registry does, so a single node's connect path
 * costs no promise); callers treat every answer as `Awaitable`.
 */
import type { Awaitable } from './awaitable.js';

/** One connection as the registry knows it. */
export interface RegistryEntry {
  /** Id of the broker node holding the connection. */
  node: string;
  /** The connection id (what `connectionIds()` and `delivered_to` show). */
  connection: string;
}

/** What an admission checks, for every node together. */
export interface AdmitLimits {
  /** Most connections of the principal (Infinity: no limit). */
  max: number;
  /** Refuse when the principal has a connection anywhere. */
  exclusive: boolean;
  /** The token the connection uses: refused when it was revoked (`revoke`) and has not expired. */
  tokenId?: string | undefined;
}

export type Admission =
  | { readonly admitted: true; /** The principal had no connection anywhere before this one. */ readonly first: boolean }
  | { readonly admitted: false; readonly reason: 'limit' | 'exclusive' | 'revoked' };

export interface Removal {
  /** It was the principal's last connection anywhere (it is offline now). */
  readonly last: boolean;
  /** When `last`: the `last_seen` the registry recorded (ms since the epoch, its clock). */
  readonly lastSeen?: number;
}

/** A principal that went offline because its node left or was found dead. */
export interface Departure {
  principal: string;
  /** When it was last known online (ms since the epoch): the node's last heartbeat, or the time it left. */
  lastSeen: number;
}

/** A principal's presence for the whole cluster. */
export interface PresenceRecord {
  online: boolean;
  /** When its last connection closed (ms since the epoch), if known; null when online or never seen. */
  lastSeen: number | null;
}

export interface Registry {
  /**
   * How often a broker calls `heartbeat` and `sweep`, in ms; 0 when the registry's entries never
   * expire (then nodes leave only by `leave`).
   */
  readonly heartbeatMs: number;
  /** How long a node's entries outlive its last heartbeat, in ms (0: they do not expire). */
  readonly ttlMs: number;
  /**
   * Admits a connection of `principal` on `node`, atomically against every node's: refused when
   * the principal already has `max` connections, or any with `exclusive`, or when `tokenId` was
   * revoked. Admitting a connection already admitted answers admitted, not first.
   */
  admit(node: string, principal: string, connection: string, limits: AdmitLimits): Awaitable<Admission>;
  /** A connection closed; `last` when it was the principal's last anywhere (and `last_seen` is now). Unknown ones: not last. */
  remove(node: string, principal: string, connection: string): Awaitable<Removal>;
  /** Every connection of a principal, on every node (order unspecified). */
  connections(principal: string): Promise<RegistryEntry[]>;
  /** How many connections a principal has, on every node. */
  count(principal: string): Promise<number>;
  /** The nodes where a principal has at least one connection, each once. */
  nodes(principal: string): Promise<string[]>;
  /** Whether a principal is connected anywhere, and when it was last seen. */
  presence(principal: string): Promise<PresenceRecord>;
  /**
   * `node` is alive (call it every `heartbeatMs`). Resolves false when the registry did not know
   * the node as alive: its first heartbeat, or its entries were swept (it was taken for dead, or
   * the registry lost its data); the node then admits its connections again.
   */
  heartbeat(node: string): Promise<boolean>;
  /**
   * Removes the entries of nodes not heard from for `ttlMs`, and resolves the principals that
   * went offline by it. Concurrent sweeps from several nodes report each departure once.
   */
  sweep(): Promise<Departure[]>;
  /** Forgets every connection of `node` (it is shutting down); resolves the principals that went offline. Idempotent. */
  leave(node: string): Promise<Departure[]>;
  /** Remembers a revoked token until `expiresAt` (ms since the epoch; default: the registry's bounded default). */
  revoke(tokenId: string, expiresAt?: number): Promise<void>;
  /** Whether a token was revoked and is still remembered. */
  revoked(tokenId: string): Awaitable<boolean>;
  /**
   * Releases this handle. What it registered stays until `leave` or expiry (a shared memory
   * registry keeps its state for the other brokers). Idempotent.
   */
  close(): Promise<void>;
}
