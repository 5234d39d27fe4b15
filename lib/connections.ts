/**
 * This node's connections: every session, and the sessions of each principal. What the cluster
 * Registry (lib/registry.ts) counts across nodes, this holds for one: the gate asks it for
 * limits, delivery for a principal's sessions, close() waits on it to empty.
 */
import type { Session } from './session.js';

const NONE: ReadonlySet<Session> = new Set();

export class Connections {
  readonly #sessions = new Set<Session>();
  readonly #byPrincipal = new Map<string, Set<Session>>();
  #whenEmpty: Array<() => void> = [];

  /** Connections on this node. */
  get size(): number {
    return this.#sessions.size;
  }

  /** Principals with at least one connection on this node. */
  get principals(): number {
    return this.#byPrincipal.size;
  }

  all(): ReadonlySet<Session> {
    return this.#sessions;
  }

  /** The sessions of a principal on this node (live view: copy it before closing them). */
  of(principalId: string): ReadonlySet<Session> {
    return this.#byPrincipal.get(principalId) ?? NONE;
  }

  count(principalId: string): number {
    return this.#byPrincipal.get(principalId)?.size ?? 0;
  }

  /** Registers a session; true when it is its principal's first here. */
  add(session: Session): boolean {
    this.#sessions.add(session);
    const id = session.principal.id;
    let peers = this.#byPrincipal.get(id);
    if (peers === undefined) {
      peers = new Set();
      this.#byPrincipal.set(id, peers);
    }
    peers.add(session);
    return peers.size === 1;
  }

  /** Forgets a session; true when it was its principal's last here. */
  remove(session: Session): boolean {
    if (!this.#sessions.delete(session)) return false;
    const id = session.principal.id;
    const peers = this.#byPrincipal.get(id);
    peers?.delete(session);
    const last = peers?.size === 0;
    if (last) this.#byPrincipal.delete(id);
    if (this.#sessions.size === 0 && this.#whenEmpty.length > 0) {
      for (const resolve of this.#whenEmpty.splice(0)) resolve();
    }
    return last;
  }

  /** Resolves once no connection is left. */
  empty(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.#sessions.size === 0) resolve();
      else this.#whenEmpty.push(resolve);
    });
  }
}
