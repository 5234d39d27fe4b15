/**
 * One subscription: an object with its own state (unsubscribed / subscribing / subscribed),
 * what the caller wants (`subscribe()` / `unsubscribe()`, idempotent, so React StrictMode's
 * double mount is harmless), and for a history topic the position last seen, sent back as
 * `Subscribe.recover` after a reconnect. Messages are delivered once and in order: a replayed
 * message the subscription already has (same epoch, offset not past the position) is dropped.
 */
import type { HistoryData, Position, SubscribedDetails } from '../protocols/envelope-frames.js';
import { Emitter } from './emitter.js';
import { SwitchyardError } from './errors.js';
import type { ReplyKind, RequestResult } from './requests.js';
import { isPattern, type TopicSyntax } from './topics.js';

export type SubscriptionState = 'unsubscribed' | 'subscribing' | 'subscribed';

/** A message as a subscription hands it over. */
export interface Message<T = unknown> {
  topic: string;
  /** The JSON payload; undefined for a binary message. */
  payload: T;
  /** The data of a binary broadcast. */
  binary?: Uint8Array;
  messageId?: string;
  /** Milliseconds since the Unix epoch. */
  sentAt?: number;
  /** History topics: the message's offset and its history's epoch. */
  offset?: number;
  epoch?: string;
}

export interface SubscriptionStateEvent {
  state: SubscriptionState;
  previous: SubscriptionState;
  /** A resubscribe asked for missed messages and the answer has not come yet. */
  recovering: boolean;
  /** After a recovery: whether every missed message was replayed (false: history no longer reaches back). */
  recovered: boolean | undefined;
}

export interface SubscriptionEvents {
  message: Message;
  state: SubscriptionStateEvent;
  /** The server refused the subscription, or dropped it (permission revoked). */
  error: SwitchyardError;
}

export interface SubscribeOptions {
  /** `{field: [allowed values]}`, evaluated by the server (seed 003 filters). */
  filters?: Record<string, unknown[]>;
  /** Recover missed messages after a reconnect (history topics, concrete topics only). Default true. */
  recover?: boolean;
}

/** What a subscription needs from its client. */
export interface SubscriptionHost {
  connected(): boolean;
  readonly syntax: TopicSyntax;
  request(type: string, data: unknown, expects: ReplyKind): Promise<RequestResult>;
  reportError(error: unknown): void;
}

export class Subscription {
  readonly topic: string;
  readonly options: SubscribeOptions;
  #state: SubscriptionState = 'unsubscribed';
  #wanted = false;
  /** A Subscribe or Unsubscribe is in flight. */
  #busy = false;
  #recovering = false;
  #recovered: boolean | undefined;
  #position: Position | undefined;
  /** The topic answered a History probe with an error: it keeps no history. */
  #noHistory = false;
  readonly #host: SubscriptionHost;
  readonly #events: Emitter<SubscriptionEvents>;
  readonly on: Emitter<SubscriptionEvents>['on'];
  readonly off: Emitter<SubscriptionEvents>['off'];

  constructor(host: SubscriptionHost, topic: string, options: SubscribeOptions = {}) {
    this.#host = host;
    this.topic = topic;
    this.options = options;
    this.#events = new Emitter((e) => host.reportError(e));
    this.on = this.#events.on.bind(this.#events);
    this.off = this.#events.off.bind(this.#events);
  }

  get state(): SubscriptionState {
    return this.#state;
  }
  get recovering(): boolean {
    return this.#recovering;
  }
  get recovered(): boolean | undefined {
    return this.#recovered;
  }
  /** The last position seen on a history topic (what a resubscribe recovers from). */
  get position(): Position | undefined {
    return this.#position && { ...this.#position };
  }

  /** Asks for the subscription (again); does nothing if it is wanted already. */
  subscribe(): this {
    this.#wanted = true;
    this.sync();
    return this;
  }

  /** Drops the subscription; does nothing if it is not wanted. Its position is kept. */
  unsubscribe(): this {
    this.#wanted = false;
    this.sync();
    return this;
  }

  // ── called by the client ──────────────────────────────────────────────────

  /** Brings the server's view to what is wanted, one request at a time. */
  sync(): void {
    if (this.#busy) return;
    if (!this.#host.connected()) {
      this.#set(this.#wanted ? 'subscribing' : 'unsubscribed');
      return;
    }
    if (this.#wanted && this.#state !== 'subscribed') void this.#subscribe();
    else if (!this.#wanted && this.#state !== 'unsubscribed') void this.#unsubscribe();
  }

  /** The connection dropped: whatever was subscribed is gone on the server. */
  disconnected(): void {
    this.#busy = false;
    this.#recovering = false;
    this.#set(this.#wanted ? 'subscribing' : 'unsubscribed');
  }

  /** The server dropped the subscription (Error 403 naming it). */
  revoked(error: SwitchyardError): void {
    this.#wanted = false;
    this.#set('unsubscribed');
    this.#events.emit('error', error);
  }

  /** A delivery for this subscription's pattern; dropped if already seen. */
  deliver(message: Message): void {
    if (this.#state === 'unsubscribed') return;
    if (message.offset !== undefined && !isPattern(this.#host.syntax, this.topic)) {
      const seen = this.#position;
      if (seen !== undefined && sameEpoch(seen.epoch, message.epoch) && message.offset <= seen.offset) return;
      this.#position = { offset: message.offset, ...(message.epoch !== undefined && { epoch: message.epoch }) };
    }
    this.#events.emit('message', message);
  }

  // ── internals ─────────────────────────────────────────────────────────────

  async #subscribe(): Promise<void> {
    this.#busy = true;
    this.#set('subscribing');
    const data: Record<string, unknown> = { topics: [this.topic] };
    if (this.options.filters !== undefined) data.filters = this.options.filters;
    const from = this.options.recover !== false ? this.#position : undefined;
    // Today's servers take a bare offset; ones with epochs also take {offset, epoch}.
    if (from !== undefined) data.recover = { [this.topic]: from.epoch === undefined ? from.offset : from };
    this.#recovering = from !== undefined;
    try {
      const { replies } = await this.#host.request('Subscribe', data, 'subscribed');
      if (!this.#busy) return; // the connection dropped meanwhile
      const details = replies[0] as SubscribedDetails | undefined;
      const recovered = details?.recovered?.[this.topic];
      const reported = details?.positions?.[this.topic];
      if (from !== undefined) {
        this.#recovered = recovered ?? false;
        // Not recovered: the history the position belongs to is gone (a restart, or expiry), so
        // offsets may start over; only the server's own report (or the next message) says where.
        if (recovered !== true) this.#position = reported;
      } else if (reported !== undefined && this.#position === undefined) {
        this.#position = reported;
      }
      this.#recovering = false;
      this.#busy = false;
      this.#set('subscribed', true);
      if (this.#position === undefined && this.options.recover !== false) void this.#probe();
    } catch (error) {
      if (!this.#busy) return;
      this.#busy = false;
      this.#recovering = false;
      if (error instanceof SwitchyardError && (error.code === 'DISCONNECTED' || error.code === 'CLOSED')) return;
      if (from !== undefined && error instanceof SwitchyardError && error.code === 400) {
        // The server no longer takes that recovery (the topic keeps no history now): start over.
        this.#position = undefined;
        this.#recovered = false;
        this.sync();
        return;
      }
      this.#wanted = false;
      this.#set('unsubscribed');
      this.#events.emit('error', error instanceof SwitchyardError ? error : new SwitchyardError(500, String(error)));
      return;
    }
    this.sync();
  }

  async #unsubscribe(): Promise<void> {
    this.#busy = true;
    try {
      await this.#host.request('Unsubscribe', { topics: [this.topic] }, 'unsubscribed');
    } catch {
      // Refused or dropped: either way the server holds no subscription we rely on.
    }
    if (!this.#busy) return;
    this.#busy = false;
    this.#set('unsubscribed');
    this.sync();
  }

  /**
   * Where a history topic stands, for a server that did not say: the newest offset. Every message
   * up to it that was published after the subscription began has already arrived (the server
   * answers in order), so it is a safe position to recover from.
   */
  async #probe(): Promise<void> {
    if (this.#noHistory || isPattern(this.#host.syntax, this.topic)) return;
    try {
      const { replies } = await this.#host.request('History', { topic: this.topic, limit: 1 }, 'History');
      const page = replies[0] as HistoryData | undefined;
      if (page === undefined || this.#state !== 'subscribed') return;
      const seen = this.#position;
      if (seen === undefined || !sameEpoch(seen.epoch, page.epoch) || page.latest_offset > seen.offset) {
        this.#position = { offset: page.latest_offset, ...(page.epoch !== undefined && { epoch: page.epoch }) };
      }
    } catch (error) {
      if (error instanceof SwitchyardError && typeof error.code === 'number') this.#noHistory = true;
    }
  }

  /** The one place the state changes. */
  #set(state: SubscriptionState, force = false): void {
    const previous = this.#state;
    if (previous === state && !force) return;
    this.#state = state;
    this.#events.emit('state', { state, previous, recovering: this.#recovering, recovered: this.#recovered });
  }
}

/** Same history, as far as we can tell: a side that reports no epoch cannot tell us otherwise. */
function sameEpoch(a: string | undefined, b: string | undefined): boolean {
  return a === undefined || b === undefined || a === b;
}
