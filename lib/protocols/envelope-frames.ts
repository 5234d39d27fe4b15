/**
 * Every frame of the envelope protocol (seed 001), as types only: the one place a frame's shape
 * is written down. The server (`envelope.ts`) and the browser/Node client (`lib/client/`) both
 * import these, so a shape cannot drift between them and the README's frame table. Types only:
 * importing this module costs nothing at run time and pulls in nothing from `node:*`.
 */

/** Every client frame: `{type, data, id?, timestamp?}`. A request with an `id` gets one Ack or one Error naming it. */
export interface Envelope<T extends string, D> {
  type: T;
  data: D;
  id?: string;
  timestamp?: number;
}

/** A history position: the offset of the last message seen and the epoch of the history it belongs to. */
export interface Position {
  offset: number;
  /** Changes whenever the store lost the topic's history; absent on servers that do not report it. */
  epoch?: string;
}

// ── client → server ────────────────────────────────────────────────────────

export type PingFrame = Envelope<'Ping', { timestamp?: number } | undefined>;
export type PongRequestFrame = Envelope<'Pong', { timestamp?: number } | undefined>;
export interface SubscribeData {
  topics: string[];
  /** `{field: [allowed values]}` (seed 003 filters), evaluated on the server. */
  filters?: Record<string, unknown[]>;
  /** Per concrete history topic: the position last seen (a bare number is an offset with no epoch). */
  recover?: Record<string, number | Position>;
}
export type SubscribeFrame = Envelope<'Subscribe', SubscribeData>;
export type UnsubscribeFrame = Envelope<'Unsubscribe', { topics: string[] }>;
export type BroadcastRequestFrame = Envelope<'Broadcast', { topic: string; payload: unknown; echo?: boolean }>;
export type DirectMessageRequestFrame = Envelope<'DirectMessage', { target_user: string; payload: unknown }>;
export type HistoryRequestFrame = Envelope<'History', { topic: string; since?: number; limit?: number }>;
export type PresenceRequestFrame = Envelope<'Presence', { user_ids: string[] }>;
/** In-band token refresh: authenticate again without dropping the connection. */
export type RefreshFrame = Envelope<'Refresh', { token: string }>;
export type CustomFrame = Envelope<`X-${string}`, unknown>;

export type ClientFrame =
  | PingFrame
  | PongRequestFrame
  | SubscribeFrame
  | UnsubscribeFrame
  | BroadcastRequestFrame
  | DirectMessageRequestFrame
  | HistoryRequestFrame
  | PresenceRequestFrame
  | RefreshFrame
  | CustomFrame;

// ── server → client ────────────────────────────────────────────────────────

export interface ConnectedDetails {
  connection_id: string;
  /** Milliseconds since the Unix epoch. */
  server_time: number;
  protocol_version: string;
  features: string[];
}
export interface SubscribedDetails {
  topics: string[];
  active_subscriptions: number;
  /** For each topic recovery was asked for: whether every missed message was replayed. */
  recovered?: Record<string, boolean>;
  /** Where each history topic stands after the Subscribe (servers with epochs). */
  positions?: Record<string, Position>;
  /** `'server'` when the host subscribed the connection (`broker.subscribe`), not a client's Subscribe. */
  by?: 'server';
}
export interface UnsubscribedDetails {
  topics: string[];
  active_subscriptions: number;
  /** `'server'` when the host unsubscribed the connection (`broker.unsubscribe`). */
  by?: 'server';
}
export interface BinaryReceivedDetails {
  /** Bytes of data after the topic/target header. */
  size: number;
  type: 'broadcast' | 'direct_message' | 'file_transfer' | 'stream_data';
  /** `sha256:<hex>` of the data. */
  checksum: string;
  recipients?: number;
  partial?: true;
  missing_nodes?: string[];
  delivered_to?: string[];
}
export type StatusFrame =
  | Envelope<'Status', { status: 'connected'; details: ConnectedDetails }>
  | Envelope<'Status', { status: 'subscribed'; details: SubscribedDetails }>
  | Envelope<'Status', { status: 'unsubscribed'; details: UnsubscribedDetails }>
  | Envelope<'Status', { status: 'binary_received'; details: BinaryReceivedDetails }>;

export interface AckData {
  message_id: string;
  status: 'ok' | 'delivered';
  /**
   * Broadcast: connections the message was handed to on the server's node; with the broker's
   * `clusterAcks`, on every node that answered in time.
   */
  recipients?: number;
  /** Broadcast with `clusterAcks`: some node did not answer in time (`recipients` lacks its count). */
  partial?: true;
  /** Broadcast with `clusterAcks`: the ids of the nodes that did not answer in time. */
  missing_nodes?: string[];
  /** Broadcast to a history topic: the message's offset and its history's epoch. */
  offset?: number;
  epoch?: string;
  /** DirectMessage: connection ids that received it. */
  delivered_to?: string[];
  /** `X-` custom handlers: what the handler returned. */
  result?: unknown;
  /** Refresh: when the new credentials expire (ms since the Unix epoch), if they do. */
  expires_at?: number;
}
export type AckFrame = Envelope<'Ack', AckData>;

export interface DeliveryMetadata {
  /** Milliseconds since the Unix epoch. */
  sent_at: number;
  message_id: string;
  /** History topics only. */
  offset?: number;
  epoch?: string;
}
export type BroadcastFrame = Envelope<'Broadcast', { topic: string; payload: unknown; metadata: DeliveryMetadata }>;
export type DirectMessageFrame = Envelope<'DirectMessage', { from_user: string | null; payload: unknown; metadata: DeliveryMetadata }>;
export type PongFrame = Envelope<'Pong', { timestamp: number }>;
export interface ErrorData {
  /** Seed 001's numeric code: 400, 401, 403, 404, 429, 500, 503. */
  code: number;
  message: string;
  /** `message_id` of the request, `topics`, `retry_after_ms`, `queued`… */
  details: Record<string, unknown>;
}
export type ErrorFrame = Envelope<'Error', ErrorData>;
export type NotificationFrame = Envelope<'Notification', unknown>;
export interface PresenceData {
  user_id: string;
  status: 'online' | 'offline';
  /** Milliseconds since the Unix epoch, or null if never seen. */
  last_seen: number | null;
  metadata: Record<string, unknown>;
}
export type PresenceFrame = Envelope<'Presence', PresenceData>;
export interface AuthStatusData {
  status: 'token_expiring';
  /** Milliseconds since the Unix epoch. */
  expires_at: number;
  refresh_required: boolean;
}
export type AuthStatusFrame = Envelope<'AuthStatus', AuthStatusData>;
export interface HistoryMessage {
  /** A binary message's payload is `{binary: <base64>}`. */
  payload: unknown;
  metadata: DeliveryMetadata & { offset: number };
}
export interface HistoryData {
  topic: string;
  messages: HistoryMessage[];
  latest_offset: number;
  epoch?: string;
  /** False when history no longer reaches back to `since`. */
  complete: boolean;
}
export type HistoryFrame = Envelope<'History', HistoryData>;

export type ServerFrame =
  | StatusFrame
  | AckFrame
  | BroadcastFrame
  | DirectMessageFrame
  | PongFrame
  | ErrorFrame
  | NotificationFrame
  | PresenceFrame
  | AuthStatusFrame
  | HistoryFrame;

/** Binary frame types (seed 001): `[1 byte type][4 bytes big-endian length][payload]`. */
export const BINARY_TYPE = { broadcast: 1, direct_message: 2, file_transfer: 3, stream_data: 4 } as const;
