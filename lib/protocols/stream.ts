/**
 * The stream protocol (seeds 002 and 004): the endpoint's path binds the topics. At open the
 * connection is subscribed to what `bind(params, principal)` returns; each inbound JSON text
 * frame is published to the bound publish topic; deliveries are the bare payload, JSON-encoded,
 * with no envelope. A device publishes telemetry and receives commands; a dashboard on the same
 * path receives telemetry; a workspace client receives `reading` and `event` payloads.
 *
 * There is no error frame: a bare-payload client (seed 002's dashboard parses every frame as
 * telemetry, seed 004's clients only know `reading`/`event`) has nowhere to put one. Problems
 * are either ignored or end the connection with a close code:
 * - a valid JSON frame the connection may not publish (no publish topic bound, or `authorize`
 *   denies it) is dropped silently: seed 004 asks clients to ignore what they do not
 *   understand, and the server does the same, so a browser's keepalive `{"type":"ping"}` is
 *   harmless. Floods are still bounded by the rate limit (close 1008 on sustained abuse);
 * - a frame that is not JSON text (binary, or invalid JSON) is a protocol violation: dropped,
 *   and `maxInvalidFrames` of them in a row close the connection with 1008 (RFC 6455 §7.4.1);
 * - a subscription `authorize` refuses at open, or a permission revoked later, closes with 4003
 *   (an endpoint remaps it, e.g. to seed 004's 4401); a path that names no stream (`bind`
 *   returned null, or produced an invalid topic) closes with 1008.
 */
import { BrokerError, CloseCode } from '../errors.js';
import type { Connection, Delivery, Protocol, PublishOptions } from '../protocol.js';
import { parseJson, resolveMaxJsonDepth } from './json.js';
import type { Principal } from '../types.js';

/** This protocol has no Ack: with `clusterAcks`, a publish neither asks for nor waits on the other nodes' counts. */
const NO_COUNT: PublishOptions = Object.freeze({ clusterCount: false });

/** The topics a path binds a connection to. */
export interface StreamBinding {
  /** Patterns the connection is subscribed to at open (all or nothing). May be empty. */
  subscribe: string[];
  /** The topic each inbound JSON frame is published to. None: inbound frames are ignored. */
  publish?: string | undefined;
}

/**
 * Binds a connection: from its path parameters and principal (and, for anything else, the
 * connection: query, headers) to its topics, or null when the path names no stream (close 1008).
 * To refuse with a reason of its own, bind throws a BrokerError that has a close code (e.g.
 * `new BrokerError('SY_ERR_POLICY', 'workspace_not_found')` closes 1008 with that reason); it
 * may `conn.send()` a last frame first. Path parameters are URL-decoded, so `%2F`, `+` or `#`
 * can reach a parameter: validate them before building topics from them.
 */
export type StreamBind = (
  params: Readonly<Record<string, string>>,
  principal: Principal,
  conn: Connection,
) => StreamBinding | null | Promise<StreamBinding | null>;

export interface StreamOptions {
  bind: StreamBind;
  /**
   * Adds `version: <n>` to every delivered payload that is a JSON object (seed 004: "`/ws/v2/…`
   * frames carry `version: 2`"). Other payloads (arrays, strings, numbers) are sent unchanged.
   * Default: none.
   */
  version?: number;
  /**
   * Rewrites each payload before it is encoded (after it, `version` is added). Called once per
   * delivery per endpoint, never per subscriber; returning `undefined` drops the delivery for
   * this endpoint. A transform that throws fails the publish (the publisher sees the error).
   */
  transform?: (payload: unknown, delivery: Delivery) => unknown;
  /** Frames in a row that are not JSON text before the connection is closed with 1008. Default 10. */
  maxInvalidFrames?: number;
  /**
   * Deepest nesting of arrays and objects in an inbound JSON frame; a deeper one is refused
   * before it is parsed and counted like a frame that is not JSON (dropped, then 1008 after
   * `maxInvalidFrames`). Default 128 (issue 16: a payload nested deeper than `JSON.stringify`
   * can encode would otherwise be published and delivered to no one).
   */
  maxJsonDepth?: number;
}

interface StreamState {
  /** Resolves with the binding once the connection is subscribed, or null if it is being closed. */
  ready: Promise<StreamBinding | null>;
  /** Consecutive frames that were not JSON text. */
  invalid: number;
}

export function stream(options: StreamOptions): Protocol {
  if (options === null || typeof options !== 'object' || typeof options.bind !== 'function') {
    throw new TypeError('stream: options.bind must be a function (params, principal) => { subscribe, publish? }');
  }
  const { bind, transform, version } = options;
  if (transform !== undefined && typeof transform !== 'function') throw new TypeError('stream: options.transform must be a function');
  if (version !== undefined && !(Number.isSafeInteger(version) && version > 0)) {
    throw new TypeError('stream: options.version must be a positive integer');
  }
  const maxInvalidFrames = options.maxInvalidFrames ?? 10;
  const maxJsonDepth = resolveMaxJsonDepth(options.maxJsonDepth, 'stream');
  if (!(Number.isSafeInteger(maxInvalidFrames) && maxInvalidFrames > 0)) {
    throw new TypeError('stream: options.maxInvalidFrames must be a positive integer');
  }

  async function bindAndSubscribe(conn: Connection): Promise<StreamBinding | null> {
    let binding: StreamBinding | null;
    try {
      binding = await bind(conn.params, conn.principal, conn);
    } catch (err) {
      // A BrokerError with a close code is the host's way to refuse the path with its reason
      // (seed 004's `workspace_not_found`); anything else is a bug, reported and closed 1011.
      if (!(err instanceof BrokerError && err.closeCode !== undefined)) throw err;
      conn.close(err.closeCode, err.message);
      return null;
    }
    if (binding === null || binding === undefined) {
      conn.close(CloseCode.POLICY_VIOLATION, 'no stream for this path');
      return null;
    }
    if (!isBinding(binding)) {
      throw new TypeError('stream: bind must return { subscribe: string[], publish?: string } or null');
    }
    if (binding.subscribe.length > 0) {
      try {
        await conn.subscribe(binding.subscribe);
      } catch (err) {
        if (!(err instanceof BrokerError)) throw err;
        // 403: the principal may not read what this path streams (remappable, seed 004's 4401);
        // 400: the path produced an invalid topic or too many of them.
        if (err.code === 'SY_ERR_FORBIDDEN') conn.close(CloseCode.INVALID_CREDENTIALS, err.message);
        else if (err.status === 400) conn.close(CloseCode.POLICY_VIOLATION, err.message);
        else throw err;
        return null;
      }
    }
    return binding;
  }

  return {
    name: 'stream',

    open(conn) {
      // The state is set before the first await: frames that arrive while an async `bind` is
      // still running wait for it in receive(), so a device's first reading is not lost.
      const ready = bindAndSubscribe(conn);
      const state: StreamState = { ready: ready.catch(() => null), invalid: 0 };
      conn.state = state;
      // A bind that throws is the host's bug: the broker reports it and closes with 1011.
      return ready.then(() => undefined);
    },

    async receive(conn, data, isBinary) {
      const state = conn.state as StreamState | undefined;
      if (state === undefined) return;
      const binding = await state.ready;
      if (binding === null) return;
      let payload: unknown;
      if (!isBinary) {
        try {
          payload = parseJson(data, maxJsonDepth);
        } catch {
          isBinary = true; // not JSON (or nested too deep): counted below like a binary frame
        }
      }
      if (isBinary) {
        if (++state.invalid >= maxInvalidFrames) conn.close(CloseCode.POLICY_VIOLATION, 'frames must be JSON text');
        return;
      }
      state.invalid = 0;
      if (binding.publish === undefined) return;
      try {
        await conn.publish(binding.publish, payload, NO_COUNT);
      } catch (err) {
        if (!(err instanceof BrokerError)) throw err;
        if (err.code === 'SY_ERR_FORBIDDEN') return;
        if (err.code === 'SY_ERR_BAD_TOPIC') {
          conn.close(CloseCode.POLICY_VIOLATION, err.message);
          return;
        }
        throw err;
      }
    },

    encode(delivery) {
      if (delivery.kind === 'notification') return null;
      // Binary messages stay binary: the data, as published.
      if ('binary' in delivery && delivery.binary !== undefined) return delivery.binary;
      let payload = transform === undefined ? delivery.payload : transform(delivery.payload, delivery);
      if (payload === undefined) return null;
      if (version !== undefined && isPlainObject(payload)) payload = { ...payload, version };
      // Always JSON: a string payload is sent as a JSON string, so every text frame parses.
      return JSON.stringify(payload);
    },

    fail(conn, error) {
      // No error frames (see the top of this file). A refused frame (rate limit) is dropped;
      // the session closes with 1008 on sustained abuse. A server-side failure ends the
      // connection so a device reconnects instead of streaming into a void.
      if (error.status >= 500) conn.close(error.closeCode ?? CloseCode.INTERNAL_ERROR, error.message);
    },

    permissionLost(conn, patterns) {
      // The path's topics are the connection's whole purpose: losing one ends it.
      conn.close(CloseCode.INVALID_CREDENTIALS, `permission revoked for ${patterns.join(', ')}`);
    },
  };
}

function isBinding(value: unknown): value is StreamBinding {
  if (value === null || typeof value !== 'object') return false;
  const { subscribe, publish } = value as Record<string, unknown>;
  return (
    Array.isArray(subscribe) &&
    subscribe.every((t) => typeof t === 'string') &&
    (publish === undefined || typeof publish === 'string')
  );
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}
