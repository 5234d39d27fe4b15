/**
 * The envelope protocol (seed 001): `{type, data, id?, timestamp?}` JSON frames. Every request
 * carrying an `id` gets exactly one Ack or Error naming it; the replies the seed documents
 * (Status for Subscribe/Unsubscribe, Pong for Ping) come first (DESIGN.md "Acks").
 */
import { createHash } from 'node:crypto';
import { andThen, isPipelined, isThenable, pipelined, type Awaitable } from '../awaitable.js';
import { BrokerError, CloseCode, type ErrorCode } from '../errors.js';
import { PRESENCE_ROOT } from '../presence.js';
import { parseObject, parseObjectText, resolveMaxJsonDepth, trailingMember } from './json.js';
import type { Connection, Delivery, Protocol, PublishOptions, PublishResult } from '../protocol.js';
import { positionFrom, type HistoryRecord } from '../store.js';
import type { Principal } from '../types.js';
// The one definition of every frame's shape, shared with switchyard/client: the frames built
// here are checked against it (`satisfies`); the hand-written hot-path templates follow it too.
import type {
  AuthStatusFrame, DirectMessageFrame, ErrorFrame, HistoryFrame, HistoryMessage, NotificationFrame, PresenceFrame, StatusFrame,
} from './envelope-frames.js';

/** A handler for an `X-…` custom type; its result (if not undefined) is returned in the Ack as `result`. */
export type CustomHandler = (conn: Connection, data: unknown) => unknown;

/** A handler for binary file transfer (0x03) or stream data (0x04) frames. */
export type BinaryHandler = (conn: Connection, data: Buffer) => void | Promise<void>;

export interface EnvelopeOptions {
  /** Handlers for `X-` custom message types. Unregistered ones get Error 400. */
  handlers?: Record<string, CustomHandler>;
  /** `protocol_version` in the welcome. Default `'1.0'`. */
  protocolVersion?: string;
  /** `features` in the welcome. Default: what this broker serves. */
  features?: string[];
  /** Handlers for binary `file_transfer` (0x03) and `stream_data` (0x04) frames; others get Error 400. */
  binary?: { file_transfer?: BinaryHandler; stream_data?: BinaryHandler };
  /**
   * Deepest nesting of arrays and objects in an inbound JSON frame; a deeper one is refused
   * before it is parsed (Error 400 naming the request's id). Default 128 (issue 16: a payload nested deeper than
   * `JSON.stringify` can encode would otherwise be accepted and delivered to no one).
   */
  maxJsonDepth?: number;
}

/** Binary frame types (seed 001): `[1 byte type][4 bytes BE length][payload]`. */
const BINARY_TYPES = { 1: 'broadcast', 2: 'direct_message', 3: 'file_transfer', 4: 'stream_data' } as const;
const MAX_HISTORY_LIMIT = 1000;
/** A Refresh refused with one of these closes the connection (4003) after its Error. */
const REFUSALS: ReadonlySet<ErrorCode> = new Set(['SY_ERR_INVALID_CREDENTIALS', 'SY_ERR_MISSING_CREDENTIALS', 'SY_ERR_TOKEN_REVOKED']);

interface Request {
  type: string;
  data: unknown;
  id: string | undefined;
  /** The id as JSON (quoted), when the frame gave it without escapes; else undefined. */
  idJson: string | undefined;
}

const MAX_ID_LENGTH = 128;

type Handler = (conn: Connection, req: Request) => Awaitable<void>;

export function envelope(options: EnvelopeOptions = {}): Protocol {
  const custom = new Map(Object.entries(options.handlers ?? {}));
  for (const [type, handler] of custom) {
    if (!type.startsWith('X-') || typeof handler !== 'function') {
      throw new TypeError(`envelope: custom handler '${type}' must be a function registered under an 'X-' type`);
    }
  }
  const protocolVersion = options.protocolVersion ?? '1.0';
  const maxJsonDepth = resolveMaxJsonDepth(options.maxJsonDepth, 'envelope');
  const features = options.features ?? ['broadcast', 'direct_message', 'presence', 'history'];

  const welcomeTail = `,"protocol_version":${JSON.stringify(protocolVersion)},"features":${JSON.stringify(features)}}}}`;
  const handlers: Record<string, Handler> = {
    Ping(conn, req) {
      const data = optionalObject(req.data, 'Ping');
      // Echoes whatever timestamp the client sent (seed 001's PongFrame says a number; we do not police it).
      conn.send({ type: 'Pong', data: { timestamp: data?.timestamp ?? Date.now() } });
      ack(conn, req, { status: 'ok' });
    },

    // Seed 001's client answers a JSON Ping with a Pong; nothing to do but acknowledge an id.
    Pong(conn, req) {
      ack(conn, req, { status: 'ok' });
    },

    async Subscribe(conn, req) {
      const data = requireObject(req.data, 'Subscribe');
      const topics = stringArray(data.topics, 'Subscribe', 'data.topics');
      const result = await conn.subscribe(topics, (data.filters ?? null) as never, data.recover as never);
      const recovered = result.recovered ? `,"recovered":${JSON.stringify(result.recovered)},"positions":${JSON.stringify(result.positions ?? {})}` : '';
      conn.sendRaw(`{"type":"Status","data":{"status":"subscribed","details":{"topics":${JSON.stringify(result.topics)},"active_subscriptions":${result.active}${recovered}}}}`);
      ack(conn, req, { status: 'ok' });
    },

    async History(conn, req) {
      const data = requireObject(req.data, 'History');
      if (typeof data.topic !== 'string') throw bad('History needs data.topic (a string)');
      const since = data.since === undefined || data.since === null ? undefined : positionFrom(data.since);
      if (since === undefined && data.since !== undefined && data.since !== null) {
        throw bad('data.since must be {offset, epoch} or a non-negative integer', { field: 'data.since' });
      }
      const limit = optionalCount(data.limit, 'limit', MAX_HISTORY_LIMIT) ?? MAX_HISTORY_LIMIT;
      const page = await conn.history(data.topic, { ...(since !== undefined && { since }), limit });
      conn.send({
        type: 'History',
        data: { topic: data.topic, messages: page.records.map(historyMessage), latest_offset: page.latestOffset, epoch: page.epoch, complete: page.complete },
      } satisfies HistoryFrame);
      ack(conn, req, { status: 'ok' });
    },

    async Presence(conn, req) {
      const data = requireObject(req.data, 'Presence');
      const ids = stringArray(data.user_ids ?? (typeof data.user_id === 'string' ? [data.user_id] : undefined), 'Presence', 'data.user_ids');
      for (const info of await conn.presence(ids)) conn.send({ type: 'Presence', data: info } satisfies PresenceFrame);
      ack(conn, req, { status: 'ok' });
    },

    // In-band token refresh: the connection stays; a refused token gets its Error, then close 4003.
    async Refresh(conn, req) {
      const data = requireObject(req.data, 'Refresh');
      if (typeof data.token !== 'string' || data.token === '') throw bad('Refresh needs data.token (a non-empty string)');
      let principal: Principal;
      try {
        principal = await conn.refresh(data.token);
      } catch (err) {
        if (!(err instanceof BrokerError) || !REFUSALS.has(err.code)) throw err;
        conn.state = undefined;
        conn.send({ type: 'Error', data: { code: err.status, message: err.message, details: { ...err.details, message_id: req.id } } } satisfies ErrorFrame);
        conn.close(CloseCode.INVALID_CREDENTIALS, 'token refresh refused');
        return;
      }
      ack(conn, req, { status: 'ok', ...(principal.expiresAt !== undefined && { expires_at: principal.expiresAt }) });
    },

    Unsubscribe(conn, req) {
      const data = requireObject(req.data, 'Unsubscribe');
      const topics = stringArray(data.topics, 'Unsubscribe', 'data.topics');
      const result = conn.unsubscribe(topics);
      conn.send({ type: 'Status', data: { status: 'unsubscribed', details: { topics: result.topics, active_subscriptions: result.active } } } satisfies StatusFrame);
      ack(conn, req, { status: 'ok' });
    },

    // Not async: with a synchronous authorizer and store a Broadcast costs no promise.
    Broadcast(conn, req) {
      const data = requireObject(req.data, 'Broadcast');
      if (typeof data.topic !== 'string') throw bad('Broadcast needs data.topic (a string)');
      if (!Object.hasOwn(data, 'payload')) throw bad('Broadcast needs data.payload');
      if (data.echo !== undefined && typeof data.echo !== 'boolean') throw bad('Broadcast data.echo must be a boolean');
      const options = data.echo === undefined ? (req.id === undefined ? NO_COUNT : NO_OPTIONS) : { echo: data.echo, ...(req.id === undefined && NO_COUNT) };
      const result = conn.publish(data.topic, data.payload, options);
      if (!isThenable(result)) return published(conn, req, result);
      // A publish waiting only on the store's append stays pipelined: the next frames go on meanwhile.
      if (!isPipelined(result)) return Promise.resolve(result).then((r) => published(conn, req, r));
      // Later frames may have replaced conn.state by the time this fails: the error is pinned to
      // its request, with an id or without (a WeakMap key must be an object: a thrown primitive is boxed).
      return pipelined(
        Promise.resolve(result).then(
          (r) => published(conn, req, r),
          (err: unknown) => {
            const error = typeof err === 'object' && err !== null ? err : new Error(String(err));
            requestOf.set(error, req);
            throw error;
          },
        ),
      );
    },

    async DirectMessage(conn, req) {
      const data = requireObject(req.data, 'DirectMessage');
      if (typeof data.target_user !== 'string' || data.target_user === '') throw bad('DirectMessage needs data.target_user (a non-empty string)');
      if (!Object.hasOwn(data, 'payload')) throw bad('DirectMessage needs data.payload');
      const result = await conn.sendDirect(data.target_user, data.payload);
      if (result.deliveredTo.length === 0) {
        throw new BrokerError('SY_ERR_NOT_FOUND', `User ${data.target_user} not found or not connected`, {
          details: { queued: result.queued },
        });
      }
      ack(conn, req, { status: 'delivered', delivered_to: result.deliveredTo });
    },
  };

  return {
    name: 'envelope',

    open(conn) {
      // {"type":"Status","data":{"status":"connected","details":{connection_id, server_time, protocol_version, features}}}
      conn.sendRaw(`{"type":"Status","data":{"status":"connected","details":{"connection_id":${JSON.stringify(conn.id)},"server_time":${Date.now()}${welcomeTail}`);
    },

    receive(conn, raw, isBinary) {
      if (isBinary) return receiveBinary(conn, raw, options.binary ?? {});
      const req = parse(raw, maxJsonDepth);
      // Requests are parsed once; the id is remembered so a failure can name it.
      conn.state = req.id;
      const handler = Object.hasOwn(handlers, req.type) ? handlers[req.type] : undefined;
      if (handler !== undefined) return handler(conn, req);
      if (req.type.startsWith('X-')) {
        const customHandler = custom.get(req.type);
        if (customHandler === undefined) throw bad(`no handler is registered for custom type '${req.type}'`);
        return andThen(customHandler(conn, req.data), (result) => ackResult(conn, req, result));
      }
      throw new BrokerError('SY_ERR_UNKNOWN_TYPE', `unknown message type '${req.type}'`);
    },

    encode(delivery: Delivery) {
      switch (delivery.kind) {
        case 'publish': {
          if (delivery.binary !== undefined) return binaryFrame(0x01, delivery.topic, delivery.binary);
          if (delivery.from === null && delivery.topic.startsWith(PRESENCE_ROOT)) {
            return JSON.stringify({ type: 'Presence', data: delivery.payload });
          }
          // Written by hand: this runs once per publish, the shape is fixed, and it spares the
          // nested objects and a generic walk (the result is what JSON.stringify gives).
          const offset = delivery.offset === undefined ? '' : `,"offset":${delivery.offset},"epoch":${JSON.stringify(delivery.epoch)}`;
          return (
            `{"type":"Broadcast","data":{"topic":${JSON.stringify(delivery.topic)},"payload":${json(delivery.payload)},` +
            `"metadata":{"sent_at":${delivery.sentAt},"message_id":${JSON.stringify(delivery.messageId)}${offset}}}}`
          );
        }
        case 'direct':
          if (delivery.binary !== undefined) return binaryFrame(0x02, delivery.from ?? '', delivery.binary);
          return JSON.stringify({
            type: 'DirectMessage',
            data: { from_user: delivery.from, payload: delivery.payload, metadata: { sent_at: delivery.sentAt, message_id: delivery.messageId } },
          } satisfies DirectMessageFrame);
        case 'notification':
          return JSON.stringify({ type: 'Notification', data: delivery.data } satisfies NotificationFrame);
      }
    },

    fail(conn, error, raw) {
      // A failure while handling names the request in flight (conn.state; the session handles
      // one request at a time). A refused frame (rate limit) was never parsed: read its id now.
      let id: string | undefined;
      if (error.code === 'SY_ERR_RATE_LIMITED') {
        id = raw === undefined ? undefined : peekId(raw);
      } else {
        const cause: unknown = error.cause;
        const pinned = requestOf.get(error) ?? (typeof cause === 'object' && cause !== null ? requestOf.get(cause) : undefined);
        if (pinned !== undefined) {
          id = pinned.id;
        } else {
          id = typeof conn.state === 'string' ? conn.state : undefined;
          conn.state = undefined;
        }
      }
      const details = { ...error.details, ...(id !== undefined && { message_id: id }) };
      conn.send({ type: 'Error', data: { code: error.status, message: error.message, details } } satisfies ErrorFrame);
    },

    permissionLost(conn, patterns) {
      conn.send({
        type: 'Error',
        data: { code: 403, message: `permission revoked; unsubscribed from ${patterns.join(', ')}`, details: { topics: patterns } },
      } satisfies ErrorFrame);
    },

    // The host changed the connection's subscriptions (broker.subscribe / unsubscribe): the same
    // Status a Subscribe gets, marked `by: 'server'` so a client never takes it for its own reply.
    subscribed(conn, result) {
      conn.send({ type: 'Status', data: { status: 'subscribed', details: { topics: result.topics, active_subscriptions: result.active, by: 'server' } } } satisfies StatusFrame);
    },

    unsubscribed(conn, result) {
      conn.send({ type: 'Status', data: { status: 'unsubscribed', details: { topics: result.topics, active_subscriptions: result.active, by: 'server' } } } satisfies StatusFrame);
    },

    tokenExpiring(conn, expiresAt) {
      conn.send({ type: 'AuthStatus', data: { status: 'token_expiring', expires_at: expiresAt, refresh_required: true } } satisfies AuthStatusFrame);
    },
  };
}

/**
 * Binary frames (seed 001, DESIGN.md): broadcast (0x01) and direct (0x02) carry a 2-byte length
 * and the UTF-8 topic or target before the data; 0x03/0x04 go to host handlers. Each is
 * acknowledged with `Status binary_received` (size and sha256 of the data).
 */
async function receiveBinary(conn: Connection, raw: Buffer, handlers: NonNullable<EnvelopeOptions['binary']>): Promise<void> {
  conn.state = undefined;
  if (raw.length < 5) throw bad('binary frame shorter than its 5-byte header');
  const code = raw[0]!;
  const length = raw.readUInt32BE(1);
  if (length !== raw.length - 5) throw bad(`binary frame length field says ${length} bytes but ${raw.length - 5} follow`);
  const type = BINARY_TYPES[code as keyof typeof BINARY_TYPES];
  if (type === undefined) throw bad(`unknown binary message type 0x${code.toString(16).padStart(2, '0')}`);
  const body = raw.subarray(5);
  let data = body;
  let extra: Record<string, unknown> = {};
  if (type === 'broadcast' || type === 'direct_message') {
    if (body.length < 2 || body.readUInt16BE(0) > body.length - 2) throw bad(`binary ${type} needs a 2-byte length and the ${type === 'broadcast' ? 'topic' : 'target'} before its data`);
    const nameEnd = 2 + body.readUInt16BE(0);
    const name = body.toString('utf8', 2, nameEnd);
    // Copied: the frame's buffer must not stay referenced by queues and history.
    data = Buffer.from(body.subarray(nameEnd));
    if (type === 'broadcast') {
      const result = await conn.publish(name, null, { binary: data });
      extra = { recipients: result.recipients, ...(result.missingNodes && { partial: true, missing_nodes: result.missingNodes }) };
    } else {
      const result = await conn.sendDirect(name, null, { binary: data });
      if (result.deliveredTo.length === 0) {
        throw new BrokerError('SY_ERR_NOT_FOUND', `User ${name} not found or not connected`, { details: { queued: result.queued } });
      }
      extra = { delivered_to: result.deliveredTo };
    }
  } else {
    const handler = handlers[type];
    if (handler === undefined) throw bad(`binary ${type} frames are not accepted on this endpoint`);
    await handler(conn, data);
  }
  const checksum = `sha256:${createHash('sha256').update(data).digest('hex')}`;
  conn.send({ type: 'Status', data: { status: 'binary_received', details: { size: data.length, type, checksum, ...extra } } } satisfies StatusFrame);
}

function binaryFrame(code: number, name: string, data: Buffer): Buffer {
  const nameBytes = Buffer.from(name, 'utf8');
  const out = Buffer.allocUnsafe(5 + 2 + nameBytes.length + data.length);
  out[0] = code;
  out.writeUInt32BE(2 + nameBytes.length + data.length, 1);
  out.writeUInt16BE(nameBytes.length, 5);
  nameBytes.copy(out, 7);
  data.copy(out, 7 + nameBytes.length);
  return out;
}

function historyMessage(record: HistoryRecord): HistoryMessage {
  return {
    payload: record.binary === undefined ? record.payload : { binary: record.binary.toString('base64') },
    metadata: { sent_at: record.sentAt, message_id: record.messageId, offset: record.offset, epoch: record.epoch },
  };
}

function optionalCount(value: unknown, field: string, max: number): number | undefined {
  if (value === undefined || value === null) return undefined;
  if (!Number.isSafeInteger(value) || (value as number) < 0 || (value as number) > max) {
    throw bad(`data.${field} must be an integer from 0 to ${max}`, { field: `data.${field}` });
  }
  return value as number;
}

function ack(conn: Connection, req: Request, data: Record<string, unknown>): void {
  conn.state = undefined;
  // `{"type":"Ack","data":{"message_id":…, …data}}`, without building the wrapper objects.
  if (req.id !== undefined) conn.sendRaw(`{"type":"Ack","data":{"message_id":${req.idJson ?? JSON.stringify(req.id)},${JSON.stringify(data).slice(1)}}`);
}

/**
 * The Ack of an `X-` request, with the handler's result. A result JSON cannot encode (a BigInt, a
 * cycle, nesting deeper than `JSON.stringify` can walk) is the handler's bug: it is thrown as a
 * plain error while the request is still in flight, so the broker reports it and the client gets
 * Error 500 naming the id (exactly one Ack or Error per id, DESIGN.md "Acks").
 */
function ackResult(conn: Connection, req: Request, result: unknown): void {
  if (req.id === undefined || result === undefined) {
    ack(conn, req, { status: 'ok' });
    return;
  }
  let encoded: string | undefined;
  try {
    encoded = JSON.stringify(result);
  } catch (err) {
    throw new TypeError(`the ${req.type} handler returned a result JSON cannot encode: ${(err as Error).message}`, { cause: err });
  }
  conn.state = undefined;
  const tail = encoded === undefined ? '' : `,"result":${encoded}`;
  conn.sendRaw(`{"type":"Ack","data":{"message_id":${JSON.stringify(req.id)},"status":"ok"${tail}}}`);
}

const NO_OPTIONS: PublishOptions = Object.freeze({});
/** A Broadcast without an id has no Ack: with `clusterAcks`, no cluster-wide count to wait for. */
const NO_COUNT: PublishOptions = Object.freeze({ clusterCount: false });

/** The request a pipelined Broadcast's failure belongs to. */
const requestOf = new WeakMap<object, Request>();

/** The Ack of a Broadcast, written straight as JSON (it is sent once per publish). */
function published(conn: Connection, req: Request, result: PublishResult): void {
  conn.state = undefined;
  if (req.id === undefined) return;
  const offset = result.offset === undefined ? '' : `,"offset":${result.offset},"epoch":${JSON.stringify(result.epoch)}`;
  const partial = result.missingNodes === undefined ? '' : `,"partial":true,"missing_nodes":${JSON.stringify(result.missingNodes)}`;
  conn.sendRaw(`{"type":"Ack","data":{"message_id":${req.idJson ?? JSON.stringify(req.id)},"status":"delivered","recipients":${result.recipients}${offset}${partial}}}`);
}

/** JSON of a payload; a value JSON cannot carry (undefined) is null. */
function json(value: unknown): string {
  return JSON.stringify(value) ?? 'null';
}

function bad(message: string, details?: Record<string, unknown>): BrokerError {
  return new BrokerError('SY_ERR_BAD_FRAME', message, details && { details });
}

function parse(raw: Buffer, maxJsonDepth: number, whole = false): Request {
  let message: Record<string, unknown>;
  // A trailing `,"id":"…"}` is read here and cut off before JSON.parse, which would intern a
  // short id (json.ts, trailingMember); a later duplicate wins as in JSON.parse.
  const last = raw.length - 1;
  const cut = !whole && raw[last] === 0x7d && raw[last - 1] === 0x22 ? trailingMember(raw, 'id') : -1;
  try {
    message = cut === -1 ? parseObject(raw, undefined, maxJsonDepth) : parseObjectText(`${raw.toString('utf8', 0, cut)}}`, undefined, maxJsonDepth);
  } catch (err) {
    // The cut text is refused exactly when the whole is, but not with the same words: JSON.parse's
    // message quotes the text and counts positions in it, and a malformed text short enough is
    // not scanned for depth (json.ts). A refused frame is refused as the client sent it.
    if (cut !== -1) return parse(raw, maxJsonDepth, true);
    // Too deep to parse here, but its id can still be read, and the Error must name it.
    if (!(err instanceof BrokerError) || err.details?.max_depth === undefined) throw err;
    const id = peekId(raw);
    throw id === undefined ? err : new BrokerError(err.code, err.message, { details: { ...err.details, message_id: id } });
  }
  const { type, data } = message;
  const id = cut === -1 ? message.id : raw.toString('latin1', cut + 7, raw.length - 2);
  if (id !== undefined && (typeof id !== 'string' || id === '' || id.length > MAX_ID_LENGTH)) {
    throw bad(`id must be a non-empty string of at most ${MAX_ID_LENGTH} characters`, { field: 'id' });
  }
  if (type === undefined) throw badWithId("missing 'type'", id);
  if (typeof type !== 'string' || type === '') throw badWithId("'type' must be a non-empty string", id);
  return { type, data, id, idJson: cut === -1 ? undefined : `"${id}"` };
}

function badWithId(message: string, id: string | undefined): BrokerError {
  return bad(message, { field: 'type', ...(id !== undefined && { message_id: id }) });
}

function requireObject(data: unknown, type: string): Record<string, unknown> {
  if (data === null || typeof data !== 'object' || Array.isArray(data)) throw bad(`${type} needs 'data' to be an object`, { field: 'data' });
  return data as Record<string, unknown>;
}

function optionalObject(data: unknown, type: string): Record<string, unknown> | undefined {
  return data === undefined || data === null ? undefined : requireObject(data, type);
}

function stringArray(value: unknown, type: string, field: string): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((t) => typeof t !== 'string')) {
    throw bad(`${type} needs ${field} to be a non-empty array of strings`, { field });
  }
  return value as string[];
}

/** The `id` of a frame that was refused before parsing, if it has one. */
function peekId(raw: Buffer): string | undefined {
  try {
    const id = (JSON.parse(raw.toString('utf8')) as { id?: unknown }).id;
    return typeof id === 'string' && id.length <= MAX_ID_LENGTH ? id : undefined;
  } catch {
    return undefined;
  }
}
