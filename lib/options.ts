/** Every option of the broker, with its default, resolved in one place. */
import { BrokerError } from './errors.js';
import { ALL_CREDENTIAL_SOURCES } from './auth.js';
import type { Bus } from './bus.js';
import { resolveCompression, type CompressionOptions, type ResolvedCompression } from './deflate.js';
import { compileOrigins, type AllowedOrigins, type OriginCheck } from './origin.js';
import { compilePath, type PathMatcher } from './path.js';
import type { Protocol } from './protocol.js';
import type { Registry } from './registry.js';
import type { Store } from './store.js';
import { resolveTopicSyntax, type TopicOptions, type TopicSyntax } from './topics.js';
import type { ObjectFirstLogger } from './logger.js';
import type { Authenticate, Authorize, CredentialSource, Logger } from './types.js';

export interface EndpointOptions {
  /** Path pattern: `/ws`, `/ws/device/:deviceId`, `/ws/workspaces/:id/`. */
  path: string;
  /** The wire protocol spoken on this path. */
  protocol: Protocol;
  /**
   * How a refused handshake is answered: `'close'` completes the upgrade and closes with
   * 4001/4003/4004/4009 (what a browser can see); `'http'` answers 401/403/429/409 before the
   * upgrade (seed 002). Default `'close'`.
   */
  reject?: 'close' | 'http';
  /**
   * Page origins allowed to connect, checked before `authenticate`; others get HTTP 403 before
   * the upgrade. A list, `'same-origin'` or a predicate (see `AllowedOrigins`). Set it on
   * every endpoint that authenticates by cookie. Default: any origin.
   */
  allowedOrigins?: AllowedOrigins;
  /** Where credentials may come from. Default: header, query and subprotocol. */
  credentials?: CredentialSource[];
  /** Refuse a second connection of the same principal (4009) on this endpoint. Default false. */
  exclusive?: boolean;
  /** Connections per principal when the principal does not say (4004). Default unlimited. */
  maxConnectionsPerPrincipal?: number;
  /** Remaps close codes for this endpoint, e.g. `{ 4001: 4401, 4003: 4401 }` (seed 004). */
  closeCodes?: Record<number, number>;
  /** Overrides the broker's `authenticate` for this endpoint. */
  authenticate?: Authenticate;
  /** Overrides the broker's `authorize` for this endpoint. */
  authorize?: Authorize;
  /** Deliver a connection's own broadcasts back to it. Default false. */
  echo?: boolean;
  /** Trailing slash significant (`/ws` ≠ `/ws/`). Default false, as Express and Koa routers. */
  strict?: boolean;
  /** Path matching case-sensitive. Default true. */
  caseSensitive?: boolean;
  /**
   * permessage-deflate (RFC 7692) for clients that offer it: `true` for the defaults, or an
   * object (threshold in bytes, level, window bits). A publish is compressed once per endpoint
   * and shared by every subscriber (README, "Compression"). Default false (off).
   */
  compression?: boolean | CompressionOptions;
}

export interface LimitOptions {
  /** Largest inbound message in bytes (once inflated, if compressed); bigger closes with 1009. Default 64 KiB (seed 001). */
  maxMessageBytes?: number;
  /** Most frames one inbound message may be fragmented into; more closes with 1009. Default 1,024. */
  maxFragments?: number;
  /** Token bucket per connection, or false for none. Default 100/s with a burst of 200. */
  rate?: { perSecond: number; burst: number } | false;
  /** Refused (429) messages within `rateAbuseWindowMs` needed, at the least, before the connection is closed with 1008. Default 50. */
  rateAbuseStrikes?: number;
  /**
   * The window rate-limit abuse is judged over, in ms. A connection is closed with 1008 when, over
   * the last window, at least half of its frames were refused (429), at least `rateAbuseStrikes`
   * of them, spread over at least half of the window: a client at 10× the rate is closed after
   * about half the window; one burst past the bucket is not. Default 4,000.
   */
  rateAbuseWindowMs?: number;
  /** Subscriptions per connection. Default 256. */
  maxSubscriptions?: number;
  /** Bytes waiting to be written to one connection before it is closed with 1013. Default 1 MiB. */
  maxBufferedBytes?: number;
  /** Time from upgrade request to a decided handshake, in ms. Default 10,000. */
  handshakeTimeoutMs?: number;
  /** Time a closing connection gets to finish the close handshake before it is destroyed, ms. Default 2,000. */
  closeTimeoutMs?: number;
  /** Connections on this broker, handshakes included (503 or close 1013 past it). Default 100,000. */
  maxConnections?: number;
  /** Inbound frames being handled at once per connection before reading pauses. Default 32. */
  maxInflight?: number;
}

export interface HistoryOptions {
  /** Patterns of topics that keep history. */
  topics: string[];
  /** Records kept per topic. Default 100. */
  maxMessages?: number;
  /** Age limit of records in ms. Default 5 minutes. */
  maxAgeMs?: number;
  /**
   * With a bus: how long a message that arrives before earlier ones of its topic waits for them,
   * in ms, before they are read from the store (README "Running several nodes"). Default 20.
   */
  reorderWaitMs?: number;
  /** With a bus: messages waiting per topic; reaching it reads the store at once. Default 1,000. */
  reorderMaxBuffered?: number;
  /** With a bus: history topics a node orders at once; further ones are delivered unordered. Default 10,000. */
  reorderMaxTopics?: number;
}

export interface BrokerOptions {
  /** The paths this broker serves. At least one. */
  endpoints: EndpointOptions[];
  /** Decides each connection attempt: a principal, or null to refuse. Called for every handshake. */
  authenticate: Authenticate;
  /** Decides subscribe / publish / direct. Default: the principal's grants. */
  authorize?: Authorize;
  /** Topic separator, wildcard characters and bounds. */
  topics?: TopicOptions;
  limits?: LimitOptions;
  /** WebSocket ping interval in ms; a peer that has not answered the previous ping is terminated. Default 30,000; false disables. */
  heartbeat?: { intervalMs: number } | false;
  /** Queue direct messages for offline principals (kept by the store). Default true. */
  offlineQueue?: boolean;
  /** Publish presence changes on `$presence/<id>` and answer presence queries. Default true. */
  presence?: boolean;
  /** Topics that keep history (offsets, recovery, latest value). Default none. */
  history?: HistoryOptions;
  /** Send `AuthStatus token_expiring` this many ms before a principal's `expiresAt`. Default 60,000. */
  expiryWarningMs?: number;
  /** Where history and offline messages are kept. Default: a MemoryStore. */
  store?: Store;
  /**
   * How long a request waits for the store (a publish to a history topic, a queued direct
   * message, a History read, a recovery), in milliseconds; past it, or when the store fails, the
   * client gets Error 503 with `retry_after_ms`. Default 2,000.
   */
  storeTimeoutMs?: number;
  /** How broker nodes reach each other (`MemoryBus` with a shared `MemoryHub` in one process). Default: none, a single node. */
  bus?: Bus;
  /**
   * Cluster-wide acks: a publish's `recipients` (Broadcast Ack, `broker.publish`) counts the
   * connections on every node, not only this one's. Each node answers with its count over the bus;
   * this broker waits up to `timeoutMs` (default 1,000) and names the nodes that did not answer
   * (Ack `partial: true`, `missing_nodes`; `PublishResult.missingNodes`) rather than wait longer.
   * Nodes are known from their hellos on the bus, every `helloIntervalMs` (default 1,000) while
   * some node asks; one unseen for 3 intervals is gone. `true` for the defaults. Without a bus it
   * changes nothing. Default false: no count and no hello on the bus.
   */
  clusterAcks?: boolean | { timeoutMs?: number; helloIntervalMs?: number };
  /**
   * Where the cluster's connections are known (connections per principal, on which nodes). With a
   * bus, give every node the same one (one `MemoryRegistry` in one process): a direct message is
   * then queued only when its principal is connected nowhere. Default: a MemoryRegistry of this
   * broker alone (with a bus, a principal connected only to another node then counts as offline).
   */
  registry?: Registry;
  /**
   * Where the broker reports what it does not throw: `{debug, info, warn, error}(msg, ctx)`. A
   * pino logger (Fastify's `app.log`, `(obj, msg)`) is recognised and adapted; wrap other
   * `(obj, msg)` loggers in `objectFirst()`. Default: silent (the Fastify plugin: the app's logger).
   */
  logger?: Logger | ObjectFirstLogger;
}

export interface ResolvedEndpoint {
  index: number;
  pattern: string;
  match: PathMatcher;
  protocol: Protocol;
  reject: 'close' | 'http';
  credentials: readonly CredentialSource[];
  /** Undefined when every origin is allowed. */
  origin: OriginCheck | undefined;
  exclusive: boolean;
  maxConnectionsPerPrincipal: number;
  closeCodes: Readonly<Record<number, number>>;
  authenticate: Authenticate;
  authorize: Authorize | undefined;
  echo: boolean;
  /** permessage-deflate settings, or null when the endpoint does not compress. */
  compression: ResolvedCompression | null;
}

export interface ResolvedLimits {
  maxMessageBytes: number;
  maxFragments: number;
  rate: { perSecond: number; burst: number } | false;
  rateAbuseStrikes: number;
  rateAbuseWindowMs: number;
  maxSubscriptions: number;
  maxBufferedBytes: number;
  handshakeTimeoutMs: number;
  closeTimeoutMs: number;
  maxConnections: number;
  maxInflight: number;
}

export interface ResolvedOptions {
  endpoints: ResolvedEndpoint[];
  syntax: TopicSyntax;
  limits: ResolvedLimits;
  heartbeatMs: number | false;
  offlineQueue: boolean;
  presence: boolean;
  history: { topics: string[]; maxMessages: number; maxAgeMs: number; reorder: { waitMs: number; maxBuffered: number; maxTopics: number } } | undefined;
  expiryWarningMs: number;
  storeTimeoutMs: number;
  /** null when off. */
  clusterAcks: { timeoutMs: number; helloIntervalMs: number } | null;
}

const SILENT: Logger = { debug() {}, info() {}, warn() {}, error() {} };
export const silentLogger = SILENT;

function fail(message: string): never {
  throw new BrokerError('SY_ERR_OPTIONS', message);
}

function positive(name: string, value: number | undefined, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || Number.isNaN(value) || value <= 0) fail(`${name} must be a positive number`);
  return value;
}

function originCheck(allowed: AllowedOrigins | undefined, index: number): OriginCheck | undefined {
  if (allowed === undefined) return undefined;
  try {
    return compileOrigins(allowed);
  } catch (err) {
    return fail(`endpoints[${index}].${(err as Error).message}`);
  }
}

export function resolveOptions(options: BrokerOptions): ResolvedOptions {
  if (options === null || typeof options !== 'object') fail('createBroker needs an options object');
  if (typeof options.authenticate !== 'function') fail('authenticate must be a function');
  if (options.authorize !== undefined && typeof options.authorize !== 'function') fail('authorize must be a function');
  if (!Array.isArray(options.endpoints) || options.endpoints.length === 0) fail('endpoints must list at least one endpoint');
  const syntax = resolveTopicSyntax(options.topics);
  const l = options.limits ?? {};
  const rate = l.rate === undefined ? { perSecond: 100, burst: 200 } : l.rate;
  if (rate !== false && !(rate.perSecond > 0 && rate.burst >= 1)) fail('limits.rate needs perSecond > 0 and burst >= 1');
  const limits: ResolvedLimits = {
    maxMessageBytes: positive('limits.maxMessageBytes', l.maxMessageBytes, 64 * 1024),
    maxFragments: positive('limits.maxFragments', l.maxFragments, 1024),
    rate,
    rateAbuseStrikes: positive('limits.rateAbuseStrikes', l.rateAbuseStrikes, 50),
    rateAbuseWindowMs: positive('limits.rateAbuseWindowMs', l.rateAbuseWindowMs, 4_000),
    maxSubscriptions: positive('limits.maxSubscriptions', l.maxSubscriptions, 256),
    maxBufferedBytes: positive('limits.maxBufferedBytes', l.maxBufferedBytes, 1024 * 1024),
    handshakeTimeoutMs: positive('limits.handshakeTimeoutMs', l.handshakeTimeoutMs, 10_000),
    closeTimeoutMs: positive('limits.closeTimeoutMs', l.closeTimeoutMs, 2_000),
    maxConnections: positive('limits.maxConnections', l.maxConnections, 100_000),
    maxInflight: positive('limits.maxInflight', l.maxInflight, 32),
  };
  const seen = new Set<string>();
  const endpoints = options.endpoints.map((e, index): ResolvedEndpoint => {
    if (typeof e?.path !== 'string' || !e.path.startsWith('/')) fail(`endpoints[${index}].path must start with '/'`);
    if (e.protocol === undefined || typeof e.protocol.receive !== 'function') fail(`endpoints[${index}].protocol must be a protocol (e.g. envelope())`);
    if (seen.has(e.path)) fail(`endpoint path ${e.path} is listed twice`);
    seen.add(e.path);
    if (e.reject !== undefined && e.reject !== 'close' && e.reject !== 'http') fail(`endpoints[${index}].reject must be 'close' or 'http'`);
    const credentials = e.credentials ?? ALL_CREDENTIAL_SOURCES;
    let compression: ResolvedCompression | null;
    try {
      compression = resolveCompression(e.compression, `endpoints[${index}].compression`);
    } catch (err) {
      fail((err as Error).message);
    }
    for (const c of credentials) if (!ALL_CREDENTIAL_SOURCES.includes(c)) fail(`unknown credential source '${c}'`);
    return {
      index,
      pattern: e.path,
      match: compilePath(e.path, { strict: e.strict ?? false, caseSensitive: e.caseSensitive ?? true }),
      protocol: e.protocol,
      reject: e.reject ?? 'close',
      credentials,
      origin: originCheck(e.allowedOrigins, index),
      exclusive: e.exclusive ?? false,
      maxConnectionsPerPrincipal: positive(`endpoints[${index}].maxConnectionsPerPrincipal`, e.maxConnectionsPerPrincipal, Infinity),
      closeCodes: e.closeCodes ?? {},
      authenticate: e.authenticate ?? options.authenticate,
      authorize: e.authorize,
      echo: e.echo ?? false,
      compression,
    };
  });
  let history: ResolvedOptions['history'];
  if (options.history !== undefined) {
    const h = options.history;
    if (!Array.isArray(h.topics)) fail('history.topics must be an array of patterns');
    history = {
      topics: h.topics,
      maxMessages: positive('history.maxMessages', h.maxMessages, 100),
      maxAgeMs: positive('history.maxAgeMs', h.maxAgeMs, 5 * 60 * 1000),
      reorder: {
        waitMs: positive('history.reorderWaitMs', h.reorderWaitMs, 20),
        maxBuffered: positive('history.reorderMaxBuffered', h.reorderMaxBuffered, 1000),
        maxTopics: positive('history.reorderMaxTopics', h.reorderMaxTopics, 10_000),
      },
    };
  }
  const heartbeat = options.heartbeat === undefined ? { intervalMs: 30_000 } : options.heartbeat;
  return {
    endpoints,
    syntax,
    limits,
    heartbeatMs: heartbeat === false ? false : positive('heartbeat.intervalMs', heartbeat.intervalMs, 30_000),
    offlineQueue: options.offlineQueue ?? true,
    presence: options.presence ?? true,
    history,
    expiryWarningMs: positive('expiryWarningMs', options.expiryWarningMs, 60_000),
    storeTimeoutMs: positive('storeTimeoutMs', options.storeTimeoutMs, 2_000),
    clusterAcks: resolveClusterAcks(options.clusterAcks),
  };
}

function resolveClusterAcks(option: BrokerOptions['clusterAcks']): ResolvedOptions['clusterAcks'] {
  if (option === undefined || option === false) return null;
  if (option === true) return { timeoutMs: 1_000, helloIntervalMs: 1_000 };
  if (option === null || typeof option !== 'object') fail('clusterAcks must be a boolean or { timeoutMs?, helloIntervalMs? }');
  const finite = (name: string, value: number | undefined) => {
    if (value !== undefined && !Number.isFinite(value)) fail(`clusterAcks.${name} must be a positive number`);
    return positive(`clusterAcks.${name}`, value, 1_000);
  };
  return { timeoutMs: finite('timeoutMs', option.timeoutMs), helloIntervalMs: finite('helloIntervalMs', option.helloIntervalMs) };
}
