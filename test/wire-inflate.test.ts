/**
 * A `Wire` with permessage-deflate negotiated, driven from a raw TCP client on a plain TCP server:
 * what its owner (the session) relies on while a compressed message is inflated. Reading waits
 * for the inflation, the owner's pause() holds across it, and a connection that breaks the
 * protocol while the socket is paused for an inflation still sees the peer's FIN and goes.
 */
import type { IncomingMessage } from 'node:http';
import net from 'node:net';
import { constants, deflateRawSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import { acceptUpgrade, Wire, type WireListener } from '../lib/wire.js';
import { until } from './helpers.js';
import { closePayload, frame, KEY, Raw } from './wire-raw.js';

interface Pair {
  raw: Raw;
  wire: Wire;
  server: net.Socket;
  heard: string[];
  clientEnded: () => boolean;
}

const servers: net.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/**
 * A wire over a fresh TCP connection that agreed permessage-deflate (the client's window 15, its
 * context kept). `onReceive` runs on each message; like a session, it closes with the code of a
 * protocol error.
 */
async function pair(onReceive: (p: Pair, text: string) => void = () => {}, maxMessageBytes = 1024): Promise<Pair> {
  const heard: string[] = [];
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  let p: Pair | undefined;
  const accepted = new Promise<{ wire: Wire; socket: net.Socket }>((resolve) =>
    server.once('connection', (socket) => {
      const listener: WireListener = {
        receive: (data, isBinary) => {
          const text = `${isBinary ? 'binary' : 'text'} ${data.length > 64 ? `${data.length} bytes` : data.toString()}`;
          heard.push(`receive ${text}`);
          onReceive(p!, text);
        },
        pong: () => heard.push('pong'),
        protocolError: (code) => {
          heard.push(`protocolError ${code}`);
          wire.close(code, 'broken');
        },
        socketClosed: (code, reason) => heard.push(`socketClosed ${code} ${reason}`),
      };
      const request = { headers: { 'sec-websocket-key': KEY } } as unknown as IncomingMessage;
      const negotiated = { answer: 'permessage-deflate', serverWindowBits: 15, clientWindowBits: 15, clientNoContextTakeover: false };
      expect(acceptUpgrade(request, socket, undefined, negotiated)).toBe(true);
      const wire: Wire = new Wire(socket, Buffer.alloc(0), { maxMessageBytes, maxFragments: 16 }, listener);
      resolve({ wire, socket });
    }),
  );
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  client.setNoDelay(true);
  let ended = false;
  client.once('end', () => (ended = true));
  // The 101 first; what follows it is frames.
  const rest = await new Promise<Buffer>((resolve) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      client.off('data', onData);
      client.pause();
      expect(buf.subarray(0, end).toString('latin1')).toContain('Sec-WebSocket-Extensions: permessage-deflate');
      resolve(buf.subarray(end + 4));
    };
    client.on('data', onData);
  });
  const { wire, socket } = await accepted;
  p = { raw: new Raw(client, rest), wire, server: socket, heard, clientEnded: () => ended };
  return p;
}

/** A compressed message's payload (RFC 7692 §7.2.1: without the 00 00 ff ff tail), its own context. */
const deflated = (text: string | Buffer) => deflateRawSync(Buffer.from(text), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
/** A client text frame with RSV1, compressed on its own (no context shared with earlier ones). */
const compressed = (text: string) => frame(1, deflated(text), { rsv: 4 });

const closedSocket = (p: Pair) => until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');

describe('a wire inflating', () => {
  it('delivers compressed and plain messages sent together in the order sent', async () => {
    const p = await pair();
    expect(p.wire.deflateWindowBits).toBe(15);
    p.raw.write(compressed('one'), frame(1, 'two'), compressed('three'), frame(2, 'four'), compressed('five'));
    await until(() => p.heard.length === 5, 'five messages');
    expect(p.heard).toEqual(['receive text one', 'receive text two', 'receive text three', 'receive binary four', 'receive text five']);
    p.raw.socket.destroy();
    await closedSocket(p);
  });

  it("holds later messages while its owner is paused, also when the pause came during a compressed message's delivery", async () => {
    // The owner pauses on the first message, as a session does when its inbox is full.
    const p = await pair((p, text) => {
      if (text === 'text one') p.wire.pause();
    });
    p.raw.write(compressed('one'));
    await until(() => p.heard.length === 1, 'the first message');
    p.raw.write(compressed('two'), frame(1, 'three'));
    await until(() => p.server.readableLength > 0 || p.heard.length > 1, 'the later bytes reaching the server');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(p.heard).toEqual(['receive text one']);
    p.wire.resume();
    await until(() => p.heard.length === 3, 'the messages held back');
    expect(p.heard).toEqual(['receive text one', 'receive text two', 'receive text three']);
    p.raw.socket.destroy();
    await closedSocket(p);
  });

  it('a pause and resume of its owner while a message inflates leave the wire reading once it is delivered', async () => {
    const p = await pair();
    // In the same turn as the read: the message is being inflated.
    p.server.once('data', () => {
      p.wire.pause();
      p.wire.resume();
    });
    p.raw.write(compressed('one'));
    await until(() => p.heard.length === 1, 'the first message');
    p.raw.write(frame(1, 'two'));
    await until(() => p.heard.length === 2, 'the message sent after it');
    expect(p.heard).toEqual(['receive text one', 'receive text two']);
    p.raw.socket.destroy();
    await closedSocket(p);
  });

  it('closes 1007 on a compressed message that does not inflate, and goes once the peer ends, whatever it sent after', async () => {
    const p = await pair();
    // A megabyte behind the broken message: the socket, paused for the inflation, takes in
    // some of it, which is never read as frames; the peer's FIN is behind it.
    p.raw.write(frame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), { rsv: 4 }), Buffer.alloc(1024 * 1024));
    expect(await p.raw.closeFrame()).toEqual({ code: 1007, reason: 'broken' });
    // §7.1.7: our side ends after the close frame; the socket waits on the peer's FIN...
    await until(p.clientEnded, 'the server ending its side');
    expect(p.server.destroyed).toBe(false);
    // ...which it must read although the inflation had paused it.
    p.raw.socket.end();
    await closedSocket(p);
    expect(p.heard).toEqual(['protocolError 1007', 'socketClosed 1006 ']);
  });

  it('closes 1007 on compressed text that inflates to invalid UTF-8, and delivers the same bytes as binary', async () => {
    const p = await pair();
    p.raw.write(frame(2, deflated(Buffer.from([0xc3, 0x28])), { rsv: 4 }));
    await until(() => p.heard.length === 1, 'the binary message');
    p.raw.write(frame(1, deflated(Buffer.from([0xc3, 0x28])), { rsv: 4 }));
    expect(await p.raw.closeFrame()).toEqual({ code: 1007, reason: 'broken' });
    p.raw.socket.end();
    await closedSocket(p);
    expect(p.heard).toEqual([`receive binary ${Buffer.from([0xc3, 0x28]).toString()}`, 'protocolError 1007', 'socketClosed 1006 ']);
  });

  it('a close frame behind a compressed message waits for it: the message is delivered, then the close answered', async () => {
    const p = await pair();
    p.raw.write(compressed('last words'), frame(8, closePayload(1000, 'bye')));
    expect(await p.raw.closeFrame()).toEqual({ code: 1000, reason: '' });
    await closedSocket(p);
    expect(p.heard).toEqual(['receive text last words', 'socketClosed 1000 bye']);
    p.raw.socket.destroy();
  });

  describe('reads nothing more from the socket while a message inflates, so a client cannot make it buffer what follows', () => {
    const MiB = 1024 * 1024;
    for (const ownerResumes of [false, true]) {
      it(ownerResumes ? 'also when its owner pauses and resumes meanwhile' : 'on its own, also when the next message starts inflating at once', async () => {
        // 16 MiB of zeros take a while to inflate; two such messages (a few KiB each compressed,
        // both in the first read), then 8 MiB of small frames, all in one write.
        const readAtDelivery: number[] = [];
        const p = await pair((p, text) => {
          if (text.endsWith(`${16 * MiB} bytes`)) readAtDelivery.push(p.server.bytesRead);
        }, 16 * MiB);
        if (ownerResumes) {
          p.server.once('data', () => {
            p.wire.pause();
            p.wire.resume();
          });
        }
        const big = frame(2, deflated(Buffer.alloc(16 * MiB)), { rsv: 4 });
        const small = frame(1, 'x'.repeat(1000));
        const smalls = Math.floor((8 * MiB) / small.length);
        p.raw.write(big, big, ...Array.from({ length: smalls }, () => small));
        await until(() => p.heard.length === 2 + smalls, 'every message', 15_000);
        // The socket reads a little ahead of a pause (its buffer), not the 8 MiB.
        expect(readAtDelivery).toHaveLength(2);
        for (const read of readAtDelivery) expect(read - 2 * big.length).toBeLessThan(2 * MiB);
        p.raw.socket.destroy();
        await closedSocket(p);
      });
    }
  });
});
