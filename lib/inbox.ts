/**
 * A connection's incoming side: the rate limit, ordering, the in-flight limit and back-pressure.
 * Frames are handled one after another in arrival order (so a Subscribe is in effect before the
 * Broadcast that follows it). A frame the protocol handles synchronously costs no promise at
 * all; while one is handled asynchronously the next ones wait in a queue, and reading pauses
 * when `maxInflight` are waiting (back-pressure on the client, not memory on the server).
 * A pipelined frame (a publish waiting only on the store's append, see `pipelined`) does not hold
 * back the frames after it; at most `maxInflight` of them are pending at once, and the dispatcher
 * delivers each topic's publishes in the order they were appended.
 */
import { isPipelined, isThenable } from './awaitable.js';
import { BrokerError } from './errors.js';
import type { ResolvedLimits } from './options.js';
import { AbuseMeter, TokenBucket } from './rate-limit.js';
import type { Wire } from './wire.js';

/** What the inbox asks of its session. */
export interface InboxOwner {
  /** Hands one frame to the protocol: a promise keeps the inbox busy until it settles. */
  handle(data: Buffer, isBinary: boolean): unknown;
  /** A frame was refused or its handling failed: tell the client through the protocol. */
  failed(err: unknown, data: Buffer, isBinary: boolean): void;
  /** Sustained rate-limit abuse (`limits.rateAbuseStrikes` over `limits.rateAbuseWindowMs`). */
  abused(): void;
}

export class Inbox {
  readonly #owner: InboxOwner;
  readonly #wire: Wire;
  readonly #bucket: TokenBucket | null;
  readonly #abuseStrikes: number;
  readonly #abuseWindowMs: number;
  readonly #maxInflight: number;
  /** Judges abuse over a window; only connections ever refused have one. */
  #abuse: AbuseMeter | null = null;
  #paused = false;
  /** A frame (or the protocol's open) is being handled asynchronously. */
  #busy = false;
  /** Pipelined frames (publishes waiting on the store's append) not yet settled; at most maxInflight. */
  #pipelined = 0;
  /** Frames waiting while busy: data and isBinary, flattened. */
  #queue: Array<Buffer | boolean> | null = null;

  constructor(owner: InboxOwner, wire: Wire, limits: ResolvedLimits) {
    this.#owner = owner;
    this.#wire = wire;
    this.#bucket = limits.rate === false ? null : new TokenBucket(limits.rate.perSecond, limits.rate.burst);
    this.#abuseStrikes = limits.rateAbuseStrikes;
    this.#abuseWindowMs = limits.rateAbuseWindowMs;
    this.#maxInflight = limits.maxInflight;
  }

  /** Runs `work` (the protocol's open) before any inbound frame is handled. `work` must not reject. */
  begin(work: () => Promise<void>): void {
    this.#busy = true;
    void work().then(() => this.#next());
  }

  /** One inbound frame, in arrival order. */
  receive(data: Buffer, isBinary: boolean): void {
    if (this.#bucket !== null) {
      const now = Date.now();
      const wait = this.#bucket.take(now);
      if (wait > 0) {
        this.#abuse ??= new AbuseMeter(this.#abuseWindowMs, this.#abuseStrikes, now);
        if (this.#abuse.record(true, now)) {
          this.#owner.abused();
          return;
        }
        const error = new BrokerError('SY_ERR_RATE_LIMITED', `rate limit exceeded; retry in ${wait} ms`, {
          details: { retry_after_ms: wait },
        });
        this.#owner.failed(error, data, isBinary);
        return;
      }
      this.#abuse?.record(false, now);
    }
    if (!this.#busy && this.#pipelined < this.#maxInflight && (this.#queue === null || this.#queue.length === 0)) {
      this.#handle(data, isBinary);
      return;
    }
    const queue = (this.#queue ??= []);
    queue.push(data, isBinary);
    if (queue.length >= 2 * this.#maxInflight && !this.#paused) {
      this.#paused = true;
      this.#wire.pause();
    }
  }

  /** Drops what waits (the socket is gone). */
  dispose(): void {
    this.#queue = null;
  }

  /** Handles one frame; if the protocol returns a promise, the inbox is busy until it settles. */
  #handle(data: Buffer, isBinary: boolean): void {
    let result: unknown;
    try {
      result = this.#owner.handle(data, isBinary);
    } catch (err) {
      this.#owner.failed(err, data, isBinary);
      return;
    }
    if (isPipelined(result)) {
      // Order is kept downstream (per topic, by the dispatcher): the next frames go on meanwhile.
      this.#pipelined++;
      Promise.resolve(result).then(
        () => this.#unpipe(),
        (err: unknown) => {
          this.#owner.failed(err, data, isBinary);
          this.#unpipe();
        },
      );
      return;
    }
    if (isThenable(result)) {
      this.#busy = true;
      Promise.resolve(result).then(
        () => this.#next(),
        (err: unknown) => {
          this.#owner.failed(err, data, isBinary);
          this.#next();
        },
      );
    }
  }

  /** A pipelined frame settled: frames held back by the maxInflight bound may go on. */
  #unpipe(): void {
    this.#pipelined--;
    if (!this.#busy) this.#next();
  }

  /** The frame in progress is done: handle what queued behind it, until one goes async again. */
  #next(): void {
    this.#busy = false;
    const queue = this.#queue;
    while (!this.#busy && this.#pipelined < this.#maxInflight && queue !== null && queue.length > 0 && this.#queue !== null) {
      const data = queue.shift() as Buffer;
      const isBinary = queue.shift() as boolean;
      this.#handle(data, isBinary);
    }
    if (this.#paused && (queue?.length ?? 0) < this.#maxInflight && this.#queue !== null) {
      this.#paused = false;
      this.#wire.resume();
    }
  }
}
