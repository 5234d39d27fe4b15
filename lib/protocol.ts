/**
 * The Protocol extension point: frames in, broker operations out; deliveries in, frames out.
 * A protocol never touches a socket: it talks to a Connection.
 */
import type { Awaitable } from './awaitable.js';
import type { BrokerError } from './errors.js';
import type { HistoryPage, HistoryPosition, HistoryQuery, RecoverFrom } from './store.js';
import type { Filter, Principal } from './types.js';

/** A message on its way to connections. Encoded at most once per protocol, then shared. */
export type Delivery =
  | {
      kind: 'publish';
      topic: string;
      payload: unknown;
      /** Set for binary broadcasts: the data after the topic header. */
      binary?: Buffer;
      messageId: string;
      sentAt: number;
      /** Per-topic offset when the topic keeps history. */
      offset?: number;
      /** Epoch of the topic's history the offset belongs to (set whenever offset is). */
      epoch?: string;
      /** Principal id of the publisher, or null for the server. */
      from: string | null;
    }
  | {
      kind: 'direct';
      from: string | null;
      target: string;
      payload: unknown;
      /** Set for binary direct messages. */
      binary?: Buffer;
      messageId: string;
      sentAt: number;
    }
  | { kind: 'notification'; data: unknown; sentAt: number };

export interface SubscribeResult {
  /** The patterns now subscribed (as given). */
  topics: string[];
  /** Subscriptions the connection holds after the change. */
  active: number;
  /** For each topic recovery was asked for: whether every missed message could be replayed. */
  recovered?: Record<string, boolean>;
  /** For each recovered topic: the position the connection is at after the replay. */
  positions?: Record<string, HistoryPosition>;
}

/** A principal's presence, as `Presence` frames carry it (seed 001). */
export interface PresenceInfo {
  user_id: string;
  status: 'online' | 'offline';
  /** Last time the principal was seen connected (ms since the epoch), or null if never. */
  last_seen: number | null;
  metadata: Record<string, unknown>;
}

export interface PublishResult {
  messageId: string;
  /**
   * Connections the message was handed to: on this node, or with `clusterAcks` on every node
   * that answered in time.
   */
  recipients: number;
  /** With `clusterAcks`: the nodes that did not answer within its timeout (absent when all did). */
  missingNodes?: string[];
  offset?: number;
  /** Epoch of the topic's history `offset` belongs to (set whenever offset is). */
  epoch?: string;
}

export interface DirectResult {
  messageId: string;
  /** Connection ids that received it, on this node and (in a cluster) the ones known to others. */
  deliveredTo: string[];
  /** True when the target had no connection and the message was kept for later. */
  queued: boolean;
}

export interface PublishOptions {
  /** Deliver to the publishing connection too. Default: the endpoint's `echo` (false). */
  echo?: boolean;
  /** Binary data for a binary broadcast. */
  binary?: Buffer;
  /**
   * With the broker's `clusterAcks`: false when the caller reports no `recipients` (no Ack to
   * send), so the publish neither asks the other nodes for their counts nor waits for them.
   * Default true.
   */
  clusterCount?: boolean;
}

/** One authenticated connection, as a protocol sees it. */
export interface Connection {
  readonly id: string;
  readonly principal: Principal;
  /** Path parameters of the endpoint's pattern. */
  readonly params: Readonly<Record<string, string>>;
  /** Query parameters of the upgrade request (without `token`). */
  readonly query: Readonly<Record<string, string>>;
  /** Request headers of the upgrade. */
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  /** Subscribed patterns and their filters. */
  readonly subscriptions: ReadonlyMap<string, Filter | null>;
  /** Per-protocol state the protocol may keep on the connection. */
  state: unknown;

  /** Sends a JSON value as a text frame. */
  send(message: unknown): void;
  /** Sends a text (string) or binary (Buffer) frame as is. */
  sendRaw(data: string | Buffer): void;
  /** Subscribes all or nothing; rejects with a BrokerError (400 invalid, 403 denied with the topics, 400 limit). */
  subscribe(patterns: string[], filters?: Filter | null, recover?: RecoverFrom): Promise<SubscribeResult>;
  /**
   * In-band token refresh: authenticates `token` again through the endpoint's `authenticate`
   * (credentials `{ scheme: 'bearer', token, source: 'refresh' }`), keeps the connection and
   * replaces its principal (same id required), re-checks its subscriptions and re-arms its expiry.
   * Rejects with `SY_ERR_INVALID_CREDENTIALS` when refused or for another principal.
   */
  refresh(token: string): Promise<Principal>;
  /** Removes subscriptions; unknown ones are ignored. */
  unsubscribe(patterns: string[]): SubscribeResult;
  /**
   * Publishes after validating the topic and checking `publish` permission. Synchronous (a
   * plain result, errors thrown) when authorization and the store are, else a promise:
   * `await` it either way.
   */
  publish(topic: string, payload: unknown, options?: PublishOptions): Awaitable<PublishResult>;
  /** Sends to every connection of a principal (queued when offline and queueing is on). */
  sendDirect(target: string, payload: unknown, options?: { binary?: Buffer }): Promise<DirectResult>;
  /** Reads a topic's history (needs subscribe permission on it). */
  history(topic: string, query: HistoryQuery): Promise<HistoryPage>;
  /** Current presence of principals (needs subscribe permission on each presence topic). */
  presence(principalIds: string[]): Promise<PresenceInfo[]>;
  /** Closes with a code (remapped by the endpoint's `closeCodes`) and a reason. */
  close(code: number, reason?: string): void;
}

export interface Protocol {
  readonly name: string;
  /** The connection is authenticated and registered: send the welcome, bind topics… */
  open(conn: Connection): void | Promise<void>;
  /** One inbound frame. Errors it throws become `fail(conn, error)`. */
  receive(conn: Connection, data: Buffer, isBinary: boolean): Awaitable<void>;
  /**
   * The frame body for a delivery: a string (text frame) or a Buffer (binary frame), or null
   * when this protocol does not carry that kind of delivery. Called once per delivery per
   * protocol; the result is shared by every connection of that protocol.
   */
  encode(delivery: Delivery): string | Buffer | null;
  /** An inbound frame was refused (rate limit) or its handling failed; tell the client. */
  fail(conn: Connection, error: BrokerError, data?: Buffer, isBinary?: boolean): void;
  /** Subscriptions were dropped because the principal lost permission for them. */
  permissionLost(conn: Connection, patterns: string[]): void;
  /** The principal's credentials expire at `expiresAt` (ms since the epoch). */
  tokenExpiring?(conn: Connection, expiresAt: number): void;
  /** The host subscribed the connection from the server (`broker.subscribe`): tell the client. */
  subscribed?(conn: Connection, result: SubscribeResult): void;
  /** The host unsubscribed the connection from the server (`broker.unsubscribe`): tell the client. */
  unsubscribed?(conn: Connection, result: SubscribeResult): void;
  /**
   * The server is about to close the connection with `code` (after remapping): a last chance to
   * send a frame, e.g. seed 003's AUTH_ERROR before a revoked token's 4002.
   */
  closing?(conn: Connection, code: number, reason: string): void;
  /**
   * A handshake is refused under the `'close'` policy: the text frame to send before the close
   * code, or null for none (seed 003 sends an `AUTH_ERROR` frame, then closes 4001/4003).
   * There is no Connection: the socket was never registered.
   */
  refused?(error: BrokerError): string | null;
}
