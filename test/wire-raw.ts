/** A raw RFC 6455 client over TCP for the wire tests: hand-built frames, split reads, the frames the server sends. */
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { expect } from 'vitest';
import { until } from './helpers.js';

export interface WireFrame {
  fin: boolean;
  /** RSV1: a permessage-deflate compressed message. */
  rsv1: boolean;
  opcode: number;
  payload: Buffer;
}

export const KEY = 'dGhlIHNhbXBsZSBub25jZQ=='; // RFC 6455 §1.3's sample nonce

/** Sends an HTTP request by hand and resolves with the status, the headers and what followed them. */
export function request(port: number, lines: string[]): Promise<{ socket: net.Socket; status: number; headers: Record<string, string>; rest: Buffer }> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.setNoDelay(true);
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end === -1) return;
      socket.off('data', onData);
      socket.pause();
      const [statusLine, ...headerLines] = buf.subarray(0, end).toString('latin1').split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of headerLines) {
        const colon = line.indexOf(':');
        headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
      }
      resolve({ socket, status: Number(statusLine!.split(' ')[1]), headers, rest: buf.subarray(end + 4) });
    };
    socket.on('data', onData);
    socket.once('error', reject);
    socket.write(lines.join('\r\n') + '\r\n\r\n');
  });
}

export function upgradeRequest(path: string, extra: string[] = []): string[] {
  return [`GET ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Upgrade: websocket', 'Connection: Upgrade', `Sec-WebSocket-Key: ${KEY}`, 'Sec-WebSocket-Version: 13', ...extra];
}

/** A client frame: masked unless told otherwise, with any header bits a test wants to break. */
export function frame(opcode: number, payload: Buffer | string, opts: { fin?: boolean; mask?: boolean; rsv?: number; declared?: number } = {}): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload;
  const length = opts.declared ?? data.length;
  const mask = opts.mask ?? true;
  const head: number[] = [((opts.fin ?? true) ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode];
  const maskBit = mask ? 0x80 : 0;
  if (length < 126) head.push(maskBit | length);
  else if (length < 0x10000) head.push(maskBit | 126, length >> 8, length & 0xff);
  else head.push(maskBit | 127, 0, 0, 0, 0, (length >>> 24) & 0xff, (length >>> 16) & 0xff, (length >>> 8) & 0xff, length & 0xff);
  if (!mask) return Buffer.concat([Buffer.from(head), data]);
  const key = randomBytes(4);
  const body = Buffer.from(data.map((b, i) => b ^ key[i % 4]!));
  return Buffer.concat([Buffer.from(head), key, body]);
}

/**
 * Writes bytes and resolves once the broker (in this process) has read them: loopback delivers a
 * write at once, the next poll phase reads it, and the check phase after it resolves this. So
 * each call is its own read on the broker's side, and a frame cut across calls is really split.
 */
export async function landed(socket: net.Socket, bytes: Buffer): Promise<void> {
  await new Promise<void>((resolve) => socket.write(bytes, () => resolve()));
  await new Promise<void>((resolve) => setImmediate(resolve));
  await new Promise<void>((resolve) => setImmediate(resolve));
}

export const closePayload = (code: number, reason = '') => Buffer.concat([Buffer.from([code >> 8, code & 0xff]), Buffer.from(reason)]);
export const json = (value: unknown) => JSON.stringify(value);

/** A raw WebSocket client: reads the server's (unmasked) frames, writes whatever bytes a test builds. */
export class Raw {
  readonly frames: WireFrame[] = [];
  readonly ended: Promise<void>;
  #buf: Buffer;

  constructor(readonly socket: net.Socket, rest: Buffer) {
    this.#buf = rest;
    this.ended = new Promise((resolve) => socket.once('end', () => resolve()));
    socket.on('data', (chunk: Buffer) => this.#read(chunk));
    socket.on('error', () => {});
    socket.resume();
    this.#read(Buffer.alloc(0));
  }

  static async open(port: number, path = '/ws?token=raw', extra: string[] = []): Promise<Raw> {
    const { socket, status, rest } = await request(port, upgradeRequest(path, extra));
    expect(status).toBe(101);
    return new Raw(socket, rest);
  }

  write(...bytes: Buffer[]): void {
    this.socket.write(Buffer.concat(bytes));
  }

  /** Waits for the first frame received that passes `test`. */
  async next(test: (f: WireFrame) => boolean, what: string): Promise<WireFrame> {
    let found: WireFrame | undefined;
    await until(() => (found = this.frames.find(test)) !== undefined, what);
    return found!;
  }

  text(type: string): Promise<WireFrame> {
    return this.next((f) => f.opcode === 1 && JSON.parse(f.payload.toString()).type === type, `a ${type} frame`);
  }

  async closeFrame(): Promise<{ code: number | undefined; reason: string }> {
    const f = await this.next((f) => f.opcode === 8, 'a close frame');
    return f.payload.length === 0 ? { code: undefined, reason: '' } : { code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() };
  }

  #read(chunk: Buffer): void {
    this.#buf = Buffer.concat([this.#buf, chunk]);
    for (;;) {
      if (this.#buf.length < 2) return;
      let length = this.#buf[1]! & 0x7f;
      let header = 2;
      if (length === 126) {
        if (this.#buf.length < 4) return;
        length = this.#buf.readUInt16BE(2);
        header = 4;
      } else if (length === 127) {
        if (this.#buf.length < 10) return;
        length = Number(this.#buf.readBigUInt64BE(2));
        header = 10;
      }
      if (this.#buf.length < header + length) return;
      this.frames.push({ fin: (this.#buf[0]! & 0x80) !== 0, rsv1: (this.#buf[0]! & 0x40) !== 0, opcode: this.#buf[0]! & 0x0f, payload: this.#buf.subarray(header, header + length) });
      this.#buf = this.#buf.subarray(header + length);
    }
  }
}

/** A small deterministic PRNG (mulberry32), so a failing case can be replayed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
