/**
 * One live connection: who it is (principal), what it listens to (subscriptions), its phase,
 * and its two halves: the inbox (rate limit, ordering, back-pressure) and the outbox (bounded
 * queue, recovery hold, flush). A session exists only after the 101: its phases are
 * upgraded → closing → closed, changed by one transition function.
 */
import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Awaitable } from './awaitable.js';
import { BrokerError, CloseCode } from './errors.js';
import { encodeFrame, frameSlot, textFrame } from './frame.js';
import { Inbox, type InboxOwner } from './inbox.js';
import type { ResolvedEndpoint, ResolvedLimits } from './options.js';
import { Outbox, type FlushScheduler, type OutboxOwner } from './outbox.js';
import type { Connection, DirectResult, PresenceInfo, PublishOptions, PublishResult, SubscribeResult } from './protocol.js';
import type { HistoryPage, HistoryQuery, RecoverFrom } from './store.js';
import { Wire, type WireListener } from './wire.js';
import type { Filter, Principal } from './types.js';

/** What a connection asks the broker to do on its behalf (lib/requests.ts). */
export interface SessionRequests {
  subscribe(session: Session, patterns: string[], filters: Filter | null, recover?: RecoverFrom): Promise<SubscribeResult>;
  unsubscribe(session: Session, patterns: string[]): SubscribeResult;
  refresh(session: Session, token: string): Promise<Principal>;
  publish(session: Session, topic: string, payload: unknown, options: PublishOptions): Awaitable<PublishResult>;
  direct(session: Session, target: string, payload: unknown, binary?: Buffer): Promise<DirectResult>;
  history(session: Session, topic: string, query: HistoryQuery): Promise<HistoryPage>;
  presence(session: Session, principalIds: string[]): Promise<PresenceInfo[]>;
}

/** What a session needs from its broker (kept narrow so the two stay decoupled). */
export interface SessionHost extends FlushScheduler {
  readonly limits: ResolvedLimits;
  /** `AuthStatus token_expiring` this long before `principal.expiresAt` (ms). */
  readonly expiryWarningMs: number;
  readonly requests: SessionRequests;
  reportError(error: unknown, context: Record<string, unknown>): void;
  /** The socket is gone (close code from the peer, 1005 without one, 1006 without a close frame). */
  sessionClosed(session: Session, code: number, reason: string): void;
}

export type SessionPhase = 'upgraded' | 'closing' | 'closed';

export class Session implements Connection, WireListener, InboxOwner, OutboxOwner {
  readonly id: string;
  readonly params: Record<string, string>;
  readonly query: Record<string, string>;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly endpoint: ResolvedEndpoint;
  /** The upgrade request (a `Refresh` hands it to `authenticate` again, as hosts read cookies or middleware state from it). */
  readonly request: IncomingMessage;
  readonly connectedAt = Date.now();
  state: unknown = undefined;
  readonly outbox: Outbox;
  /** Which of a delivery's frames this connection takes: its endpoint's, compressed or not (lib/router.ts). */
  readonly frameSlot: number;
  /** Heartbeat: whether a pong (or any frame) arrived since the last ping. */
  alive = true;
  /** The close code this side sent, if it started the close (reported instead of 1006 when the peer never answered). */
  closeCodeSent: number | undefined;

  #principal: Principal;
  readonly #subscriptions = new Map<string, Filter | null>();
  #phase: SessionPhase = 'upgraded';
  /** The fan-out that last reached this session, so overlapping subscriptions deliver once. */
  #mark = 0;
  readonly #host: SessionHost;
  readonly #wire: Wire;
  readonly #inbox: Inbox;
  /** The expiry armed for, and its two timers (warning, close). */
  #expiry: { at: number; timers: NodeJS.Timeout[] } | null = null;
  /** Only connections with a pending close have other timers: allocated on demand. */
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
    /** The upgrade request, handed to `authenticate` again when the client refreshes its token. */
    request: IncomingMessage;
  }) {
    this.id = init.id;
    this.#principal = init.principal;
    this.params = init.params;
    this.query = init.query;
    this.headers = init.headers;
    this.endpoint = init.endpoint;
    this.request = init.request;
    this.#host = init.host;
    const limits = init.host.limits;
    this.#wire = new Wire(init.socket, init.head, limits, this);
    this.frameSlot = frameSlot(init.endpoint.index, this.#wire.deflateWindowBits);
    this.outbox = new Outbox(init.socket, this.#wire, limits.maxBufferedBytes, init.host, this);
    this.#inbox = new Inbox(this, this.#wire, limits);
  }

  get principal(): Principal {
    return this.#principal;
  }

  get subscriptions(): ReadonlyMap<string, Filter | null> {
    return this.#subscriptions;
  }

  get phase(): SessionPhase {
    return this.#phase;
  }

  /** True from the moment a close starts. */
  get closing(): boolean {
    return this.#phase !== 'upgraded';
  }

  get bufferedBytes(): number {
    return this.outbox.bufferedBytes;
  }

  // ── state changed only through these ────────────────────────────────────

  /**
   * The one place the phase changes: upgraded → closing → closed (or upgraded → closed when the
   * socket goes first). Returns false for a transition that does not apply (already there or past it).
   */
  #to(next: SessionPhase): boolean {
    const from = this.#phase;
    if (from === next || from === 'closed' || next === 'upgraded') return false;
    this.#phase = next;
    if (next === 'closing') {
      this.outbox.stop();
      // No token-expiry warning nor close for a connection already closing.
      this.#clearExpiry();
      return true;
    }
    this.outbox.dispose();
    this.#inbox.dispose();
    this.#clearExpiry();
    for (const timer of this.#timers ?? []) clearTimeout(timer);
    this.#timers = null;
    return true;
  }

  /** Replaces the principal (reauthorize, same id); the caller re-arms its expiry with `armExpiry()`. */
  replacePrincipal(principal: Principal): void {
    this.#principal = principal;
  }

  addSubscription(pattern: string, filter: Filter | null): void {
    this.#subscriptions.set(pattern, filter);
  }

  removeSubscription(pattern: string): boolean {
    return this.#subscriptions.delete(pattern);
  }

  /** Whether the fan-out numbered `seq` already reached this session. */
  marked(seq: number): boolean {
    return this.#mark === seq;
  }

  mark(seq: number): void {
    this.#mark = seq;
  }

  // ── outbound ──────────────────────────────────────────────────────────────

  send(message: unknown): void {
    this.outbox.enqueue(textFrame(JSON.stringify(message)));
  }

  sendRaw(data: string | Buffer): void {
    this.outbox.enqueue(typeof data === 'string' ? textFrame(data) : encodeFrame(data, true));
  }

  /** The queue overflowed (OutboxOwner): a slow consumer. */
  overflow(): void {
    this.close(CloseCode.TRY_AGAIN_LATER, 'slow consumer');
  }

  // ── operations, delegated to the broker ──────────────────────────────────

  subscribe(patterns: string[], filters: Filter | null = null, recover?: RecoverFrom): Promise<SubscribeResult> {
    return this.#host.requests.subscribe(this, patterns, filters, recover);
  }

  unsubscribe(patterns: string[]): SubscribeResult {
    return this.#host.requests.unsubscribe(this, patterns);
  }

  refresh(token: string): Promise<Principal> {
    return this.#host.requests.refresh(this, token);
  }

  publish(topic: string, payload: unknown, options: PublishOptions = {}): Awaitable<PublishResult> {
    return this.#host.requests.publish(this, topic, payload, options);
  }

  sendDirect(target: string, payload: unknown, options: { binary?: Buffer } = {}): Promise<DirectResult> {
    return this.#host.requests.direct(this, target, payload, options.binary);
  }

  history(topic: string, query: HistoryQuery): Promise<HistoryPage> {
    return this.#host.requests.history(this, topic, query);
  }

  presence(principalIds: string[]): Promise<PresenceInfo[]> {
    return this.#host.requests.presence(this, principalIds);
  }

  // ── inbound (WireListener, InboxOwner) ────────────────────────────────────

  /** Runs `work` (the protocol's open) before any inbound frame is handled. `work` must not reject. */
  begin(work: () => Promise<void>): void {
    this.#inbox.begin(work);
  }

  receive(data: Buffer, isBinary: boolean): void {
    if (this.#phase !== 'upgraded') return;
    this.alive = true;
    this.#inbox.receive(data, isBinary);
  }

  handle(data: Buffer, isBinary: boolean): unknown {
    if (this.#phase === 'closed') return undefined;
    return this.endpoint.protocol.receive(this, data, isBinary);
  }

  failed(err: unknown, data: Buffer, isBinary: boolean): void {
    if (this.#phase === 'closed') return;
    let error: BrokerError;
    if (err instanceof BrokerError) {
      error = err;
    } else {
      this.#host.reportError(err, { connection: this.id, principal: this.#principal.id });
      error = new BrokerError('SY_ERR_INTERNAL', undefined, { cause: err });
    }
    try {
      this.endpoint.protocol.fail(this, error, data, isBinary);
    } catch (inner) {
      this.#host.reportError(inner, { connection: this.id });
      this.close(CloseCode.INTERNAL_ERROR, 'internal error');
    }
  }

  abused(): void {
    this.close(CloseCode.POLICY_VIOLATION, 'rate limit abuse');
  }

  pong(): void {
    this.alive = true;
  }

  /** The client broke RFC 6455 (the wire stopped reading): close with its code. */
  protocolError(code: number, message: string): void {
    this.close(code, message);
  }

  /** The client's close frame is about to be answered: replies queued this turn go out first. */
  peerClosing(): void {
    this.outbox.flush();
  }

  socketClosed(code: number, reason: string): void {
    if (!this.#to('closed')) return;
    this.#host.sessionClosed(this, code, reason);
  }

  // ── lifecycle ─────────────────────────────────────────────────────────────

  /** Starts the close handshake (queued frames go first) and destroys the socket if it stalls. */
  close(code: number, reason = ''): void {
    if (this.#phase !== 'upgraded') return;
    const mapped = this.endpoint.closeCodes[code] ?? code;
    if (code !== CloseCode.TRY_AGAIN_LATER && this.endpoint.protocol.closing !== undefined) {
      try {
        this.endpoint.protocol.closing(this, mapped, reason);
      } catch (err) {
        this.#host.reportError(err, { during: 'closing', connection: this.id });
      }
    }
    this.outbox.flush();
    if (!this.#to('closing')) return;
    this.closeCodeSent = mapped;
    try {
      this.#wire.close(mapped, reason);
    } catch (err) {
      this.#host.reportError(err, { connection: this.id });
      this.#wire.terminate();
      return;
    }
    this.#addTimer(setTimeout(() => this.#wire.terminate(), this.#host.limits.closeTimeoutMs));
  }

  /** Ends the connection at once, without a close handshake (dead peer). */
  terminate(): void {
    this.#to('closing');
    this.#wire.terminate();
  }

  /**
   * Arms the principal's expiry: `tokenExpiring` `expiryWarningMs` before `expiresAt`, close
   * 4002 at it. Re-arming for the same `expiresAt` does nothing (one warning, not two); a new
   * one replaces the old timers. Only an open connection has them: the close starting clears them.
   * An expiry further ahead than setTimeout's range (about 24.8 days) is armed by relay timers.
   */
  armExpiry(): void {
    const expiresAt = this.#principal.expiresAt;
    if (this.#expiry?.at === expiresAt) return;
    this.#clearExpiry();
    if (expiresAt === undefined || this.#phase !== 'upgraded') return;
    const now = Date.now();
    if (expiresAt <= now) {
      this.close(CloseCode.TOKEN_REVOKED, 'token expired');
      return;
    }
    if (expiresAt - now > MAX_TIMER_MS) {
      // Past setTimeout's range: wake when the expiry comes in range and arm it then. The warning
      // is due after this relay unless expiryWarningMs is itself past the range (then it comes
      // when the relay fires, as early as a timer can give it).
      const relay = setTimeout(() => {
        this.#expiry = null;
        this.armExpiry();
      }, Math.min(MAX_TIMER_MS, expiresAt - now - MAX_TIMER_MS));
      relay.unref();
      this.#expiry = { at: expiresAt, timers: [relay] };
      return;
    }
    const timers: NodeJS.Timeout[] = [];
    const protocol = this.endpoint.protocol;
    const warnIn = Math.max(0, expiresAt - this.#host.expiryWarningMs - now);
    if (protocol.tokenExpiring !== undefined) {
      timers.push(setTimeout(() => protocol.tokenExpiring?.(this, expiresAt), warnIn));
    }
    timers.push(setTimeout(() => this.close(CloseCode.TOKEN_REVOKED, 'token expired'), expiresAt - now));
    for (const timer of timers) timer.unref();
    this.#expiry = { at: expiresAt, timers };
  }

  #clearExpiry(): void {
    if (this.#expiry === null) return;
    for (const timer of this.#expiry.timers) clearTimeout(timer);
    this.#expiry = null;
  }

  ping(): void {
    if (this.#phase !== 'upgraded') return;
    this.alive = false;
    this.#wire.ping();
  }

  /** Timers owned by this connection, cleared when it closes. */
  #addTimer(timer: NodeJS.Timeout): void {
    timer.unref();
    (this.#timers ??= []).push(timer);
  }
}

/** setTimeout's largest delay (about 24.8 days); a longer expiry is armed by a relay timer. */
const MAX_TIMER_MS = 2 ** 31 - 1;
