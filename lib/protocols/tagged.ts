/**
 * The tagged protocol (seed 000): the connection's subscriptions come from its `Tag` header
 * (or `?tags=`, since browsers cannot set headers) and are fixed for its lifetime; frames are
 * `{tag, message}` JSON both ways; every failure is a close code, never an error frame.
 *
 * | seed 000 close code | here                                                                 |
 * |---|---|
 * | 4001 missing credentials | no `Authorization` (the gate) or no `Tag` (open)                  |
 * | 4003 invalid credentials | token refused (the gate), a tag not allowed or not valid (open),  |
 * |                          | a publish without `readwrite` or to a wildcard tag (receive)      |
 * | 4003 permission revoked  | `broker.reauthorize()` dropped a subscription (permissionLost)    |
 * | 4004 connection limit    | the principal's `maxConnections` (the gate)                       |
 * | 4002 token revoked       | `broker.revoke()` or the principal's `expiresAt` (the broker)     |
 *
 * A frame that is not `{tag, message}` JSON closes with 1008 (DESIGN.md "Decisions").
 */
import { BrokerError, CloseCode } from '../errors.js';
import { parseObject, resolveMaxJsonDepth } from './json.js';
import type { Connection, Delivery, Protocol, PublishOptions } from '../protocol.js';

/** This protocol has no Ack: with `clusterAcks`, a publish neither asks for nor waits on the other nodes' counts. */
const NO_COUNT: PublishOptions = Object.freeze({ clusterCount: false });

export interface TaggedOptions {
  /** Request header listing the tags, or false to ignore headers. Default `'tag'` (case-insensitive). */
  header?: string | false;
  /** Query parameter listing the tags (for browsers), or false to ignore it. Default `'tags'`. */
  query?: string | false;
  /**
   * Deepest nesting of arrays and objects in an inbound JSON frame; a deeper one is refused
   * before it is parsed (close 1008, like any frame that is not `{tag, message}` JSON). Default 128 (issue 16: a payload nested deeper than
   * `JSON.stringify` can encode would otherwise be accepted and delivered to no one).
   */
  maxJsonDepth?: number;
}

export function tagged(options: TaggedOptions = {}): Protocol {
  const header = options.header === undefined ? 'tag' : options.header;
  const query = options.query === undefined ? 'tags' : options.query;
  const maxJsonDepth = resolveMaxJsonDepth(options.maxJsonDepth, 'tagged');
  if (header !== false && (typeof header !== 'string' || header === '')) {
    throw new TypeError('tagged: header must be a non-empty string or false');
  }
  if (query !== false && (typeof query !== 'string' || query === '')) {
    throw new TypeError('tagged: query must be a non-empty string or false');
  }
  if (header === false && query === false) throw new TypeError('tagged: header and query cannot both be false');
  const headerName = header === false ? false : header.toLowerCase();

  return {
    name: 'tagged',

    async open(conn) {
      const requested = requestedTags(conn, headerName, query);
      if (requested === 'malformed') {
        conn.close(CloseCode.INVALID_CREDENTIALS, 'malformed tag list');
        return;
      }
      if (requested.length === 0) {
        conn.close(CloseCode.MISSING_CREDENTIALS, 'missing Tag header');
        return;
      }
      try {
        // All or nothing: one tag the token may not read refuses the connection (seed 000, 4003).
        await conn.subscribe(requested);
      } catch (err) {
        if (!(err instanceof BrokerError)) throw err;
        conn.close(subscribeCloseCode(err), err.message);
      }
    },

    async receive(conn, raw, isBinary) {
      if (isBinary) throw policy('binary frames are not supported; send {"tag", "message"} JSON');
      const { tag, message } = parse(raw, maxJsonDepth);
      await conn.publish(tag, message, NO_COUNT);
    },

    encode(delivery: Delivery) {
      // Seed 000: "Messages received from the server follow the exact same format."
      if (delivery.kind !== 'publish' || delivery.binary !== undefined) return null;
      return JSON.stringify({ tag: delivery.topic, message: delivery.payload });
    },

    fail(conn, error) {
      // No error frames in this protocol. A refused frame (rate limit) is dropped: the session
      // itself closes with 1008 once the client keeps it up (limits.rateAbuseStrikes).
      if (error.code === 'SY_ERR_RATE_LIMITED') return;
      conn.close(frameCloseCode(error), error.message);
    },

    permissionLost(conn, patterns) {
      conn.close(CloseCode.INVALID_CREDENTIALS, `permission revoked for ${patterns.join(', ')}`);
    },
  };
}

/**
 * The tags a connection asked for: the header if present, else the query parameter.
 * Comma-separated, trimmed, URL-decoded (the header per tag; the query was decoded with the URL),
 * empty entries and duplicates dropped.
 */
function requestedTags(conn: Connection, header: string | false, query: string | false): string[] | 'malformed' {
  let list: string | undefined;
  let decode = false;
  if (header !== false) {
    const value = conn.headers[header];
    // Node joins repeated unknown headers with ', ', which is what a list needs anyway.
    list = Array.isArray(value) ? value.join(',') : value;
    decode = true;
  }
  if ((list === undefined || list.trim() === '') && query !== false) {
    list = conn.query[query];
    decode = false;
  }
  if (list === undefined) return [];
  const tags = new Set<string>();
  for (const entry of list.split(',')) {
    const trimmed = entry.trim();
    if (trimmed === '') continue;
    if (!decode) {
      tags.add(trimmed);
      continue;
    }
    try {
      tags.add(decodeURIComponent(trimmed));
    } catch {
      return 'malformed';
    }
  }
  return [...tags];
}

/** Why the connection's own tags could not be subscribed, as a close code. */
function subscribeCloseCode(error: BrokerError): number {
  switch (error.code) {
    case 'SY_ERR_FORBIDDEN': // no read/readwrite grant for a tag (seed 000)
    case 'SY_ERR_BAD_TOPIC': // a tag no grant could allow: terminal like a refused one
    case 'SY_ERR_BAD_FRAME':
      return CloseCode.INVALID_CREDENTIALS;
    case 'SY_ERR_SUBSCRIPTION_LIMIT':
      return CloseCode.POLICY_VIOLATION;
    default:
      return error.closeCode ?? CloseCode.INTERNAL_ERROR;
  }
}

/** Why an inbound frame ended the connection, as a close code. */
function frameCloseCode(error: BrokerError): number {
  switch (error.code) {
    case 'SY_ERR_FORBIDDEN': // no readwrite grant for the tag (seed 000)
    case 'SY_ERR_BAD_TOPIC': // wildcards or an invalid tag: "must not contain wildcards"
      return CloseCode.INVALID_CREDENTIALS;
    case 'SY_ERR_BAD_FRAME':
    case 'SY_ERR_POLICY':
      return CloseCode.POLICY_VIOLATION;
    default:
      return error.closeCode ?? CloseCode.INTERNAL_ERROR;
  }
}

function policy(message: string): BrokerError {
  return new BrokerError('SY_ERR_BAD_FRAME', message);
}

function parse(raw: Buffer, maxJsonDepth: number): { tag: string; message: unknown } {
  const frame = parseObject(raw, 'a {"tag", "message"} frame', maxJsonDepth);
  if (typeof frame.tag !== 'string' || frame.tag === '') throw policy('"tag" must be a non-empty string');
  if (!Object.hasOwn(frame, 'message')) throw policy('a frame needs a "message"');
  return { tag: frame.tag, message: frame.message };
}
