/**
 * Which other nodes are on the bus, for what must hear from all of them (cluster-wide acks,
 * lib/cluster-acks.ts). Nodes announce themselves with a `hello` every interval and a `bye` when
 * they close; a node unseen for MISSED_HELLOS of its own intervals is gone.
 *
 * Demand-driven, so a cluster that counts nothing cluster-wide sends one hello per node start and
 * nothing more: a node that wants members (`wants`: its broker has `clusterAcks`) announces
 * itself every interval; a node that hears such a hello announces itself too, at the shortest
 * interval any wanting node asks for, for as long as one is alive. A hello from a node not known
 * yet (or one that starts this node announcing) is answered at once with a hello marked `reply`
 * (never answered in turn), so a node that starts learns the others, and they learn it, within a
 * round trip rather than an interval.
 */
import type { Outgoing } from './cluster.js';

/** Intervals a node may miss before it counts as gone. */
export const MISSED_HELLOS = 3;

interface Member {
  lastHeard: number;
  intervalMs: number;
  /** It counts recipients cluster-wide (it waits on the others' answers). */
  acks: boolean;
}

export interface MembershipOptions {
  /** This node counts cluster-wide: it announces itself whether or not anyone else asks. */
  wants: boolean;
  /** How often this node says hello when it wants members, in ms. */
  helloIntervalMs: number;
}

export class Membership {
  readonly #send: (message: Outgoing) => Promise<void>;
  readonly #wants: boolean;
  readonly #intervalMs: number;
  readonly #members = new Map<string, Member>();
  readonly #left: Array<(node: string) => void> = [];
  #timer: NodeJS.Timeout | undefined;
  /** The interval the running timer was set with, while announcing. */
  #announcingEvery = 0;
  #started = false;
  #closed = false;

  constructor(send: (message: Outgoing) => Promise<void>, options: MembershipOptions) {
    this.#send = send;
    this.#wants = options.wants;
    this.#intervalMs = options.helloIntervalMs;
  }

  /**
   * The bus is started: every node says hello once (so a node that counts learns of it, and
   * answers, which starts this one announcing); a wanting node then every interval.
   */
  start(): void {
    if (this.#closed || this.#started) return;
    this.#started = true;
    if (this.#interval() > 0) this.#reschedule(true);
    else this.#send({ kind: 'hello', intervalMs: this.#intervalMs, acks: false }).catch(() => undefined);
  }

  /** Calls `listener` when a node says bye or is found gone. */
  onLeave(listener: (node: string) => void): void {
    this.#left.push(listener);
  }

  /** A hello or bye from another node. */
  hear(node: string, message: { kind: 'hello'; intervalMs: unknown; acks: unknown; reply?: unknown } | { kind: 'bye' }): void {
    if (this.#closed) return;
    if (message.kind === 'bye') {
      if (this.#members.delete(node)) this.#leave(node);
      this.#reschedule(false);
      return;
    }
    const intervalMs = message.intervalMs;
    if (typeof intervalMs !== 'number' || !Number.isFinite(intervalMs) || intervalMs <= 0) return;
    const known = this.#members.has(node);
    this.#members.set(node, { lastHeard: Date.now(), intervalMs, acks: message.acks === true });
    // A newcomer learns of this node at once, rather than after an interval. Every hello sent in
    // response to one heard is a reply: its sender already said hello to everyone.
    this.#reschedule(!known && message.reply !== true, true);
  }

  /** The nodes alive now, this one excluded (the ones unseen for MISSED_HELLOS intervals are dropped). */
  alive(): string[] {
    this.#expire(Date.now());
    return [...this.#members.keys()];
  }

  get size(): number {
    return this.#members.size;
  }

  /** Stops announcing; says bye if it announced. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    clearTimeout(this.#timer);
    const announced = this.#announcingEvery > 0;
    this.#announcingEvery = 0;
    this.#members.clear();
    if (announced) await this.#send({ kind: 'bye' }).catch(() => undefined);
  }

  /** How often to announce: 0 when nobody (this node included) wants members. */
  #interval(): number {
    let every = this.#wants ? this.#intervalMs : Infinity;
    for (const m of this.#members.values()) if (m.acks && m.intervalMs < every) every = m.intervalMs;
    return every === Infinity ? 0 : every;
  }

  /** Starts, retimes or stops the announcing; `now` says hello right away; `reply`: in response to a hello. */
  #reschedule(now: boolean, reply = false): void {
    if (!this.#started || this.#closed) return;
    this.#expire(Date.now());
    const every = this.#interval();
    if (every === 0) {
      clearTimeout(this.#timer);
      this.#announcingEvery = 0;
      return;
    }
    const wasOn = this.#announcingEvery > 0;
    if (now || !wasOn) this.#hello(every, reply);
    else if (every !== this.#announcingEvery) this.#arm(every);
  }

  /** `reply`: sent in response to a hello (its sender is not answered again). */
  #hello(every: number, reply = false): void {
    // Failures are the bus's to report (its link going down); a hello is sent again next interval.
    this.#send({ kind: 'hello', intervalMs: every, acks: this.#wants, ...(reply && { reply: true as const }) }).catch(() => undefined);
    this.#arm(every);
  }

  #arm(every: number): void {
    clearTimeout(this.#timer);
    this.#announcingEvery = every;
    this.#timer = setTimeout(() => this.#tick(), every);
    this.#timer.unref();
  }

  #tick(): void {
    if (this.#closed) return;
    this.#expire(Date.now());
    const every = this.#interval();
    if (every === 0) {
      this.#announcingEvery = 0;
      return;
    }
    this.#hello(every);
  }

  #expire(now: number): void {
    for (const [node, m] of this.#members) {
      if (now - m.lastHeard > MISSED_HELLOS * m.intervalMs) {
        this.#members.delete(node);
        this.#leave(node);
      }
    }
  }

  #leave(node: string): void {
    for (const listener of this.#left) listener(node);
  }
}
