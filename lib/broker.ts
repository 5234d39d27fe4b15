/**
 * The Broker: the host's API over the broker's parts (lib/core.ts wires them). Created once by
 * createBroker(); mounted on an HTTP server by an adapter (switchyard/http). Everything on this
 * class is documented API (README "API"); what the gate, sessions and protocols need lives on
 * internal objects that never appear here.
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { assertTarget } from './access.js';
import type { NotifyTarget } from './cluster.js';
import type { ConnectionDetails, ConnectionFilter, ServerSubscribeOptions } from './control.js';
import { BrokerCore, type BrokerStats } from './core.js';
import { BrokerError } from './errors.js';
import { GuardedEvents, type BrokerEvents, type ConnectionInfo } from './events.js';
import { LoggerSlot, registerLoggerSlot } from './logger.js';
import type { BrokerOptions, ResolvedLimits } from './options.js';
import type { DirectResult, PresenceInfo, PublishResult, SubscribeResult } from './protocol.js';
import { splitTarget } from './path.js';
import type { HistoryPage, HistoryQuery } from './store.js';
import { assertTopic, type TopicSyntax } from './topics.js';
import type { Principal } from './types.js';

export type { BrokerEvents, BrokerStats, ConnectionDetails, ConnectionFilter, ConnectionInfo, NotifyTarget, ServerSubscribeOptions };

let coreOf: (broker: Broker) => BrokerCore;

export class Broker extends EventEmitter<BrokerEvents> {
  readonly #core: BrokerCore;
  #closing: Promise<void> | undefined;

  static {
    coreOf = (broker) => broker.#core;
  }

  /** Prefer `createBroker(options)`. Invalid options throw `SY_ERR_OPTIONS`. */
  constructor(options: BrokerOptions) {
    super();
    // One slot for every part that logs: pino is adapted, and an adapter may supply a default.
    const logger = new LoggerSlot(options?.logger);
    registerLoggerSlot(this, logger);
    this.#core = new BrokerCore(options && { ...options, logger }, new GuardedEvents(this, logger));
  }

  /** This node's id, unique per broker instance: what cluster messages and logs name it by. */
  get nodeId(): string {
    return this.#core.nodeId;
  }

  /** True once `close()` was called. */
  get closed(): boolean {
    return this.#core.closed;
  }

  /** The resolved `limits` options (read-only), e.g. for an adapter's own handshake timeout. */
  get limits(): Readonly<ResolvedLimits> {
    return this.#core.options.limits;
  }

  /** The resolved topic syntax (separator and wildcards), for hosts that check topics themselves. */
  get syntax(): TopicSyntax {
    return this.#core.options.syntax;
  }

  /** The path patterns of the endpoints, for adapters whose framework registers routes. */
  get paths(): string[] {
    return this.#core.options.endpoints.map((e) => e.pattern);
  }

  /** Whether an endpoint's pattern matches this request-target's path (malformed parameters included; non-canonical paths never). */
  owns(url: string): boolean {
    const target = splitTarget(url);
    return target !== null && this.#core.options.endpoints.some((e) => e.match(target.path) !== null);
  }

  /**
   * Takes an HTTP upgrade request. Returns false when no endpoint owns its path, so the
   * caller can leave it to someone else; otherwise the broker answers it, whatever happens.
   * `deadline` (epoch ms) is when the handshake times out (408), for callers that already spent
   * part of `limits.handshakeTimeoutMs` on the request (an adapter's `prepare`); by default the
   * whole timeout starts now.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, deadline?: number): boolean {
    return this.#core.gate.handleUpgrade(request, socket, head, deadline);
  }

  /** Publishes from the server to every matching subscription, on every node. */
  async publish(topic: string, payload: unknown, options: { binary?: Buffer } = {}): Promise<PublishResult> {
    this.#assertOpen();
    assertTopic(this.#core.options.syntax, topic, false);
    return await this.#core.dispatcher.publish(topic, payload, null, null, options.binary);
  }

  /** Sends a direct message from the server (`from_user: null`) to every connection of a principal. */
  async sendTo(principalId: string, payload: unknown): Promise<DirectResult> {
    this.#assertOpen();
    assertTarget(principalId);
    return this.#core.dispatcher.direct(null, principalId, payload);
  }

  /**
   * Sends a `Notification` to every connection, to a principal's connections, or to the
   * subscribers of a topic, on every node. Resolves with the connections reached on this node.
   */
  async notify(target: NotifyTarget, data: unknown): Promise<{ recipients: number }> {
    this.#assertOpen();
    if (typeof target === 'object' && 'topic' in target) assertTopic(this.#core.options.syntax, target.topic, false);
    else if (typeof target === 'object' && 'principal' in target) assertTarget(target.principal);
    else if (target !== 'all') throw new TypeError("notify target must be 'all', { principal } or { topic }");
    const sentAt = Date.now();
    this.#core.cluster.send({ kind: 'notify', target, data, sentAt });
    return { recipients: this.#core.dispatcher.notifyLocal(target, data, sentAt) };
  }

  /** A principal's presence for the whole cluster (as the registry knows it). */
  presence(principalId: string): Promise<PresenceInfo> {
    return this.#core.requests.presenceOf(principalId);
  }

  /**
   * Closes (4002) every connection of a principal and/or using a token id, on every node, and
   * remembers the revoked tokens in the registry until they expire (`expiresAt`, else the expiry
   * of a connection using it, else the registry's default), so no node admits them again.
   * Returns how many closed here.
   */
  revoke(target: { principal?: string; tokenId?: string; expiresAt?: number }, reason = 'token revoked'): number {
    if (target.principal === undefined && target.tokenId === undefined) {
      throw new TypeError('revoke needs a principal or a tokenId');
    }
    return this.#core.revoke(target, reason);
  }

  /**
   * Re-checks every subscription of a principal's connections (optionally replacing the
   * principal they hold first), on every node. Subscriptions no longer allowed are dropped and
   * the protocol tells the client (envelope: Error 403; tagged: close 4003). Resolves how many
   * were dropped here.
   */
  async reauthorize(principalId: string, principal?: Principal): Promise<number> {
    if (principal !== undefined && principal.id !== principalId) {
      throw new TypeError('reauthorize: the new principal must have the same id');
    }
    this.#core.cluster.send({ kind: 'reauthorize', principal: principalId, ...(principal && { replacement: principal }) });
    return this.#core.requests.recheck(principalId, principal);
  }

  /** Reads a topic's history (topics configured in `history`). */
  async history(topic: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    return this.#core.requests.readHistory(topic, query);
  }

  /** Ids of the connections of a principal on this node. */
  connectionIds(principalId: string): string[] {
    return [...this.#core.connections.of(principalId)].map((s) => s.id);
  }

  /** How many connections a principal has on this node. */
  connectionsOf(principalId: string): number {
    return this.#core.connections.count(principalId);
  }

  // ── one connection (this node's connections only; on a cluster each node answers for its own) ──

  /**
   * Closes one connection on this node with `code` (1000, 1001 or 3000–4999; default 1000) and a
   * reason. Returns false when no such connection is open here.
   */
  disconnect(connectionId: string, code?: number, reason?: string): boolean {
    return this.#core.control.disconnect(connectionId, code, reason);
  }

  /**
   * Subscribes a connection on this node from the server (Socket.IO's `socket.join`), checked by
   * `authorize` unless `{ authorize: false }`, all or nothing as a client's Subscribe; the client
   * is told in its protocol (envelope: `Status subscribed` with `by: 'server'`). Rejects
   * `SY_ERR_NOT_FOUND` for a connection not open here, `SY_ERR_FORBIDDEN` when denied.
   */
  async subscribe(connectionId: string, topics: string[], options?: ServerSubscribeOptions): Promise<SubscribeResult> {
    this.#assertOpen();
    return this.#core.control.subscribe(connectionId, topics, options);
  }

  /** Unsubscribes a connection on this node from the server; the client is told in its protocol. */
  unsubscribe(connectionId: string, topics: string[]): SubscribeResult {
    return this.#core.control.unsubscribe(connectionId, topics);
  }

  /**
   * The open connections on this node, optionally only a principal's and/or only those a publish
   * on `topic` reaches: id, principal id, path, params, remote address, subscriptions,
   * connected-at and buffered bytes.
   */
  connections(filter?: ConnectionFilter): ConnectionDetails[] {
    return this.#core.control.list(filter);
  }

  stats(): BrokerStats {
    return this.#core.stats();
  }

  /**
   * Refuses new handshakes (503 / 1001), closes every connection with 1001, clears every timer,
   * closes the store and the bus, emits `close`. Idempotent: every call returns the same promise.
   */
  close(): Promise<void> {
    this.#closing ??= this.#core.shutdown().then(() => this.#core.events.emit('close'));
    return this.#closing;
  }

  #assertOpen(): void {
    if (this.#core.closed) throw new BrokerError('SY_ERR_CLOSED');
  }
}

/** Creates a broker. Mount it with `attach(broker, server)` from `switchyard/http`. */
export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}

/**
 * Reports an error the way the broker reports its own: an `error` event with `context`, or the
 * injected logger when nobody listens. For adapters and host code running on the broker's behalf
 * (a framework hook that failed during an upgrade).
 */
export function reportError(broker: Broker, error: unknown, context: Record<string, unknown>): void {
  coreOf(broker).reportError(error, context);
}
