/**
 * One live connection: its principal, subscriptions and bounded send queue. Frames are queued
 * by reference and written once per event-loop turn (corked, so a burst is one writev), never
 * beyond `maxBufferedBytes`: a consumer that stops reading is closed with 1013 instead of
 * growing the server's memory.
 */
import type { Socket } from 'node:net';
import { isThenable, type Awaitable } from './awaitable.js';
import { BrokerError, CloseCode } from './errors.js';
import { encodeFrame, frameSlot, textFrame, type Frame } from './frame.js';
import type { ResolvedEndpoint, ResolvedLimits } from './options.js';
import type { Connection, DirectResult, PresenceInfo, PublishOptions, PublishResult, SubscribeResult } from './protocol.js';
import type { HistoryPage, HistoryQuery } from './store.js';
import { TokenBucket } from './rate-limit.js';
import { Wire, type WireListener } from './wire.js';
import type { Filter, Principal } from './types.js';

/** What a session needs from its broker (kept narrow so the two stay decoupled). */
export interface SessionHost {
  readonly limits: ResolvedLimits;
  scheduleFlush(session: Session): void;
  subscribe(session: Session, patterns: string[], filters: Filter | null, recover?: Record<string, number>): Promise<SubscribeResult>;
  unsubscribe(session: Session, patterns: string[]): SubscribeResult;
  publishFrom(session: Session, topic: string, payload: unknown, options: PublishOptions): Awaitable<PublishResult>;
  directFrom(session: Session, target: string, payload: unknown, binary?: Buffer): Promise<DirectResult>;
  historyFor(session: Session, topic: string, query: HistoryQuery): Promise<HistoryPage>;
  presenceFor(session: Session, principalIds: string[]): Promise<PresenceInfo[]>;
  reportError(error: unknown, context: Record<string, unknown>): void;
  /** The socket is gone (close code from the peer, 1005 without one, 1006 without a close frame). */
  sessionClosed(session: Session, code: number, reason: string): void;
}

export class Session implements Connection, WireListener {
  readonly id: string;
  principal: Principal;
  readonly params: Record<string, string>;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly endpoint: ResolvedEndpoint;
  readonly subscriptions = new Map<string, Filter | null>();
  readonly connectedAt = Date.now();
  state: unknown = undefined;

  /** Which of a delivery's frames this connection takes: its endpoint's, compressed or not (lib/router.ts). */
  readonly frameSlot: number;
  /** Set by the broker's matcher so overlapping subscriptions deliver once per publish. */
  lastDelivery = 0;
  /** Heartbeat: whether a pong (or any frame) arrived since the last ping. */
  alive = true;
  closed = false;
  /** The close code this side sent, if it started the close (reported instead of 1006 when the peer never answered). */
  closeCodeSent: number | undefined;

  readonly #host: SessionHost;
  readonly #wire: Wire;
  readonly #socket: Socket;
  readonly #bucket: TokenBucket | null;
  #pending: Frame[] = [];
  /** The other of two queues that swap on each flush (null while a flush writes it). */
  #spare: Frame[] | null = [];
  #pendingBytes = 0;
  #closing = false;
  #strikes = 0;
  #paused = false;
  /** A frame (or the protocol's open) is being handled asynchronously. */
  #busy = false;
  /** Frames waiting while busy: data and isBinary, flattened. */
  #queue: Array<Buffer | boolean> | null = null;
  /** Live deliveries held back per topic while that topic's history is replayed. */
  #held: Map<string, Array<{ frame: Frame; offset: number | undefined }>> | null = null;
  /** Only connections with an expiry or a pending close have timers: allocated on demand. */
  #timers: NodeJS.Timeout[] | null = null;

  constructor(init: {
    id: string;
    principal: Principal;
    params: Record<string, string>;
    query: Record<string, string>;
    headers: Record<string, string | string[] | undefined>;
    endpoint: ResolvedEndpoint;
    host: SessionHost;
    socket: Socket;
    /** What the client sent after its upgrade request: already frames. */
    head: Buffer;
  }) {
    this.id = init.id;
    this.principal = init.principal;
    this.params = init.params;
    this.query = init.query;
    this.headers = init.headers;
    this.endpoint = init.endpoint;
    this.#host = init.host;
    this.#socket = init.socket;
    this.#wire = new Wire(init.socket, init.head, init.host.limits, this);
    this.frameSlot = frameSlot(init.endpoint.index, this.#wire.deflateWindowBits);
    const rate = init.host.limits.rate;
    this.#bucket = rate === false ? null : new TokenBucket(rate.perSecond, rate.burst);
  }

  get closing(): boolean {
    return this.#closing || this.closed;
  }

  /** Bytes queued here or in the socket, not yet handed to the kernel. */
  get bufferedBytes(): number {
    return this.#pendingBytes + this.#socket.writableLength;
  }

  // ── outbound ──────────────────────────────────────────────────────────────

  /** Queues a complete frame (shared, never modified). Returns false if it was not queued. */
  enqueue(frame: Frame): boolean {
    if (this.#closing || this.closed) return false;
    if (this.#pendingBytes + this.#socket.writableLength + frame.length > this.#host.limits.maxBufferedBytes) {
      this.#slowConsumer();
      return false;
    }
    if (this.#pending.length === 0) this.#host.scheduleFlush(this);
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
    if (!this.closed && this.#wire.open) this.#write(pending, bytes);
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

  send(message: unknown): void {
    this.enqueue(textFrame(JSON.stringify(message)));
  }

  sendRaw(data: string | Buffer): void {
    this.enqueue(typeof data === 'string' ? textFrame(data) : encodeFrame(data, true));
  }

  // ── operations, delegated to the broker ──────────────────────────────────

  subscribe(patterns: string[], filters: Filter | null = null, recover?: Record<string, number>): Promise<SubscribeResult> {
    return this.#host.subscribe(this, patterns, filters, recover);
  }

  unsubscribe(patterns: string[]): SubscribeResult {
    return this.#host.unsubscribe(this, patterns);
  }

  publish(topic: string, payload: unknown, options: PublishOptions = {}): Awaitable<PublishResult> {
    return this.#host.publishFrom(this, topic, payload, options);
  }

  sendDirect(target: string, payload: unknown, options: { binary?: Buffer } = {}): Promise<DirectResult> {
    return this.#host.directFrom(this, target, payload, options.binary);
  }

  history(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.#host.historyFor(this, topic, query);
  }

  presence(principalIds: string[]): Promise<PresenceInfo[]> {
    return this.#host.presenceFor(this, principalIds);
  }

  // ── inbound ───────────────────────────────────────────────────────────────

  /** Runs `work` (the protocol's open) before any inbound frame is handled. `work` must not reject. */
  begin(work: () => Promise<void>): void {
    this.#busy = true;
    void work().then(() => this.#next());
  }

  /**
   * One inbound frame. Frames are handled one after another in arrival order (so a Subscribe
   * is in effect before the Broadcast that follows it). A frame the protocol handles
   * synchronously costs no promise at all; while one is handled asynchronously the next ones
   * wait in a queue, and reading pauses when `maxInflight` are waiting.
   */
  receive(data: Buffer, isBinary: boolean): void {
    if (this.#closing || this.closed) return;
    this.alive = true;
    if (this.#bucket !== null) {
      const wait = this.#bucket.take();
      if (wait > 0) {
        if (++this.#strikes >= this.#host.limits.rateAbuseStrikes) {
          this.close(CloseCode.POLICY_VIOLATION, 'rate limit abuse');
          return;
        }
        const error = new BrokerError('SY_ERR_RATE_LIMITED', `rate limit exceeded; retry in ${wait} ms`, {
          details: { retry_after_ms: wait },
        });
        this.endpoint.protocol.fail(this, error, data, isBinary);
        return;
      }
      this.#strikes = 0;
    }
    if (!this.#busy) {
      this.#handle(data, isBinary);
      return;
    }
    const queue = (this.#queue ??= []);
    queue.push(data, isBinary);
    if (queue.length >= 2 * this.#host.limits.maxInflight && !this.#paused) {
      this.#paused = true;
      this.#wire.pause();
    }
  }

  pong(): void {
    this.alive = true;
  }

  /** The client broke RFC 6455 (the wire stopped reading): close with its code. */
  protocolError(code: number, message: string): void {
    this.close(code, message);
  }

  socketClosed(code: number, reason: string): void {
    this.#host.sessionClosed(this, code, reason);
  }

  /** Handles one frame; if the protocol returns a promise, the session is busy until it settles. */
  #handle(data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    let result: unknown;
    try {
      result = this.endpoint.protocol.receive(this, data, isBinary);
    } catch (err) {
      this.#fail(err, data, isBinary);
      return;
    }
    if (isThenable(result)) {
      this.#busy = true;
      Promise.resolve(result).then(
        () => this.#next(),
        (err: unknown) => {
          this.#fail(err, data, isBinary);
          this.#next();
        },
      );
    }
  }

  /** The frame in progress is done: handle what queued behind it, until one goes async again. */
  #next(): void {
    this.#busy = false;
    const queue = this.#queue;
    while (!this.#busy && queue !== null && queue.length > 0 && !this.closed) {
      const data = queue.shift() as Buffer;
      const isBinary = queue.shift() as boolean;
      this.#handle(data, isBinary);
    }
    if (this.#paused && (queue?.length ?? 0) < this.#host.limits.maxInflight && !this.closed) {
      this.#paused = false;
      this.#wire.resume();
    }
  }

  #fail(err: unknown, data: Buffer, isBinary: boolean): void {
    if (this.closed) return;
    let error: BrokerError;
    if (err instanceof BrokerError) {
      error = err;
    } else {
      this.#host.reportError(err, { connection: this.id, principal: this.principal.id });
      error = new BrokerError('SY_ERR_INTERNAL', undefined, { cause: err });
    }
    try {
      this.endpoint.protocol.fail(this, error, data, isBinary);
    } catch (inner) {
      this.#host.reportError(inner, { connection: this.id });
      this.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
  }

  // ── lifecycle ─────────────────────────────────────────────────────────────

  /** Starts the close handshake (queued frames go first) and destroys the socket if it stalls. */
  close(code: number, reason = ''): void {
    if (this.#closing || this.closed) return;
    const mapped = this.endpoint.closeCodes[code] ?? code;
    if (code !== CloseCode.TRY_AGAIN_LATER && this.endpoint.protocol.closing !== undefined) {
      try {
        this.endpoint.protocol.closing(this, mapped, reason);
      } catch (err) {
        this.#host.reportError(err, { during: 'closing', connection: this.id });
      }
    }
    this.flush();
    this.#closing = true;
    this.closeCodeSent = mapped;
    try {
      this.#wire.close(mapped, reason);
    } catch (err) {
      this.#host.reportError(err, { connection: this.id });
      this.#wire.terminate();
      return;
    }
    this.addTimer(setTimeout(() => this.#wire.terminate(), this.#host.limits.closeTimeoutMs));
  }

  /** Ends the connection at once, without a close handshake (dead peer). */
  terminate(): void {
    this.#closing = true;
    this.#wire.terminate();
  }

  /**
   * Arms the principal's expiry: `tokenExpiring` `warningMs` before `expiresAt`, close 4002 at
   * it. Timers check the principal still has that expiry (reauthorize may have replaced it).
   */
  scheduleExpiry(warningMs: number): void {
    const expiresAt = this.principal.expiresAt;
    if (expiresAt === undefined) return;
    const now = Date.now();
    if (expiresAt <= now) {
      this.close(CloseCode.TOKEN_REVOKED, 'token expired');
      return;
    }
    const protocol = this.endpoint.protocol;
    const warnIn = Math.max(0, expiresAt - warningMs - now);
    if (protocol.tokenExpiring !== undefined && warnIn < MAX_TIMER_MS) {
      this.addTimer(setTimeout(() => {
        if (this.principal.expiresAt === expiresAt) protocol.tokenExpiring?.(this, expiresAt);
      }, warnIn));
    }
    if (expiresAt - now < MAX_TIMER_MS) {
      this.addTimer(setTimeout(() => {
        if (this.principal.expiresAt === expiresAt) this.close(CloseCode.TOKEN_REVOKED, 'token expired');
      }, expiresAt - now));
    }
  }

  ping(): void {
    if (this.#closing || this.closed) return;
    this.alive = false;
    this.#wire.ping();
  }

  /** Timers owned by this connection, cleared when it closes. */
  addTimer(timer: NodeJS.Timeout): void {
    timer.unref();
    (this.#timers ??= []).push(timer);
  }

  /** Called once the socket is gone. */
  dispose(): void {
    this.closed = true;
    this.#pending = [];
    this.#pendingBytes = 0;
    this.#held = null;
    this.#queue = null;
    for (const timer of this.#timers ?? []) clearTimeout(timer);
    this.#timers = null;
  }

  #slowConsumer(): void {
    // The queue is full: drop it, send the close frame behind what the socket already holds,
    // and destroy the socket if the peer does not finish the handshake in time.
    this.#pending = [];
    this.#pendingBytes = 0;
    this.close(CloseCode.TRY_AGAIN_LATER, 'slow consumer');
  }
}

/** setTimeout's largest delay (about 24.8 days); longer expiries are not armed. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** A burst of string frames up to this size is joined into one string and written once. */
const MAX_JOINED_BYTES = 64 * 1024;

function isString(frame: Frame): frame is string {
  return typeof frame === 'string';
}
