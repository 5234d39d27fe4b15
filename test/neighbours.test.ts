/**
 * switchyard beside the two WebSocket stacks a real app already runs: Socket.IO on an Express
 * server and @fastify/websocket on a Fastify app, each registered before and after the broker.
 * The broker's `authenticate` takes ~1.5 s (a slow session store): longer than engine.io's 1 s
 * `destroyUpgrade`, so a neighbour that sees the broker's upgrade would cut it.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import fastifyWebsocket from '@fastify/websocket';
import express from 'express';
import Fastify from 'fastify';
import { Server as SocketIOServer } from 'socket.io';
import { io as socketIOClient, type Socket as SocketIOClient } from 'socket.io-client';
import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createBroker, envelope, type Broker } from 'switchyard';
import { attach as attachExpress } from 'switchyard/express';
import { fastifySwitchyard } from 'switchyard/fastify';
import { tryConnect } from './adapter-helpers.js';
import { Client } from './helpers.js';

/** The simulated session-store latency: the input under test, longer than engine.io's 1 s. */
const SLOW_AUTH_MS = 1500;

function slowBroker(): Broker {
  return createBroker({
    endpoints: [{ path: '/ws', protocol: envelope() }],
    heartbeat: false,
    authenticate: async ({ credentials }) => {
      await sleep(SLOW_AUTH_MS);
      return credentials?.token === 'good' ? { id: 'alice', grants: [{ topic: '#', access: 'readwrite' }] } : null;
    },
  });
}

/** Opens a broker connection and waits for its welcome (the slow authenticate has passed). */
async function welcomed(port: number): Promise<Client> {
  const client = new Client(`ws://127.0.0.1:${port}/ws`, undefined, { headers: { authorization: 'Bearer good' } });
  const welcome = await client.nextOf('Status', (f) => f.data.status === 'connected');
  expect(welcome.data.details.connection_id).toEqual(expect.any(String));
  return client;
}

const ORDERS = ['neighbour first', 'broker first'] as const;

describe.each(ORDERS)('Express + Socket.IO (default destroyUpgrade), %s', (order) => {
  let cleanup: Array<() => Promise<void> | void> = [];
  afterEach(async () => {
    for (const fn of cleanup.splice(0).reverse()) await fn();
  });

  async function mount(): Promise<{ port: number; broker: Broker; io: SocketIOServer; server: http.Server; baseline: number }> {
    const broker = slowBroker();
    const app = express();
    app.get('/api/ping', (_req, res) => void res.json({ ok: true }));
    const server = http.createServer(app);
    const baseline = server.listenerCount('upgrade');
    let io: SocketIOServer;
    if (order === 'neighbour first') {
      io = new SocketIOServer(server);
      attachExpress(broker, server, { app });
    } else {
      attachExpress(broker, server, { app });
      io = new SocketIOServer(server);
    }
    io.on('connection', (socket) => socket.on('echo', (msg: unknown, ack: (m: unknown) => void) => ack(msg)));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    cleanup.push(async () => {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => io.close(() => resolve()));
    });
    return { port: (server.address() as AddressInfo).port, broker, io, server, baseline };
  }

  it('a 1.5 s authenticate is not cut, Socket.IO keeps its path, unknown paths get what Socket.IO gives them, shutdown completes', async () => {
    const { port, broker, io, server, baseline } = await mount();
    const client = await welcomed(port);
    const sio: SocketIOClient = socketIOClient(`http://127.0.0.1:${port}`, { transports: ['websocket'], reconnection: false });
    cleanup.push(() => void sio.close());
    await expect(sio.timeout(5000).emitWithAck('echo', 'hello')).resolves.toBe('hello');
    // The broker still serves messages on its own connection beside Socket.IO's.
    client.sendJson({ type: 'Ping', id: 'p1' });
    await client.nextOf('Pong');
    // Nobody owns /nope: engine.io ends it (its destroyUpgrade), as it would without switchyard.
    const unknown = await tryConnect(`ws://127.0.0.1:${port}/nope`);
    expect(unknown.kind).toBe('error');
    // Shutdown: the broker closes its connections with 1001, then Socket.IO closes the server.
    const closed = client.closed;
    await broker.close();
    expect((await closed).code).toBe(1001);
    sio.close();
    await new Promise<void>((resolve) => io.close(() => resolve()));
    expect(server.listening).toBe(false);
    // Only Socket.IO's own listener is left; switchyard removed its own and unwrapped the rest.
    expect(server.listenerCount('upgrade')).toBe(baseline + 1);
    expect(server.listeners('upgrade').every((fn) => (fn as { owner?: unknown }).owner === undefined)).toBe(true);
  });
});

describe.each(ORDERS)('Fastify + @fastify/websocket, %s', (order) => {
  let app: ReturnType<typeof Fastify> | undefined;
  afterEach(async () => {
    await app?.close();
    app = undefined;
  });

  async function mount(): Promise<{ port: number; broker: Broker }> {
    const broker = slowBroker();
    app = Fastify();
    if (order === 'neighbour first') {
      await app.register(fastifyWebsocket);
      await app.register(fastifySwitchyard, { broker });
    } else {
      await app.register(fastifySwitchyard, { broker });
      await app.register(fastifyWebsocket);
    }
    app.get('/chat', { websocket: true }, (socket: WebSocket) => socket.on('message', (data: WebSocket.RawData) => socket.send(`echo ${data.toString()}`)));
    await app.listen({ port: 0, host: '127.0.0.1' });
    return { port: (app.server.address() as AddressInfo).port, broker };
  }

  it("a 1.5 s authenticate reaches the broker's own decision, /chat stays @fastify/websocket's, unknown paths get Fastify's 404, app.close() completes", async () => {
    const { port, broker } = await mount();
    const client = await welcomed(port);
    expect(broker.stats().connections).toBe(1);
    const chat = new WebSocket(`ws://127.0.0.1:${port}/chat`);
    await new Promise((resolve, reject) => {
      chat.once('open', resolve);
      chat.once('error', reject);
    });
    const echoed = new Promise<string>((resolve) => chat.once('message', (data) => resolve(data.toString())));
    chat.send('hi');
    expect(await echoed).toBe('echo hi');
    // A refused credential is the broker's refusal (4003), not a 101 from @fastify/websocket.
    const refused = await tryConnect(`ws://127.0.0.1:${port}/ws`, { headers: { authorization: 'Bearer bad' } });
    expect(refused).toEqual({ kind: 'close', code: 4003 });
    const unknown = await tryConnect(`ws://127.0.0.1:${port}/nope`);
    expect(unknown).toMatchObject({ kind: 'http', status: 404 });
    const closed = client.closed;
    const chatClosed = new Promise((resolve) => chat.once('close', resolve));
    await app!.close();
    app = undefined;
    expect((await closed).code).toBe(1001);
    await chatClosed;
  });
});

describe('combinations that cannot work fail at startup', () => {
  it('a @fastify/websocket route on a broker path is refused when the app starts, saying what to do', async () => {
    const broker = slowBroker();
    const app = Fastify();
    await app.register(fastifyWebsocket);
    app.get('/ws', { websocket: true }, (socket: WebSocket) => socket.close());
    await expect(app.register(fastifySwitchyard, { broker })).rejects.toThrow(/GET \/ws is already a route/);
    await app.close();
    await broker.close();
  });
});
