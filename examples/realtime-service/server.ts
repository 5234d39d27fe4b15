/**
 * The Real-time Communication Service of seed 001 on switchyard: the JSON envelope on `/ws`,
 * JWTs from `?token=`, `Authorization: Bearer` or the `access_token.<jwt>` subprotocol, dotted
 * topics (`chat.general`, `updates.*`), direct messages, presence, notifications, history on
 * `chat.>` and binary frames; plus a small HTTP API on the same port (see api.ts).
 *
 *   npm run build && npx tsx examples/realtime-service/server.ts     # PORT=8081 JWT_SECRET=…
 */
import http from 'node:http';
import { realpathSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { createBroker, envelope, type Broker, type LimitOptions, type Logger } from 'switchyard';
import { attach } from 'switchyard/http';
import { api } from './api.js';
import { storeFrom } from './store.js';
import { FileInbox, type FileInboxOptions } from './files.js';
import { TokenRegistry, principalOf, signingKey, type IssuedToken, type ServiceClaims } from './tokens.js';

export interface StartOptions {
  /** Port to listen on; 0 picks a free one. Default: `PORT`, else 8081 (seed 001). */
  port?: number;
  /** Interface to bind. Default `127.0.0.1`. */
  host?: string;
  /** HS256 secret (≥ 32 bytes). Default: `JWT_SECRET`, else a random dev secret per process. */
  secret?: string;
  /** Lifetime of tokens from /api/login, in seconds. Default 900. */
  tokenTtlSeconds?: number;
  /** Users who get the admin role at login. Default: `ADMIN_USERS` (comma-separated), else `admin`. */
  admins?: string[];
  /** `AuthStatus token_expiring` this many ms before a token's `exp`. Default 60,000. */
  expiryWarningMs?: number;
  /** Broker limits; the defaults below are seed 001's 64 KB and a chat-sized rate. */
  limits?: LimitOptions;
  /** History kept per `chat.>` topic. Default 100 messages, 10 minutes. */
  history?: { maxMessages?: number; maxAgeMs?: number };
  /** Bounds of the in-memory inbox of `0x03` file transfers. */
  files?: FileInboxOptions;
  /** Where the service logs. Default: the console; `false` for silence. */
  logger?: Logger | false;
  /**
   * Where history and offline direct messages live: `redis://…`, `postgres://…`, or unset for
   * memory. Default: `STORE`, else memory (see store.ts).
   */
  store?: string;
  /** Key or table prefix in that store. Default `STORE_PREFIX`, else `realtime_`. */
  storePrefix?: string;
}

export interface RealtimeService {
  broker: Broker;
  server: http.Server;
  port: number;
  /** `ws://host:port/ws` */
  wsUrl: string;
  /** `http://host:port` */
  httpUrl: string;
  /** Files received as seed 001 `0x03` binary file transfers (bounded, in memory). */
  files: FileInbox;
  /** Signs a token as /api/login would (tests and scripts). */
  issueToken(user: string, claims?: Partial<ServiceClaims>, ttlSeconds?: number): Promise<IssuedToken>;
  close(): Promise<void>;
}

const consoleLogger: Logger = {
  debug() {},
  info: (msg, ctx) => console.info(msg, ctx ?? ''),
  warn: (msg, ctx) => console.warn(msg, ctx ?? ''),
  error: (msg, ctx) => console.error(msg, ctx ?? ''),
};

const silent: Logger = { debug() {}, info() {}, warn() {}, error() {} };

export async function start(options: StartOptions = {}): Promise<RealtimeService> {
  const logger = options.logger === false ? silent : (options.logger ?? consoleLogger);
  const { key, generated } = signingKey(options.secret);
  if (generated) logger.warn('JWT_SECRET is not set: using a random secret; tokens die with this process');
  const tokens = new TokenRegistry(key);
  const admins = new Set(options.admins ?? (process.env.ADMIN_USERS ?? 'admin').split(',').map((s) => s.trim()).filter(Boolean));
  const tokenTtlSeconds = options.tokenTtlSeconds ?? 900;
  const files = new FileInbox(options.files);

  // The one line that picks the backend; the broker closes the store it is given in close().
  const store = await storeFrom(options.store ?? process.env.STORE, options.storePrefix ?? process.env.STORE_PREFIX);
  const broker = createBroker({
    store,
    endpoints: [
      {
        path: '/ws',
        protocol: envelope({
          // Seed 001 "Protocol Extensions": an `X-` type of this service. It tells a client who it
          // is and when its token expires, so it can fetch a new one before `token_expiring`.
          handlers: {
            'X-Whoami': (conn) => ({
              user_id: conn.principal.id,
              roles: conn.principal.data?.roles ?? [],
              token_id: conn.principal.tokenId,
              expires_at: conn.principal.expiresAt,
            }),
          },
          // Seed 001 "Binary Message Format": 0x03 file transfer, acknowledged by the core with
          // `Status binary_received {size, type: 'file_transfer', checksum: 'sha256:…'}`.
          binary: { file_transfer: files.handler },
        }),
      },
    ],
    // Seed 001 "Authentication Methods": the core finds the token in the header, the query or
    // the subprotocol; here it is verified and its claims become the principal. A null answer
    // closes 4003 (4001 when no token was sent at all).
    authenticate: async ({ credentials }) => {
      if (credentials === undefined) return null;
      if (credentials.source === 'header' && credentials.scheme !== 'bearer') return null;
      const claims = await tokens.verify(credentials.token);
      return claims === null ? null : principalOf(claims);
    },
    // Seed 001 subscribes to `chat.general` and `updates.*`: dotted levels, `*` for one level.
    topics: { separator: '.', single: '*', multi: '>' },
    history: { topics: ['chat.>'], maxMessages: options.history?.maxMessages ?? 100, maxAgeMs: options.history?.maxAgeMs ?? 10 * 60_000 },
    expiryWarningMs: options.expiryWarningMs ?? 60_000,
    limits: { maxMessageBytes: 64 * 1024, rate: { perSecond: 50, burst: 100 }, ...options.limits },
    logger,
  });
  broker.on('error', (err) => logger.error(err.message, err.context));

  const server = http.createServer(api({ broker, tokens, admins, tokenTtlSeconds }));
  attach(broker, server);
  const host = options.host ?? '127.0.0.1';
  const port = options.port ?? (process.env.PORT === undefined ? 8081 : Number(process.env.PORT));
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.removeListener('error', reject);
      resolve();
    });
  });
  const bound = (server.address() as AddressInfo).port;
  const authority = `${host.includes(':') ? `[${host}]` : host}:${bound}`;

  let closing: Promise<void> | undefined;
  return {
    broker,
    server,
    files,
    port: bound,
    wsUrl: `ws://${authority}/ws`,
    httpUrl: `http://${authority}`,
    issueToken: (user, claims = {}, ttlSeconds = tokenTtlSeconds) =>
      tokens.issue(user, { roles: claims.roles ?? (admins.has(user) ? ['user', 'admin'] : ['user']), ...(claims.presence && { presence: claims.presence }) }, ttlSeconds),
    close() {
      closing ??= (async () => {
        await broker.close(); // every socket gets 1001 first
        server.closeAllConnections();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      })();
      return closing;
    },
  };
}

function isMain(): boolean {
  const entry = process.argv[1];
  if (entry === undefined) return false;
  try {
    return realpathSync(entry) === realpathSync(fileURLToPath(import.meta.url));
  } catch {
    return false;
  }
}

if (isMain()) {
  const service = await start();
  console.info(`realtime service: ${service.wsUrl} (WebSocket), ${service.httpUrl}/api/login (HTTP)`);
  const stop = (): void => {
    service.close().then(
      () => process.exit(0),
      (err: unknown) => {
        console.error(err);
        process.exit(1);
      },
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}
