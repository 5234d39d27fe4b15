/**
 * What a connection asks for, checked and carried out: subscribe (with recovery), unsubscribe,
 * publish, direct messages, history and presence; and the re-check of a principal's
 * subscriptions after `reauthorize`. A session's subscriptions change only here, through its
 * methods, always together with the topic index.
 */
import { isThenable, type Awaitable } from './awaitable.js';
import { assertTarget, type Access } from './access.js';
import { redactError } from './auth.js';
import type { Connections } from './connections.js';
import type { Dispatcher } from './dispatch.js';
import { BrokerError } from './errors.js';
import type { ResolvedOptions } from './options.js';
import type { PresenceTracker } from './presence.js';
import type { DirectResult, PresenceInfo, PublishOptions, PublishResult, SubscribeResult } from './protocol.js';
import type { Ordering } from './ordering.js';
import type { Recovery } from './recovery.js';
import type { PresenceRecord, Registry } from './registry.js';
import type { EventSink } from './events.js';
import type { Router } from './router.js';
import type { Session, SessionRequests } from './session.js';
import type { HistoryPage, HistoryPosition, HistoryQuery, RecoverFrom, Store } from './store.js';
import { guardStore } from './store-guard.js';
import { parseSubscribe } from './subscriptions.js';
import { assertTopic } from './topics.js';
import type { Filter, Handshake, Principal } from './types.js';

export interface RequestParts {
  options: ResolvedOptions;
  access: Access;
  router: Router;
  dispatcher: Dispatcher;
  recovery: Recovery;
  store: Store;
  connections: Connections;
  presence: PresenceTracker;
  /** Orders history topics across nodes (lib/ordering.ts); null on a single node. */
  ordering: Ordering | null;
  registry: Registry;
  events: EventSink;
}

export class Requests implements SessionRequests {
  readonly #p: RequestParts;

  constructor(parts: RequestParts) {
    this.#p = parts;
  }

  /** `authorize: false` skips the host's check (a subscription the host itself makes, `broker.subscribe`). */
  async subscribe(session: Session, patterns: string[], filters: Filter | null, recover?: RecoverFrom, authorize = true): Promise<SubscribeResult> {
    const { options, access, router, recovery } = this.#p;
    const request = parseSubscribe(options.syntax, patterns, filters, recover, (t) => access.keepsHistory(t));
    const added = request.patterns.filter((p) => !session.subscriptions.has(p)).length;
    const limit = options.limits.maxSubscriptions;
    if (session.subscriptions.size + added > limit) {
      throw new BrokerError('SY_ERR_SUBSCRIPTION_LIMIT', `subscription limit of ${limit} per connection reached`, {
        details: { limit, active_subscriptions: session.subscriptions.size },
      });
    }
    const verdicts = authorize ? await Promise.all(request.patterns.map((p) => access.allowed(session, 'subscribe', p))) : [];
    const denied = authorize ? request.patterns.filter((_, i) => !verdicts[i]) : [];
    if (denied.length > 0) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to subscribe to ${denied.join(', ')}`, { details: { topics: denied } });
    }
    const result = (): SubscribeResult => ({ topics: request.patterns, active: session.subscriptions.size });
    if (session.closing) return result();
    recovery.hold(session, request.recover.map(([topic]) => topic));
    for (const p of request.patterns) {
      session.addSubscription(p, request.filter?.source ?? null);
      router.add(p, session, request.filter);
    }
    // On a cluster, a history topic new to this node starts where the store stands (lib/ordering.ts).
    const anchored = this.#p.ordering?.anchor(request.patterns);
    if (anchored !== undefined) await anchored;
    if (request.recover.length === 0) return result();
    // Objects without a prototype: a topic may be named __proto__.
    const recovered = Object.create(null) as Record<string, boolean>;
    const positions = Object.create(null) as Record<string, HistoryPosition>;
    for (const [topic, since] of request.recover) {
      const outcome = await recovery.replay(session, topic, since);
      recovered[topic] = outcome.complete;
      if (outcome.position !== undefined) positions[topic] = outcome.position;
    }
    return { ...result(), recovered, positions };
  }

  unsubscribe(session: Session, patterns: string[]): SubscribeResult {
    if (!Array.isArray(patterns) || patterns.length === 0 || patterns.some((p) => typeof p !== 'string')) {
      throw new BrokerError('SY_ERR_BAD_FRAME', 'topics must be a non-empty array of strings');
    }
    const unique = [...new Set(patterns)];
    for (const p of unique) this.#drop(session, p);
    return { topics: unique, active: session.subscriptions.size };
  }

  /** Removes every subscription of a session from the index (its socket is gone). */
  dropAll(session: Session): void {
    for (const pattern of session.subscriptions.keys()) this.#p.router.remove(pattern, session);
  }

  #drop(session: Session, pattern: string): boolean {
    if (!session.removeSubscription(pattern)) return false;
    this.#p.router.remove(pattern, session);
    return true;
  }

  /** Synchronous end to end when `authorize` and the store are (the hot path of a Broadcast). */
  publish(session: Session, topic: string, payload: unknown, options: PublishOptions): Awaitable<PublishResult> {
    assertTopic(this.#p.options.syntax, topic, false);
    if (this.#p.presence.isPresenceTopic(topic)) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `${topic} is reserved for presence events`, { details: { topics: [topic] } });
    }
    const allowed = this.#p.access.allowed(session, 'publish', topic);
    if (isThenable(allowed)) return Promise.resolve(allowed).then((yes) => this.#publishAllowed(yes, session, topic, payload, options));
    return this.#publishAllowed(allowed, session, topic, payload, options);
  }

  #publishAllowed(allowed: boolean, session: Session, topic: string, payload: unknown, options: PublishOptions): Awaitable<PublishResult> {
    if (!allowed) throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to publish to ${topic}`, { details: { topics: [topic] } });
    const echo = options.echo ?? session.endpoint.echo;
    return this.#p.dispatcher.publish(topic, payload, session.principal.id, echo ? null : session, options.binary, options.clusterCount !== false);
  }

  async direct(session: Session, target: string, payload: unknown, binary?: Buffer): Promise<DirectResult> {
    assertTarget(target);
    if (!(await this.#p.access.allowed(session, 'direct', target))) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to message ${target}`);
    }
    return this.#p.dispatcher.direct(session.principal.id, target, payload, binary);
  }

  async history(session: Session, topic: string, query: HistoryQuery): Promise<HistoryPage> {
    assertTopic(this.#p.options.syntax, topic, false);
    if (!(await this.#p.access.allowed(session, 'subscribe', topic))) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to read ${topic}`, { details: { topics: [topic] } });
    }
    return this.readHistory(topic, query);
  }

  /** A topic's history, for the host or a connection allowed to read it. */
  async readHistory(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    assertTopic(this.#p.options.syntax, topic, false);
    const h = this.#p.options.history;
    if (h === undefined || !this.#p.access.keepsHistory(topic)) {
      throw new BrokerError('SY_ERR_BAD_FRAME', `${topic} keeps no history`, { details: { topics: [topic] } });
    }
    const { store, options } = this.#p;
    return guardStore('history', options.storeTimeoutMs, store.readHistory(topic, query, h));
  }

  async presence(session: Session, principalIds: string[]): Promise<PresenceInfo[]> {
    if (!this.#p.options.presence) throw new BrokerError('SY_ERR_NOT_FOUND', 'presence is not enabled on this broker');
    for (const id of principalIds) assertTarget(id);
    const topics = principalIds.map((id) => this.#p.presence.topicOf(id));
    const verdicts = await Promise.all(topics.map((t) => this.#p.access.allowed(session, 'subscribe', t)));
    const denied = topics.filter((_, i) => !verdicts[i]);
    if (denied.length > 0) {
      throw new BrokerError('SY_ERR_FORBIDDEN', `not allowed to see ${denied.join(', ')}`, { details: { topics: denied } });
    }
    return Promise.all(principalIds.map((id) => this.presenceOf(id)));
  }

  /**
   * A principal's presence for the whole cluster: online when it has a connection here (no
   * registry call), else as the registry knows it. A registry that fails is reported, and the
   * answer is this node's view.
   */
  async presenceOf(principalId: string): Promise<PresenceInfo> {
    const first = this.#p.connections.of(principalId).values().next().value;
    if (first !== undefined) return this.#p.presence.current(principalId, first.principal);
    let cluster: PresenceRecord | undefined;
    try {
      cluster = await this.#p.registry.presence(principalId);
    } catch (err) {
      this.#p.events.reportError(new BrokerError('SY_ERR_BACKEND', 'registry presence failed', { cause: err }), { during: 'presence', principal: principalId });
    }
    const here = this.#p.connections.of(principalId).values().next().value;
    return this.#p.presence.current(principalId, here?.principal, cluster);
  }

  /**
   * Re-checks every subscription of a principal's connections on this node (replacing the
   * principal they hold first, if given); drops what is no longer allowed and tells the client
   * through its protocol. Resolves how many were dropped.
   */
  async recheck(principalId: string, principal: Principal | undefined): Promise<number> {
    let dropped = 0;
    for (const session of [...this.#p.connections.of(principalId)]) dropped += await this.#recheckSession(session, principal);
    return dropped;
  }

  async #recheckSession(session: Session, principal: Principal | undefined): Promise<number> {
    if (principal !== undefined) session.replacePrincipal(principal);
    const patterns = [...session.subscriptions.keys()];
    const verdicts = await Promise.all(patterns.map((p) => this.#p.access.allowed(session, 'subscribe', p)));
    const lost = patterns.filter((p, i) => !verdicts[i] && this.#drop(session, p));
    const dropped = lost.length > 0 && !session.closing ? lost.length : 0;
    if (dropped > 0) session.endpoint.protocol.permissionLost(session, lost);
    if (principal !== undefined) session.armExpiry();
    return dropped;
  }

  /**
   * In-band token refresh (envelope `Refresh {token}`): the endpoint's `authenticate` decides the
   * new token, as in a handshake but with `credentials.source === 'refresh'` (and the original
   * upgrade's headers, query, params and request). The principal it returns must have the same
   * id; it replaces the connection's, whose subscriptions are re-checked and expiry re-armed.
   */
  async refresh(session: Session, token: string): Promise<Principal> {
    const request = session.request;
    const handshake: Handshake = {
      credentials: { scheme: 'bearer', token, source: 'refresh' },
      headers: session.headers,
      query: session.query,
      params: session.params,
      path: session.endpoint.pattern,
      get remoteAddress() {
        return request.socket?.remoteAddress;
      },
      request,
    };
    // A BrokerError thrown by the hook is its refusal; any other throw is reported as a hook failure (500).
    let principal: Principal | null;
    try {
      principal = await session.endpoint.authenticate(handshake);
    } catch (err) {
      // Reported on the way out: the new token must not be in it, wherever the hook quoted it.
      throw err instanceof Error && !(err instanceof BrokerError) ? redactError(err, [token]) : err;
    }
    if (principal === null || typeof principal !== 'object') throw new BrokerError('SY_ERR_INVALID_CREDENTIALS', 'the refreshed token was refused');
    if (principal.id !== session.principal.id) {
      throw new BrokerError('SY_ERR_INVALID_CREDENTIALS', 'a refreshed token must belong to the connection\'s principal');
    }
    if (!session.closing) await this.#recheckSession(session, principal);
    return principal;
  }
}
