/**
 * The four hosts the shared adapter suite runs against: real Express, Fastify and Koa apps and
 * a bare http.Server, each on port 0, each with its own REST routes and its own session
 * machinery (a `sid` cookie checked by the framework's middleware or hook).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import fastifyCookie from '@fastify/cookie';
import Router from '@koa/router';
import express, { type RequestHandler } from 'express';
import Fastify, { type onRequestHookHandler } from 'fastify';
import Koa, { type Middleware } from 'koa';
import WebSocket from 'ws';
import type { Broker, EndpointOptions, Handshake } from 'switchyard';
import { attach as attachExpress, expressRequest } from 'switchyard/express';
import { fastifyRequest, fastifySwitchyard } from 'switchyard/fastify';
import { attach as attachHttp } from 'switchyard/http';
import { attach as attachKoa, koaContext } from 'switchyard/koa';

export interface SessionUser {
  id: string;
  role: 'member' | 'admin';
}

declare module 'express-serve-static-core' {
  interface Request {
    sessionUser?: SessionUser;
  }
}
declare module 'fastify' {
  interface FastifyRequest {
    sessionUser?: SessionUser | null;
  }
}

/**
 * The hosts' own session store: `sid` cookie → user. `boom` makes the middleware throw and
 * `hang` makes it never finish.
 */
export const SESSIONS: Record<string, SessionUser> = { 's-carol': { id: 'carol', role: 'member' } };

/** How many times a host's machinery started to hang (`sid=hang`). */
export const hanging = { count: 0 };

type Session = { user: SessionUser } | { refuse: 401 } | { fail: Error } | { hang: Promise<never> } | null;

function sessionOf(cookieHeader: string | undefined): Session {
  const sid = /(?:^|;\s*)sid=([^;]*)/.exec(cookieHeader ?? '')?.[1];
  if (sid === undefined) return null;
  if (sid === 'boom') return { fail: new Error('session store unavailable') };
  if (sid === 'hang') {
    hanging.count++;
    return { hang: new Promise<never>(() => {}) };
  }
  const user = SESSIONS[decodeURIComponent(sid)];
  return user === undefined ? { refuse: 401 } : { user };
}

export interface Host {
  port: number;
  server: http.Server;
  /** 'upgrade' listeners on the server before the broker was mounted. */
  baseline: number;
  /** Detaches the broker from the server without closing either (Fastify: none; its close hook does). */
  detach?: () => void;
  /** The framework's own shutdown (for Fastify, `app.close()` alone; else broker, then server). */
  stop: () => Promise<void>;
}

export interface AdapterCase {
  name: 'express' | 'fastify' | 'koa' | 'http';
  /** The framework's own routing settings, passed through to the broker's endpoints. */
  routing: Pick<EndpointOptions, 'strict' | 'caseSensitive'>;
  /** What the host's own machinery decided for this handshake (for `authenticate`). */
  hostUser: (handshake: Handshake) => SessionUser | undefined;
  /** How a session the host refuses ends: the framework's HTTP answer, or the broker's close code. */
  refusedSession: { status: number } | { close: number };
  /**
   * WebSocket paths known to be answered differently from the framework's own routes, and why.
   * @koa/router requires a pattern's own trailing slash; the broker's non-strict matching (as
   * Express's) makes it optional, and the core has no mode for the @koa/router rule.
   */
  divergences?: Record<string, string>;
  /** The framework's answer to an upgrade for a path no one owns. */
  notFound: { status: number; body: RegExp };
  mount: (broker: Broker) => Promise<Host>;
}

async function listening(server: http.Server): Promise<number> {
  if (!server.listening) await new Promise<void>((resolve) => server.once('listening', resolve));
  return (server.address() as AddressInfo).port;
}

async function closeServer(broker: Broker, server: http.Server): Promise<void> {
  await broker.close();
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
}

const expressSession: RequestHandler = (req, res, next) => {
  const session = sessionOf(req.get('cookie'));
  if (session === null) return next();
  if ('fail' in session) throw session.fail;
  if ('hang' in session) return;
  if ('refuse' in session) return void res.status(401).json({ error: 'session expired' });
  req.sessionUser = session.user;
  next();
};

const koaSession: Middleware = async (ctx, next) => {
  const session = sessionOf(ctx.get('cookie'));
  if (session !== null && 'fail' in session) throw session.fail;
  if (session !== null && 'hang' in session) await session.hang;
  if (session !== null && 'refuse' in session) ctx.throw(401, 'session expired');
  if (session !== null && 'user' in session) ctx.state.sessionUser = session.user;
  await next();
};

const fastifySession: onRequestHookHandler = async (request, reply) => {
  const sid = request.cookies.sid;
  const session = sessionOf(sid === undefined ? undefined : `sid=${sid}`);
  if (session !== null && 'fail' in session) throw session.fail;
  if (session !== null && 'hang' in session) await session.hang;
  if (session !== null && 'refuse' in session) return reply.code(401).send({ error: 'session expired' });
  request.sessionUser = session !== null && 'user' in session ? session.user : null;
};

/** Reads the JSON body of a bare http request. */
async function jsonBody(req: http.IncomingMessage): Promise<unknown> {
  let text = '';
  for await (const chunk of req) text += chunk;
  return JSON.parse(text);
}

export const ADAPTERS: AdapterCase[] = [
  {
    name: 'express',
    routing: { strict: false, caseSensitive: false },
    hostUser: (h) => expressRequest(h)?.sessionUser,
    refusedSession: { status: 401 },
    notFound: { status: 404, body: /Cannot GET \/nope/ },
    async mount(broker) {
      const app = express();
      app.use(express.json());
      app.post('/api/rooms/:room/messages', async (req, res) => {
        const result = await broker.publish(`rooms/${req.params.room}`, req.body);
        res.json({ recipients: result.recipients });
      });
      app.get('/api/device/:deviceId', (req, res) => void res.json(req.params));
      app.get('/api/workspaces/:id/', (req, res) => void res.json(req.params));
      const server = app.listen(0, '127.0.0.1');
      const baseline = server.listenerCount('upgrade');
      const detach = attachExpress(broker, server, { app, use: [expressSession] });
      return { port: await listening(server), server, baseline, detach, stop: () => closeServer(broker, server) };
    },
  },
  {
    name: 'fastify',
    // Fastify's router sees the upgrade first (its ignoreTrailingSlash and caseSensitive apply);
    // the broker's defaults are at least as permissive, so Fastify's answer is the one that counts.
    routing: {},
    hostUser: (h) => fastifyRequest(h)?.sessionUser ?? undefined,
    refusedSession: { status: 401 },
    notFound: { status: 404, body: /Route GET:\/nope not found/ },
    async mount(broker) {
      const app = Fastify();
      await app.register(fastifyCookie);
      app.decorateRequest('sessionUser', null);
      app.post<{ Params: { room: string } }>('/api/rooms/:room/messages', async (request) => {
        const result = await broker.publish(`rooms/${request.params.room}`, request.body);
        return { recipients: result.recipients };
      });
      app.get('/api/device/:deviceId', async (request) => request.params);
      app.get('/api/workspaces/:id/', async (request) => request.params);
      const baseline = app.server.listenerCount('upgrade');
      await app.register(fastifySwitchyard, { broker, onRequest: fastifySession });
      await app.listen({ port: 0, host: '127.0.0.1' });
      return { port: await listening(app.server), server: app.server, baseline, stop: () => app.close() };
    },
  },
  {
    name: 'koa',
    // @koa/router's defaults: trailing slash optional, case-insensitive.
    routing: { strict: false, caseSensitive: false },
    hostUser: (h) => koaContext(h)?.state.sessionUser,
    refusedSession: { status: 401 },
    divergences: { '/ws/workspaces/42': '@koa/router needs the pattern\'s trailing slash; the broker does not' },
    notFound: { status: 404, body: /^Not Found$/ },
    async mount(broker) {
      const app = new Koa();
      app.silent = true; // the suite makes middleware fail on purpose
      const router = new Router();
      router.post('/api/rooms/:room/messages', async (ctx) => {
        const body = await jsonBody(ctx.req);
        const result = await broker.publish(`rooms/${ctx.params.room}`, body);
        ctx.body = { recipients: result.recipients };
      });
      router.get('/api/device/:deviceId', (ctx) => void (ctx.body = ctx.params));
      router.get('/api/workspaces/:id/', (ctx) => void (ctx.body = ctx.params));
      app.use(router.routes());
      const server = app.listen(0, '127.0.0.1');
      const baseline = server.listenerCount('upgrade');
      const detach = attachKoa(broker, server, { app, use: [koaSession] });
      return { port: await listening(server), server, baseline, detach, stop: () => closeServer(broker, server) };
    },
  },
  {
    name: 'http',
    routing: {},
    // No framework: the host reads its cookie in authenticate, from the handshake's headers.
    hostUser: (h) => {
      const session = sessionOf(h.headers.cookie);
      return session !== null && 'user' in session ? session.user : undefined;
    },
    refusedSession: { close: 4001 },
    notFound: { status: 404, body: /not found/ },
    async mount(broker) {
      const server = http.createServer((req, res) => {
        const room = /^\/api\/rooms\/([^/]+)\/messages$/.exec(req.url ?? '')?.[1];
        if (req.method !== 'POST' || room === undefined) return void res.writeHead(404).end();
        jsonBody(req)
          .then((body) => broker.publish(`rooms/${room}`, body))
          .then((result) => res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ recipients: result.recipients })))
          .catch(() => res.writeHead(500).end());
      });
      server.listen(0, '127.0.0.1');
      const baseline = server.listenerCount('upgrade');
      const detach = attachHttp(broker, server);
      return { port: await listening(server), server, baseline, detach, stop: () => closeServer(broker, server) };
    },
  },
];

export type Outcome =
  | { kind: 'open'; ws: WebSocket; protocol: string }
  | { kind: 'http'; status: number; body: string }
  | { kind: 'close'; code: number }
  | { kind: 'error'; message: string };

/**
 * Tries a WebSocket handshake and reports how it ended: opened, answered in HTTP (with the
 * body), or accepted and closed right away with a code (the broker's `'close'` refusals).
 */
export function tryConnect(url: string, options: WebSocket.ClientOptions = {}, protocols?: string[]): Promise<Outcome> {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, protocols, options);
    ws.on('error', (err) => resolve({ kind: 'error', message: err.message }));
    ws.on('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ kind: 'http', status: res.statusCode ?? 0, body: body.trim() }));
      res.on('error', () => resolve({ kind: 'http', status: res.statusCode ?? 0, body: body.trim() }));
    });
    ws.on('close', (code) => resolve({ kind: 'close', code }));
    // A refused handshake under 'close' opens, then closes at once: wait for the first frame or
    // the close to tell the two apart.
    ws.once('message', () => resolve({ kind: 'open', ws, protocol: ws.protocol }));
  });
}

export interface HttpAnswer {
  status: number;
  body: string;
}

/** A plain HTTP request without keep-alive, so no socket outlives the test. */
export function request(port: number, method: string, path: string, body?: unknown, headers: http.OutgoingHttpHeaders = {}): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const req = http.request(
      {
        host: '127.0.0.1',
        port,
        method,
        path,
        agent: false,
        headers: { connection: 'close', ...(payload !== undefined && { 'content-type': 'application/json' }), ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('error', reject);
    req.end(payload);
  });
}
