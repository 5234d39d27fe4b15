/**
 * The framework examples run for real on port 0: examples/express-app (the one the README leads
 * with) in depth, with its demo tokens, and the Fastify, Koa and bare-http ones end to end.
 */
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';
import { start as startExpress, type ExpressExample } from '../examples/express-app/server.js';
import { start as startFastify } from '../examples/fastify-app/server.js';
import { start as startHttp } from '../examples/http-server/server.js';
import { start as startKoa } from '../examples/koa-app/server.js';
import { request, tryConnect } from './adapter-helpers.js';
import { connect, type Client } from './helpers.js';
import { Proc } from './wire-helpers.js';

const TSX = fileURLToPath(new URL('../node_modules/tsx/dist/cli.mjs', import.meta.url));

const clients: Client[] = [];
const stops: Array<() => Promise<void>> = [];
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  for (const stop of stops.splice(0)) await stop();
});

async function join(url: string, topics: string[]): Promise<Client> {
  const client = await connect(url);
  clients.push(client);
  expect((await client.request('Subscribe', { topics })).type).toBe('Ack');
  return client;
}

describe('examples/express-app', () => {
  async function run(): Promise<ExpressExample & { ws: (token: string) => string }> {
    const app = await startExpress({ port: 0 });
    stops.push(() => app.stop());
    return { ...app, ws: (token: string) => `ws://127.0.0.1:${app.port}/ws?token=${encodeURIComponent(token)}` };
  }
  const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

  it('a REST call with the demo token publishes to the WebSocket subscribers, as the app prints', async () => {
    const app = await run();
    const bob = await join(app.ws(app.demo.bob), ['rooms/#', 'announcements']);
    const carol = await join(app.ws(app.demo.carol), ['rooms/#']);
    const posted = await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'hello from curl' }, bearer(app.demo.bob));
    expect(posted.status).toBe(201);
    expect(JSON.parse(posted.body)).toMatchObject({ recipients: 2 });
    for (const client of [bob, carol]) {
      const got = await client.nextOf('Broadcast');
      expect(got.data).toMatchObject({ topic: 'rooms/lobby', payload: { from: 'bob', name: 'Bob', text: 'hello from curl' } });
    }
    const me = await request(app.port, 'GET', '/api/me', undefined, bearer(app.demo.bob));
    expect(JSON.parse(me.body)).toMatchObject({ user: { id: 'bob', role: 'member' }, connections: 1 });
  });

  it("derives grants from the app's roles, on the WebSocket and on the REST API alike", async () => {
    const app = await run();
    const carol = await join(app.ws(app.demo.carol), ['rooms/#', 'announcements']);
    expect(await carol.request('Broadcast', { topic: 'rooms/lobby', payload: 'hi' })).toMatchObject({ type: 'Error', data: { code: 403 } });
    expect((await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'x' }, bearer(app.demo.carol))).status).toBe(403);
    expect((await request(app.port, 'POST', '/api/announcements', { text: 'x' }, bearer(app.demo.bob))).status).toBe(403);
    expect((await request(app.port, 'POST', '/api/announcements', { text: 'maintenance at 6' }, bearer(app.demo.alice))).status).toBe(201);
    expect((await carol.nextOf('Broadcast')).data).toMatchObject({ topic: 'announcements', payload: { text: 'maintenance at 6' } });
    const bob = await join(app.ws(app.demo.bob), ['rooms/#']);
    expect(await bob.request('Broadcast', { topic: 'announcements', payload: 'x' })).toMatchObject({ type: 'Error', data: { code: 403 } });
  });

  it('refuses unknown and missing tokens with 4003 / 4001, and a revoked token closes its sockets with 4002', async () => {
    const app = await run();
    expect(await tryConnect(app.ws('t2.not-the-secret'))).toEqual({ kind: 'close', code: 4003 });
    expect(await tryConnect(`ws://127.0.0.1:${app.port}/ws`)).toEqual({ kind: 'close', code: 4001 });
    const bob = await join(app.ws(app.demo.bob), ['rooms/#']);
    const tokenId = app.demo.bob.split('.')[0]!;
    const revoked = await request(app.port, 'DELETE', `/api/tokens/${tokenId}`, undefined, bearer(app.demo.alice));
    expect(JSON.parse(revoked.body)).toEqual({ revoked: true, closed: 1 });
    expect((await bob.closed).code).toBe(4002);
    expect(await tryConnect(app.ws(app.demo.bob))).toEqual({ kind: 'close', code: 4003 });
  });

  it('serves its page at / and leaves other upgrade paths to Express', async () => {
    const app = await run();
    const page = await request(app.port, 'GET', '/');
    expect(page.status).toBe(200);
    expect(page.body).toContain('createClient(');
    expect(await tryConnect(`ws://127.0.0.1:${app.port}/elsewhere`)).toMatchObject({ kind: 'http', status: 404 });
  });

  it('starts with one command and prints a demo token and a curl command that work', async () => {
    const cli = new Proc(process.execPath, [TSX, 'examples/express-app/server.ts'], { PORT: '0' });
    try {
      const url = (await cli.next(/^switchyard on Express: /)).split(/\s+/)[3]!;
      const token = (await cli.next(/bob {3}\(member\)/)).trim().split(/\s+/).at(-1)!;
      const curl = await cli.next(/^\s+curl -X POST /);
      expect(curl).toContain(`Bearer ${token}`);
      const port = Number(new URL(url).port);
      const bob = await join(`ws://127.0.0.1:${port}/ws?token=${encodeURIComponent(token)}`, ['rooms/#']);
      expect((await request(port, 'POST', '/api/rooms/lobby/messages', { text: 'hello from curl' }, bearer(token))).status).toBe(201);
      expect((await bob.nextOf('Broadcast')).data.payload.text).toBe('hello from curl');
    } finally {
      await Promise.all(clients.splice(0).map((c) => c.close()));
      expect(await cli.stop()).toEqual({ code: 0, signal: null });
    }
  });
});

describe('the other framework examples', () => {
  it('examples/fastify-app: the app hook identifies, REST publishes, a room endpoint binds its param, app.close() closes all', async () => {
    const app = await startFastify({ port: 0 });
    stops.push(() => app.stop());
    const ws = (path: string, token: string) => `ws://127.0.0.1:${app.port}${path}?token=${encodeURIComponent(token)}`;
    const reader = await join(ws('/ws', app.demo.reader), ['rooms/#']);
    const roomed = await join(ws('/ws/rooms/lobby', app.demo.reader), ['rooms/lobby']);
    expect(await roomed.request('Subscribe', { topics: ['rooms/other'] })).toMatchObject({ type: 'Error', data: { code: 403 } });
    // Path parameters arrive URL-decoded: a room named '+' or 'a/b' must not widen the binding.
    for (const [room, pattern] of [['%2B', 'rooms/+'], ['%23', 'rooms/#'], ['lobby%2Fx', 'rooms/lobby/x']]) {
      const sneaky = await connect(ws(`/ws/rooms/${room}`, app.demo.reader));
      expect(await sneaky.request('Subscribe', { topics: [pattern] })).toMatchObject({ type: 'Error', data: { code: 403 } });
      await sneaky.close();
    }
    const posted = await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'hi' }, { authorization: `Bearer ${app.demo.writer}` });
    expect(posted).toEqual({ status: 201, body: JSON.stringify({ recipients: 2 }) });
    expect((await reader.nextOf('Broadcast')).data.payload).toEqual({ from: 'wendy', text: 'hi' });
    expect((await roomed.nextOf('Broadcast')).data.payload).toEqual({ from: 'wendy', text: 'hi' });
    expect(await tryConnect(ws('/ws', 'forged'))).toEqual({ kind: 'close', code: 4003 });
    stops.pop();
    await app.stop();
    expect((await reader.closed).code).toBe(1001);
    expect(app.broker.closed).toBe(true);
  });

  it("examples/koa-app: the app's middleware identifies the upgrade, REST publishes", async () => {
    const app = await startKoa({ port: 0 });
    stops.push(() => app.stop());
    const reader = await join(`ws://127.0.0.1:${app.port}/ws?token=${encodeURIComponent(app.demo.reader)}`, ['rooms/#']);
    expect(await reader.request('Broadcast', { topic: 'rooms/lobby', payload: 1 })).toMatchObject({ type: 'Error', data: { code: 403 } });
    expect((await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'x' }, { authorization: `Bearer ${app.demo.reader}` })).status).toBe(403);
    const posted = await request(app.port, 'POST', '/api/rooms/lobby/messages', { text: 'hi' }, { authorization: `Bearer ${app.demo.writer}` });
    expect(posted.status).toBe(201);
    expect((await reader.nextOf('Broadcast')).data.payload).toEqual({ from: 'wendy', text: 'hi' });
    expect(await tryConnect(`ws://127.0.0.1:${app.port}/nope`)).toMatchObject({ kind: 'http', status: 404, body: 'Not Found' });
  });

  it('examples/http-server: authenticate checks the token itself; POST publishes', async () => {
    const app = await startHttp({ port: 0 });
    stops.push(() => app.stop());
    expect(await tryConnect(`ws://127.0.0.1:${app.port}/ws`)).toEqual({ kind: 'close', code: 4001 });
    const client = await connect(`ws://127.0.0.1:${app.port}/ws`, ['access_token.' + app.demo.token]);
    clients.push(client);
    await client.request('Subscribe', { topics: ['news/#'] });
    const posted = await request(app.port, 'POST', '/publish/news/today', { headline: 'hi' }, { authorization: `Bearer ${app.demo.token}` });
    expect(posted.status).toBe(201);
    expect((await client.nextOf('Broadcast')).data).toMatchObject({ topic: 'news/today', payload: { headline: 'hi' } });
    expect((await request(app.port, 'POST', '/publish/news/today', {})).status).toBe(401);
  });
});
