/**
 * An Express app that already has its users, API tokens and REST API, with switchyard mounted
 * on the same port. The app's own token middleware decides who a WebSocket is, its roles become
 * switchyard grants, and its REST routes publish through `broker.publish`.
 *
 *   npm run build && npx tsx examples/express-app/server.ts     (PORT, default 8080; HOST)
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import express, { type RequestHandler } from 'express';
import { createBroker, envelope, type Broker, type Store } from 'switchyard';
import { attach, expressRequest } from 'switchyard/express';
import { grantsFor, Users, type Auth, type Role } from './users.js';

declare module 'express-serve-static-core' {
  interface Request {
    /** Set by `identify` when the request carries a valid token. */
    auth?: Auth;
  }
}

/**
 * The app's one token check: `Authorization: Bearer <t>` or `?token=<t>` (what a browser's
 * WebSocket can send). Used by the REST API and, through `attach(…, { use })`, by the upgrade.
 */
export function identify(users: Users): RequestHandler {
  return (req, _res, next) => {
    const bearer = /^Bearer\s+(\S+)$/i.exec(req.get('authorization') ?? '')?.[1];
    const token = bearer ?? (typeof req.query.token === 'string' ? req.query.token : undefined);
    if (token !== undefined) req.auth = users.verify(token);
    next();
  };
}

function requireRole(...roles: Role[]): RequestHandler {
  return (req, res, next) => {
    if (req.auth === undefined) return void res.status(401).json({ error: 'a valid token is required' });
    if (!roles.includes(req.auth.user.role)) return void res.status(403).json({ error: `needs role ${roles.join(' or ')}` });
    next();
  };
}

/** A single path parameter (Express types a parameter as a string or, for wildcards, a list). */
function param(value: string | string[] | undefined): string {
  return typeof value === 'string' ? value : '';
}

function text(body: unknown): string | undefined {
  const value = (body as { text?: unknown } | undefined)?.text;
  return typeof value === 'string' && value.trim() !== '' && value.length <= 2000 ? value : undefined;
}

export interface StartOptions {
  /** Default 8080; 0 picks a free port. */
  port?: number;
  /** Default 127.0.0.1. */
  host?: string;
  /** The app's users and tokens. Default: a new table with the three demo users. */
  users?: Users;
  /** Where the broker keeps room history. Default: in memory. */
  store?: Store;
  /** The browser build of `switchyard/client` the page loads. Default `dist/client.js` (`npm run build`). */
  clientScript?: string;
}

export interface ExpressExample {
  app: express.Express;
  broker: Broker;
  server: Server;
  users: Users;
  port: number;
  url: string;
  /** Plaintext demo tokens, issued at start (only their hashes are stored). */
  demo: Record<'alice' | 'bob' | 'carol', string>;
  stop(): Promise<void>;
}

export async function start(options: StartOptions = {}): Promise<ExpressExample> {
  const users = options.users ?? new Users();
  if (users.get('alice') === undefined) {
    users.add({ id: 'alice', name: 'Alice', role: 'admin' });
    users.add({ id: 'bob', name: 'Bob', role: 'member' });
    users.add({ id: 'carol', name: 'Carol', role: 'viewer' });
  }
  const demo = {
    alice: users.issueToken('alice').token,
    bob: users.issueToken('bob').token,
    carol: users.issueToken('carol').token,
  };

  const app = express();
  const broker = createBroker({
    endpoints: [
      {
        path: '/ws',
        protocol: envelope(),
        // WebSocket paths follow the app's own routing settings.
        strict: app.enabled('strict routing'),
        caseSensitive: app.enabled('case sensitive routing'),
      },
    ],
    // `identify` already ran on this upgrade (see attach below): turn its answer into a principal.
    // null → close 4001 (no token) or 4003 (a token that is not valid), which a browser can see.
    authenticate: (handshake) => {
      const auth = expressRequest(handshake)?.auth;
      if (auth === undefined) return null;
      const { user, tokenId } = auth;
      return { id: user.id, tokenId, grants: grantsFor(user.role), data: { name: user.name, role: user.role } };
    },
    // Rooms keep their last messages, so the page's client recovers what it missed while away.
    history: { topics: ['rooms/#'] },
    ...(options.store && { store: options.store }),
  });

  // The page's client: switchyard/client's browser build, one self-contained ES module.
  const clientScript = options.clientScript ?? fileURLToPath(new URL('../../dist/client.js', import.meta.url));
  app.get('/switchyard-client.js', (_req, res) => res.type('text/javascript').sendFile(clientScript));

  app.use(express.static(fileURLToPath(new URL('./public/', import.meta.url))));
  app.use(express.json());
  app.use('/api', identify(users));

  app.get('/api/me', requireRole('admin', 'member', 'viewer'), (req, res) => {
    const { user } = req.auth!;
    res.json({ user, grants: grantsFor(user.role), connections: broker.connectionsOf(user.id) });
  });

  app.post('/api/rooms/:room/messages', requireRole('admin', 'member'), async (req, res) => {
    const room = param(req.params.room);
    const message = text(req.body);
    if (!/^[\w-]{1,32}$/.test(room) || message === undefined) {
      return void res.status(400).json({ error: 'needs a room of letters, digits, - or _ and a non-empty {"text"}' });
    }
    const { user } = req.auth!;
    const payload = { from: user.id, name: user.name, text: message, at: new Date().toISOString() };
    const result = await broker.publish(`rooms/${room}`, payload);
    res.status(201).json({ messageId: result.messageId, recipients: result.recipients });
  });

  app.post('/api/announcements', requireRole('admin'), async (req, res) => {
    const message = text(req.body);
    if (message === undefined) return void res.status(400).json({ error: 'needs a non-empty {"text"}' });
    const result = await broker.publish('announcements', { text: message, at: new Date().toISOString() });
    res.status(201).json({ messageId: result.messageId, recipients: result.recipients });
  });

  // Revoking a token also closes (4002) the WebSockets that were opened with it.
  app.delete('/api/tokens/:tokenId', requireRole('admin'), (req, res) => {
    const tokenId = param(req.params.tokenId);
    const revoked = users.revokeToken(tokenId);
    const closed = broker.revoke({ tokenId });
    res.status(revoked ? 200 : 404).json({ revoked, closed });
  });

  const host = options.host ?? '127.0.0.1';
  const server = app.listen(options.port ?? 8080, host);
  await new Promise<void>((done, failed) => {
    server.once('error', failed);
    server.once('listening', () => {
      server.off('error', failed);
      done();
    });
  });
  // After the routes: upgrades for /ws run `identify`; other upgrades reach the app (its 404).
  attach(broker, server, { app, use: [identify(users)] });
  const port = (server.address() as AddressInfo).port;

  return {
    app,
    broker,
    server,
    users,
    port,
    url: `http://localhost:${port}`,
    demo,
    async stop() {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const running = await start({ port: Number(process.env.PORT ?? 8080), host: process.env.HOST ?? '127.0.0.1' });
  const { url, demo } = running;
  console.log(`switchyard on Express: ${url}  (WebSocket: ${url.replace('http', 'ws')}/ws)`);
  console.log('\nDemo tokens (stored hashed; new ones on every start):');
  console.log(`  alice (admin)  ${demo.alice}`);
  console.log(`  bob   (member) ${demo.bob}`);
  console.log(`  carol (viewer) ${demo.carol}`);
  console.log(`\nOpen the page as Bob:   ${url}/?token=${encodeURIComponent(demo.bob)}`);
  console.log('Then publish through the REST API, and watch it arrive on the page:');
  console.log(`  curl -X POST ${url}/api/rooms/lobby/messages -H 'Authorization: Bearer ${demo.bob}' -H 'Content-Type: application/json' -d '{"text":"hello from curl"}'`);
  const shutdown = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
