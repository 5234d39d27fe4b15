/**
 * The Registry extension point: what must be known cluster-wide about connections. Each node
 * registers its own connections; any node can ask where a principal is connected. The broker
 * uses it to decide a direct message: queued only when its principal is connected nowhere.
 * The memory implementation is in memory-registry.ts; real ones (Redis) live in adapters/ and
 * run the same conformance suite (test/conformance/registry.ts).
 *
 * Calls carry the node id, so one MemoryRegistry can serve several brokers in one process (as
 * one MemoryHub serves their buses), and a backed registry can be one handle per broker.
 */

/** One connection as the registry knows it. */
export interface RegistryEntry {
  /** Id of the broker node holding the connection. */
  node: string;
  /** The connection id (what `connectionIds()` and `delivered_to` show). */
  connection: string;
}

export interface Registry {
  /** A connection of `principal` opened on `node`. Adding one twice counts it once. */
  add(node: string, principal: string, connection: string): Promise<void>;
  /** A connection closed. Unknown connections are ignored. */
  remove(node: string, principal: string, connection: string): Promise<void>;
  /** Every connection of a principal, on every node (order unspecified). */
  connections(principal: string): Promise<RegistryEntry[]>;
  /** How many connections a principal has, on every node. */
  count(principal: string): Promise<number>;
  /** The nodes where a principal has at least one connection, each once. */
  nodes(principal: string): Promise<string[]>;
  /** Forgets every connection of `node` (it is shutting down, or known dead). Idempotent. */
  leave(node: string): Promise<void>;
  /**
   * Releases this handle. What it registered stays until `leave` (a shared memory registry keeps
   * its state for the other brokers). Idempotent.
   */
  close(): Promise<void>;
}
