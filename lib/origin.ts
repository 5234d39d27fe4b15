/**
 * Origin checks for WebSocket handshakes. A browser sends its cookies with a cross-site
 * WebSocket handshake (there is no CORS preflight for it, RFC 6455 §10.2), so an endpoint that
 * authenticates by cookie must check `Origin`, or any site its users visit can open a
 * connection in their name (cross-site WebSocket hijacking).
 */
import type { IncomingMessage } from 'node:http';

/**
 * Which page origins may open connections: a list of origins (`'https://app.example.com'`),
 * `'same-origin'` (the Origin's host is the request's Host), or a predicate. A request without
 * an `Origin` header is not from a browser page (browsers always send one on a WebSocket
 * handshake) and passes the list and `'same-origin'`; a predicate decides it itself.
 */
export type AllowedOrigins = readonly string[] | 'same-origin' | ((origin: string | undefined, request: IncomingMessage) => boolean);

export type OriginCheck = (request: IncomingMessage) => boolean;

function normalise(origin: string): string {
  return origin.trim().toLowerCase().replace(/\/+$/, '');
}

/** Compiles the option into one check, or throws a TypeError describing a bad value. */
export function compileOrigins(allowed: AllowedOrigins): OriginCheck {
  if (typeof allowed === 'function') {
    return (request) => allowed(header(request), request) === true;
  }
  if (allowed === 'same-origin') {
    return (request) => {
      const origin = header(request);
      if (origin === undefined) return true;
      try {
        return new URL(origin).host === (request.headers.host ?? '').toLowerCase();
      } catch {
        return false; // 'null' (sandboxed pages, file://) or garbage
      }
    };
  }
  if (!Array.isArray(allowed) || allowed.some((o) => typeof o !== 'string')) {
    throw new TypeError("allowedOrigins must be a list of origins, 'same-origin' or a function");
  }
  const set = new Set(allowed.map(normalise));
  return (request) => {
    const origin = header(request);
    return origin === undefined || set.has(normalise(origin));
  };
}

function header(request: IncomingMessage): string | undefined {
  const value = request.headers.origin;
  return value === undefined || value === '' ? undefined : value;
}
