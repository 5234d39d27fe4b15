/**
 * Where a message goes once it is allowed: numbered by the store (history topics), handed to
 * this node's connections, then to the bus for the other nodes. Publishes, direct messages,
 * notifications and presence announcements all leave through here.
 */
import type { Awaitable } from './awaitable.js';
import { isThenable, pipelined } from './awaitable.js';
import { BrokerError } from './errors.js';
import type { Access } from './access.js';
import type { Cluster, NotifyTarget } from './cluster.js';
import type { Connections } from './connections.js';
import type { EventSink } from './events.js';
import type { ResolvedOptions } from './options.js';
import type { PresenceTracker } from './presence.js';
import type { Delivery, DirectResult, PublishResult } from './protocol.js';
import type { Ordering } from './ordering.js';
import type { Registry } from './registry.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { Store } from './store.js';
import { checkTopic } from './topics.js';
import { guardStore } from './store-guard.js';
import type { Principal } from './types.js';

export interface DispatchParts {
  options: ResolvedOptions;
  newId: () => string;
  store: Store;
  router: Router;
  cluster: Cluster;
  connections: Connections;
  access: Access;
  presence: PresenceTracker;
  events: EventSink;
  nodeId: string;
  registry: Registry;
  /** Whether the registry is the cluster's (given in the options), not this node's alone. */
  registryShared: boolean;
  /** Orders history topics' deliveries across nodes (with a bus and history; null otherwise). */
  ordering: Ordering | null;
}

export class Dispatcher {
  readonly #p: DispatchParts;
  /** Messages published (presence announcements included). */
  published = 0;
  /** Per history topic, the delivery of its last publish still waiting on the store. */
  readonly #pending = new Map<string, Promise<unknown>>();

  constructor(parts: DispatchParts) {
    this.#p = parts;
  }

  /**
   * Numbers the message (history topics, through the store), then delivers it. With
   * `clusterAcks` (and `count`: the caller reports recipients), the result waits for the other
   * nodes' counts (lib/cluster-acks.ts).
   */
  publish(topic: string, payload: unknown, from: string | null, exclude: Session | null, binary?: Buffer, count = true): Awaitable<PublishResult> {
    const acks = count ? this.#p.cluster.counting : null;
    const result = this.#publish(topic, payload, from, exclude, binary, acks !== null);
    return acks === null ? result : acks.settle(result);
  }

  #publish(topic: string, payload: unknown, from: string | null, exclude: Session | null, binary: Buffer | undefined, count: boolean): Awaitable<PublishResult> {
    const { options, store, access } = this.#p;
    const messageId = this.#p.newId();
    const sentAt = Date.now();
    const h = options.history;
    if (h !== undefined && access.keepsHistory(topic)) {
      const ordering = this.#p.ordering;
      const append = () => {
        const appended = guardStore('publish', options.storeTimeoutMs, store.appendHistory({ topic, messageId, payload, sentAt, from, ...(binary && { binary }) }, h));
        if (ordering !== null && exclude !== null && isThenable(appended)) ordering.publishing(topic, messageId, exclude, appended);
        return appended;
      };
      const before = this.#pending.get(topic);
      // A store that may number concurrent appends out of call order gets one at a time per topic.
      const record = before === undefined || store.ordersAppends === true ? append() : before.then(append, append);
      // (A record answered at once while earlier ones of the topic wait joins the queue too.)
      if (isThenable(record) || before !== undefined) {
        // Deliveries follow in call order, one topic at a time, even when a later append answers
        // first; with the appends numbered in call order, subscribers receive in offset order.
        const appended = Promise.resolve(record);
        const after = before === undefined ? appended : before.then(() => appended, () => appended);
        const deliver = (r: { offset: number; epoch: string }) => this.#deliverPublish(topic, payload, from, exclude, binary, messageId, sentAt, r.offset, r.epoch, count);
        let handed: Promise<unknown>;
        let result: Promise<PublishResult>;
        if (ordering === null) {
          result = after.then(deliver);
          handed = result;
        } else {
          // Boxed, so the next one of the topic waits for this one's hand-off, not for its turn in
          // the ordering (lib/ordering.ts), which keeps the order from there.
          const boxed = after.then((r) => ({ result: deliver(r) }));
          handed = boxed;
          result = boxed.then((box) => box.result);
        }
        this.#pending.set(topic, handed);
        const settled = () => {
          if (this.#pending.get(topic) === handed) this.#pending.delete(topic);
        };
        handed.then(settled, settled);
        return pipelined(result);
      }
      return this.#deliverPublish(topic, payload, from, exclude, binary, messageId, sentAt, record.offset, record.epoch, count);
    }
    return this.#deliverPublish(topic, payload, from, exclude, binary, messageId, sentAt, undefined, undefined, count);
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
    epoch: string | undefined,
    count: boolean,
  ): Awaitable<PublishResult> {
    // One object shape for every publish (absent fields are undefined), so the hot path stays monomorphic.
    const delivery: Delivery = { kind: 'publish', topic, payload, messageId, sentAt, from, binary, offset, epoch };
    const ordering = this.#p.ordering;
    const recipients = offset === undefined || ordering === null ? this.#p.router.fanout(topic, delivery, exclude) : ordering.deliverLocal(delivery, exclude);
    const cluster = this.#p.cluster;
    if (cluster.enabled) cluster.send({
      kind: 'publish', topic, payload, messageId, sentAt, from,
      ...(binary && { binary: binary.toString('base64') }),
      ...(offset !== undefined && { offset, epoch }),
      // Cluster-wide acks: the other nodes answer with their counts (added to recipients by publish()).
      ...(count && cluster.counting?.open(messageId, topic) === true && { ack: true as const }),
    });
    this.published++;
    return isThenable(recipients) ? Promise.resolve(recipients).then((n) => this.#published(topic, messageId, from, n, offset, epoch)) : this.#published(topic, messageId, from, recipients, offset, epoch);
  }

  #published(topic: string, messageId: string, from: string | null, recipients: number, offset: number | undefined, epoch: string | undefined): PublishResult {
    const events = this.#p.events;
    if (events.wants('publish')) events.emit('publish', { topic, messageId, recipients, from });
    const result: PublishResult = { messageId, recipients };
    if (offset !== undefined) {
      result.offset = offset;
      result.epoch = epoch!;
    }
    return result;
  }

  /**
   * A direct message to every connection of `target`, on every node. Queued (offline queue on)
   * only when the principal is connected nowhere: with a shared registry, connections on other
   * nodes count (and are listed in `deliveredTo`: handed to the bus for them).
   */
  async direct(from: string | null, target: string, payload: unknown, binary?: Buffer): Promise<DirectResult> {
    const messageId = this.#p.newId();
    const sentAt = Date.now();
    const delivery: Delivery = { kind: 'direct', from, target, payload, messageId, sentAt, ...(binary && { binary }) };
    const deliveredTo = this.directLocal(delivery);
    const cluster = this.#p.cluster;
    let known = true;
    if (cluster.enabled) {
      cluster.send({ kind: 'direct', target, payload, messageId, sentAt, from, ...(binary && { binary: binary.toString('base64') }) });
      if (this.#p.registryShared) known = await this.#elsewhere(target, deliveredTo);
    }
    let queued = false;
    // Where the registry could not answer, the message is not queued: at most once, never twice.
    if (known && deliveredTo.length === 0 && this.#p.options.offlineQueue) {
      const { store, options } = this.#p;
      queued = await guardStore('queue', options.storeTimeoutMs, store.enqueueDirect({ messageId, from, target, payload, sentAt, ...(binary && { binary }) }));
    }
    return { messageId, deliveredTo, queued };
  }

  /** Adds the target's connections on other nodes to `deliveredTo`; false if the registry failed. */
  async #elsewhere(target: string, deliveredTo: string[]): Promise<boolean> {
    try {
      for (const entry of await this.#p.registry.connections(target)) {
        if (entry.node !== this.#p.nodeId) deliveredTo.push(entry.connection);
      }
      return true;
    } catch (err) {
      this.#p.events.reportError(new BrokerError('SY_ERR_BACKEND', 'registry lookup failed', { cause: err }), { during: 'direct', target });
      return false;
    }
  }

  /** A direct message to the target's connections on this node; the ids it reached. */
  directLocal(delivery: Delivery & { kind: 'direct' }): string[] {
    const deliveredTo: string[] = [];
    for (const session of this.#p.connections.of(delivery.target)) {
      if (this.#p.router.deliverTo(session, delivery)) deliveredTo.push(session.id);
    }
    return deliveredTo;
  }

  /** A notification to this node's connections: all, a principal's, or a topic's subscribers. */
  notifyLocal(target: NotifyTarget, data: unknown, sentAt: number): number {
    const delivery: Delivery = { kind: 'notification', data, sentAt };
    const router = this.#p.router;
    if (typeof target === 'object' && 'topic' in target) return router.fanout(target.topic, delivery, null);
    const connections = this.#p.connections;
    const sessions = target === 'all' ? connections.all() : connections.of(target.principal);
    let recipients = 0;
    for (const session of sessions) if (router.deliverTo(session, delivery)) recipients++;
    return recipients;
  }

  /** Publishes a presence change on `$presence/<id>` (the node that saw the transition in the registry does, once for the cluster). */
  announce(principal: Principal, online: boolean, lastSeen?: number): void {
    const presence = this.#p.presence;
    const topic = presence.topicOf(principal.id);
    if (checkTopic(this.#p.options.syntax, topic, false) !== null) return; // an id that cannot be a topic level
    const { cluster, options, access, events, router } = this.#p;
    // Nobody could see it (no bus, no history, no 'publish' listener, no local subscriber): only
    // what a presence query reads later is kept, and the event is counted as published. A
    // connection's churn then costs no event object, id, delivery or fan-out (bench/PROFILING.md).
    if (!cluster.enabled && !events.wants('publish') && !(options.history !== undefined && access.keepsHistory(topic)) && !router.has(topic)) {
      presence.seen(principal, online, lastSeen);
      this.published++;
      return;
    }
    const report = (err: unknown) => events.reportError(err, { during: 'presence', principal: principal.id });
    try {
      const result = this.publish(topic, presence.event(principal, online, lastSeen), null, null);
      if (isThenable(result)) Promise.resolve(result).catch(report);
    } catch (err) {
      report(err);
    }
  }
}
