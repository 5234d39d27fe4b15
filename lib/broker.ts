/**
 * The Broker: endpoints, sessions, the topic index, the store and the bus, and the host's API.
 * Created once by createBroker(); mounted on an HTTP server by an adapter (switchyard/http).
 */
import { EventEmitter } from 'node:events';
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import hyperid from 'hyperid';
import { LRUCache } from 'lru-cache';
import { isThenable, type Awaitable } from './awaitable.js';
import { Cluster, type NotifyTarget } from './cluster.js';
import { BrokerError, CloseCode } from './errors.js';
import { grantsAllow } from './grants.js';
import { Gate } from './handshake.js';
import { MemoryStore } from './memory-store.js';
import { resolveOptions, silentLogger, type BrokerOptions, type ResolvedEndpoint, type ResolvedOptions } from './options.js';
import { redactContext, redactError } from './auth.js';
import { splitTarget } from './path.js';
import { PresenceTracker } from './presence.js';
import type { Delivery, DirectResult, PresenceInfo, PublishOptions, PublishResult, SubscribeResult } from './protocol.js';
import { Session, type SessionHost } from './session.js';
import type { HistoryPage, HistoryQuery, Store } from './store.js';
import { Router } from './router.js';
import { parseSubscribe } from './subscriptions.js';
import { assertTopic, checkTopic, covers } from './topics.js';
import type { Action, Filter, Handshake, Logger, Principal } from './types.js';

export type { NotifyTarget };

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
  rejectedHandshakes: number;
  slowConsumersClosed: number;
}

export interface ConnectionInfo {
  id: string;
  principal: Principal;
  path: string;
  params: Record<string, string>;
}

export interface BrokerEvents {
  connection: [ConnectionInfo];
  disconnect: [ConnectionInfo & { code: number; reason: string }];
  publish: [{ topic: string; messageId: string; recipients: number; from: string | null }];
  error: [Error & { context?: Record<string, unknown> }];
  close: [];
}

const MAX_TARGET_LENGTH = 256;

export class Broker extends EventEmitter<BrokerEvents> implements SessionHost {
  readonly nodeId: string;
  readonly options: ResolvedOptions;
  readonly #logger: Logger;
  readonly #ids = hyperid({ urlSafe: true });
  readonly #router: Router;
  readonly #sessions = new Set<Session>();
  readonly #byPrincipal = new Map<string, Set<Session>>();
  readonly #store: Store;
  readonly #cluster: Cluster;
  readonly #historyTopics = new LRUCache<string, boolean>({ max: 10_000 });
  readonly #gate: Gate;
  readonly #authorize: NonNullable<BrokerOptions['authorize']> | undefined;
  readonly #heartbeat: NodeJS.Timeout | undefined;
  readonly #presence: PresenceTracker;
  #closed = false;
  #closing: Promise<void> | undefined;
  #whenEmpty: Array<() => void> = [];
  #counters = { published: 0, rejectedHandshakes: 0, slowConsumersClosed: 0 };

  constructor(options: BrokerOptions) {
    super();
    this.options = resolveOptions(options);
    this.#logger = options.logger ?? silentLogger;
    this.#authorize = options.authorize;
    this.nodeId = this.#ids();
    this.#router = new Router(this.options.syntax, (err, context) => this.reportError(err, context));
    this.#store = options.store ?? new MemoryStore();
    this.#gate = new Gate(this.options, this);
    this.#presence = new PresenceTracker(this.options.syntax);
    this.#cluster = new Cluster(
      options.bus ?? null,
      this.nodeId,
      {
        publish: (delivery) => this.#router.fanout(delivery.topic, delivery, null),
        direct: (delivery) => this.#deliverDirectLocal(delivery),
        notify: (target, data, sentAt) => this.#notifyLocal(target, data, sentAt),
        revoke: (target, reason) => this.#revokeLocal(target, reason),
        reauthorize: (id, replacement) =>
          void this.#reauthorizeLocal(id, replacement).catch((err: unknown) => this.reportError(err, { during: 'reauthorize' })),
      },
      (err, context) => this.reportError(err, context),
      this.#logger,
    );
    if (this.options.heartbeatMs !== false) {
      this.#heartbeat = setInterval(() => this.#beat(), this.options.heartbeatMs);
      this.#heartbeat.unref();
    }
  }

  get limits() {
    return this.options.limits;
  }

  get closed(): boolean {
    return this.#closed;
  }

  get connectionCount(): number {
    return this.#sessions.size;
  }

  connectionsOf(principalId: string): number {
    return this.#byPrincipal.get(principalId)?.size ?? 0;
  }

  /** The path patterns of the endpoints, for adapters whose framework registers routes. */
  get paths(): string[] {
    return this.options.endpoints.map((e) => e.pattern);
  }

  /** Whether an endpoint's pattern matches this request-target's path (malformed parameters included; non-canonical paths never). */
  owns(url: string): boolean {
    const target = splitTarget(url);
    return target !== null && this.options.endpoints.some((e) => e.match(target.path) !== null);
  }

  /**
   * Takes an HTTP upgrade request. Returns false when no endpoint owns its path, so the
   * caller can leave it to someone else; otherwise the broker answers it, whatever happens.
   * `deadline` (epoch ms) is when the handshake times out (408), for callers that already spent
   * part of `limits.handshakeTimeoutMs` on the request (an adapter's `prepare`); by default the
   * whole timeout starts now.
   */
  handleUpgrade(request: IncomingMessage, socket: Duplex, head: Buffer, deadline?: number): boolean {
    return this.#gate.handleUpgrade(request, socket, head, deadline);
  }

  // ── the host's API ──────────────────────────────────────────────────────

  /** Publishes from the server to every matching subscription. */
  async publish(topic: string, payload: unknown, options: { binary?: Buffer } = {}): Promise<PublishResult> {
    this.#assertOpen();
    assertTopic(this.options.syntax, topic, false);
    return await this.#publish(topic, payload, null, null, options.binary);
  }

  /** Sends a direct message from the server (`from_user: null`) to every connection of a principal. */
  async sendTo(principalId: string, payload: unknown): Promise<DirectResult> {
    this.#assertOpen();
    this.#assertTarget(principalId);
    return this.#direct(null, principalId, payload);
  }

  /**
   * Sends a `Notification` to every connection, to a principal's connections, or to the
   * subscribers of a topic, on every node. Resolves with the connections reached on this node.
   */
  async notify(target: NotifyTarget, data: unknown): Promise<{ recipients: number }> {
    this.#assertOpen();
    if (typeof target === 'object' && 'topic' in target) assertTopic(this.options.syntax, target.topic, false);
    else if (typeof target === 'object' && 'principal' in target) this.#assertTarget(target.principal);
    else if (target !== 'all') throw new TypeError("notify target must be 'all', { principal } or { topic }");
    const sentAt = Date.now();
    this.#cluster.send({ kind: 'notify', target, data, sentAt });
    return { recipients: this.#notifyLocal(target, data, sentAt) };
  }

  /** A principal's presence as this node sees it. */
  presence(principalId: string): PresenceInfo {
    const peers = this.#byPrincipal.get(principalId);
    return this.#presence.current(principalId, peers?.values().next().value?.principal);
  }

  /** Closes (4002) every connection of a principal and/or using a token id, on every node. */
  revoke(target: { principal?: string; tokenId?: string }, reason = 'token revoked'): number {
    if (target.principal === undefined && target.tokenId === undefined) {
      throw new TypeError('revoke needs a principal or a tokenId');
    }
    this.#cluster.send({ kind: 'revoke', ...target, reason });
    return this.#revokeLocal(target, reason);
  }

  /**
   * Re-checks every subscription of a principal's connections (optionally replacing the
   * principal they hold first). Subscriptions no longer allowed are dropped and the protocol
   * tells the client (envelope: Error 403; tagged: close 4003). Returns how many were dropped.
   */
  async reauthorize(principalId: string, principal?: Principal): Promise<number> {
    if (principal !== undefined && principal.id !== principalId) {
      throw new TypeError('reauthorize: the new principal must have the same id');
    }
    this.#cluster.send({ kind: 'reauthorize', principal: principalId, ...(principal && { replacement: principal }) });
    return this.#reauthorizeLocal(principalId, principal);
  }

  async #reauthorizeLocal(principalId: string, principal: Principal | undefined): Promise<number> {
    let dropped = 0;
    for (const session of [...(this.#byPrincipal.get(principalId) ?? [])]) {
      if (principal !== undefined) session.principal = principal;
      const lost: string[] = [];
      const patterns = [...session.subscriptions.keys()];
      const verdicts = await Promise.all(patterns.map((p) => this.#allowed(session, 'subscribe', p)));
      patterns.forEach((p, i) => {
        if (!verdicts[i] && session.subscriptions.delete(p)) {
          this.#router.remove(p, session);
          lost.push(p);
        }
      });
      if (lost.length > 0 && !session.closing) {
        dropped += lost.length;
        session.endpoint.protocol.permissionLost(session, lost);
      }
      if (principal !== undefined) session.scheduleExpiry(this.options.expiryWarningMs);
    }
    return dropped;
  }

  /** Reads a topic's history (topics configured in `history`). */
  async history(topic: string, query: HistoryQuery = {}): Promise<HistoryPage> {
    assertTopic(this.options.syntax, topic, false);
    const h = this.options.history;
    if (h === undefined || !this.#keepsHistory(topic)) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `${topic} keeps no history`, { details: { topics: [topic] } });
    }
    return this.#store.readHistory(topic, query, h);
  }

  /** Ids of the connections of a principal on this node. */
  connectionIds(principalId: string): string[] {
    return [...(this.#byPrincipal.get(principalId) ?? [])].map((s) => s.id);
  }

  stats(): BrokerStats {
    let subscriptions = 0;
    let bufferedBytes = 0;
    for (const s of this.#sessions) {
      subscriptions += s.subscriptions.size;
      bufferedBytes += s.bufferedBytes;
    }
    return {
      connections: this.#sessions.size,
      handshakesPending: this.#gate.pendingCount,
      principals: this.#byPrincipal.size,
      subscriptions,
      patterns: this.#router.patterns,
      bufferedBytes,
      ...this.#counters,
      delivered: this.#router.delivered,
    };
  }

  /** Closes every connection with 1001, stops timers and releases the store and bus. Idempotent. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #shutdown(): Promise<void> {
    this.#closed = true;
    if (this.#heartbeat !== undefined) clearInterval(this.#heartbeat);
    this.#gate.close();
    const empty = new Promise<void>((resolve) => {
      if (this.#sessions.size === 0) resolve();
      else this.#whenEmpty.push(resolve);
    });
    for (const session of this.#sessions) session.close(CloseCode.GOING_AWAY, 'server shutting down');
    await empty;
    const results = await Promise.allSettled([this.#cluster.close(), this.#store.close()]);
    for (const r of results) if (r.status === 'rejected') this.reportError(r.reason, { during: 'close' });
    this.emit('close');
  }

  // ── SessionHost: what sessions and protocols ask of the broker ─────────

  scheduleFlush(session: Session): void {
    this.#router.scheduleFlush(session);
  }

  async subscribe(session: Session, patterns: string[], filters: Filter | null, recover?: Record<string, number>): Promise<SubscribeResult> {
    const request = parseSubscribe(this.options.syntax, patterns, filters, recover, (t) => this.#keepsHistory(t));
    const added = request.patterns.filter((p) => !session.subscriptions.has(p)).length;
    const limit = this.options.limits.maxSubscriptions;
    if (session.subscriptions.size + added > limit) {
      throw new BrokerError('SY_ERR_SUBSCRIPTION_LIMIT', `subscription limit of ${limit} per connection reached`, {
        details: { limit, active_subscriptions: session.subscriptions.size },
      });
    }
    const verdicts = await Promise.all(request.patterns.map((p) => this.#allowed(session, 'subscribe', p)));
    const denied = request.patterns.filter((_, i) => !verdicts[i]);
    if (denied.length > 0) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to subscribe to ${denied.join(', ')}`, { details: { topics: denied } });
    }
    const result = (): SubscribeResult => ({ topics: request.patterns, active: session.subscriptions.size });
    if (session.closing) return result();
    // Live messages of recovered topics are held from the moment the subscription exists,
    // then released after the replay with offsets it did not cover: no gap, no duplicate.
    session.hold(request.recover.map(([topic]) => topic));
    for (const p of request.patterns) {
      session.subscriptions.set(p, request.filter?.source ?? null);
      this.#router.add(p, session, request.filter);
    }
    if (request.recover.length === 0) return result();
    const recovered = Object.create(null) as Record<string, boolean>; // a topic may be named __proto__
    for (const [topic, since] of request.recover) recovered[topic] = await this.#replay(session, topic, since);
    return { ...result(), recovered };
  }

  /** Replays a topic's history after `since` to one connection; false if some of it is gone. */
  async #replay(session: Session, topic: string, since: number): Promise<boolean> {
    let last = since;
    try {
      const page = await this.#store.readHistory(topic, { since }, this.options.history!);
      for (const record of page.records) {
        const { binary, ...rest } = record;
        this.#router.deliverTo(session, { kind: 'publish', ...rest, ...(binary && { binary }) });
        last = record.offset;
      }
      return page.complete;
    } catch (err) {
      this.reportError(err, { during: 'recover', topic });
      return false;
    } finally {
      session.release(topic, last);
    }
  }

  unsubscribe(session: Session, patterns: string[]): SubscribeResult {
    if (!Array.isArray(patterns) || patterns.length === 0 || patterns.some((p) => typeof p !== 'string')) {
      throw new BrokerError('SY_ERR_BAD_FRAME', 'topics must be a non-empty array of strings');
    }
    const unique = [...new Set(patterns)];
    for (const p of unique) {
      if (session.subscriptions.delete(p)) this.#router.remove(p, session);
    }
    return { topics: unique, active: session.subscriptions.size };
  }

  /** Synchronous end to end when `authorize` and the store are (the hot path of a Broadcast). */
  publishFrom(session: Session, topic: string, payload: unknown, options: PublishOptions): Awaitable<PublishResult> {
    assertTopic(this.options.syntax, topic, false);
    if (this.#presence.isPresenceTopic(topic)) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `${topic} is reserved for presence events`, { details: { topics: [topic] } });
    }
    const allowed = this.#allowed(session, 'publish', topic);
    if (isThenable(allowed)) return Promise.resolve(allowed).then((yes) => this.#publishAllowed(yes, session, topic, payload, options));
    return this.#publishAllowed(allowed, session, topic, payload, options);
  }

  #publishAllowed(allowed: boolean, session: Session, topic: string, payload: unknown, options: PublishOptions): Awaitable<PublishResult> {
    if (!allowed) throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to publish to ${topic}`, { details: { topics: [topic] } });
    const echo = options.echo ?? session.endpoint.echo;
    return this.#publish(topic, payload, session.principal.id, echo ? null : session, options.binary);
  }

  async directFrom(session: Session, target: string, payload: unknown, binary?: Buffer): Promise<DirectResult> {
    this.#assertTarget(target);
    if (!(await this.#allowed(session, 'direct', target))) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to message ${target}`);
    }
    return this.#direct(session.principal.id, target, payload, binary);
  }

  async historyFor(session: Session, topic: string, query: HistoryQuery): Promise<HistoryPage> {
    assertTopic(this.options.syntax, topic, false);
    if (!(await this.#allowed(session, 'subscribe', topic))) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to read ${topic}`, { details: { topics: [topic] } });
    }
    return this.history(topic, query);
  }

  async presenceFor(session: Session, principalIds: string[]): Promise<PresenceInfo[]> {
    if (!this.options.presence) throw new BrokerError('SY_ERR_NOT_FOUND', 'presence is not enabled on this broker');
    for (const id of principalIds) this.#assertTarget(id);
    const topics = principalIds.map((id) => this.#presence.topicOf(id));
    const verdicts = await Promise.all(topics.map((t) => this.#allowed(session, 'subscribe', t)));
    const denied = topics.filter((_, i) => !verdicts[i]);
    if (denied.length > 0) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to see ${denied.join(', ')}`, { details: { topics: denied } });
    }
    return principalIds.map((id) => this.presence(id));
  }

  reportError(error: unknown, context: Record<string, unknown>): void {
    // Redacted before it leaves: nothing switchyard reports carries a credential (issue 16).
    const err = redactError(error instanceof Error ? error : new Error(String(error))) as Error & { context?: Record<string, unknown> };
    err.context = redactContext(context);
    if (this.listenerCount('error') > 0) this.emit('error', err);
    else this.#logger.error(err.message, { ...err.context, error: err });
  }

  countRejection(): void {
    this.#counters.rejectedHandshakes++;
  }

  /** Registers an accepted connection (called by the gate once the upgrade completed). */
  open(endpoint: ResolvedEndpoint, socket: Duplex, head: Buffer, principal: Principal, handshake: Handshake): void {
    const session = new Session({
      id: this.#ids(),
      principal,
      params: handshake.params,
      query: handshake.query,
      headers: handshake.headers,
      endpoint,
      host: this,
      socket: socket as Socket,
      head,
    });
    this.#sessions.add(session);
    let peers = this.#byPrincipal.get(principal.id);
    if (peers === undefined) {
      peers = new Set();
      this.#byPrincipal.set(principal.id, peers);
    }
    peers.add(session);
    if (peers.size === 1 && this.options.presence) this.#announce(principal, true);
    if (this.listenerCount('connection') > 0) this.emit('connection', this.#info(session));
    session.begin(() => this.#start(session));
    // What a synchronous open() queued goes out now, behind the 101 the gate holds corked.
    session.flush();
  }

  async #start(session: Session): Promise<void> {
    try {
      await session.endpoint.protocol.open(session);
      session.scheduleExpiry(this.options.expiryWarningMs);
      if (this.options.offlineQueue && !session.closing) {
        const queued = await this.#store.drainDirect(session.principal.id);
        for (const m of queued) this.#router.deliverTo(session, { kind: 'direct', ...m });
      }
    } catch (err) {
      this.reportError(err, { during: 'open', connection: session.id });
      session.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
  }

  /** The session's socket is gone: forget it everywhere. */
  sessionClosed(session: Session, code: number, reason: string): void {
    session.dispose();
    this.#sessions.delete(session);
    for (const pattern of session.subscriptions.keys()) this.#router.remove(pattern, session);
    const peers = this.#byPrincipal.get(session.principal.id);
    peers?.delete(session);
    if (peers?.size === 0) {
      this.#byPrincipal.delete(session.principal.id);
      if (this.options.presence && !this.#closed) this.#announce(session.principal, false);
    }
    const sent = session.closeCodeSent;
    if (sent === CloseCode.TRY_AGAIN_LATER) this.#counters.slowConsumersClosed++;
    // A peer that never answered our close shows up as 1006: report the code we sent.
    if (this.listenerCount('disconnect') > 0) {
      this.emit('disconnect', { ...this.#info(session), code: code === 1006 && sent !== undefined ? sent : code, reason });
    }
    if (this.#sessions.size === 0 && this.#whenEmpty.length > 0) {
      for (const resolve of this.#whenEmpty.splice(0)) resolve();
    }
  }

  #info(session: Session): ConnectionInfo {
    return { id: session.id, principal: session.principal, path: session.endpoint.pattern, params: session.params };
  }

  // ── delivery ────────────────────────────────────────────────────────────

  /** Numbers the message (history topics, through the store), then delivers it. */
  #publish(topic: string, payload: unknown, from: string | null, exclude: Session | null, binary?: Buffer): Awaitable<PublishResult> {
    const messageId = this.#ids();
    const sentAt = Date.now();
    const h = this.options.history;
    if (h !== undefined && this.#keepsHistory(topic)) {
      const record = this.#store.appendHistory({ topic, messageId, payload, sentAt, from, ...(binary && { binary }) }, h);
      if (isThenable(record)) {
        return Promise.resolve(record).then((r) => this.#deliverPublish(topic, payload, from, exclude, binary, messageId, sentAt, r.offset));
      }
      return this.#deliverPublish(topic, payload, from, exclude, binary, messageId, sentAt, record.offset);
    }
    return this.#deliverPublish(topic, payload, from, exclude, binary, messageId, sentAt, undefined);
  }

  #deliverPublish(
    topic: string,
    payload: unknown,
    from: string | null,
    exclude: Session | null,
    binary: Buffer | undefined,
    messageId: string,
    sentAt: number,
    offset: number | undefined,
  ): PublishResult {
    // One object shape for every publish (absent fields are undefined), so the hot path stays monomorphic.
    const delivery: Delivery = { kind: 'publish', topic, payload, messageId, sentAt, from, binary, offset };
    const recipients = this.#router.fanout(topic, delivery, exclude);
    if (this.#cluster.enabled) this.#cluster.send({
      kind: 'publish', topic, payload, messageId, sentAt, from,
      ...(binary && { binary: binary.toString('base64') }),
      ...(offset !== undefined && { offset }),
    });
    this.#counters.published++;
    if (this.listenerCount('publish') > 0) this.emit('publish', { topic, messageId, recipients, from });
    const result: PublishResult = { messageId, recipients };
    if (offset !== undefined) result.offset = offset;
    return result;
  }

  #notifyLocal(target: NotifyTarget, data: unknown, sentAt: number): number {
    const delivery: Delivery = { kind: 'notification', data, sentAt };
    if (typeof target === 'object' && 'topic' in target) return this.#router.fanout(target.topic, delivery, null);
    const sessions = target === 'all' ? this.#sessions : (this.#byPrincipal.get(target.principal) ?? []);
    let recipients = 0;
    for (const session of sessions) if (this.#router.deliverTo(session, delivery)) recipients++;
    return recipients;
  }

  /** Publishes a presence change on `$presence/<id>` (every node does this for its own connections). */
  #announce(principal: Principal, online: boolean): void {
    const topic = this.#presence.topicOf(principal.id);
    if (checkTopic(this.options.syntax, topic, false) !== null) return; // an id that cannot be a topic level
    const report = (err: unknown) => this.reportError(err, { during: 'presence', principal: principal.id });
    try {
      const result = this.#publish(topic, this.#presence.event(principal, online), null, null);
      if (isThenable(result)) Promise.resolve(result).catch(report);
    } catch (err) {
      report(err);
    }
  }

  async #direct(from: string | null, target: string, payload: unknown, binary?: Buffer): Promise<DirectResult> {
    const messageId = this.#ids();
    const sentAt = Date.now();
    const delivery: Delivery = { kind: 'direct', from, target, payload, messageId, sentAt, ...(binary && { binary }) };
    const deliveredTo = this.#deliverDirectLocal(delivery);
    if (this.#cluster.enabled) this.#cluster.send({ kind: 'direct', target, payload, messageId, sentAt, from, ...(binary && { binary: binary.toString('base64') }) });
    let queued = false;
    if (deliveredTo.length === 0 && this.options.offlineQueue) {
      queued = await this.#store.enqueueDirect({ messageId, from, target, payload, sentAt, ...(binary && { binary }) });
    }
    return { messageId, deliveredTo, queued };
  }

  #deliverDirectLocal(delivery: Delivery & { kind: 'direct' }): string[] {
    const deliveredTo: string[] = [];
    for (const session of this.#byPrincipal.get(delivery.target) ?? []) {
      if (this.#router.deliverTo(session, delivery)) deliveredTo.push(session.id);
    }
    return deliveredTo;
  }

  // ── cluster ─────────────────────────────────────────────────────────────

  #revokeLocal(target: { principal?: string; tokenId?: string }, reason: string): number {
    let closed = 0;
    const candidates = target.principal !== undefined ? (this.#byPrincipal.get(target.principal) ?? []) : this.#sessions;
    for (const session of [...candidates]) {
      if (target.tokenId !== undefined && session.principal.tokenId !== target.tokenId) continue;
      session.close(CloseCode.TOKEN_REVOKED, reason);
      closed++;
    }
    return closed;
  }

  // ── helpers ─────────────────────────────────────────────────────────────

  /** The verdict, synchronously when the grants model or a synchronous `authorize` decides. */
  #allowed(session: Session, action: Action, topic: string): Awaitable<boolean> {
    const authorize = session.endpoint.authorize ?? this.#authorize;
    if (authorize === undefined) return grantsAllow(this.options.syntax, session.principal.grants, action, topic);
    const failed = (err: unknown): never => {
      this.reportError(err, { during: 'authorize', action, topic, principal: session.principal.id });
      throw new BrokerError('SY_ERR_HOOK', 'authorization failed', { cause: err });
    };
    try {
      const verdict = authorize(session.principal, action, topic, { params: session.params, syntax: this.options.syntax });
      return isThenable(verdict) ? Promise.resolve(verdict).then((v) => v === true, failed) : verdict === true;
    } catch (err) {
      return failed(err);
    }
  }

  /** Whether a topic keeps history; the verdict depends on the topic alone, so it is cached (bounded). */
  #keepsHistory(topic: string): boolean {
    const history = this.options.history;
    if (history === undefined) return false;
    let keeps = this.#historyTopics.get(topic);
    if (keeps === undefined) {
      keeps = history.topics.some((p) => covers(this.options.syntax, p, topic));
      this.#historyTopics.set(topic, keeps);
    }
    return keeps;
  }

  #beat(): void {
    for (const session of this.#sessions) {
      if (!session.alive) session.terminate();
      else session.ping();
    }
  }

  #assertOpen(): void {
    if (this.#closed) throw new BrokerError('SY_ERR_CLOSED');
  }

  #assertTarget(target: unknown): asserts target is string {
    if (typeof target !== 'string' || target === '' || target.length > MAX_TARGET_LENGTH) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `target must be a non-empty string of at most ${MAX_TARGET_LENGTH} characters`);
    }
  }
}

/** Creates a broker. Mount it with `attach(broker, server)` from `switchyard/http`. */
export function createBroker(options: BrokerOptions): Broker {
  return new Broker(options);
}
