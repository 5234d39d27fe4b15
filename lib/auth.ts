/**
 * Credentials in the upgrade request (DESIGN.md "Handshake and authentication"), and helpers
 * for hosts that keep hashed tokens (seed 002: "the server stores a hash of the token").
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import type { CredentialSource, Credentials } from './types.js';
import { SCHEME_TOKEN } from './wire.js';

export const ALL_CREDENTIAL_SOURCES: readonly CredentialSource[] = ['header', 'query', 'subprotocol'];

export interface FoundCredentials {
  credentials: Credentials | undefined;
  /** The subprotocol the 101 answer selects, if the client offered any. */
  subprotocol: string | undefined;
}

/**
 * Looks for credentials in order: `Authorization` header, `?token=`, then the subprotocol list
 * (`access_token.<t>`, or the pair `Token, <t>` / `Bearer, <t>` a browser can send).
 */
export function findCredentials(
  headers: IncomingHttpHeaders,
  query: URLSearchParams,
  sources: readonly CredentialSource[],
): FoundCredentials {
  const raw = headers['sec-websocket-protocol'];
  // Seed 004's raw `Token <t>`: one value, not a protocol list, and never echoed in the 101
  // (the client offered no protocol name, and a 101 naming one would fail it).
  const spaced = raw === undefined ? null : SCHEME_TOKEN.exec(raw);
  if (spaced !== null && sources.includes('subprotocol')) {
    const header = sources.includes('header') ? credentialsFromHeader(headers.authorization) : undefined;
    const token = query.get('token');
    const fromQuery = sources.includes('query') && token !== null && token !== '' ? ({ scheme: 'query', token, source: 'query' } as const) : undefined;
    return { credentials: header ?? fromQuery ?? { scheme: spaced[1]!.toLowerCase(), token: spaced[2]!, source: 'subprotocol' }, subprotocol: undefined };
  }
  const offered = parseSubprotocols(raw);
  const fromProtocol = credentialsFromSubprotocols(offered);
  const subprotocol = selectSubprotocol(offered, fromProtocol?.entries);
  let credentials: Credentials | undefined;
  if (sources.includes('header')) credentials = credentialsFromHeader(headers.authorization);
  if (credentials === undefined && sources.includes('query')) {
    const token = query.get('token');
    if (token !== null && token !== '') credentials = { scheme: 'query', token, source: 'query' };
  }
  if (credentials === undefined && sources.includes('subprotocol') && fromProtocol !== undefined) {
    credentials = fromProtocol.credentials;
  }
  return { credentials, subprotocol };
}

function credentialsFromHeader(value: string | undefined): Credentials | undefined {
  if (value === undefined) return undefined;
  const match = /^\s*([A-Za-z][A-Za-z0-9._~+/-]*)\s+(\S+)\s*$/.exec(value);
  if (match === null) return value.trim() === '' ? undefined : { scheme: 'unknown', token: value.trim(), source: 'header' };
  return { scheme: match[1]!.toLowerCase(), token: match[2]!, source: 'header' };
}

function parseSubprotocols(value: string | undefined): string[] {
  if (value === undefined) return [];
  return value
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
}

function credentialsFromSubprotocols(
  offered: string[],
): { credentials: Credentials; entries: Set<string> } | undefined {
  for (let i = 0; i < offered.length; i++) {
    const entry = offered[i]!;
    if (entry.startsWith('access_token.') && entry.length > 'access_token.'.length) {
      return {
        credentials: { scheme: 'access_token', token: entry.slice('access_token.'.length), source: 'subprotocol' },
        entries: new Set([entry]),
      };
    }
    const scheme = entry.toLowerCase();
    if ((scheme === 'token' || scheme === 'bearer') && i + 1 < offered.length) {
      return {
        credentials: { scheme, token: offered[i + 1]!, source: 'subprotocol' },
        entries: new Set([entry, offered[i + 1]!]),
      };
    }
  }
  return undefined;
}

/**
 * The 101 must select one of the offered entries or browsers fail the connection: a real
 * protocol name if there is one, else the `Token`/`Bearer` entry, else `access_token.<t>`.
 * The bare token of a `Token, <t>` pair is never echoed back.
 */
function selectSubprotocol(offered: string[], credentialEntries: Set<string> | undefined): string | undefined {
  if (offered.length === 0) return undefined;
  const real = offered.find((p) => !credentialEntries?.has(p));
  if (real !== undefined) return real;
  const scheme = offered.find((p) => /^(token|bearer)$/i.test(p));
  return scheme ?? offered[0];
}

/** Query parameters that carry credentials, compared decoded and lower-cased. */
const CREDENTIAL_PARAMS: ReadonlySet<string> = new Set(['token', 'access_token']);

/**
 * Replaces the values of credential-bearing query parameters so a URL (or any text quoting one)
 * can be logged. Names are compared percent-decoded (`?%74oken=` is a `token` to URLSearchParams).
 */
export function redactUrl(url: string): string {
  return url.replace(/([?&;])([^=&#?;\s]*)=([^&#;\s]*)/g, (whole: string, sep: string, name: string) =>
    CREDENTIAL_PARAMS.has(decodeName(name)) ? `${sep}${name}=[redacted]` : whole,
  );
}

function decodeName(name: string): string {
  try {
    return decodeURIComponent(name.replace(/\+/g, ' ')).toLowerCase();
  } catch {
    return name.toLowerCase();
  }
}

/** Secrets shorter than this are not searched for in free text (they would mangle it, and protect nothing). */
const MIN_SECRET_LENGTH = 4;

/**
 * Makes an error safe to log or emit (DESIGN.md: switchyard never logs a token): every string
 * own property (`message`, `stack`, and ones like the `input` a Node `ERR_INVALID_URL` carries)
 * and its `cause` chain get query credentials redacted, and each of `secrets` (the credentials of
 * the handshake at hand) replaced. The error is changed in place, so a host still receives the
 * object it threw; one that cannot be changed (frozen) is replaced by a plain copy of its message.
 */
export function redactError(error: Error, secrets: ReadonlyArray<string | undefined> = []): Error {
  const found = secrets.filter((s): s is string => s !== undefined && s.length >= MIN_SECRET_LENGTH);
  const clean = (text: string): string => {
    let out = redactUrl(text);
    for (const secret of found) out = out.split(secret).join('[redacted]');
    return out;
  };
  let current: unknown = error;
  for (let depth = 0; depth < 8 && current instanceof Error; depth++) {
    const target = current as unknown as Record<string, unknown>;
    for (const key of Object.getOwnPropertyNames(target)) {
      let value: unknown;
      try {
        value = target[key];
      } catch {
        continue; // a throwing getter carries nothing we could log
      }
      if (typeof value !== 'string') continue;
      const redacted = clean(value);
      if (redacted === value) continue;
      try {
        target[key] = redacted;
      } catch {
        // frozen: checked below
      }
      if (target[key] !== redacted) return new Error(clean(error.message));
    }
    current = target.cause;
  }
  return error;
}

/**
 * Hash of a token for storage: HMAC-SHA256 under an optional server-side pepper, hex. Tokens
 * meant for machines are long random strings, so a fast keyed hash is the right tool (a slow
 * password hash would only make every handshake slower).
 */
export function hashToken(token: string, pepper = ''): string {
  return createHmac('sha256', pepper).update(token, 'utf8').digest('hex');
}

/** Constant-time check of a presented token against a stored `hashToken` value. */
export function verifyToken(token: string, storedHash: string, pepper = ''): boolean {
  const actual = Buffer.from(hashToken(token, pepper), 'hex');
  const expected = Buffer.from(storedHash, 'hex');
  return expected.length === actual.length && timingSafeEqual(actual, expected);
}

/** A new high-entropy token (base64url, 32 random bytes by default). */
export function generateToken(bytes = 32): string {
  return randomBytes(bytes).toString('base64url');
}

/** Constant-time string comparison for hosts that must compare secrets directly. */
export function safeEqual(a: string, b: string): boolean {
  const x = Buffer.from(a, 'utf8');
  const y = Buffer.from(b, 'utf8');
  if (x.length !== y.length) {
    timingSafeEqual(x, x); // spend comparable time, then fail
    return false;
  }
  return timingSafeEqual(x, y);
}

/** A report's context with its string values passed through `redactUrl`. */
export function redactContext(context: Record<string, unknown>): Record<string, unknown> {
  let out: Record<string, unknown> | undefined;
  for (const [key, value] of Object.entries(context)) {
    if (typeof value !== 'string') continue;
    const redacted = redactUrl(value);
    if (redacted !== value) (out ??= { ...context })[key] = redacted;
  }
  return out ?? context;
}
