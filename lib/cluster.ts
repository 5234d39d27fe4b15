/**
 * The broker's link to the other nodes: sends versioned messages on the bus and turns the
 * messages of other nodes back into local work. Without a bus it is a single node: nothing is
 * built or sent.
 */
import { BUS_PROTOCOL_VERSION, type Bus, type BusMessage, type BusObserver } from './bus.js';
import { ClusterAcks } from './cluster-acks.js';
import { BrokerError } from './errors.js';
import { Membership } from './membership.js';
import type { Delivery } from './protocol.js';
import type { Logger, Principal } from './types.js';

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A cluster message as the broker writes it; the version and node id are added here. */
export type Outgoing = DistributiveOmit<BusMessage, 'v' | 'node'>;

/** The resolved `clusterAcks` option, and which topics never wait (presence announcements). */
export interface ClusterAcksSettings {
  timeoutMs: number;
  helloIntervalMs: number;
  skip?: (topic: string) => boolean;
}

export type NotifyTarget = 'all' | { principal: string } | { topic: string };

/** What this node does with another node's messages (on its own connections only). */
export interface ClusterNode {
  /** Delivers; then calls `answer` (when given) with the connections it was handed to. */
  publish(delivery: Delivery & { kind: 'publish' }, answer?: (recipients: number) => void): void;
  direct(delivery: Delivery & { kind: 'direct' }): void;
  notify(target: NotifyTarget, data: unknown, sentAt: number): void;
  revoke(target: { principal?: string; tokenId?: string }, reason: string): void;
  reauthorize(principalId: string, replacement: Principal | undefined): void;
  /** The bus receives again after a loss: history topics catch up from the store (lib/ordering.ts). */
  catchUp?(): void;
}

export class Cluster {
  readonly #bus: Bus | null;
  readonly #nodeId: string;
  readonly #node: ClusterNode;
  readonly #report: (error: unknown, context: Record<string, unknown>) => void;
  readonly #logger: Logger;
  readonly #ready: Promise<void>;
  readonly #membership: Membership | null = null;
  readonly #acks: ClusterAcks | null = null;

  constructor(
    bus: Bus | null,
    nodeId: string,
    node: ClusterNode,
    report: (error: unknown, context: Record<string, unknown>) => void,
    logger: Logger,
    acks: ClusterAcksSettings | null = null,
  ) {
    this.#bus = bus;
    this.#nodeId = nodeId;
    this.#node = node;
    this.#report = report;
    this.#logger = logger;
    if (bus !== null) {
      // Every node with a bus answers counts and announces itself when asked; only `acks` asks.
      const membership = new Membership((m) => this.#post(m), { wants: acks !== null, helloIntervalMs: acks?.helloIntervalMs ?? 1000 });
      // The others answer a starting node's hello within a round trip: 500 ms is ample, and no publish waits longer than its timeout.
      const options = acks && { timeoutMs: acks.timeoutMs, warmupMs: Math.min(acks.timeoutMs, acks.helloIntervalMs, 500) };
      this.#membership = membership;
      this.#acks = new ClusterAcks((m) => this.send(m), membership, options, acks?.skip ?? (() => false));
    }
    this.#ready = (bus?.start(nodeId, (message) => this.#receive(message), this.#observer()) ?? Promise.resolve()).catch((err: unknown) =>
      report(new BrokerError('SY_ERR_BACKEND', 'bus failed to start', { cause: err }), {}),
    );
    if (this.#membership !== null) {
      void this.#ready.then(() => {
        this.#membership?.start();
        this.#acks?.start();
      });
    }
  }

  /** Cluster-wide acks, when this broker asks for them (`clusterAcks` and a bus); null otherwise. */
  get counting(): ClusterAcks | null {
    return this.#acks?.asking === true ? this.#acks : null;
  }

  /** What the bus says about its link reaches the host on the broker's `error` event. */
  #observer(): BusObserver {
    return {
      down: ({ since, reason }) => this.#report(new BrokerError('SY_ERR_BUS_GAP', `bus link lost (${reason}): messages from other nodes are missed until it is back`), { bus: 'down', since, reason }),
      gap: (gap) => {
        this.#report(new BrokerError('SY_ERR_BUS_GAP', `bus link back after ${gap.durationMs} ms: messages other nodes sent meanwhile were not received${this.#node.catchUp ? ' (history topics are caught up from the store)' : ''}`), { bus: 'gap', ...gap });
        this.#node.catchUp?.();
      },
      error: (err) => this.#report(new BrokerError('SY_ERR_BACKEND', 'bus error', { cause: err }), {}),
    };
  }

  /** Whether there are other nodes to tell (callers skip building messages otherwise). */
  get enabled(): boolean {
    return this.#bus !== null;
  }

  send(message: Outgoing): void {
    if (this.#bus === null) return;
    const full = { ...message, v: BUS_PROTOCOL_VERSION, node: this.#nodeId } as BusMessage;
    this.#bus.publish(full).catch((err: unknown) => {
      this.#report(new BrokerError('SY_ERR_BACKEND', `bus publish failed (${message.kind})`, { cause: err }), {});
    });
  }

  /** Sends without reporting a failure (membership's hellos: the bus reports its own link). */
  #post(message: Outgoing): Promise<void> {
    return this.#bus?.publish({ ...message, v: BUS_PROTOCOL_VERSION, node: this.#nodeId } as BusMessage) ?? Promise.resolve();
  }

  async close(): Promise<void> {
    await this.#ready;
    this.#acks?.close();
    await this.#membership?.close();
    await this.#bus?.close();
  }

  #receive(message: BusMessage): void {
    if (message.node === this.#nodeId) return;
    if (message.v !== BUS_PROTOCOL_VERSION) {
      this.#logger.warn('ignoring cluster message of unknown version', { v: message.v, node: message.node });
      return;
    }
    switch (message.kind) {
      case 'publish': {
        const { topic, payload, messageId, sentAt, from, offset } = message;
        // The shape the dispatcher builds for a local publish (absent fields undefined, no spreads):
        // one object shape through the fan-out, whichever node published.
        const delivery: Delivery = {
          kind: 'publish', topic, payload, messageId, sentAt, from,
          binary: decode(message.binary), offset, epoch: offset === undefined ? undefined : message.epoch,
        };
        const origin = message.node;
        this.#node.publish(delivery as Delivery & { kind: 'publish' }, message.ack === true ? (n: number) => this.#acks?.answer(origin, messageId, n) : undefined);
        return;
      }
      case 'direct': {
        const { target, payload, messageId, sentAt, from } = message;
        const binary = decode(message.binary);
        this.#node.direct({ kind: 'direct', target, payload, messageId, sentAt, from, ...(binary && { binary }) });
        return;
      }
      case 'notify':
        this.#node.notify(message.target, message.data, message.sentAt);
        return;
      case 'revoke':
        this.#node.revoke(message, message.reason ?? 'token revoked');
        return;
      case 'reauthorize':
        this.#node.reauthorize(message.principal, message.replacement);
        return;
      case 'hello':
      case 'bye':
        this.#membership?.hear(message.node, message);
        return;
      case 'recipients':
        if (message.to === this.#nodeId) this.#acks?.answered(message.node, message.counts);
        return;
      default:
        this.#logger.warn('ignoring cluster message of unknown kind', { kind: (message as { kind: unknown }).kind });
    }
  }
}

function decode(base64: string | undefined): Buffer | undefined {
  return base64 === undefined ? undefined : Buffer.from(base64, 'base64');
}
