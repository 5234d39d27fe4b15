/**
 * The in-memory Registry. One instance passed to several brokers in one process makes them one
 * cluster's registry (as a MemoryHub does for their buses); a broker given none gets its own,
 * which knows only that broker's connections.
 */
import type { Registry, RegistryEntry } from './registry.js';

export class MemoryRegistry implements Registry {
  /** principal → connection id → node id. */
  readonly #byPrincipal = new Map<string, Map<string, string>>();
  /** node id → principal → its connection ids there (so leave() costs that node's entries only). */
  readonly #byNode = new Map<string, Map<string, Set<string>>>();

  async add(node: string, principal: string, connection: string): Promise<void> {
    let conns = this.#byPrincipal.get(principal);
    if (conns === undefined) this.#byPrincipal.set(principal, (conns = new Map()));
    const previous = conns.get(connection);
    if (previous !== undefined && previous !== node) this.#forgetOnNode(previous, principal, connection);
    conns.set(connection, node);
    let principals = this.#byNode.get(node);
    if (principals === undefined) this.#byNode.set(node, (principals = new Map()));
    let ids = principals.get(principal);
    if (ids === undefined) principals.set(principal, (ids = new Set()));
    ids.add(connection);
  }

  async remove(node: string, principal: string, connection: string): Promise<void> {
    const conns = this.#byPrincipal.get(principal);
    if (conns?.get(connection) !== node) return;
    conns.delete(connection);
    if (conns.size === 0) this.#byPrincipal.delete(principal);
    this.#forgetOnNode(node, principal, connection);
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

  async leave(node: string): Promise<void> {
    const principals = this.#byNode.get(node);
    if (principals === undefined) return;
    this.#byNode.delete(node);
    for (const [principal, ids] of principals) {
      const conns = this.#byPrincipal.get(principal);
      if (conns === undefined) continue;
      for (const id of ids) if (conns.get(id) === node) conns.delete(id);
      if (conns.size === 0) this.#byPrincipal.delete(principal);
    }
  }

  async close(): Promise<void> {}

  #forgetOnNode(node: string, principal: string, connection: string): void {
    const principals = this.#byNode.get(node);
    const ids = principals?.get(principal);
    if (ids === undefined) return;
    ids.delete(connection);
    if (ids.size === 0) principals!.delete(principal);
    if (principals!.size === 0) this.#byNode.delete(node);
  }
}
