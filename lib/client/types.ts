/** The client's public types: states, events, options. */
import type { AuthStatusData, ConnectedDetails, PresenceData } from '../protocols/envelope-frames.js';
import type { BackoffOptions } from './backoff.js';
import type { WebSocketConstructor } from './socket.js';
import type { TopicSyntax } from './topics.js';

export type ClientState = 'disconnected' | 'connecting' | 'connected' | 'closed';

export interface StateEvent {
  state: ClientState;
  previous: ClientState;
  /** The close code that caused the change, if a close did. */
  code?: number;
  reason?: string;
}

export interface DirectMessage {
  /** The sender's principal id; null when the server sent it. */
  from: string | null;
  payload: unknown;
  binary?: Uint8Array;
  messageId?: string;
  sentAt?: number;
}

export interface ClientEvents {
  state: StateEvent;
  /** Terminal closes, refused token refreshes, unanswered server errors, and throws from your own callbacks. */
  error: Error;
  connected: ConnectedDetails;
  direct: DirectMessage;
  notification: unknown;
  /** Every Presence frame that was not the answer to a `presence()` query. */
  presence: PresenceData;
  authStatus: AuthStatusData;
  /** The token was refreshed in band. */
  refreshed: { token: string };
}

export interface ClientOptions {
  /** `ws://host/ws` or `wss://…`, or a function returning it (called on every connect). */
  url: string | (() => string);
  /** Called before every connect and on `AuthStatus token_expiring`. Return undefined for none. */
  getToken?: () => string | undefined | Promise<string | undefined>;
  /** How the token travels: `?token=` (default) or the subprotocol pair `['Bearer', token]`. */
  tokenIn?: 'query' | 'subprotocol';
  /** A WebSocket implementation (`ws` on Node 20). Default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  /** Reconnect delays. Default full jitter from 500 ms to 20 s. */
  backoff?: BackoffOptions;
  /** Default timeout of a request, in ms. Default 10 000. */
  requestTimeoutMs?: number;
  /**
   * With no frame for `idleMs` a Ping is sent; no answer in `timeoutMs` reconnects. Browsers do
   * not surface the server's WebSocket pings, hence a request. Default 25 000 / 10 000; false disables.
   */
  heartbeat?: { idleMs?: number; timeoutMs?: number } | false;
  /** The server's topic syntax (`topics` option). Default `/`, `+`, `#`. */
  topics?: Partial<TopicSyntax>;
  /** Follow the browser's `online` / `offline` events. Default true where they exist. */
  network?: boolean;
}

export interface RequestOptions {
  /** Default: the client's `requestTimeoutMs`. */
  timeoutMs?: number;
  /**
   * Send again after a reconnect if the connection drops before the answer (or send once
   * connected, if it is not). Default false: the request fails at once with `DISCONNECTED`.
   */
  retry?: boolean;
}
