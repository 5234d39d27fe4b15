/**
 * The broker's insides, wired together: what the gate, sessions and the cluster ask of the
 * broker, and the life of a connection from the 101 to its socket closing. Nothing here is on
 * the exported `Broker` type; the façade (lib/broker.ts) calls in.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import hyperid from 'hyperid';
import { Access } from './access.js';
import { isThenable } from './awaitable.js';
import { Cluster } from './cluster.js';
import { Connections } from './connections.js';
import { ConnectionControl } from './control.js';
import { Dispatcher } from './dispatch.js';
import { BrokerError, CloseCode } from './errors.js';
import type { ConnectionInfo, EventSink } from './events.js';
import { Gate, type Admitted, type GateHost } from './handshake.js';
import { MemoryRegistry } from './memory-registry.js';
import { MemoryStore } from './memory-store.js';
import { Ordering } from './ordering.js';
import { toLogger } from './logger.js';
import { resolveOptions, type BrokerOptions, type ResolvedEndpoint, type ResolvedLimits, type ResolvedOptions } from './options.js';
import type { Outbox } from './outbox.js';
import { PresenceTracker } from './presence.js';
import { Recovery } from './recovery.js';
import { RegistryLink } from './registry-link.js';
import type { Departure } from './registry.js';
import { Requests } from './requests.js';
import { Router } from './router.js';
import { Session, type SessionHost } from './session.js';
import type { Registry } from './registry.js';
import type { Store } from './store.js';
import { hasWildcard } from './topics.js';
import type { Handshake, Principal } from './types.js';

/** What `stats()` reports. */
export interface BrokerStats {
  connections: number;
  handshakesPending: number;
  principals: number;
  subscriptions: number;
  patterns: number;
  /** Bytes queued for connections and not yet taken by the kernel, summed. */
  bufferedBytes: number;
  published: number;
  delivered: number;
  /** Frames compressed with permessage-deflate: once per delivery per endpoint (and window size), never per subscriber. */
  deflated: number;
  rejectedHandshakes: number;
  slowConsumersClosed: number;
  /** History topics this node keeps in offset order across nodes now (with a bus; lib/ordering.ts). */
  orderedTopics: number;
}

export class BrokerCore implements SessionHost, GateHost {
  readonly options: ResolvedOptions;
  readonly nodeId: string;
  readonly events: EventSink;
  readonly newId = hyperid({ urlSafe: true });
  readonly router: Router;
  readonly connections = new Connections();
  readonly store: Store;
  readonly registry: Registry;
  readonly cluster: Cluster;
  /** Orders history topics across nodes (with a bus and history only). */
  readonly ordering: Ordering | null;
  readonly access: Access;
  readonly presence: PresenceTracker;
  readonly dispatcher: Dispatcher;
  readonly requests: Requests;
  readonly gate: Gate;
  readonly control: ConnectionControl;
  readonly link: RegistryLink;
  readonly #heartbeat: NodeJS.Timeout | undefined;
  #closed = false;
  #rejectedHandshakes = 0;
  #slowConsumersClosed = 0;

  constructor(options: BrokerOptions, events: EventSink) {
    this.options = resolveOptions(options);
    this.events = events;
    this.nodeId = this.newId();
    const report = (err: unknown, context: Record<string, unknown>) => events.reportError(err, context);
    const connections = this.connections;
    this.router = new Router(this.options.syntax, report);
    this.store = options.store ?? new MemoryStore();
    this.registry = options.registry ?? new MemoryRegistry();
    const logger = toLogger(options.logger);
    if (options.bus !== undefined && options.registry === undefined) {
      logger.warn('a bus without a shared registry: a principal connected only to another node counts as offline (direct messages to it are queued)', {});
    }
    this.access = new Access(this.options, options.authorize, report);
    this.presence = new PresenceTracker(this.options.syntax);
    const h = this.options.history;
    const ordering = options.bus !== undefined && h !== undefined
      ? new Ordering({
          store: this.store,
          limits: h,
          storeTimeoutMs: this.options.storeTimeoutMs,
          router: this.router,
          settings: h.reorder,
          keepsHistory: (topic) => this.access.keepsHistory(topic),
          isPattern: (topic) => hasWildcard(this.options.syntax, topic),
          report,
        })
      : null;
    this.ordering = ordering;
    this.cluster = new Cluster(
      options.bus ?? null,
      this.nodeId,
      {
        publish: (delivery, answer) => {
          const recipients = delivery.offset === undefined || ordering === null ? this.router.fanout(delivery.topic, delivery, null) : ordering.deliver(delivery);
          // Cluster-wide acks: the count once delivered (a history message may wait for its turn).
          if (answer !== undefined) {
            if (isThenable(recipients)) Promise.resolve(recipients).then(answer, () => answer(0));
            else answer(recipients);
          }
        },
        direct: (delivery) => this.dispatcher.directLocal(delivery),
        notify: (target, data, sentAt) => this.dispatcher.notifyLocal(target, data, sentAt),
        revoke: (target, reason) => this.revokeLocal(target, reason),
        reauthorize: (id, replacement) =>
          void this.requests.recheck(id, replacement).catch((err: unknown) => report(err, { during: 'reauthorize' })),
        ...(ordering && { catchUp: () => ordering.catchUp() }),
      },
      // After a bus gap, revocations sent meanwhile are read back from the registry.
      (err, context) => {
        if (context.bus === 'gap') this.#recheckRevoked();
        report(err, context);
      },
      logger,
      this.options.clusterAcks && { ...this.options.clusterAcks, skip: (topic) => this.presence.isPresenceTopic(topic) },
    );
    const parts = {
      options: this.options,
      newId: this.newId,
      store: this.store,
      router: this.router,
      cluster: this.cluster,
      connections: this.connections,
      access: this.access,
      presence: this.presence,
      events,
      nodeId: this.nodeId,
      registry: this.registry,
      registryShared: options.registry !== undefined,
      ordering,
    };
    this.dispatcher = new Dispatcher(parts);
    const recovery = new Recovery(this.options, this.store, this.router, events);
    this.requests = new Requests({ ...parts, dispatcher: this.dispatcher, recovery });
    this.gate = new Gate(this.options, this);
    this.control = new ConnectionControl({ ...parts, requests: this.requests });
    this.link = new RegistryLink(this.registry, this.nodeId, {
      departed: (departures) => this.#departed(departures),
      restore: () => this.#restore(),
      get hasConnections() {
        return connections.size > 0;
      },
      report,
    });
    if (this.options.heartbeatMs !== false) {
      this.#heartbeat = setInterval(() => this.#beat(), this.options.heartbeatMs);
      this.#heartbeat.unref();
    }
  }

  // ── GateHost and SessionHost ──────────────────────────────────────────────

  get limits(): ResolvedLimits {
    return this.options.limits;
  }

  get expiryWarningMs(): number {
    return this.options.expiryWarningMs;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get connectionCount(): number {
    return this.connections.size;
  }

  connectionsOf(principalId: string): number {
    return this.connections.count(principalId);
  }

  scheduleFlush(outbox: Outbox): void {
    this.router.scheduleFlush(outbox);
  }

  reportError(error: unknown, context: Record<string, unknown>): void {
    this.events.reportError(error, context);
  }

  countRejection(): void {
    this.#rejectedHandshakes++;
  }

  /**
   * Admits a connection (limits and exclusive identity for the whole cluster, revoked tokens).
   * This node's own connections are checked first, so a refusal they already decide costs no
   * registry call.
   */
  admit(endpoint: ResolvedEndpoint, principal: Principal): Admitted | Promise<Admitted> {
    const exclusive = principal.exclusive ?? endpoint.exclusive;
    const max = principal.maxConnections ?? endpoint.maxConnectionsPerPrincipal;
    const here = this.connections.count(principal.id);
    if (exclusive && here > 0) throw new BrokerError('SY_ERR_ALREADY_CONNECTED');
    if (here >= max) throw new BrokerError('SY_ERR_CONNECTION_LIMIT');
    const id = this.newId();
    const first = this.link.admit(principal.id, id, { max, exclusive, tokenId: principal.tokenId });
    if (typeof first === 'boolean') return { id, first };
    return Promise.resolve(first).then((f) => ({ id, first: f }));
  }

  /**
   * An admission that never became a connection. The presence it changed is put right: a first
   * one announced nothing, so if others connected meanwhile the principal is online unannounced;
   * a later one that turns out last means the others left meanwhile.
   */
  release(principal: Principal, admitted: Admitted): void {
    this.link.remove(principal.id, admitted.id, (last, lastSeen) => {
      if (!this.options.presence || admitted.first === last) return;
      if (this.#closed && !this.cluster.enabled) return;
      this.dispatcher.announce(principal, !last, lastSeen);
    });
  }

  /** Registers a connection the gate upgraded. Past the Session's creation nothing throws: a failure closes it 1011. */
  open(endpoint: ResolvedEndpoint, socket: Duplex, head: Buffer, principal: Principal, handshake: Handshake, admitted: Admitted): void {
    let session: Session;
    try {
      session = new Session({
        id: admitted.id,
        principal,
        params: handshake.params,
        query: handshake.query,
        headers: handshake.headers,
        endpoint,
        host: this,
        socket: socket as Socket,
        head,
        request: handshake.request,
      });
    } catch (err) {
      this.release(principal, admitted);
      throw err;
    }
    try {
      this.connections.add(session);
      this.control.track(session, socket as Socket);
      if (admitted.first && this.options.presence) this.dispatcher.announce(principal, true);
      if (this.events.wants('connection')) this.events.emit('connection', this.info(session));
      session.begin(() => this.#start(session));
    } catch (err) {
      this.reportError(err, { during: 'open', connection: session.id });
      session.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
    // What a synchronous open() queued goes out now, behind the 101 the gate holds corked.
    session.outbox.flush();
  }

  async #start(session: Session): Promise<void> {
    try {
      await session.endpoint.protocol.open(session);
      session.armExpiry();
      if (this.options.offlineQueue && !session.closing) this.#deliverQueued(session);
    } catch (err) {
      this.reportError(err, { during: 'open', connection: session.id });
      session.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
  }

  /**
   * Delivers what was queued for the principal while it was offline. A store that fails is
   * reported and the connection stays up (what was not drained stays queued for the next one).
   */
  #deliverQueued(session: Session): void {
    this.store.drainDirect(session.principal.id).then(
      (queued) => {
        for (const m of queued) {
          // The connection went while the store answered: keep the message for the next one.
          if (!this.router.deliverTo(session, { kind: 'direct', ...m })) {
            this.store.enqueueDirect(m).catch((err: unknown) => this.reportError(err, { during: 'drain', connection: session.id }));
          }
        }
      },
      (err: unknown) => this.reportError(err, { during: 'drain', connection: session.id }),
    );
  }

  /** The session's socket is gone: forget it everywhere. */
  sessionClosed(session: Session, code: number, reason: string): void {
    this.requests.dropAll(session);
    this.connections.remove(session);
    this.control.untrack(session);
    // Offline once the registry says this was the principal's last connection anywhere; while
    // shutting down too when other nodes are there to hear it.
    this.link.remove(session.principal.id, session.id, (last, lastSeen) => {
      if (last && this.options.presence && (!this.#closed || this.cluster.enabled)) this.dispatcher.announce(session.principal, false, lastSeen);
    });
    const sent = session.closeCodeSent;
    if (sent === CloseCode.TRY_AGAIN_LATER) this.#slowConsumersClosed++;
    // A peer that never answered our close shows up as 1006: report the code we sent.
    if (this.events.wants('disconnect')) {
      this.events.emit('disconnect', { ...this.info(session), code: code === 1006 && sent !== undefined ? sent : code, reason });
    }
  }

  info(session: Session): ConnectionInfo {
    return { id: session.id, principal: session.principal, path: session.endpoint.pattern, params: session.params };
  }

  // ── for the façade ────────────────────────────────────────────────────────

  /**
   * Revokes on every node: the bus closes matching connections everywhere now, and the registry
   * remembers the token (until `expiresAt`, else the expiry of a connection using it here, else
   * the registry's default) so a node that starts or reconnects later refuses it too.
   */
  revoke(target: { principal?: string; tokenId?: string; expiresAt?: number }, reason: string): number {
    const { principal, tokenId } = target;
    this.cluster.send({ kind: 'revoke', ...(principal !== undefined && { principal }), ...(tokenId !== undefined && { tokenId }), reason });
    if (tokenId !== undefined) {
      let expiresAt = target.expiresAt;
      if (expiresAt === undefined) {
        for (const s of principal !== undefined ? this.connections.of(principal) : this.connections.all()) {
          if (s.principal.tokenId === tokenId && s.principal.expiresAt !== undefined) expiresAt = s.principal.expiresAt;
        }
      }
      this.link.revoke(tokenId, expiresAt, true);
    }
    return this.revokeLocal(target, reason);
  }

  /** Closes this node's matching connections (4002); the tokens they used are remembered as revoked. */
  revokeLocal(target: { principal?: string; tokenId?: string }, reason: string): number {
    let closed = 0;
    if (target.tokenId !== undefined) this.link.revoke(target.tokenId, undefined, false);
    const candidates = target.principal !== undefined ? this.connections.of(target.principal) : this.connections.all();
    for (const session of [...candidates]) {
      if (target.tokenId !== undefined && session.principal.tokenId !== target.tokenId) continue;
      const used = session.principal.tokenId;
      if (used !== undefined && used !== target.tokenId) this.link.revoke(used, session.principal.expiresAt, true);
      session.close(CloseCode.TOKEN_REVOKED, reason);
      closed++;
    }
    return closed;
  }

  /** Principals that went offline by a sweep of a dead node (or by this node leaving): announced once, here. */
  #departed(departures: Departure[]): void {
    if (!this.options.presence) return;
    for (const { principal, lastSeen } of departures) this.dispatcher.announce({ id: principal }, false, lastSeen);
  }

  /** The registry lost this node (taken for dead, or its data lost): admit every connection again; false if some failed. */
  async #restore(): Promise<boolean> {
    const admissions = [...this.connections.all()].map(async (session) => {
      const principal = session.principal;
      const admission = await this.registry.admit(this.nodeId, principal.id, session.id, { max: Infinity, exclusive: false });
      if (admission.admitted && admission.first && this.options.presence && !session.closing) this.dispatcher.announce(principal, true);
    });
    const results = await Promise.allSettled(admissions);
    const failed = results.find((r) => r.status === 'rejected');
    if (failed !== undefined) this.#registryFailed(failed.reason, 'restore');
    return failed === undefined;
  }

  /** Closes (4002) connections whose token the registry says was revoked (a revoke this node missed in a bus gap). */
  #recheckRevoked(): void {
    const tokens = new Set<string>();
    for (const session of this.connections.all()) if (session.principal.tokenId !== undefined) tokens.add(session.principal.tokenId);
    for (const tokenId of tokens) {
      void Promise.resolve(this.registry.revoked(tokenId)).then(
        (revoked) => {
          if (revoked) this.revokeLocal({ tokenId }, 'token revoked');
        },
        (err: unknown) => this.#registryFailed(err, 'revoked'),
      );
    }
  }

  stats(): BrokerStats {
    let subscriptions = 0;
    let bufferedBytes = 0;
    for (const s of this.connections.all()) {
      subscriptions += s.subscriptions.size;
      bufferedBytes += s.bufferedBytes;
    }
    return {
      connections: this.connections.size,
      handshakesPending: this.gate.pendingCount,
      principals: this.connections.principals,
      subscriptions,
      patterns: this.router.patterns,
      bufferedBytes,
      published: this.dispatcher.published,
      rejectedHandshakes: this.#rejectedHandshakes,
      slowConsumersClosed: this.#slowConsumersClosed,
      delivered: this.router.delivered,
      deflated: this.router.deflated,
      orderedTopics: this.ordering?.topics ?? 0,
    };
  }

  /** Refuses handshakes, closes every connection with 1001, waits for them, releases the store and bus. */
  async shutdown(): Promise<void> {
    this.#closed = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.gate.close();
    const empty = this.connections.empty();
    for (const session of [...this.connections.all()]) session.close(CloseCode.GOING_AWAY, 'server shutting down');
    await empty;
    this.ordering?.close();
    // This node's connections are gone from the registry (and their principals announced
    // offline where that was the last connection) before the bus and the handle are released.
    const results = [
      ...(await Promise.allSettled([this.link.stop()])),
      ...(await Promise.allSettled([this.cluster.close(), this.store.close(), this.registry.close()])),
    ];
    for (const r of results) if (r.status === 'rejected') this.reportError(r.reason, { during: 'close' });
  }

  #registryFailed(err: unknown, operation: string): void {
    this.reportError(new BrokerError('SY_ERR_BACKEND', `registry ${operation} failed`, { cause: err }), { during: 'registry' });
  }

  #beat(): void {
    for (const session of this.connections.all()) {
      if (!session.alive) session.terminate();
      else session.ping();
    }
  }
}
