/**
 * This node's side of the cluster Registry (lib/registry.ts): admissions and removals of its
 * connections, its heartbeat and the sweep of dead nodes, and the memory of revoked tokens.
 * The broker core asks it whether a handshake may proceed and tells it when connections close;
 * it tells the core which principals went offline by a sweep, and when the registry lost this
 * node (then the core admits its connections again).
 */
import { isThenable, type Awaitable } from './awaitable.js';
import { BrokerError } from './errors.js';
import type { Admission, AdmitLimits, Departure, Registry, Removal } from './registry.js';

export interface RegistryLinkHost {
  /** Principals that went offline by a sweep or by this node leaving: announce each. */
  departed(departures: Departure[]): void;
  /** The registry did not know this node any more: admit every local connection again; false if some failed. */
  restore(): Promise<boolean>;
  /** Whether this node holds connections now (a restore is needed only then). */
  readonly hasConnections: boolean;
  report(error: unknown, context: Record<string, unknown>): void;
}

const REFUSALS = {
  limit: 'SY_ERR_CONNECTION_LIMIT',
  exclusive: 'SY_ERR_ALREADY_CONNECTED',
  revoked: 'SY_ERR_TOKEN_REVOKED',
} as const;

export class RegistryLink {
  readonly registry: Registry;
  readonly #node: string;
  readonly #host: RegistryLinkHost;
  #timer: NodeJS.Timeout | undefined;
  #ticking: Promise<void> | undefined;
  /** Removals not answered yet: shutdown waits for them before the bus closes. */
  readonly #pending = new Set<Promise<unknown>>();
  /**
   * Tokens this node heard revoked (bus or host) → until when, so a handshake racing the
   * registry write is refused too. Kept 10 minutes, at most 10,000 (the oldest go first).
   */
  readonly #revoked = new Map<string, number>();
  #stopped = false;
  /** Removals the registry failed: retried after each heartbeat, so a closed connection does not count for ever. */
  readonly #failed = new Map<string, { principal: string; then: (last: boolean, lastSeen?: number) => void }>();
  /** A restore that failed: tried again after the next heartbeat. */
  #restoring = false;

  constructor(registry: Registry, node: string, host: RegistryLinkHost) {
    this.registry = registry;
    this.#node = node;
    this.#host = host;
    if (registry.heartbeatMs > 0) {
      this.#tick();
      this.#timer = setInterval(() => this.#tick(), registry.heartbeatMs);
      this.#timer.unref();
    }
  }

  /**
   * Admits a connection cluster-wide. Answers `first` (the principal's first connection
   * anywhere), or throws the refusal as a BrokerError (4004 / 4009 / 4002; 1013 when the
   * registry cannot answer). Synchronous when the registry is.
   */
  admit(principal: string, connection: string, limits: AdmitLimits): Awaitable<boolean> {
    if (limits.tokenId !== undefined && this.#revokedHere(limits.tokenId)) throw new BrokerError('SY_ERR_TOKEN_REVOKED');
    let answer: Awaitable<Admission>;
    try {
      answer = this.registry.admit(this.#node, principal, connection, limits);
    } catch (err) {
      throw this.#unavailable(err);
    }
    if (!isThenable(answer)) return admitted(answer);
    return Promise.resolve(answer).then(admitted, (err: unknown) => {
      throw this.#unavailable(err);
    });
  }

  /**
   * A connection closed; `then(last, lastSeen)` runs once the registry answered (at once when it
   * is synchronous): `last` when it was the principal's last connection anywhere.
   */
  remove(principal: string, connection: string, then: (last: boolean, lastSeen?: number) => void): void {
    let answer: Awaitable<Removal>;
    try {
      answer = this.registry.remove(this.#node, principal, connection);
    } catch (err) {
      this.#removeFailed(err, principal, connection, then);
      return;
    }
    if (!isThenable(answer)) {
      then(answer.last, answer.lastSeen);
      return;
    }
    const settled = Promise.resolve(answer).then(
      (removal) => {
        then(removal.last, removal.lastSeen);
      },
      (err: unknown) => this.#removeFailed(err, principal, connection, then),
    );
    this.#pending.add(settled);
    void settled.finally(() => this.#pending.delete(settled));
  }

  /** Remembers a revoked token here at once, and in the registry until `expiresAt` (its default when unknown). */
  revoke(tokenId: string, expiresAt: number | undefined, record: boolean): void {
    this.#revoked.delete(tokenId);
    this.#revoked.set(tokenId, Date.now() + 10 * 60 * 1000);
    if (this.#revoked.size > 10_000) this.#revoked.delete(this.#revoked.keys().next().value!);
    if (!record) return;
    this.registry.revoke(tokenId, expiresAt).catch((err: unknown) => this.#report(err, 'revoke'));
  }

  /** Stops the heartbeat, waits for removals in flight, then leaves (announcing who went offline by it). */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer !== undefined) clearInterval(this.#timer);
    await this.#ticking;
    while (this.#pending.size > 0) await Promise.allSettled([...this.#pending]);
    const departures = await this.registry.leave(this.#node);
    if (departures.length > 0) this.#host.departed(departures);
  }

  #tick(): void {
    if (this.#ticking !== undefined || this.#stopped) return;
    this.#ticking = this.#beat().finally(() => (this.#ticking = undefined));
  }

  async #beat(): Promise<void> {
    try {
      const known = await this.registry.heartbeat(this.#node);
      if ((!known || this.#restoring) && this.#host.hasConnections && !this.#stopped) this.#restoring = !(await this.#host.restore());
      if (this.#failed.size > 0) this.#retryRemovals();
      const departures = await this.registry.sweep();
      if (departures.length > 0 && !this.#stopped) this.#host.departed(departures);
    } catch (err) {
      this.#report(err, 'heartbeat');
    }
  }

  /** Sends the failed removals again (each once per heartbeat until the registry takes it). */
  #retryRemovals(): void {
    const failed = [...this.#failed];
    this.#failed.clear();
    for (const [connection, { principal, then }] of failed) this.remove(principal, connection, then);
  }

  #removeFailed(err: unknown, principal: string, connection: string, then: (last: boolean, lastSeen?: number) => void): void {
    this.#report(err, 'remove');
    // Bounded: past this many, the oldest are left to the node's expiry when it stops.
    if (this.#failed.size >= 100_000) return;
    this.#failed.set(connection, { principal, then });
  }

  #revokedHere(tokenId: string): boolean {
    const until = this.#revoked.get(tokenId);
    if (until === undefined) return false;
    if (until > Date.now()) return true;
    this.#revoked.delete(tokenId);
    return false;
  }

  #unavailable(err: unknown): BrokerError {
    this.#report(err, 'admit');
    return new BrokerError('SY_ERR_UNAVAILABLE', 'registry unavailable', { cause: err });
  }

  #report(err: unknown, operation: string): void {
    this.#host.report(new BrokerError('SY_ERR_BACKEND', `registry ${operation} failed`, { cause: err }), { during: 'registry' });
  }
}

function admitted(admission: Admission): boolean {
  if (admission.admitted) return admission.first;
  throw new BrokerError(REFUSALS[admission.reason]);
}
