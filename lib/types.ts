/** The shapes the host's callbacks see and return. */
import type { IncomingMessage } from 'node:http';
import type { TopicSyntax } from './topics.js';

export type Access = 'read' | 'readwrite';

/** A permission in the built-in grants model (seed 000): a topic pattern and what it allows. */
export interface Grant {
  topic: string;
  access: Access;
}

/** What `authenticate` resolves to for an accepted connection. */
export interface Principal {
  /** User or device id. Direct messages, revocation and limits key on it. */
  id: string;
  /** Id of the token used, so `revoke({ tokenId })` can close exactly its connections. */
  tokenId?: string;
  /** Permissions for the built-in authorizer. Missing means none. */
  grants?: Grant[];
  /** Most simultaneous connections of this id (close 4004 past it). Default: the endpoint's limit. */
  maxConnections?: number;
  /** Refuse a second connection of this id while one is open (close 4009). */
  exclusive?: boolean;
  /** When the credentials expire (ms since the epoch): `AuthStatus token_expiring` ahead of it, close 4002 at it. */
  expiresAt?: number;
  /** Free-form data for the host, kept with the connection. */
  data?: Record<string, unknown>;
}

/** Where the credentials came from. */
/** Where credentials came from; `'refresh'`: a `Refresh` request on an open connection (in-band token refresh). */
export type CredentialSource = 'header' | 'query' | 'subprotocol' | 'refresh';

/** Credentials found in the upgrade request, parsed before `authenticate` sees them. */
export interface Credentials {
  /** `'bearer'` or `'token'` (the header's or subprotocol's scheme); `'query'` / `'access_token'` otherwise. */
  scheme: string;
  token: string;
  source: CredentialSource;
}

/** Everything `authenticate` is told about a connection attempt. */
export interface Handshake {
  /** Parsed credentials, or undefined when none were found (cookie-based hosts decide themselves). */
  credentials: Credentials | undefined;
  headers: IncomingMessage['headers'];
  /** Query parameters, first value of each. The `token` parameter is removed. */
  query: Record<string, string>;
  /** Path parameters of the endpoint's pattern (`/ws/device/:deviceId` → `{ deviceId }`). */
  params: Record<string, string>;
  /** The endpoint path pattern that matched. */
  path: string;
  /** The peer's address (read when first asked for). */
  readonly remoteAddress: string | undefined;
  /** The raw request, for cookies or anything the host's own middleware attached to it. */
  request: IncomingMessage;
}

export type Action = 'subscribe' | 'publish' | 'direct';

/**
 * Decides a connection attempt: a principal, or null to refuse (4001/401 without credentials,
 * 4003/403 with). Throwing a `BrokerError` refuses with that error's close code / HTTP status
 * instead (e.g. `new BrokerError('SY_ERR_INVALID_CREDENTIALS')`); any other error is a 1011/500.
 */
export type Authenticate = (handshake: Handshake) => Promise<Principal | null> | Principal | null;

/** Decides one action. `context.params` are the connection's path parameters. */
export type Authorize = (
  principal: Principal,
  action: Action,
  topic: string,
  context: AuthorizeContext,
) => Promise<boolean> | boolean;

export interface AuthorizeContext {
  /** Path parameters of the connection's endpoint; empty for server-side calls. */
  params: Record<string, string>;
  /** The broker's topic syntax (separator and wildcard characters). */
  syntax: TopicSyntax;
}

/** A subscription filter (seed 003): payload field (dot path) → allowed values. */
export type Filter = Record<string, readonly unknown[]>;

export interface Logger {
  debug(msg: string, ctx?: Record<string, unknown>): void;
  info(msg: string, ctx?: Record<string, unknown>): void;
  warn(msg: string, ctx?: Record<string, unknown>): void;
  error(msg: string, ctx?: Record<string, unknown>): void;
}
