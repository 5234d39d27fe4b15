/**
 * The switchyard client for browsers and Node: one connection that reconnects (full-jitter
 * backoff), resubscribes and recovers, refreshes its token in band, and turns requests into
 * promises. The connection's state changes in one function, `#transition`; user callbacks are
 * called through guarded emitters, so a throwing listener is an `error` event, never a broken
 * state. Imports nothing from `node:*`: pass `ws` as `WebSocket` on Node 20.
 */
import type {
  AckData, BinaryReceivedDetails, ConnectedDetails, ErrorData, HistoryData, PresenceData, ServerFrame,
} from '../protocols/envelope-frames.js';
import { backoffDelay } from './backoff.js';
import { decodeBinary, encodeBinary } from './binary.js';
import { Emitter } from './emitter.js';
import { SwitchyardError, TERMINAL_CLOSE_CODES, TOKEN_EXPIRED_CLOSE_CODE } from './errors.js';
import { RequestTable, type Pending, type ReplyKind, type RequestResult } from './requests.js';
import { Subscription, type Message, type SubscribeOptions, type SubscriptionHost } from './subscription.js';
import { DEFAULT_SYNTAX, topicMatches, type TopicSyntax } from './topics.js';
import type { WebSocketConstructor, WebSocketLike } from './socket.js';
import { Liveness } from './liveness.js';
import type { ClientEvents, ClientOptions, ClientState, RequestOptions } from './types.js';

export type { ClientEvents, ClientOptions, ClientState, DirectMessage, RequestOptions, StateEvent } from './types.js';

const enc = (v: unknown) => JSON.stringify(v);

export class Client {
  readonly syntax: TopicSyntax;
  readonly #options: ClientOptions;
  readonly #events: Emitter<ClientEvents>;
  readonly #requests = new RequestTable();
  readonly #subs = new Map<string, Subscription>();
  /** Requests waiting for a connection (only those that asked for `retry`). */
  #waiting: Pending[] = [];
  #state: ClientState = 'disconnected';
  #ws: WebSocketLike | undefined;
  #attempt = 0;
  #lastCode: number | undefined;
  #nextId = 0;
  #reconnectTimer: ReturnType<typeof setTimeout> | undefined;
  readonly #liveness: Liveness;
  readonly #subHost: SubscriptionHost;
  readonly #WebSocket: WebSocketConstructor;
  /** Counts connection attempts, so an attempt overtaken by close() or a new connect() stops. */
  #generation = 0;
  #reporting = false;
  readonly on: Emitter<ClientEvents>['on'];
  readonly off: Emitter<ClientEvents>['off'];

  constructor(options: ClientOptions) {
    const Ctor = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (typeof Ctor !== 'function') throw new TypeError('switchyard/client: no WebSocket implementation here; pass one as options.WebSocket (e.g. ws)');
    if (typeof options.url !== 'string' && typeof options.url !== 'function') throw new TypeError('switchyard/client: options.url must be a string or a function');
    this.#WebSocket = Ctor;
    this.#options = options;
    this.syntax = { ...DEFAULT_SYNTAX, ...options.topics };
    this.#subHost = {
      syntax: this.syntax,
      connected: () => this.#state === 'connected',
      request: (type, data, expects) => this.#request(type, data, {}, expects),
      reportError: (e) => this.#reportError(e),
    };
    this.#events = new Emitter((e) => this.#reportError(e));
    this.on = this.#events.on.bind(this.#events);
    this.off = this.#events.off.bind(this.#events);
    this.#liveness = new Liveness(options, {
      ping: (timeoutMs) => this.ping({ timeoutMs }),
      connected: () => this.#state === 'connected',
      drop: (reason) => this.#drop(undefined, reason),
      online: () => {
        if (this.#state !== 'disconnected') return;
        this.#attempt = 0;
        this.#schedule(0);
      },
    });
  }

  get state(): ClientState {
    return this.#state;
  }

  /** Connects (and keeps reconnecting) until `close()` or a terminal close code. */
  connect(): this {
    if (this.#state === 'disconnected' || this.#state === 'closed') {
      this.#attempt = 0;
      this.#liveness.listen();
      void this.#open();
    }
    return this;
  }

  /** Closes for good (code 1000): pending requests fail with `CLOSED`, no reconnect. */
  close(): void {
    if (this.#state === 'closed') return;
    this.#liveness.unlisten();
    this.#teardown(1000, 'client closed');
    this.#fail(new SwitchyardError('CLOSED', 'the client was closed'), false);
    this.#transition('closed', 1000, 'client closed');
  }

  /** The subscription to `topic` (one object per topic, however often it is asked for), subscribed. */
  subscribe(topic: string, options?: SubscribeOptions): Subscription {
    let sub = this.#subs.get(topic);
    if (sub === undefined) {
      sub = new Subscription(this.#subHost, topic, options);
      this.#subs.set(topic, sub);
    }
    return sub.subscribe();
  }

  /** Unsubscribes and forgets the subscription (its position too): the next `subscribe` starts afresh. */
  removeSubscription(topic: string): void {
    this.#subs.get(topic)?.unsubscribe();
    this.#subs.delete(topic);
  }

  /** The subscription to `topic`, if `subscribe` made one. */
  subscription(topic: string): Subscription | undefined {
    return this.#subs.get(topic);
  }

  /** Presence changes of one user (or everyone, with `+`/`*`) as a subscription to `$presence<sep><id>`. */
  watchPresence(userId: string = this.syntax.single): Subscription {
    return this.subscribe(`$presence${this.syntax.separator}${userId}`, { recover: false });
  }

  // ── requests ──────────────────────────────────────────────────────────────

  /** Broadcasts to a topic; resolves with the Ack (`recipients`, `offset`/`epoch` on history topics). */
  async publish(topic: string, payload: unknown, options: RequestOptions & { echo?: boolean } = {}): Promise<AckData> {
    const data = options.echo === undefined ? { topic, payload } : { topic, payload, echo: options.echo };
    return (await this.#request('Broadcast', data, options)).ack!;
  }

  /** A direct message to every connection of a user; rejects with code 404 (`details.queued`) when it has none. */
  async send(targetUser: string, payload: unknown, options: RequestOptions = {}): Promise<AckData> {
    return (await this.#request('DirectMessage', { target_user: targetUser, payload }, options)).ack!;
  }

  /** A topic's kept messages after `since` (`limit: 1` is the latest value). */
  async history(topic: string, query: { since?: number; limit?: number } = {}, options: RequestOptions = {}): Promise<HistoryData> {
    return (await this.#request('History', { topic, ...query }, options, 'History')).replies[0] as HistoryData;
  }

  /** Presence of users (each needs subscribe permission on its presence topic). */
  async presence(userIds: string[], options: RequestOptions = {}): Promise<PresenceData[]> {
    return (await this.#request('Presence', { user_ids: userIds }, options, 'Presence', new Set(userIds))).replies as PresenceData[];
  }

  /** A host-registered `X-` type; resolves with what its handler returned. */
  async call(type: `X-${string}`, data?: unknown, options: RequestOptions = {}): Promise<unknown> {
    return (await this.#request(type, data ?? {}, options)).ack?.result;
  }

  /** Round trip to the server; resolves with the time it took, in ms. */
  async ping(options: RequestOptions = {}): Promise<number> {
    const start = Date.now();
    await this.#request('Ping', { timestamp: start }, options, 'Pong');
    return Date.now() - start;
  }

  /** A binary broadcast; resolves with the server's `binary_received` details. */
  publishBinary(topic: string, data: Uint8Array, options: RequestOptions = {}): Promise<BinaryReceivedDetails> {
    return this.#binary(1, topic, data, options);
  }

  /** A binary direct message. */
  sendBinary(targetUser: string, data: Uint8Array, options: RequestOptions = {}): Promise<BinaryReceivedDetails> {
    return this.#binary(2, targetUser, data, options);
  }

  /** Gets a new token from `getToken` and hands it to the server without reconnecting. */
  async refresh(options: RequestOptions = {}): Promise<void> {
    const token = await this.#token();
    if (token === undefined) return;
    try {
      await this.#request('Refresh', { token }, options);
      this.#events.emit('refreshed', { token });
    } catch (error) {
      // A server without in-band refresh (Error 400): reconnect with the new token instead.
      if (error instanceof SwitchyardError && error.code === 400 && this.#state === 'connected') this.#drop(undefined, 'token refresh');
      else throw error;
    }
  }

  async #binary(type: number, name: string, data: Uint8Array, options: RequestOptions): Promise<BinaryReceivedDetails> {
    return (await this.#send(null, encodeBinary(type, name, data), options, 'binary')).replies[0] as BinaryReceivedDetails;
  }

  #request(type: string, data: unknown, options: RequestOptions, expects?: ReplyKind, users?: ReadonlySet<string>): Promise<RequestResult> {
    const id = `c${++this.#nextId}`;
    return this.#send(id, `{"type":${enc(type)},"data":${enc(data)},"id":"${id}"}`, options, expects, users);
  }

  #send(id: string | null, frame: string | Uint8Array, options: RequestOptions, expects?: ReplyKind, users?: ReadonlySet<string>): Promise<RequestResult> {
    return new Promise((resolve, reject) => {
      const retry = options.retry === true;
      if (this.#state !== 'connected' && !retry) {
        reject(new SwitchyardError(this.#state === 'closed' ? 'CLOSED' : 'DISCONNECTED', `not connected (${this.#state})`));
        return;
      }
      const pending: Pending = { id, frame, expects, retry, replies: [], dead: false, timer: undefined, resolve, reject };
      if (users !== undefined) pending.users = users;
      const timeoutMs = options.timeoutMs ?? this.#options.requestTimeoutMs ?? 10_000;
      pending.timer = setTimeout(() => {
        this.#waiting = this.#waiting.filter((p) => p !== pending);
        this.#requests.expire(pending, new SwitchyardError('TIMEOUT', `no answer within ${timeoutMs} ms`, { message_id: id }));
      }, timeoutMs);
      if (this.#state === 'connected') this.#write(pending);
      else this.#waiting.push(pending);
    });
  }

  #write(pending: Pending): void {
    this.#requests.add(pending);
    try {
      this.#ws?.send(pending.frame);
    } catch {
      // The socket is closing: its close event fails (or keeps, with retry) this request.
    }
  }

  // ── connection ────────────────────────────────────────────────────────────

  /** The one place the connection's state changes. */
  #transition(state: ClientState, code?: number, reason?: string): void {
    const previous = this.#state;
    if (previous === state) return;
    this.#state = state;
    this.#events.emit('state', { state, previous, ...(code !== undefined && { code }), ...(reason !== undefined && { reason }) });
  }

  async #open(): Promise<void> {
    const generation = ++this.#generation;
    this.#transition('connecting', this.#lastCode);
    let token: string | undefined;
    try {
      token = await this.#token();
    } catch (error) {
      if (generation !== this.#generation || this.#state !== 'connecting') return;
      this.#reportError(new SwitchyardError('TOKEN', 'getToken failed', {}, error));
      this.#transition('disconnected', undefined, 'getToken failed');
      this.#schedule();
      return;
    }
    // Closed, or closed and connected again, while getToken ran: this attempt is stale.
    if (generation !== this.#generation || this.#state !== 'connecting') return;
    const Ctor = this.#WebSocket;
    const base = typeof this.#options.url === 'function' ? this.#options.url() : this.#options.url;
    const inQuery = token !== undefined && this.#options.tokenIn !== 'subprotocol';
    const url = inQuery ? `${base}${base.includes('?') ? '&' : '?'}token=${encodeURIComponent(token!)}` : base;
    let ws: WebSocketLike;
    try {
      ws = token !== undefined && !inQuery ? new Ctor(url, ['Bearer', token]) : new Ctor(url);
    } catch (error) {
      this.#reportError(error);
      this.#transition('disconnected', undefined, 'WebSocket constructor failed');
      this.#schedule();
      return;
    }
    this.#ws = ws;
    ws.binaryType = 'arraybuffer';
    ws.onmessage = (event) => this.#receive(event.data);
    ws.onclose = (event) => this.#closed(event.code, event.reason);
    ws.onerror = () => {}; // a close event follows
    this.#liveness.start();
  }

  #token(): Promise<string | undefined> {
    return Promise.resolve(this.#options.getToken?.());
  }

  /** The socket closed (or was dropped by us): fail or keep requests, reset subscriptions, maybe reconnect. */
  #closed(code: number, reason: string): void {
    this.#teardown();
    this.#lastCode = code;
    const terminal = TERMINAL_CLOSE_CODES.includes(code);
    // After a terminal close nothing will be sent again: requests waiting for a retry fail too.
    this.#fail(new SwitchyardError('DISCONNECTED', `connection closed (${code}${reason ? ` ${reason}` : ''})`, { code }), !terminal);
    if (terminal) {
      this.#liveness.unlisten();
      this.#transition('closed', code, reason);
      this.#reportError(new SwitchyardError(code, `connection refused for good (${code}${reason ? ` ${reason}` : ''}); not reconnecting`, { code, reason }));
      return;
    }
    this.#transition('disconnected', code, reason);
    this.#schedule(code === TOKEN_EXPIRED_CLOSE_CODE && this.#attempt === 0 ? 0 : undefined);
  }

  /** Stops listening to the current socket and closes it; timers off. */
  #teardown(code?: number, reason?: string): void {
    clearTimeout(this.#reconnectTimer);
    this.#liveness.stop();
    const ws = this.#ws;
    this.#ws = undefined;
    if (ws === undefined) return;
    ws.onmessage = ws.onclose = null;
    try {
      ws.close(code ?? 4000, reason);
    } catch {
      // already closing
    }
  }

  /** Gives up on a live connection (heartbeat missed, offline, token refresh) and reconnects. */
  #drop(code: number | undefined, reason: string): void {
    if (this.#ws === undefined) return;
    this.#teardown(4000, reason);
    this.#fail(new SwitchyardError('DISCONNECTED', `connection dropped (${reason})`), true);
    this.#transition('disconnected', code, reason);
    this.#schedule(0);
  }

  #fail(error: SwitchyardError, keepRetries: boolean): void {
    const retry = this.#requests.drop(error);
    if (keepRetries) this.#waiting.push(...retry);
    else for (const p of [...retry, ...this.#waiting.splice(0)]) { clearTimeout(p.timer); p.reject(error); }
    for (const sub of this.#subs.values()) sub.disconnected();
  }

  #schedule(delay = backoffDelay(this.#attempt, this.#options.backoff)): void {
    if (this.#state === 'closed') return;
    this.#attempt++;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = setTimeout(() => void this.#open(), delay);
  }

  // ── inbound ───────────────────────────────────────────────────────────────

  /** One frame from the socket. A frame this client cannot read is reported, never thrown into the socket's event loop. */
  #receive(data: unknown): void {
    this.#liveness.heard();
    try {
      this.#dispatch(data);
    } catch (error) {
      this.#reportError(error);
    }
  }

  #dispatch(data: unknown): void {
    if (typeof data !== 'string') {
      this.#receiveBinary(new Uint8Array(data as ArrayBuffer));
      return;
    }
    const frame = JSON.parse(data) as ServerFrame;
    const d = frame.data as never;
    switch (frame.type) {
      case 'Status': return this.#status(frame.data);
      case 'Ack': return void this.#requests.ack(frame.data);
      case 'Error': return this.#error(frame.data);
      case 'Broadcast': {
        const { topic, payload, metadata: m } = frame.data;
        return this.#route({ topic, payload, messageId: m?.message_id, sentAt: m?.sent_at, offset: m?.offset, epoch: m?.epoch });
      }
      case 'DirectMessage': {
        const { from_user: from, payload, metadata: m } = frame.data;
        return this.#events.emit('direct', { from, payload, messageId: m?.message_id, sentAt: m?.sent_at });
      }
      case 'Presence': {
        const p = frame.data;
        if (this.#requests.reply('Presence', p, p.user_id)) return;
        this.#events.emit('presence', p);
        return this.#route({ topic: `$presence${this.syntax.separator}${p.user_id}`, payload: p });
      }
      case 'History': return void this.#requests.reply('History', d);
      case 'Pong': return void this.#requests.reply('Pong', d);
      case 'Notification': return this.#events.emit('notification', d);
      case 'AuthStatus':
        this.#events.emit('authStatus', d);
        if (this.#options.getToken !== undefined) this.refresh().catch((e: unknown) => this.#reportError(e));
    }
  }

  #status(data: { status: string; details: unknown }): void {
    switch (data.status) {
      case 'connected': {
        this.#attempt = 0;
        this.#transition('connected', this.#lastCode);
        this.#events.emit('connected', data.details as ConnectedDetails);
        for (const sub of this.#subs.values()) sub.sync();
        for (const p of this.#waiting.splice(0)) this.#write(p);
        return;
      }
      case 'subscribed':
      case 'unsubscribed':
        // The host's own subscribe/unsubscribe of this connection answers no request of ours.
        if ((data.details as { by?: string } | null)?.by === 'server') return;
        return void this.#requests.reply(data.status, data.details);
      case 'binary_received':
        return void this.#requests.reply('binary', data.details);
    }
  }

  #error(data: ErrorData): void {
    if (this.#requests.error(data)) return;
    const error = new SwitchyardError(data.code, data.message, data.details ?? {});
    const topics = data.code === 403 && Array.isArray(data.details?.topics) ? (data.details.topics as string[]) : [];
    const lost = topics.map((t) => this.#subs.get(t)).filter((s) => s !== undefined);
    if (lost.length > 0) for (const sub of lost) sub.revoked(error);
    else this.#reportError(error);
  }

  #receiveBinary(bytes: Uint8Array): void {
    const frame = decodeBinary(bytes);
    if (frame?.type === 1) this.#route({ topic: frame.name, payload: undefined, binary: frame.data });
    else if (frame?.type === 2) this.#events.emit('direct', { from: frame.name, payload: undefined, binary: frame.data });
  }

  /** Hands a delivery to every subscription whose pattern matches its topic. */
  #route(message: Message): void {
    for (const sub of this.#subs.values()) if (topicMatches(this.syntax, sub.topic, message.topic)) sub.deliver(message);
  }

  #reportError(error: unknown): void {
    // A throwing `error` listener is dropped here: there is nowhere left to report it.
    if (this.#reporting || !this.#events.has('error')) return;
    this.#reporting = true;
    try {
      this.#events.emit('error', error instanceof Error ? error : new SwitchyardError('CALLBACK', String(error)));
    } finally {
      this.#reporting = false;
    }
  }
}

/** A client (not yet connected: call `connect()`). */
export function createClient(options: ClientOptions): Client {
  return new Client(options);
}
