/**
 * The one table of switchyard's errors. Each code names what went wrong; the row says how it
 * reaches a client: the Error-frame code (seed 001's table), the WebSocket close code
 * (DESIGN.md) and the HTTP status used by the `'http'` rejection policy.
 */

/** WebSocket close codes switchyard uses (RFC 6455 §7.4 and DESIGN.md's private range). */
export const CloseCode = {
  NORMAL: 1000,
  GOING_AWAY: 1001,
  POLICY_VIOLATION: 1008,
  MESSAGE_TOO_BIG: 1009,
  INTERNAL_ERROR: 1011,
  TRY_AGAIN_LATER: 1013,
  MISSING_CREDENTIALS: 4001,
  TOKEN_REVOKED: 4002,
  INVALID_CREDENTIALS: 4003,
  CONNECTION_LIMIT: 4004,
  ALREADY_CONNECTED: 4009,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

/** Close codes after which reconnecting with the same credentials cannot help. */
export const TERMINAL_CLOSE_CODES: ReadonlySet<number> = new Set([4001, 4003, 4009]);

interface ErrorRow {
  /** Human-readable default message. */
  message: string;
  /** `data.code` of an Error frame (seed 001). */
  status: number;
  /** Close code when the error ends the connection. */
  close?: number;
  /** HTTP status under the `'http'` rejection policy. */
  http?: number;
}

export const ERRORS = {
  SY_ERR_BAD_FRAME: { message: 'malformed frame', status: 400 },
  SY_ERR_BAD_TOPIC: { message: 'invalid topic', status: 400 },
  SY_ERR_UNKNOWN_TYPE: { message: 'unknown message type', status: 400 },
  SY_ERR_SUBSCRIPTION_LIMIT: { message: 'subscription limit reached', status: 400 },
  SY_ERR_UNAUTHORIZED: { message: 'not authenticated', status: 401 },
  SY_ERR_FORBIDDEN: { message: 'permission denied', status: 403 },
  SY_ERR_NOT_FOUND: { message: 'not found', status: 404 },
  SY_ERR_RATE_LIMITED: { message: 'rate limit exceeded', status: 429 },
  SY_ERR_INTERNAL: { message: 'internal error', status: 500, close: 1011, http: 500 },
  SY_ERR_UNAVAILABLE: { message: 'service unavailable', status: 503, close: 1013, http: 503 },
  SY_ERR_MISSING_CREDENTIALS: { message: 'missing credentials', status: 401, close: 4001, http: 401 },
  SY_ERR_INVALID_CREDENTIALS: { message: 'invalid credentials', status: 403, close: 4003, http: 403 },
  SY_ERR_TOKEN_REVOKED: { message: 'token revoked or expired', status: 401, close: 4002, http: 401 },
  SY_ERR_CONNECTION_LIMIT: { message: 'connection limit reached', status: 429, close: 4004, http: 429 },
  SY_ERR_ALREADY_CONNECTED: { message: 'identity already connected', status: 409, close: 4009, http: 409 },
  SY_ERR_ORIGIN: { message: 'origin not allowed', status: 403, http: 403 },
  SY_ERR_HANDSHAKE_TIMEOUT: { message: 'handshake timed out', status: 408, http: 408 },
  SY_ERR_SLOW_CONSUMER: { message: 'send buffer limit exceeded', status: 503, close: 1013 },
  SY_ERR_POLICY: { message: 'policy violation', status: 400, close: 1008 },
  SY_ERR_CLOSED: { message: 'broker is closed', status: 503, close: 1001, http: 503 },
  SY_ERR_OPTIONS: { message: 'invalid options', status: 500 },
  SY_ERR_HOOK: { message: 'host callback failed', status: 500, close: 1011, http: 500 },
  SY_ERR_BACKEND: { message: 'backend failure', status: 500 },
  SY_ERR_STORE_UNAVAILABLE: { message: 'store unavailable', status: 503 },
  /** Reported on the broker's `error` event only: the bus lost its link (`down`) or got it back (`gap`). */
  SY_ERR_BUS_GAP: { message: 'bus link lost: messages from other nodes were missed', status: 503 },
} as const satisfies Record<string, ErrorRow>;

export type ErrorCode = keyof typeof ERRORS;

/**
 * Marks a BrokerError whichever copy of the package made it: `require()` and `import()` load
 * two copies (dist/index.cjs and dist/index.js), and `instanceof` fails across them.
 */
const BRAND: unique symbol = Symbol.for('switchyard.BrokerError') as never;

/** An error with a stable code from the table, and the cause that produced it. */
export class BrokerError extends Error {
  /** The brand `isBrokerError` and `instanceof` look for. */
  readonly [BRAND] = true;
  readonly code: ErrorCode;
  /** Error-frame code (400, 403, …). */
  readonly status: number;
  /** WebSocket close code, when the error ends a connection. */
  readonly closeCode: number | undefined;
  /** HTTP status under the `'http'` rejection policy. */
  readonly httpStatus: number | undefined;
  /** Extra context for an Error frame's `details`. */
  readonly details: Record<string, unknown> | undefined;

  constructor(
    code: ErrorCode,
    message?: string,
    options?: { cause?: unknown; details?: Record<string, unknown> },
  ) {
    const row: ErrorRow | undefined = Object.hasOwn(ERRORS, code) ? ERRORS[code] : undefined;
    // Plain JS (or a cast) can pass any string: say which codes exist instead of a TypeError
    // about a missing table row.
    if (row === undefined) {
      throw new RangeError(`BrokerError: unknown error code ${JSON.stringify(code)}; known codes: ${Object.keys(ERRORS).join(', ')}`);
    }
    super(message ?? row.message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'BrokerError';
    this.code = code;
    this.status = row.status;
    this.closeCode = row.close;
    this.httpStatus = row.http;
    this.details = options?.details;
  }

  /** `instanceof BrokerError` holds for errors from either copy of the package (the brand). */
  static override [Symbol.hasInstance](value: unknown): boolean {
    // Subclasses keep the ordinary prototype check.
    return this === BrokerError ? isBrokerError(value) : Function.prototype[Symbol.hasInstance].call(this, value);
  }
}

/** Narrowing helper for catch blocks; true for BrokerErrors from any copy of the package. */
export function isBrokerError(err: unknown): err is BrokerError {
  return typeof err === 'object' && err !== null && (err as { [BRAND]?: unknown })[BRAND] === true;
}
