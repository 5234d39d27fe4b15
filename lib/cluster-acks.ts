/**
 * Cluster-wide acks (`clusterAcks`): a publish's `recipients` summed over every node of the
 * cluster. The publishing node marks its bus message `ack`; every node that receives it answers
 * with its count in a `recipients` message addressed to the publisher (the answers of one turn of
 * the event loop to one publisher travel in one message). The publisher waits for the nodes its
 * Membership knows are alive, up to `timeoutMs`; a node that has not answered by then is named in
 * the result (`missingNodes`, the Ack's `partial` and `missing_nodes`) and not waited on. Exactly
 * one result per publish, whatever answers later.
 *
 * Every node with a bus answers (it costs nothing until some node asks); only a broker with the
 * option asks, so a cluster without it sends no count and no hello.
 */
import { pipelined, isThenable, type Awaitable } from './awaitable.js';
import type { Outgoing } from './cluster.js';
import type { Membership } from './membership.js';
import type { PublishResult } from './protocol.js';

interface Waiting {
  /** The other nodes' counts so far. */
  remote: number;
  /** The publish's result, once the dispatcher has it (settle). */
  result: PublishResult | null;
  /** Nodes that did not answer in time (set when finished by the timeout). */
  missing: string[] | null;
  /** The nodes expected to answer and not answered yet; null while membership is still warming up. */
  waiting: Set<string> | null;
  /** Nodes that answered without being expected (new since the publish, or during warm-up). */
  others: string[] | null;
  deadline: number;
  done: boolean;
  resolve: ((result: PublishResult) => void) | null;
}

export interface ClusterAcksOptions {
  /** How long a publish waits for the other nodes' counts, in ms. */
  timeoutMs: number;
  /** Right after start the members are not known yet: publishes then wait this long, ms. */
  warmupMs: number;
}

export class ClusterAcks {
  readonly #send: (message: Outgoing) => void;
  readonly #membership: Membership;
  readonly #skip: (topic: string) => boolean;
  /** null: this node answers but does not ask. */
  readonly #options: ClusterAcksOptions | null;
  /** Publishes waiting, in deadline order (one timeout for all, so insertion order). */
  readonly #pending = new Map<string, Waiting>();
  #timer: NodeJS.Timeout | undefined;
  /** Until when publishes wait on nodes not known yet (the membership's first round trip). */
  #warmUntil = Infinity;
  #warmTimer: NodeJS.Timeout | undefined;
  /** Answers not sent yet, per publishing node: sent together at the end of this turn. */
  #answers: Map<string, Array<[string, number]>> | null = null;
  #closed = false;

  constructor(send: (message: Outgoing) => void, membership: Membership, options: ClusterAcksOptions | null, skip: (topic: string) => boolean) {
    this.#send = send;
    this.#membership = membership;
    this.#options = options;
    this.#skip = skip;
    membership.onLeave((node) => this.#left(node));
  }

  /** Whether this node asks for the other nodes' counts. */
  get asking(): boolean {
    return this.#options !== null;
  }

  /** The bus is started: membership learns the others from now; publishes wait on it until warmupMs has passed. */
  start(): void {
    if (this.#options === null || this.#closed) return;
    this.#warmUntil = Date.now() + this.#options.warmupMs;
    this.#warmTimer = setTimeout(() => this.#warmedUp(), this.#options.warmupMs);
    this.#warmTimer.unref();
  }

  // ── the publishing side ───────────────────────────────────────────────────

  /**
   * Called as a publish is handed to the bus, with this node's count: starts waiting for the
   * others. Returns whether to mark the bus message `ack` (false: nobody to wait for).
   */
  open(messageId: string, topic: string): boolean {
    if (this.#options === null || this.#closed || this.#skip(topic)) return false;
    const now = Date.now();
    let waiting: Set<string> | null = null;
    if (now >= this.#warmUntil) {
      if (this.#membership.size === 0) return false;
      waiting = new Set(this.#membership.alive());
      if (waiting.size === 0) return false;
    }
    const deadline = now + this.#options.timeoutMs;
    this.#pending.set(messageId, { remote: 0, result: null, missing: null, waiting, others: null, deadline, done: false, resolve: null });
    if (this.#timer === undefined) this.#arm(deadline);
    return true;
  }

  /**
   * The publish's result once every node answered or the timeout passed: `result` itself,
   * synchronously, when nothing was waited for.
   */
  settle(result: Awaitable<PublishResult>): Awaitable<PublishResult> {
    if (isThenable(result)) return pipelined(Promise.resolve(result).then((r) => this.#settled(r)));
    return this.#settled(result);
  }

  #settled(result: PublishResult): Awaitable<PublishResult> {
    const w = this.#pending.get(result.messageId);
    if (w === undefined || w.result !== null) return result;
    w.result = result;
    if (w.done) {
      this.#pending.delete(result.messageId);
      return complete(w, result);
    }
    // Pipelined: the connection's next frames go on while this one waits for the other nodes.
    return pipelined(new Promise<PublishResult>((resolve) => (w.resolve = resolve)));
  }

  /** Another node's counts for publishes of this node. */
  answered(from: string, counts: unknown): void {
    if (!Array.isArray(counts)) return;
    for (const entry of counts) {
      if (!Array.isArray(entry)) continue;
      const [id, count] = entry as [unknown, unknown];
      if (typeof id !== 'string' || !Number.isSafeInteger(count) || (count as number) < 0) continue;
      const w = this.#pending.get(id);
      if (w === undefined || w.done) continue; // answered after the timeout: the Ack is gone
      if (w.waiting?.delete(from) !== true) {
        if (w.others?.includes(from)) continue; // counted once
        (w.others ??= []).push(from);
      }
      w.remote += count as number;
      if (w.waiting !== null && w.waiting.size === 0) this.#finish(id, w, null);
    }
  }

  #left(node: string): void {
    // A node that said bye (or is found gone) is not waited on: its connections are closed.
    for (const [id, w] of this.#pending) {
      if (!w.done && w.waiting?.delete(node) === true && w.waiting.size === 0) this.#finish(id, w, null);
    }
  }

  #warmedUp(): void {
    this.#warmUntil = 0;
    const alive = this.#membership.alive();
    for (const [id, w] of this.#pending) {
      if (w.done || w.waiting !== null) continue;
      w.waiting = new Set(alive.filter((n) => !w.others?.includes(n)));
      if (w.waiting.size === 0) this.#finish(id, w, null);
    }
  }

  #finish(id: string, w: Waiting, missing: string[] | null): void {
    w.done = true;
    if (missing !== null && missing.length > 0) w.missing = missing;
    if (w.resolve !== null && w.result !== null) {
      this.#pending.delete(id);
      w.resolve(complete(w, w.result));
    }
  }

  #arm(at: number): void {
    this.#timer = setTimeout(() => this.#expire(), Math.max(0, at - Date.now()));
    this.#timer.unref();
  }

  #expire(): void {
    this.#timer = undefined;
    const now = Date.now();
    for (const [id, w] of this.#pending) {
      if (w.deadline > now) {
        this.#arm(w.deadline);
        return;
      }
      if (w.done) {
        this.#pending.delete(id); // finished and never settled (its publish failed): nothing waits
        continue;
      }
      const missing = w.waiting !== null ? [...w.waiting] : this.#membership.alive().filter((n) => !w.others?.includes(n));
      this.#finish(id, w, missing);
    }
  }

  // ── the answering side ────────────────────────────────────────────────────

  /** This node delivered another node's publish that asked for counts: answer (batched per turn). */
  answer(origin: string, messageId: string, recipients: number): void {
    if (this.#closed) return;
    if (this.#answers === null) {
      this.#answers = new Map();
      setImmediate(() => this.#flush());
    }
    const list = this.#answers.get(origin);
    if (list === undefined) this.#answers.set(origin, [[messageId, recipients]]);
    else list.push([messageId, recipients]);
  }

  #flush(): void {
    const answers = this.#answers;
    this.#answers = null;
    if (answers === null || this.#closed) return;
    for (const [to, counts] of answers) this.#send({ kind: 'recipients', to, counts });
  }

  /** Publishes still waiting are answered now with what came, the silent nodes named. */
  close(): void {
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    clearTimeout(this.#timer);
    clearTimeout(this.#warmTimer);
    for (const [id, w] of this.#pending) {
      if (!w.done) this.#finish(id, w, w.waiting !== null ? [...w.waiting] : []);
    }
    this.#pending.clear();
  }
}

/** The publish's result with the other nodes' counts added and the silent ones named. */
function complete(w: Waiting, result: PublishResult): PublishResult {
  result.recipients += w.remote;
  if (w.missing !== null) result.missingNodes = w.missing;
  return result;
}
