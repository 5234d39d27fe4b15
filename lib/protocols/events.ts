/**
 * The events protocol (seed 003): lowercase `subscribe {topics, filters}` / `unsubscribe
 * {topics}`, answered by `subscription_confirmed` / `unsubscription_confirmed`; deliveries are
 * `event {topic, data, timestamp}` with `data` the published payload; failures are `error`
 * frames `{code: AUTH_ERROR | SUBSCRIPTION_ERROR | CONNECTION_ERROR, message, timestamp}`.
 * Timestamps are ISO-8601 strings, as the seed shows them.
 */
import { BrokerError } from '../errors.js';
import { parseObject, resolveMaxJsonDepth } from './json.js';
import type { Delivery, Protocol } from '../protocol.js';
import type { Filter } from '../types.js';

export type EventsErrorCode = 'AUTH_ERROR' | 'SUBSCRIPTION_ERROR' | 'CONNECTION_ERROR';

export interface EventsOptions {
  /**
   * Where filter fields are looked up in a payload: a dot path prefixed to every field.
   * With `'data'`, `{severity: [...]}` tests `payload.data.severity`, for payloads shaped
   * `{type, data}` like seed 003's topics. Default: the payload itself (`event.data`).
   */
  filterRoot?: string;
  /**
   * Deepest nesting of arrays and objects in an inbound JSON frame; a deeper one is refused
   * before it is parsed (an `error` frame, CONNECTION_ERROR). Default 128 (issue 16: a payload nested deeper than
   * `JSON.stringify` can encode would otherwise be accepted and delivered to no one).
   */
  maxJsonDepth?: number;
}

/** The request being handled, so a failure can say which kind of error it was. */
type InFlight = 'subscribe' | 'unsubscribe' | undefined;

export function events(options: EventsOptions = {}): Protocol {
  const root = options.filterRoot;
  const maxJsonDepth = resolveMaxJsonDepth(options.maxJsonDepth, 'events');
  if (root !== undefined && (typeof root !== 'string' || root === '' || root.split('.').includes(''))) {
    throw new TypeError('events: filterRoot must be a dot path such as "data"');
  }

  return {
    name: 'events',

    // Seed 003: "Connection Established", then the client subscribes; no welcome frame.
    open() {},

    async receive(conn, raw, isBinary) {
      if (isBinary) throw bad('binary frames are not supported; send JSON messages');
      const message = parse(raw, maxJsonDepth);
      switch (message.type) {
        case 'subscribe': {
          conn.state = 'subscribe' satisfies InFlight;
          const topics = topicList(message.topics);
          const filters = rootFilters(message.filters, root);
          const result = await conn.subscribe(topics, filters);
          conn.state = undefined;
          conn.send({ type: 'subscription_confirmed', topics: result.topics, timestamp: now() });
          return;
        }
        case 'unsubscribe': {
          conn.state = 'unsubscribe' satisfies InFlight;
          const result = conn.unsubscribe(topicList(message.topics));
          conn.state = undefined;
          conn.send({ type: 'unsubscription_confirmed', topics: result.topics, timestamp: now() });
          return;
        }
        default:
          throw new BrokerError('SY_ERR_UNKNOWN_TYPE', `unknown message type '${String(message.type)}'`);
      }
    },

    encode(delivery: Delivery) {
      if (delivery.kind !== 'publish' || delivery.binary !== undefined) return null;
      return JSON.stringify({ type: 'event', topic: delivery.topic, data: delivery.payload, timestamp: iso(delivery.sentAt) });
    },

    fail(conn, error) {
      // A rate-limited frame was never handled: whatever is in flight is not its request.
      const inFlight = error.code === 'SY_ERR_RATE_LIMITED' ? undefined : (conn.state as InFlight);
      if (error.code !== 'SY_ERR_RATE_LIMITED') conn.state = undefined;
      const code: EventsErrorCode = inFlight !== undefined ? 'SUBSCRIPTION_ERROR' : 'CONNECTION_ERROR';
      conn.send(errorFrame(code, error.message, error.details?.topics));
    },

    // The host changed the subscriptions from the server: the same confirmations a client's
    // own subscribe/unsubscribe gets.
    subscribed(conn, result) {
      conn.send({ type: 'subscription_confirmed', topics: result.topics, timestamp: now() });
    },

    unsubscribed(conn, result) {
      conn.send({ type: 'unsubscription_confirmed', topics: result.topics, timestamp: now() });
    },

    permissionLost(conn, patterns) {
      conn.send(errorFrame('SUBSCRIPTION_ERROR', `permission revoked; unsubscribed from ${patterns.join(', ')}`, patterns));
    },

    closing(conn, code, reason) {
      // Credentials revoked or expired, or a permission withdrawn, while connected: say so the
      // way seed 003 says it at the handshake.
      if (code === 4002 || code === 4003) conn.send(errorFrame('AUTH_ERROR', reason || 'credentials revoked'));
    },

    refused(error) {
      // Seed 003 "Authentication Errors": an AUTH_ERROR frame, then the close code (4001/4003).
      const auth = error.code === 'SY_ERR_MISSING_CREDENTIALS' || error.code === 'SY_ERR_INVALID_CREDENTIALS' || error.code === 'SY_ERR_TOKEN_REVOKED';
      return JSON.stringify(errorFrame(auth ? 'AUTH_ERROR' : 'CONNECTION_ERROR', error.message));
    },
  };
}

function now(): string {
  return new Date().toISOString();
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

function errorFrame(code: EventsErrorCode, message: string, topics?: unknown): Record<string, unknown> {
  return { type: 'error', code, message, ...(Array.isArray(topics) && { topics }), timestamp: now() };
}

function bad(message: string): BrokerError {
  return new BrokerError('SY_ERR_BAD_FRAME', message);
}

function parse(raw: Buffer, maxJsonDepth: number): Record<string, unknown> {
  const message = parseObject(raw, undefined, maxJsonDepth);
  if (typeof message.type !== 'string' || message.type === '') throw bad("a message needs a 'type' string");
  return message;
}

function topicList(value: unknown): string[] {
  if (!Array.isArray(value) || value.length === 0 || value.some((t) => typeof t !== 'string')) {
    throw bad('topics must be a non-empty array of strings');
  }
  return value as string[];
}

/** Prefixes each filter field with the root; anything that is not an object is left for the core to refuse. */
function rootFilters(filters: unknown, root: string | undefined): Filter | null {
  if (filters === undefined || filters === null) return null;
  if (root === undefined || typeof filters !== 'object' || Array.isArray(filters)) return filters as Filter;
  const out: Record<string, readonly unknown[]> = {};
  for (const [field, values] of Object.entries(filters)) {
    if (field === '') return filters as Filter; // refused by the core with its own message
    out[`${root}.${field}`] = values as readonly unknown[];
  }
  return out;
}
