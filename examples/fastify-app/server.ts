/**
 * A Fastify app with its own users and API tokens, serving switchyard from a plugin. The app's
 * own `onRequest` hook identifies the caller for every route, the broker's WebSocket routes
 * included, so `authenticate` only turns that into a principal.
 *
 *   npm run build && npx tsx examples/fastify-app/server.ts     (PORT, default 8081; HOST)
 */
import type { AddressInfo } from 'node:net';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Fastify, { type FastifyInstance, type onRequestHookHandler } from 'fastify';
import { createBroker, envelope, generateToken, grantsAllow, hashToken, type Broker, type Grant } from 'switchyard';
import { fastifyRequest, fastifySwitchyard } from 'switchyard/fastify';

interface User {
  id: string;
  role: 'writer' | 'reader';
}

declare module 'fastify' {
  interface FastifyRequest {
    user: User | null;
  }
}

/** A room name: one topic level, no wildcards. */
const ROOM_NAME = /^[\w-]{1,32}$/;

const GRANTS: Record<User['role'], Grant[]> = {
  writer: [{ topic: 'rooms/#', access: 'readwrite' }],
  reader: [{ topic: 'rooms/#', access: 'read' }],
};

export interface FastifyExample {
  app: FastifyInstance;
  broker: Broker;
  port: number;
  demo: { writer: string; reader: string };
  stop(): Promise<void>;
}

export async function start(options: { port?: number; host?: string } = {}): Promise<FastifyExample> {
  // The app's token table: only hashes of the tokens are kept.
  const tokens = new Map<string, User>();
  const issue = (user: User): string => {
    const token = generateToken();
    tokens.set(hashToken(token), user);
    return token;
  };
  const demo = { writer: issue({ id: 'wendy', role: 'writer' }), reader: issue({ id: 'rita', role: 'reader' }) };

  // The app's own hook: Bearer header or ?token= (for browsers). It identifies; routes decide.
  const identify: onRequestHookHandler = async (request) => {
    const query = request.query as { token?: unknown };
    const token = /^Bearer\s+(\S+)$/i.exec(request.headers.authorization ?? '')?.[1] ?? (typeof query.token === 'string' ? query.token : undefined);
    request.user = token === undefined ? null : (tokens.get(hashToken(token)) ?? null);
  };

  const broker = createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }, { path: '/ws/rooms/:room', protocol: envelope() }],
    authenticate: (handshake) => {
      const user = fastifyRequest(handshake)?.user;
      return user ? { id: user.id, grants: GRANTS[user.role] } : null;
    },
    // On /ws/rooms/:room a connection may only use its own room. Path parameters arrive
    // URL-decoded: without the name check, /ws/rooms/%2B would make 'rooms/+' (every room) "its own".
    authorize: (principal, action, topic, { params, syntax }) =>
      (params.room === undefined || (ROOM_NAME.test(params.room) && topic === `rooms/${params.room}`)) &&
      grantsAllow(syntax, principal.grants, action, topic),
  });

  const app = Fastify();
  app.decorateRequest('user', null);
  app.addHook('onRequest', identify);
  // Its routes are the broker's endpoints; app.close() closes the broker.
  await app.register(fastifySwitchyard, { broker });

  app.post<{ Params: { room: string }; Body: { text?: unknown } }>('/api/rooms/:room/messages', async (request, reply) => {
    if (request.user?.role !== 'writer') return reply.code(request.user ? 403 : 401).send({ error: 'needs a writer token' });
    if (!ROOM_NAME.test(request.params.room) || typeof request.body?.text !== 'string') {
      return reply.code(400).send({ error: 'needs a room name and {"text"}' });
    }
    const result = await broker.publish(`rooms/${request.params.room}`, { from: request.user.id, text: request.body.text });
    return reply.code(201).send({ recipients: result.recipients });
  });

  await app.listen({ port: options.port ?? 8081, host: options.host ?? '127.0.0.1' });
  return { app, broker, port: (app.server.address() as AddressInfo).port, demo, stop: () => app.close() };
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const running = await start({ port: Number(process.env.PORT ?? 8081), host: process.env.HOST ?? '127.0.0.1' });
  const url = `http://localhost:${running.port}`;
  console.log(`switchyard on Fastify: ${url}  (WebSocket: ${url.replace('http', 'ws')}/ws and /ws/rooms/:room)`);
  console.log(`  writer token ${running.demo.writer}\n  reader token ${running.demo.reader}`);
  console.log(`  curl -X POST ${url}/api/rooms/lobby/messages -H 'Authorization: Bearer ${running.demo.writer}' -H 'Content-Type: application/json' -d '{"text":"hi"}'`);
  const shutdown = () => void running.stop().then(() => process.exit(0));
  process.once('SIGINT', shutdown);
  process.once('SIGTERM', shutdown);
}
