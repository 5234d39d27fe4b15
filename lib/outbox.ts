/**
 * A connection's outgoing side: the bounded send queue, the recovery hold and the flush. Frames
 * are queued by reference and written once per event-loop turn (corked, so a burst is one
 * writev), never beyond `maxBufferedBytes`: a consumer that stops reading overflows, and its
 * session closes it with 1013 instead of growing the server's memory.
 */
import type { Socket } from 'node:net';
import type { Frame } from './frame.js';
import type { Wire } from './wire.js';

/** Batches flushes: told once when a queue goes from empty to not empty. */
export interface FlushScheduler {
  scheduleFlush(outbox: Outbox): void;
}

/** What the outbox tells its session. */
export interface OutboxOwner {
  /** The queue would pass `maxBufferedBytes`: it has been dropped; close the connection. */
  overflow(): void;
}

export class Outbox {
  readonly #socket: Socket;
  readonly #wire: Wire;
  readonly #maxBufferedBytes: number;
  readonly #scheduler: FlushScheduler;
  readonly #owner: OutboxOwner;
  /** False once the connection is closing: nothing more is queued. */
  #accepting = true;
  #pending: Frame[] = [];
  /** The other of two queues that swap on each flush (null while a flush writes it). */
  #spare: Frame[] | null = [];
  #pendingBytes = 0;
  /** Live deliveries held back per topic while that topic's history is replayed. */
  #held: Map<string, Array<{ frame: Frame; offset: number | undefined }>> | null = null;

  constructor(socket: Socket, wire: Wire, maxBufferedBytes: number, scheduler: FlushScheduler, owner: OutboxOwner) {
    this.#socket = socket;
    this.#wire = wire;
    this.#maxBufferedBytes = maxBufferedBytes;
    this.#scheduler = scheduler;
    this.#owner = owner;
  }

  /** Bytes queued here or in the socket, not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#pendingBytes + this.#socket.writableLength;
  }

  /** Queues a complete frame (shared, never modified). Returns false if it was not queued. */
  enqueue(frame: Frame): boolean {
    if (!this.#accepting) return false;
    if (this.#pendingBytes + this.#socket.writableLength + frame.length > this.#maxBufferedBytes) {
      // Full: drop the queue; the close frame goes behind what the socket already holds.
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#owner.overflow();
      return false;
    }
    if (this.#pending.length === 0) this.#scheduler.scheduleFlush(this);
    this.#pending.push(frame);
    this.#pendingBytes += frame.length;
    return true;
  }

  /** Queues a publish's frame, unless its topic is being recovered, where it waits its turn. */
  deliver(frame: Frame, topic: string, offset: number | undefined): boolean {
    if (this.#held !== null) {
      const held = this.#held.get(topic);
      if (held !== undefined) {
        held.push({ frame, offset });
        return true;
      }
    }
    return this.enqueue(frame);
  }

  /** Starts holding live deliveries of `topics` (recovery begins). */
  hold(topics: string[]): void {
    if (topics.length === 0) return;
    this.#held ??= new Map();
    for (const topic of topics) this.#held.set(topic, []);
  }

  /** Ends recovery of `topic`: queues what was held with an offset after `after`, in order. */
  release(topic: string, after: number): void {
    const held = this.#held?.get(topic);
    if (held === undefined) return;
    this.#held!.delete(topic);
    if (this.#held!.size === 0) this.#held = null;
    for (const { frame, offset } of held) if (offset === undefined || offset > after) this.enqueue(frame);
  }

  /**
   * Writes what is queued in one write: a single frame, a burst of string frames joined into one
   * string, or else a corked burst the kernel gets as one writev.
   */
  flush(): void {
    const pending = this.#pending;
    if (pending.length === 0) return;
    const bytes = this.#pendingBytes;
    // New frames go to the spare queue while this one is written (a write can re-enter), and the
    // two swap instead of a new array per flush: a connection that goes quiet would keep its last
    // one, V8 would see that allocation site's arrays survive and allocate every later one in the
    // old generation, and frames pushed into those would outlive their turn (bench/PROFILING.md).
    this.#pending = this.#spare ?? [];
    this.#spare = null;
    this.#pendingBytes = 0;
    if (this.#wire.open) this.#write(pending, bytes);
    pending.length = 0;
    this.#spare = pending;
  }

  #write(pending: Frame[], bytes: number): void {
    if (pending.length === 1) {
      this.#socket.write(pending[0]!, 'latin1');
      return;
    }
    if (bytes <= MAX_JOINED_BYTES && pending.every(isString)) {
      this.#socket.write(pending.join(''), 'latin1');
      return;
    }
    this.#socket.cork();
    for (const frame of pending) this.#socket.write(frame, 'latin1');
    this.#socket.uncork();
  }

  /** The connection is closing: what is queued may still be flushed, nothing new is taken. */
  stop(): void {
    this.#accepting = false;
  }

  /** The socket is gone: drop everything. */
  dispose(): void {
    this.#accepting = false;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#held = null;
  }
}

/** A burst of string frames up to this size is joined into one string and written once. */
const MAX_JOINED_BYTES = 64 * 1024;

function isString(frame: Frame): frame is string {
  return typeof frame === 'string';
}
