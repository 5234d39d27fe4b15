/**
 * The server side of RFC 6455 on a socket the host's HTTP server upgraded: checking the opening
 * handshake, answering it, and reading the client's frames. Data frames going out are built by
 * lib/frame.ts and written by the session; this module writes only control frames.
 *
 * Reading is the broker's hot path, so it is ours rather than `ws`'s: a frame that arrives whole
 * in one read is unmasked in place and handed on as a view of that read, with no stream write,
 * event emit or array per message. (`ws` allocates an array per message at one allocation site;
 * once many quiet connections keep theirs alive, V8 pretenures that site and every later message
 * is promoted to the old generation: bench/PROFILING.md.) A frame split across reads is
 * gathered into one buffer of its size, so a slow trickle costs one copy, never one object per
 * read; a fragmented message is gathered into one growing buffer, bounded by `maxPayload`.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';

/** What a wire reports to its owner. Methods, not callbacks: one object per connection, no closures. */
export interface WireListener {
  /** A complete data message (text is valid UTF-8). `data` may be a view of a shared read buffer. */
  receive(data: Buffer, isBinary: boolean): void;
  /** A pong arrived. */
  pong(): void;
  /** The peer broke the protocol (1002, 1007, 1009); reading has stopped. The owner closes. */
  protocolError(code: number, message: string): void;
  /** The socket is gone: `code` is the peer's close code (1005 for none), or 1006 without a close frame. */
  socketClosed(code: number, reason: string): void;
  /** The peer's close frame arrived and is about to be answered: write what is queued first. */
  peerClosing?(): void;
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /^[+/0-9A-Za-z]{22}==$/;
/** Seed 004's raw `Token <t>` / `Bearer <t>` protocol header (non-browser clients). */
export const SCHEME_TOKEN = /^\s*(token|bearer) +([^\s,]+)\s*$/i;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export interface UpgradeRefusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/**
 * Checks an upgrade request is a WebSocket handshake we can answer (RFC 6455 §4.2.1); null if it
 * is. `schemeToken` accepts seed 004's raw `Sec-WebSocket-Protocol: Token <t>` (one value with a
 * space, not a valid protocol name) on endpoints that take subprotocol credentials.
 */
export function checkUpgrade(request: IncomingMessage, schemeToken = false): UpgradeRefusal | null {
  if (request.method !== 'GET') return { status: 405, message: 'invalid HTTP method' };
  const upgrade = request.headers.upgrade;
  if (upgrade === undefined || upgrade.toLowerCase() !== 'websocket') return { status: 400, message: 'invalid Upgrade header' };
  const key = request.headers['sec-websocket-key'];
  if (key === undefined || !KEY.test(key)) return { status: 400, message: 'missing or invalid Sec-WebSocket-Key header' };
  const version = request.headers['sec-websocket-version'];
  if (version !== '13' && version !== '8') {
    return { status: 400, message: 'missing or invalid Sec-WebSocket-Version header', headers: { 'Sec-WebSocket-Version': '13, 8' } };
  }
  const protocols = request.headers['sec-websocket-protocol'];
  if (protocols !== undefined && !(schemeToken && SCHEME_TOKEN.test(protocols))) {
    const seen = new Set<string>();
    for (const entry of protocols.split(',')) {
      const name = entry.trim();
      if (!TOKEN.test(name) || seen.has(name)) return { status: 400, message: 'invalid Sec-WebSocket-Protocol header' };
      seen.add(name);
    }
  }
  return null;
}

/** Writes the 101 answer to a request `checkUpgrade` passed. False if the client already left. */
export function acceptUpgrade(request: IncomingMessage, socket: Duplex, subprotocol: string | undefined): boolean {
  if (!socket.readable || !socket.writable) {
    socket.destroy();
    return false;
  }
  const accept = createHash('sha1')
    .update(request.headers['sec-websocket-key'] + GUID)
    .digest('base64');
  socket.write(
    'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
      `Sec-WebSocket-Accept: ${accept}\r\n` +
      (subprotocol === undefined ? '' : `Sec-WebSocket-Protocol: ${subprotocol}\r\n`) +
      '\r\n',
  );
  return true;
}

/** Close codes an endpoint may send, and so may receive (RFC 6455 §7.4). */
function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

/** An empty ping, shared by every connection (written as latin1, never modified). */
const PING = String.fromCharCode(0x80 | OP_PING, 0);

const WIRE = Symbol('switchyard.wire');
type WiredSocket = Duplex & { [WIRE]?: Wire };

/** One upgraded connection's framing: reads frames, answers pings and closes, writes control frames. */
export class Wire {
  readonly #socket: WiredSocket;
  readonly #maxPayload: number;
  readonly #listener: WireListener;
  /** A frame split across reads: its header so far (`#need` 0), or a buffer of its full size. */
  #partial: Buffer | null = null;
  #filled = 0;
  #need = 0;
  /** A fragmented message being gathered. */
  #fragments: Buffer | null = null;
  #fragmentBytes = 0;
  #fragmentBinary = false;
  #reading = true;
  /** The peer broke the protocol: its bytes are no longer read, only its FIN awaited. */
  #failed = false;
  #closeSent = false;
  #closeReceived = false;
  #code = 1006;
  #reason = '';

  /** Takes over `socket`; `head` is what the client sent after its request (frames already). */
  constructor(socket: Duplex, head: Buffer, maxPayload: number, listener: WireListener) {
    this.#socket = socket;
    this.#maxPayload = maxPayload;
    this.#listener = listener;
    (socket as WiredSocket)[WIRE] = this;
    const tcp = socket as Duplex & { setNoDelay?: (on: boolean) => void; setTimeout?: (ms: number) => void };
    tcp.setTimeout?.(0);
    tcp.setNoDelay?.(true);
    // Read from the next tick, as the socket's own data would be: the owner finishes its setup first.
    if (head.length > 0) socket.unshift(head);
    socket.on('data', onData);
    socket.on('end', onEnd);
    socket.on('error', onError);
    socket.on('close', onClose);
    socket.on('finish', onFinish);
  }

  /** True until this side has sent its close frame (data frames may not follow one). */
  get open(): boolean {
    return !this.#closeSent && !this.#socket.destroyed;
  }

  /** Sends a close frame, or ends the socket if the peer's came first. Throws on a code not allowed on the wire. */
  close(code: number, reason = ''): void {
    if (!isValidCloseCode(code)) throw new TypeError(`invalid close code ${code}`);
    if (this.#closeSent || this.#socket.destroyed) return;
    this.#closeSent = true;
    this.#socket.write(closeFrame(code, truncateReason(reason)));
    if ((this.#closeReceived || this.#failed) && !this.#socket.writableEnded) this.#socket.end();
  }

  /** Ends the connection at once, without a close handshake. */
  terminate(): void {
    this.#reading = false;
    this.#socket.destroy();
  }

  ping(): void {
    if (!this.#closeSent && !this.#socket.destroyed) this.#socket.write(PING, 'latin1');
  }

  /** Stops reading from the socket (frames of a read already in hand are still delivered). */
  pause(): void {
    this.#socket.pause();
  }

  resume(): void {
    this.#socket.resume();
  }

  /** @internal The socket's data. */
  read(chunk: Buffer): void {
    if (!this.#reading) return;
    let buf = chunk;
    let offset = 0;
    const partial = this.#partial;
    if (partial !== null) {
      if (this.#need === 0) {
        // Only a few header bytes were kept: prefix them.
        buf = Buffer.concat([partial, chunk]);
        this.#partial = null;
      } else {
        const n = Math.min(chunk.length, this.#need - this.#filled);
        chunk.copy(partial, this.#filled, 0, n);
        this.#filled += n;
        if (this.#filled < this.#need) return;
        this.#partial = null;
        this.#parse(partial, 0);
        offset = n;
      }
    }
    this.#parse(buf, offset);
  }

  /** Handles the frames in `buf` from `offset`, keeping an incomplete last one for the next read. */
  #parse(buf: Buffer, offset: number): void {
    const end = buf.length;
    while (this.#reading && offset < end) {
      const left = end - offset;
      if (left < 2) {
        this.#keepHeader(buf, offset);
        return;
      }
      const b0 = buf[offset]!;
      const b1 = buf[offset + 1]!;
      let length = b1 & 0x7f;
      const header = (length === 126 ? 4 : length === 127 ? 10 : 2) + 4;
      if (left < header) {
        this.#keepHeader(buf, offset);
        return;
      }
      if (length === 126) {
        length = buf.readUInt16BE(offset + 2);
      } else if (length === 127) {
        const high = buf.readUInt32BE(offset + 2);
        // Above 2^53 - 1 is not a safe number; it is far over any payload limit anyway.
        length = high > 0x1fffff ? Number.MAX_SAFE_INTEGER : high * 0x100000000 + buf.readUInt32BE(offset + 6);
      }
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      const problem = this.#check(b0, b1, opcode, fin, length);
      if (problem !== null) {
        this.#fail(problem.code, problem.message);
        return;
      }
      if (left < header + length) {
        // Gathered into one buffer of the frame's size: one copy however it trickles in.
        const whole = Buffer.allocUnsafe(header + length);
        buf.copy(whole, 0, offset, end);
        this.#partial = whole;
        this.#filled = left;
        this.#need = header + length;
        return;
      }
      const start = offset + header;
      offset = start + length;
      const payload = buf.subarray(start, offset);
      unmask(payload, buf, start - 4);
      this.#frame(opcode, fin, payload);
    }
  }

  #keepHeader(buf: Buffer, offset: number): void {
    this.#partial = Buffer.from(buf.subarray(offset));
    this.#need = 0;
  }

  #check(b0: number, b1: number, opcode: number, fin: boolean, length: number): { code: number; message: string } | null {
    if ((b0 & 0x70) !== 0) return { code: 1002, message: 'RSV bits set without an extension' };
    if ((b1 & 0x80) === 0) return { code: 1002, message: 'client frames must be masked' };
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) return { code: 1002, message: `unknown opcode ${opcode}` };
      if (!fin) return { code: 1002, message: 'fragmented control frame' };
      if (length > 125) return { code: 1002, message: 'control frame payload over 125 bytes' };
      return null;
    }
    if (opcode === OP_CONTINUATION) {
      if (this.#fragments === null) return { code: 1002, message: 'continuation frame with no message to continue' };
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.#fragments !== null) return { code: 1002, message: 'new message before the fragmented one ended' };
    } else {
      return { code: 1002, message: `unknown opcode ${opcode}` };
    }
    if (this.#fragmentBytes + length > this.#maxPayload) return { code: 1009, message: `message over ${this.#maxPayload} bytes` };
    return null;
  }

  #frame(opcode: number, fin: boolean, payload: Buffer): void {
    switch (opcode) {
      case OP_TEXT:
      case OP_BINARY:
        if (fin) {
          this.#message(payload, opcode === OP_BINARY);
        } else {
          this.#fragments = Buffer.allocUnsafe(Math.min(this.#maxPayload, Math.max(payload.length * 2, 256)));
          this.#fragmentBinary = opcode === OP_BINARY;
          this.#append(payload);
        }
        return;
      case OP_CONTINUATION:
        this.#append(payload);
        if (fin) {
          const message = this.#fragments!.subarray(0, this.#fragmentBytes);
          this.#fragments = null;
          this.#fragmentBytes = 0;
          this.#message(message, this.#fragmentBinary);
        }
        return;
      case OP_PING:
        if (!this.#closeSent) this.#socket.write(controlFrame(OP_PONG, payload));
        return;
      case OP_PONG:
        this.#listener.pong();
        return;
      default:
        this.#closeFrame(payload);
    }
  }

  #append(payload: Buffer): void {
    const bytes = this.#fragmentBytes + payload.length;
    let into = this.#fragments!;
    if (bytes > into.length) {
      const grown = Buffer.allocUnsafe(Math.min(this.#maxPayload, Math.max(bytes, into.length * 2)));
      into.copy(grown, 0, 0, this.#fragmentBytes);
      into = this.#fragments = grown;
    }
    payload.copy(into, this.#fragmentBytes);
    this.#fragmentBytes = bytes;
  }

  #message(data: Buffer, isBinary: boolean): void {
    if (!isBinary && !isUtf8(data)) {
      this.#fail(1007, 'text message is not valid UTF-8');
      return;
    }
    this.#listener.receive(data, isBinary);
  }

  /** The peer's close frame: answer it (if this side has not closed yet) and end the socket. */
  #closeFrame(payload: Buffer): void {
    let code = 1005;
    let reason = '';
    if (payload.length === 1) return this.#fail(1002, 'close frame payload of 1 byte');
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!isValidCloseCode(code)) return this.#fail(1002, `invalid close code ${code}`);
      const text = payload.subarray(2);
      if (!isUtf8(text)) return this.#fail(1007, 'close reason is not valid UTF-8');
      reason = text.toString();
    }
    this.#reading = false;
    this.#closeReceived = true;
    this.#code = code;
    this.#reason = reason;
    if (!this.#closeSent) {
      // Replies to the frames read with this one are still queued (issue 16): they go first.
      this.#listener.peerClosing?.();
      this.#closeSent = true;
      this.#socket.write(code === 1005 ? closeFrame() : closeFrame(code, ''));
    }
    if (!this.#socket.writableEnded) this.#socket.end();
  }

  /**
   * A protocol error: stop reading and let the owner close with `code`. What follows cannot be
   * trusted to be frames, so the peer's answer to our close frame is not read: our side ends
   * right after it (RFC 6455 §7.1.7), and the socket goes once the peer ends too.
   */
  #fail(code: number, message: string): void {
    this.#reading = false;
    this.#failed = true;
    this.#partial = null;
    this.#fragments = null;
    this.#listener.protocolError(code, message);
    if (this.#closeSent && !this.#socket.writableEnded) this.#socket.end();
  }

  /** @internal The peer ended its side, with or without a close frame first. */
  ended(): void {
    this.#reading = false;
    if (this.#socket.writableEnded) this.#socket.destroy();
    else this.#socket.end();
  }

  /** @internal Our side is flushed and ended. */
  finished(): void {
    // RFC 6455 §7.1.1: once the closing handshake is done the server closes TCP at once, not
    // waiting on the peer's FIN. After a protocol error the peer may still be sending: wait for
    // its FIN, so our reset cannot destroy the close frame before it reads it.
    if (!this.#failed) this.#socket.destroy();
  }

  /** @internal */
  closed(): void {
    this.#reading = false;
    this.#partial = null;
    this.#fragments = null;
    this.#listener.socketClosed(this.#code, this.#reason);
  }
}

// Socket listeners shared by every connection (no closure per connection).
function onData(this: WiredSocket, chunk: Buffer): void {
  this[WIRE]!.read(chunk);
}
function onEnd(this: WiredSocket): void {
  this[WIRE]!.ended();
}
function onError(this: WiredSocket): void {
  this.destroy();
}
function onClose(this: WiredSocket): void {
  this[WIRE]!.closed();
}
function onFinish(this: WiredSocket): void {
  this[WIRE]!.finished();
}

/** Unmasks `payload` in place with the 4-byte key at `buf[at]` (RFC 6455 §5.3). */
function unmask(payload: Buffer, buf: Buffer, at: number): void {
  const m0 = buf[at]!;
  const m1 = buf[at + 1]!;
  const m2 = buf[at + 2]!;
  const m3 = buf[at + 3]!;
  const n = payload.length;
  let i = 0;
  for (; i + 3 < n; i += 4) {
    payload[i] = payload[i]! ^ m0;
    payload[i + 1] = payload[i + 1]! ^ m1;
    payload[i + 2] = payload[i + 2]! ^ m2;
    payload[i + 3] = payload[i + 3]! ^ m3;
  }
  if (i < n) payload[i] = payload[i]! ^ m0;
  if (i + 1 < n) payload[i + 1] = payload[i + 1]! ^ m1;
  if (i + 2 < n) payload[i + 2] = payload[i + 2]! ^ m2;
}

/** An unmasked control frame (payload up to 125 bytes). */
function controlFrame(opcode: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = payload.length;
  payload.copy(frame, 2);
  return frame;
}

/** A close frame: empty, or a code and a reason of at most 123 bytes. */
function closeFrame(code?: number, reason = ''): Buffer {
  if (code === undefined) return controlFrame(OP_CLOSE, Buffer.alloc(0));
  const payload = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return controlFrame(OP_CLOSE, payload);
}

/** Close reasons are limited to 123 bytes of UTF-8 (RFC 6455 §5.5): longer ones are cut and end in '...'. */
function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let out = reason.slice(0, 120);
  while (Buffer.byteLength(out) > 120) out = out.slice(0, -1);
  return out + '...';
}
