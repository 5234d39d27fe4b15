/**
 * The wire's close phases, driven from a raw TCP client against a `Wire` on a plain TCP server:
 * which side closed first, or a protocol failure, decides whether a close frame is answered,
 * when our side ends and when the socket goes (RFC 6455 §7.1.1, §7.1.7). The cases are the
 * transitions loose flags could muddle: a close frame after a failure, a close after the answer.
 */
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { Wire, type WireListener, type WirePhase } from '../lib/wire.js';
import { until } from './helpers.js';
import { closePayload, frame, Raw } from './wire-raw.js';

interface Pair {
  raw: Raw;
  wire: Wire;
  /** The server's socket, which the wire owns. */
  server: net.Socket;
  /** What the wire told its owner, in order. */
  heard: string[];
  /** Whether the client saw the server end its side. */
  clientEnded: () => boolean;
}

const servers: net.Server[] = [];
afterEach(() => {
  for (const server of servers.splice(0)) server.close();
});

/**
 * A wire over a fresh TCP connection; like a session, it closes with the code of a protocol error
 * (at once, or on a later turn with `closeLater`). `onReceive` runs on each message.
 */
async function pair(options: { closeLater?: boolean; onReceive?: (wire: Wire, text: string) => void } = {}): Promise<Pair> {
  const { closeLater = false, onReceive } = options;
  const heard: string[] = [];
  // Both ends half-open, as the HTTP server is: neither ends its side just because the other did.
  const server = net.createServer({ allowHalfOpen: true });
  servers.push(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const accepted = new Promise<{ wire: Wire; socket: net.Socket }>((resolve) =>
    server.once('connection', (socket) => {
      const listener: WireListener = {
        receive: (data) => {
          heard.push(`receive ${data.toString()}`);
          onReceive?.(wire, data.toString());
        },
        pong: () => heard.push('pong'),
        protocolError: (code) => {
          heard.push(`protocolError ${code}`);
          if (closeLater) setImmediate(() => wire.close(code, 'broken'));
          else wire.close(code, 'broken');
        },
        socketClosed: (code, reason) => heard.push(`socketClosed ${code} ${reason}`),
        peerClosing: () => heard.push('peerClosing'),
      };
      const wire: Wire = new Wire(socket, Buffer.alloc(0), { maxMessageBytes: 1024, maxFragments: 16 }, listener);
      resolve({ wire, socket });
    }),
  );
  const client = net.connect({ port: (server.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  client.setNoDelay(true);
  let ended = false;
  client.once('end', () => (ended = true));
  await new Promise<void>((resolve) => client.once('connect', resolve));
  const { wire, socket } = await accepted;
  return { raw: new Raw(client, Buffer.alloc(0)), wire, server: socket, heard, clientEnded: () => ended };
}

/** A round trip on the same connection: a ping answered proves every earlier byte was read. */
async function roundTrip(p: Pair, id: string): Promise<void> {
  p.raw.write(frame(9, id));
  await p.raw.next((f) => f.opcode === 10 && f.payload.toString() === id, `the pong ${id}`);
}

const closes = (p: Pair) => p.raw.frames.filter((f) => f.opcode === 8);

describe('wire phases', () => {
  it("after a protocol error, the peer's close frame is not answered and the socket waits on the peer's FIN", async () => {
    const p = await pair();
    await roundTrip(p, 'before');
    p.raw.write(frame(3, 'x')); // an unknown opcode: 1002
    expect(await p.raw.closeFrame()).toEqual({ code: 1002, reason: 'broken' });
    expect(p.wire.phase).toMatchObject({ name: 'closing', why: 'failed', reading: false, writable: false });
    // Our side ends right after the close frame (§7.1.7)...
    await until(p.clientEnded, 'the server ending its side');
    // ...and the peer's close frame, read by nobody, gets no second one.
    p.raw.write(frame(8, closePayload(1000, 'ok')));
    p.wire.close(1011, 'again');
    p.wire.ping();
    // The socket stays until the peer ends: its reset cannot destroy our close frame unread.
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(p.server.destroyed).toBe(false);
    expect(p.wire.open).toBe(false);
    p.raw.socket.end();
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(closes(p)).toHaveLength(1);
    expect(p.raw.frames.filter((f) => f.opcode === 9)).toHaveLength(0);
    expect(p.heard).toEqual(['protocolError 1002', 'socketClosed 1006 ']);
  });

  it("a close after the peer's close was answered is a no-op, and TCP closes without waiting on the peer", async () => {
    const p = await pair();
    // Runs after the wire's own data listener: the close frame below is answered by then.
    // (Asserted below: a failed expect here would be an error outside the test.)
    let late: { open: boolean; phase: WirePhase } | undefined;
    p.server.on('data', () => {
      if (!p.heard.includes('peerClosing')) return;
      late = { open: p.wire.open, phase: { ...p.wire.phase } };
      p.wire.close(1000, 'late');
      p.wire.ping();
    });
    p.raw.write(frame(1, 'hello'), frame(8, closePayload(4321, 'bye now')));
    expect(await p.raw.closeFrame()).toEqual({ code: 4321, reason: '' });
    // §7.1.1: the server closes TCP once the handshake is done; the client has not ended.
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    await until(p.clientEnded, 'the client seeing the server end');
    expect(late).toEqual({ open: false, phase: { name: 'closing', why: 'received', reading: false, writable: false } });
    expect(closes(p)).toHaveLength(1);
    expect(p.raw.frames.filter((f) => f.opcode === 9)).toHaveLength(0);
    expect(p.heard).toEqual(['receive hello', 'peerClosing', 'socketClosed 4321 bye now']);
    expect(p.wire.phase).toMatchObject({ name: 'closed', why: null, reading: false, writable: false });
    p.raw.socket.destroy();
  });

  it("the peer's close with nothing queued: TCP closes in the same turn as the echo, and a peer that never ends leaves nothing open", async () => {
    const p = await pair();
    let destroyedAfterEcho: boolean | undefined;
    // Runs after the wire's own data listener, in the same turn.
    p.server.on('data', () => {
      if (p.heard.includes('peerClosing')) destroyedAfterEcho ??= p.server.destroyed;
    });
    p.raw.write(frame(8, closePayload(1000)));
    expect(await p.raw.closeFrame()).toEqual({ code: 1000, reason: '' });
    expect(destroyedAfterEcho).toBe(true);
    // The client never ends its side: the server's socket is gone regardless, and its FIN arrives.
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    await until(p.clientEnded, 'the client seeing the server end');
    expect(p.heard).toEqual(['peerClosing', 'socketClosed 1000 ']);
    p.raw.socket.destroy();
  });

  it("the peer's close while bytes wait in user space: they go first, then the echo, then FIN", async () => {
    const p = await pair();
    // The client stops reading, so a large server frame backs up into the socket's own buffer.
    p.raw.socket.pause();
    const chunk = frame(1, Buffer.alloc(2048, 0x61), { mask: false });
    const frames = 4096; // 8 MiB: more than loopback's socket buffers hold
    p.server.write(Buffer.concat(Array.from({ length: frames }, () => chunk)));
    await until(() => p.server.writableLength > 0, 'bytes queued in user space');
    p.raw.write(frame(8, closePayload(4321)));
    await until(() => p.heard.includes('peerClosing'), "the peer's close read");
    // Not closed yet: closing now would throw away what is still queued.
    expect(p.server.destroyed).toBe(false);
    p.raw.socket.resume();
    expect(await p.raw.closeFrame()).toEqual({ code: 4321, reason: '' });
    await until(p.clientEnded, 'the client seeing the server end');
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(p.raw.frames).toHaveLength(frames + 1);
    expect(p.raw.frames.slice(0, frames).every((f) => f.opcode === 1 && f.payload.length === 2048)).toBe(true);
    expect(p.raw.frames[frames]!.opcode).toBe(8);
    expect(p.heard).toEqual(['peerClosing', 'socketClosed 4321 ']);
    p.raw.socket.destroy();
  });

  it("the peer's FIN without a close frame while bytes wait in user space: they go first, then our FIN", async () => {
    const p = await pair();
    p.raw.socket.pause();
    const chunk = frame(1, Buffer.alloc(2048, 0x62), { mask: false });
    const frames = 4096; // 8 MiB: more than loopback's socket buffers hold
    p.server.write(Buffer.concat(Array.from({ length: frames }, () => chunk)));
    await until(() => p.server.writableLength > 0, 'bytes queued in user space');
    p.raw.socket.end(); // half-close: no close frame
    await until(() => p.server.readableEnded, "the peer's FIN read");
    expect(p.wire.phase).toMatchObject({ name: 'closing', why: 'dropped', reading: false, writable: false });
    // Not dropped: what the peer was sent before it hung up is still delivered.
    expect(p.server.destroyed).toBe(false);
    p.raw.socket.resume();
    await until(p.clientEnded, 'the client seeing the server end');
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(p.raw.frames).toHaveLength(frames);
    expect(p.raw.frames.every((f) => f.opcode === 1 && f.payload.length === 2048)).toBe(true);
    expect(p.heard).toEqual(['socketClosed 1006 ']);
    p.raw.socket.destroy();
  });

  it('our close first: frames are still read, the echo is not answered, and TCP closes at once', async () => {
    const p = await pair();
    await roundTrip(p, 'before');
    p.wire.close(4000, 'going');
    expect(await p.raw.closeFrame()).toEqual({ code: 4000, reason: 'going' });
    // A ping after our close frame: read, but a pong may not follow a close frame.
    p.raw.write(frame(1, 'still read'), frame(9, 'late'));
    await until(() => p.heard.includes('receive still read'), 'the message after our close');
    p.wire.close(1000, 'twice');
    expect(p.clientEnded()).toBe(false);
    p.raw.write(frame(8, closePayload(4000)));
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    await until(p.clientEnded, 'the client seeing the server end');
    expect(closes(p)).toHaveLength(1);
    expect(p.raw.frames.filter((f) => f.opcode === 10)).toHaveLength(1); // the 'before' pong only
    expect(p.heard).toEqual(['receive still read', 'socketClosed 4000 ']);
    p.raw.socket.destroy();
  });

  it('a protocol error after our close ends our side at once, and the close is not sent again', async () => {
    const p = await pair();
    p.wire.close(4000, 'going');
    expect(await p.raw.closeFrame()).toEqual({ code: 4000, reason: 'going' });
    expect(p.clientEnded()).toBe(false);
    p.raw.write(frame(1, Buffer.from([0xc3, 0x28]))); // text that is not UTF-8: 1007
    await until(p.clientEnded, 'the server ending its side');
    expect(p.server.destroyed).toBe(false);
    p.raw.socket.end();
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(closes(p)).toHaveLength(1);
    expect(p.heard).toEqual(['protocolError 1007', 'socketClosed 1006 ']);
  });

  it("nothing after the peer's close frame is read, even in the same packet", async () => {
    const p = await pair();
    p.raw.write(frame(1, 'hello'), frame(8, closePayload(1000, 'bye')), frame(1, 'after the close'));
    expect(await p.raw.closeFrame()).toEqual({ code: 1000, reason: '' });
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(p.heard).toEqual(['receive hello', 'peerClosing', 'socketClosed 1000 bye']);
    p.raw.socket.destroy();
  });

  it('reading has stopped when the owner hears of a protocol error, even if it closes only later', async () => {
    const p = await pair({ closeLater: true });
    // Runs after the wire's own data listener, in the same turn: the owner has not closed yet,
    // and what it has queued may still go before its close frame.
    let failed: { phase: WirePhase; open: boolean } | undefined;
    p.server.on('data', () => (failed ??= { phase: { ...p.wire.phase }, open: p.wire.open }));
    // A close frame of one byte (1002), then a message in the same packet.
    p.raw.write(frame(1, 'hello'), frame(8, Buffer.from([3])), frame(1, 'after the error'));
    expect(await p.raw.closeFrame()).toEqual({ code: 1002, reason: 'broken' });
    await until(p.clientEnded, 'the server ending its side');
    p.raw.socket.end();
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(p.heard).toEqual(['receive hello', 'protocolError 1002', 'socketClosed 1006 ']);
    expect(failed).toEqual({ phase: { name: 'closing', why: 'failed', reading: false, writable: true }, open: true });
  });

  it('after a protocol error the socket goes at the peer\'s FIN, also when the owner had paused it', async () => {
    // The owner pauses on the first message, as a session does when its inbox is full.
    const p = await pair({ onReceive: (wire, text) => text === 'one' && wire.pause() });
    // The message, a close frame of one byte (1002), and a megabyte the paused socket takes in
    // part of, never read as frames: the peer's FIN is behind it.
    p.raw.write(frame(1, 'one'), frame(8, Buffer.from([3])), Buffer.alloc(1024 * 1024));
    expect(await p.raw.closeFrame()).toEqual({ code: 1002, reason: 'broken' });
    await until(p.clientEnded, 'the server ending its side');
    p.raw.socket.end();
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(p.heard).toEqual(['receive one', 'protocolError 1002', 'socketClosed 1006 ']);
  });

  it('a protocol error after our close stops reading, even in the same packet', async () => {
    const p = await pair();
    p.wire.close(4000, 'going');
    expect(await p.raw.closeFrame()).toEqual({ code: 4000, reason: 'going' });
    // A close frame of one byte (1002), then a message in the same packet.
    p.raw.write(frame(8, Buffer.from([3])), frame(1, 'after the error'));
    await until(p.clientEnded, 'the server ending its side');
    p.raw.socket.end();
    await until(() => p.heard.some((h) => h.startsWith('socketClosed')), 'the socket closed');
    expect(closes(p)).toHaveLength(1);
    expect(p.heard).toEqual(['protocolError 1002', 'socketClosed 1006 ']);
  });
});
