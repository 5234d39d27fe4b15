/**
 * A Koa app with its own users and API tokens and switchyard on the same port. The app's own
 * `identify` middleware runs on the WebSocket upgrade too (`attach(…, { use })`), and
 * `authenticate` reads what it left in `ctx.state`.
 *
 *   npm run build && npx tsx examples/koa-app/server.ts     (PORT, default 8082; HOST)
 */
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Router from '@koa/router';
import Koa, { type Middleware } from 'koa';
import { createBroker, envelope, generateToken, hashToken, type Broker, type Grant } from 'switchyard';
import { attach, koaContext } from 'switchyard/koa';

interface User {
  id: string;
  role: 'writer' | 'reader';
}

const GRANTS: Record<User['role'], Grant[]> = {
  writer: [{ topic: 'rooms/#', access: 'readwrite' }],
  reader: [{ topic: 'rooms/#', access: 'read' }],
};

export interface KoaExample {
  broker: Broker;
  server: Server;
  port: number;
  demo: { writer: string; reader: string };
  stop(): Promise<void>;
}

async function readJson(req: Koa.Request['req']): Promise<{ text?: unknown } | undefined> {
  let body = '';
  for await (const chunk of req) body += chunk;
  try {
    return JSON.parse(body) as { text?: unknown };
  } catch {
    return undefined;
  }
}

export async function start(options: { port?: number; host?: string } = {}): Promise<KoaExample> {
  const tokens = new Map<string, User>(); // hashToken(token) → user: no plaintext kept
  const issue = (user: User): string => {
    const token = generateToken();
    tokens.set(hashToken(token), user);
    return token;
  };
  const demo = { writer: issue({ id: 'wendy', role: 'writer' }), reader: issue({ id: 'rita', role: 'reader' }) };

  // The app's own middleware: Bearer header or ?token=. It identifies; routes decide.
  const identify: Middleware = async (ctx, next) => {
    const token = /^Bearer\s+(\S+)$/i.exec(ctx.get('authorization'))?.[1] ?? (typeof ctx.query.token === 'string' ? ctx.query.token : undefined);
    ctx.state.user = token === undefined ? undefined : tokens.get(hashToken(token));
    await next();
  };

  const broker = createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    authenticate: (handshake) => {
      const user: User | undefined = koaContext(handshake)?.state.user;
      return user === undefined ? null : { id: user.id, grants: GRANTS[user.role] };
    },
  });

  const app = new Koa();
  const router = new Router();
  router.post('/api/rooms/:room/messages', async (ctx) => {
    const user: User | undefined = ctx.state.user;
    const body = await readJson(ctx.req);
    const room = ctx.params.room ?? '';
    if (user?.role !== 'writer') {
      ctx.status = user === undefined ? 401 : 403;
      ctx.body = { error: 'needs a writer token' };
    } else if (!/^[\w-]{1,32}$/.test(room) || typeof body?.text !== 'string') {
      ctx.status = 400;
      ctx.body = { error: 'needs a room name and {"text"}' };
    } else {
      const result = await broker.publish(`rooms/${room}`, { from: user.id, text: body.text });
      ctx.status = 201;
      ctx.body = { recipients: result.recipients };
    }
  });
  app.use(identify);
  app.use(router.routes());

  const server = app.listen(options.port ?? 8082, options.host ?? '127.0.0.1');
  await new Promise<void>((done, failed) => server.once('listening', done).once('error', failed));
  attach(broker, server, { app, use: [identify] });

  return {
    broker,
    server,
    port: (server.address() as AddressInfo).port,
    demo,
    async stop() {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => done()));
    },
  };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const running = await start({ port: Number(process.env.PORT ?? 8082), host: process.env.HOST ?? '127.0.0.1' });
  const url = `http://localhost:${running.port}`;
  console.log(`switchyard on Koa: ${url}  (WebSocket: ${url.replace('http', 'ws')}/ws)`);
  console.log(`  writer token ${running.demo.writer}\n  reader token ${running.demo.reader}`);
  console.log(`  curl -X POST ${url}/api/rooms/lobby/messages -H 'Authorization: Bearer ${running.demo.writer}' -H 'Content-Type: application/json' -d '{"text":"hi"}'`);
  const shutdown = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
