/**
 * What a `Wire`'s owner (the session) relies on, driven from a raw TCP client against a Wire on a
 * plain TCP server: pings answered with their payload, pongs reported, a close frame carrying
 * only a code, pause/resume holding messages back, terminate, the `open` flag, close codes the
 * wire refuses, and `acceptUpgrade` on a socket the client already left.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import type { IncomingMessage } from 'node:http';
import { acceptUpgrade, Wire, type WireListener } from '../lib/wire.js';
import { until } from './helpers.js';
import { closePayload, frame, KEY, Raw } from './wire-raw.js';

interface Pair {
  raw: Raw;
  wire: Wire;
  server: net.Socket;
  heard: string[];
}

const servers: net.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

async function pair(): Promise<Pair> {
  const heard: string[] = [];
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<{ wire: Wire; socket: net.Socket }>((resolve) =>
    server.once('connection', (socket) => {
      const listener: WireListener = {
        receive: (data, isBinary) => heard.push(`receive ${isBinary ? 'binary' : 'text'} ${data.toString()}`),
        pong: () => heard.push('pong'),
        protocolError: (code) => {
          heard.push(`protocolError ${code}`);
          wire.close(code, 'broken');
        },
        socketClosed: (code, reason) => heard.push(`socketClosed ${code} ${reason}`),
      };
      const wire: Wire = new Wire(socket, Buffer.alloc(0), { maxMessageBytes: 1024, maxFragments: 16 }, listener);
      resolve({ wire, socket });
    }),
  );
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  client.setNoDelay(true);
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const { wire, socket } = await accepted;
  return { raw: new Raw(client, Buffer.alloc(0)), wire, server: socket, heard };
}

const closed = (p: Pair) => until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');

describe('control frames', () => {
  it('answers a ping with a pong carrying its payload, and reports a pong without answering it', async () => {
    const p = await pair();
    p.raw.write(frame(9, 'hello?'));
    const pong = await p.raw.next((f) => f.opcode === 10, 'the pong');
    expect(pong.payload.toString()).toBe('hello?');
    p.raw.write(frame(10, 'unsolicited'), frame(9, 'after'));
    await p.raw.next((f) => f.opcode === 10 && f.payload.toString() === 'after', 'the second pong');
    expect(p.heard).toEqual(['pong']);
    expect(p.raw.frames.map((f) => f.opcode)).toEqual([10, 10]);
    p.raw.socket.destroy();
    await closed(p);
  });

  it('sends an empty ping while open, and none after its close frame', async () => {
    const p = await pair();
    p.wire.ping();
    const ping = await p.raw.next((f) => f.opcode === 9, 'the ping');
    expect(ping).toMatchObject({ fin: true, payload: Buffer.alloc(0) });
    p.wire.close(1000);
    p.wire.ping();
    await p.raw.closeFrame();
    p.raw.write(frame(8, closePayload(1000)));
    await closed(p);
    expect(p.raw.frames.map((f) => f.opcode)).toEqual([9, 8]);
  });

  it('echoes a close frame that carries a code and no reason, and reports that code', async () => {
    const p = await pair();
    p.raw.write(frame(8, closePayload(4100)));
    expect(await p.raw.closeFrame()).toEqual({ code: 4100, reason: '' });
    await closed(p);
    expect(p.heard).toEqual(['socketClosed 4100 ']);
  });

  it('answers an empty close frame with an empty one and reports 1005 with no reason', async () => {
    const p = await pair();
    p.raw.write(frame(8, Buffer.alloc(0)));
    const close = await p.raw.next((f) => f.opcode === 8, 'the close frame');
    expect(close.payload.length).toBe(0);
    await closed(p);
    expect(p.heard).toEqual(['socketClosed 1005 ']);
    p.raw.socket.destroy();
  });

  it('reads a close reason as UTF-8', async () => {
    const p = await pair();
    p.raw.write(frame(8, closePayload(1001, 'au revoir, été')));
    await closed(p);
    expect(p.heard).toEqual(['socketClosed 1001 au revoir, été']);
    p.raw.socket.destroy();
  });
});

describe('the owner', () => {
  it('pause() holds messages back until resume()', async () => {
    const p = await pair();
    p.wire.pause();
    p.raw.write(frame(1, 'held'));
    await until(() => p.server.readableLength > 0, 'the bytes reaching the server');
    expect(p.heard).toEqual([]);
    p.wire.resume();
    await until(() => p.heard.length === 1, 'the message');
    expect(p.heard).toEqual(['receive text held']);
    p.raw.write(frame(2, 'bin'));
    await until(() => p.heard.length === 2, 'the binary message');
    expect(p.heard[1]).toBe('receive binary bin');
    p.raw.socket.destroy();
    await closed(p);
  });

  it('terminate() drops TCP without a close frame; the wire is no longer open and refuses nothing after', async () => {
    const p = await pair();
    expect(p.wire.open).toBe(true);
    expect(p.wire.phase.name).toBe('open');
    expect(p.wire.deflateWindowBits).toBe(0);
    p.wire.terminate();
    expect(p.wire.open).toBe(false);
    expect(p.wire.phase).toMatchObject({ name: 'closing', why: 'dropped' });
    await closed(p);
    expect(p.heard).toEqual(['socketClosed 1006 ']);
    expect(p.wire.phase.name).toBe('closed');
    p.wire.close(1000); // the socket is gone: nothing to do, nothing thrown
    p.wire.ping();
    p.wire.terminate();
    await p.raw.ended;
    expect(p.raw.frames).toEqual([]);
    p.raw.socket.destroy();
  });

  it('open turns false with our close frame; close() refuses a code not allowed on the wire', async () => {
    const p = await pair();
    expect(() => p.wire.close(1005)).toThrow(new TypeError('invalid close code 1005'));
    expect(() => p.wire.close(999)).toThrow(TypeError);
    expect(p.wire.open).toBe(true);
    p.wire.close(4000, 'x'.repeat(200)); // the reason is cut to fit a control frame
    expect(p.wire.open).toBe(false);
    expect(p.wire.phase).toMatchObject({ name: 'closing', why: 'sent' });
    const close = await p.raw.next((f) => f.opcode === 8, 'the close frame');
    expect(close.payload.length).toBeLessThanOrEqual(125);
    expect(close.payload.readUInt16BE(0)).toBe(4000);
    p.raw.write(frame(8, closePayload(4000)));
    await closed(p);
  });

  it('close() without a reason sends the code alone', async () => {
    const p = await pair();
    p.wire.close(4001);
    const close = await p.raw.next((f) => f.opcode === 8, 'the close frame');
    expect(close.payload).toEqual(closePayload(4001));
    p.raw.write(frame(8, closePayload(4001)));
    await closed(p);
  });
});

describe('a reset connection', () => {
  it('a peer that resets TCP is reported as gone (1006), its socket error handled', async () => {
    const p = await pair();
    p.raw.write(frame(9, 'x'));
    await p.raw.next((f) => f.opcode === 10, 'the pong');
    p.raw.socket.resetAndDestroy();
    await closed(p);
    expect(p.heard).toEqual(['socketClosed 1006 ']);
    expect(p.server.destroyed).toBe(true);
  });
});

describe('acceptUpgrade', () => {
  it('writes the 101 on a live socket, and refuses (destroying it) one the client left', async () => {
    const server = net.createServer({ allowHalfOpen: true });
    servers.push(server);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    const sockets: net.Socket[] = [];
    server.on('connection', (s) => sockets.push(s));
    const request = { headers: { 'sec-websocket-key': KEY } } as unknown as IncomingMessage;

    const client = net.connect(port, '127.0.0.1');
    let text = '';
    client.on('data', (d) => (text += d.toString('latin1')));
    await until(() => sockets.length === 1, 'the connection');
    expect(acceptUpgrade(request, sockets[0]!, 'chat')).toBe(true);
    await until(() => text.endsWith('\r\n\r\n'), 'the 101');
    expect(text).toBe(
      'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
        'Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\nSec-WebSocket-Protocol: chat\r\n\r\n',
    );
    client.destroy();

    const left = net.connect(port, '127.0.0.1');
    await until(() => sockets.length === 2, 'the second connection');
    sockets[1]!.end(); // our side can no longer write
    expect(acceptUpgrade(request, sockets[1]!, undefined)).toBe(false);
    expect(sockets[1]!.destroyed).toBe(true);
    left.destroy();

    // A client that ended its side after the request has left too.
    const halfClosed = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    await until(() => sockets.length === 3, 'the third connection');
    halfClosed.end();
    sockets[2]!.resume();
    await until(() => sockets[2]!.readableEnded, "the client's FIN");
    expect(sockets[2]!.writable).toBe(true);
    expect(acceptUpgrade(request, sockets[2]!, undefined)).toBe(false);
    expect(sockets[2]!.destroyed).toBe(true);
    halfClosed.destroy();
  });
});
