/**
 * Finding 5 of issue 16: replies queued in the same event-loop turn as the client's close frame
 * (Acks of the frames read with it) were dropped: the close answer was written at once, the
 * queue later, and skipped. They are now flushed before the close is answered.
 */
import net from 'node:net';
import { createHash, randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { startEnvelope, until, type Running } from './helpers.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

/** A masked client frame (RFC 6455 §5.3). */
function clientFrame(opcode: number, payload: Buffer): Buffer {
  const mask = randomBytes(4);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  return Buffer.concat([head, mask, masked]);
}

/** Unmasked server frames in `buf`: [opcode, payload]. */
function serverFrames(buf: Buffer): Array<[number, Buffer]> {
  const out: Array<[number, Buffer]> = [];
  let o = 0;
  while (o + 2 <= buf.length) {
    let len = buf[o + 1]! & 0x7f;
    let p = o + 2;
    if (len === 126) {
      len = buf.readUInt16BE(p);
      p += 2;
    } else if (len === 127) {
      len = Number(buf.readBigUInt64BE(p));
      p += 8;
    }
    if (p + len > buf.length) break;
    out.push([buf[o]! & 0x0f, buf.subarray(p, p + len)]);
    o = p + len;
  }
  return out;
}

describe("replies queued with the client's close frame (issue 16, finding 5)", () => {
  it('are written before the close answer, in one read with the close frame', async () => {
    running = await startEnvelope();
    const key = randomBytes(16).toString('base64');
    const socket = net.connect(running.port, '127.0.0.1');
    let received = Buffer.alloc(0);
    let upgraded = false;
    const ended = new Promise<void>((resolve) => socket.on('close', () => resolve()));
    socket.on('error', () => {});
    await new Promise<void>((resolve) => {
      socket.on('data', (chunk: Buffer) => {
        received = Buffer.concat([received, chunk]);
        if (!upgraded) {
          const end = received.indexOf('\r\n\r\n');
          if (end === -1) return;
          expect(received.toString('latin1', 0, 12)).toBe('HTTP/1.1 101');
          const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64');
          expect(received.toString('latin1', 0, end)).toContain(accept);
          received = received.subarray(end + 4);
          upgraded = true;
          resolve();
        }
      });
      socket.write(
        `GET /ws?token=alice HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
    // Wait for the welcome, then send three requests and the close frame in one write.
    await until(() => serverFrames(received).length > 0, 'the welcome');
    const pings = [1, 2, 3].map((i) => clientFrame(0x1, Buffer.from(JSON.stringify({ type: 'Ping', id: `p${i}`, data: {} }))));
    const close = clientFrame(0x8, Buffer.from([0x03, 0xe8]));
    socket.write(Buffer.concat([...pings, close]));
    await ended;
    const frames = serverFrames(received);
    const texts = frames.filter(([op]) => op === 0x1).map(([, p]) => JSON.parse(p.toString()) as { type: string; data: { message_id?: string } });
    const acks = texts.filter((t) => t.type === 'Ack').map((t) => t.data.message_id);
    expect(acks).toEqual(['p1', 'p2', 'p3']);
    // And the close answer comes last.
    expect(frames.at(-1)![0]).toBe(0x8);
  });
});
