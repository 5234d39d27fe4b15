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
 * gathered into a buffer that grows (doubling) as its bytes arrive, never one reserved at the
 * size the peer announced: a slow trickle costs a few copies, never one object per read. A
 * fragmented message is gathered into one growing buffer, bounded by `maxMessageBytes` and by
 * `maxFragments`. Text is checked as UTF-8 piece by piece when it comes in pieces.
 *
 * permessage-deflate (RFC 7692, lib/deflate.ts), when the handshake negotiated it: a message with
 * RSV1 set is inflated asynchronously, and reading waits for it, so messages keep their order.
 */
import { isUtf8 } from 'node:buffer';
import { createHash } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import type { Duplex } from 'node:stream';
import { Inflater, type InflateFailure, type Negotiated } from './deflate.js';
import { closeFrame, controlFrame, isValidCloseCode, truncateReason } from './frame.js';
import { Utf8Stream } from './utf8.js';

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
}

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const KEY = /^[+/0-9A-Za-z]{22}==$/;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

export interface UpgradeRefusal {
  status: number;
  message: string;
  headers?: Record<string, string>;
}

/** Checks an upgrade request is a WebSocket handshake we can answer (RFC 6455 §4.2.1); null if it is. */
export function checkUpgrade(request: IncomingMessage): UpgradeRefusal | null {
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
  if (protocols !== undefined) {
    const seen = new Set<string>();
    for (const entry of protocols.split(',')) {
      const name = entry.trim();
      if (!TOKEN.test(name) || seen.has(name)) return { status: 400, message: 'invalid Sec-WebSocket-Protocol header' };
      seen.add(name);
    }
  }
  return null;
}

/**
 * Writes the 101 answer to a request `checkUpgrade` passed. False if the client already left.
 * `negotiated` is the permessage-deflate agreement (lib/deflate.ts), which the socket's wire reads.
 */
export function acceptUpgrade(request: IncomingMessage, socket: Duplex, subprotocol: string | undefined, negotiated: Negotiated | null = null): boolean {
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
      (negotiated === null ? '' : `Sec-WebSocket-Extensions: ${negotiated.answer}\r\n`) +
      '\r\n',
  );
  if (negotiated !== null) (socket as WiredSocket)[NEGOTIATED] = negotiated;
  return true;
}

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;
const RSV1 = 0x40;

/** The first allocation for a frame split across reads, before it grows (doubling) as bytes arrive. */
const FIRST_PARTIAL = 4096;

/** An empty ping, shared by every connection (written as latin1, never modified). */
const PING = String.fromCharCode(0x80 | OP_PING, 0);

const WIRE = Symbol('switchyard.wire');
const NEGOTIATED = Symbol('switchyard.negotiated');
type WiredSocket = Duplex & { [WIRE]?: Wire; [NEGOTIATED]?: Negotiated };

/** The limits a wire enforces (a broker's resolved limits fit). */
export interface WireLimits {
  /** Largest message, in bytes (compressed and, once inflated, uncompressed). */
  maxMessageBytes: number;
  /** Most frames one message may come in. */
  maxFragments: number;
}

/** One upgraded connection's framing: reads frames, answers pings and closes, writes control frames. */
export class Wire {
  readonly #socket: WiredSocket;
  readonly #maxPayload: number;
  readonly #maxFragments: number;
  readonly #listener: WireListener;
  /**
   * A frame split across reads: its header so far (`#need` 0), or its bytes so far in a buffer
   * that grows as they arrive, up to the frame's size (`#need`). Nothing is reserved for bytes
   * the peer has only announced.
   */
  #partial: Buffer | null = null;
  #filled = 0;
  #need = 0;
  /** Header length (mask key included) of the partial frame, and its payload bytes unmasked so far. */
  #partialHeader = 0;
  #unmasked = 0;
  #partialOpcode = 0;
  #partialFin = false;
  /** The partial frame is uncompressed text, checked as UTF-8 as it arrives. */
  #partialText = false;
  /** A fragmented message being gathered. */
  #fragments: Buffer | null = null;
  #fragmentBytes = 0;
  #fragmentCount = 0;
  #fragmentBinary = false;
  /** The message being read has RSV1 set (permessage-deflate). */
  #compressed = false;
  /** UTF-8 of a text message that arrives in pieces; allocated on first use. */
  #utf8: Utf8Stream | null = null;
  readonly #negotiated: Negotiated | null;
  #inflater: Inflater | null = null;
  /** A message is being inflated: reading waits, what arrives meanwhile is kept in `#stash`. */
  #inflating = false;
  #inflatingBinary = false;
  #stash: Buffer | null = null;
  #ownerPaused = false;
  #reading = true;
  /** The peer broke the protocol: its bytes are no longer read, only its FIN awaited. */
  #failed = false;
  #closeSent = false;
  #closeReceived = false;
  #code = 1006;
  #reason = '';

  /** Takes over `socket`; `head` is what the client sent after its request (frames already). */
  constructor(socket: Duplex, head: Buffer, limits: WireLimits, listener: WireListener) {
    this.#socket = socket;
    this.#maxPayload = limits.maxMessageBytes;
    this.#maxFragments = limits.maxFragments;
    this.#listener = listener;
    this.#negotiated = (socket as WiredSocket)[NEGOTIATED] ?? null;
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

  /** The permessage-deflate window this side compresses with (8–15), or 0 without compression. */
  get deflateWindowBits(): number {
    return this.#negotiated === null ? 0 : this.#negotiated.serverWindowBits;
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
    this.#ownerPaused = true;
    this.#socket.pause();
  }

  resume(): void {
    this.#ownerPaused = false;
    if (!this.#inflating) this.#socket.resume();
  }

  /** @internal The socket's data. */
  read(chunk: Buffer): void {
    if (!this.#reading) return;
    if (this.#inflating) {
      this.#stash = this.#stash === null ? chunk : Buffer.concat([this.#stash, chunk]);
      return;
    }
    let buf = chunk;
    let offset = 0;
    if (this.#partial !== null) {
      if (this.#need === 0) {
        // Only a few header bytes were kept: prefix them.
        buf = Buffer.concat([this.#partial, chunk]);
        this.#partial = null;
      } else {
        offset = this.#fill(chunk);
        if (this.#partial !== null || !this.#reading) return;
        if (this.#inflating) {
          if (offset < chunk.length) this.#stash = chunk.subarray(offset);
          return;
        }
      }
    }
    this.#parse(buf, offset);
  }

  /** Handles the frames in `buf` from `offset`, keeping an incomplete last one for the next read. */
  #parse(buf: Buffer, offset: number): void {
    const end = buf.length;
    while (this.#reading && offset < end) {
      if (this.#inflating) {
        this.#stash = buf.subarray(offset);
        return;
      }
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
      const whole = left >= header + length;
      if (opcode < OP_CLOSE) this.#begin(b0, opcode, fin, whole);
      if (!whole) {
        this.#startPartial(buf, offset, header, length, opcode, fin);
        return;
      }
      const start = offset + header;
      offset = start + length;
      const payload = buf.subarray(start, offset);
      unmask(payload, buf, start - 4);
      this.#frame(opcode, fin, payload, false);
    }
  }

  #keepHeader(buf: Buffer, offset: number): void {
    this.#partial = Buffer.from(buf.subarray(offset));
    this.#need = 0;
  }

  /** A data frame's header passed the checks: note what kind of message it starts or continues. */
  #begin(b0: number, opcode: number, fin: boolean, whole: boolean): void {
    if (opcode === OP_CONTINUATION) {
      this.#fragmentCount++;
      return;
    }
    this.#compressed = (b0 & RSV1) !== 0;
    this.#fragmentCount = 1;
    // Text that arrives in pieces is checked piece by piece (RFC 6455 §8.1: fail fast).
    if (opcode === OP_TEXT && !this.#compressed && (!fin || !whole)) (this.#utf8 ??= new Utf8Stream()).reset();
  }

  /** Keeps the start of a frame that continues in later reads, in a buffer sized for what came. */
  #startPartial(buf: Buffer, offset: number, header: number, length: number, opcode: number, fin: boolean): void {
    const left = buf.length - offset;
    const need = header + length;
    const partial = Buffer.allocUnsafe(Math.min(need, Math.max(left, FIRST_PARTIAL)));
    buf.copy(partial, 0, offset);
    this.#partial = partial;
    this.#filled = left;
    this.#need = need;
    this.#partialHeader = header;
    this.#unmasked = 0;
    this.#partialOpcode = opcode;
    this.#partialFin = fin;
    this.#partialText =
      opcode < OP_CLOSE && !this.#compressed && (opcode === OP_TEXT || (opcode === OP_CONTINUATION && !this.#fragmentBinary));
    this.#advancePartial();
  }

  /** Adds a read to the partial frame; returns the bytes of `chunk` it took. */
  #fill(chunk: Buffer): number {
    let partial = this.#partial!;
    const n = Math.min(chunk.length, this.#need - this.#filled);
    const filled = this.#filled + n;
    if (filled > partial.length) {
      // Doubling, capped at the frame's size: at most log2(size / 4 KiB) copies, ≤ 2× the bytes.
      const grown = Buffer.allocUnsafe(Math.min(this.#need, Math.max(filled, partial.length * 2)));
      partial.copy(grown, 0, 0, this.#filled);
      partial = this.#partial = grown;
    }
    chunk.copy(partial, this.#filled, 0, n);
    this.#filled = filled;
    this.#advancePartial();
    return n;
  }

  /** Unmasks (and, for text, checks) what arrived of the partial frame; hands it on once complete. */
  #advancePartial(): void {
    const partial = this.#partial!;
    const header = this.#partialHeader;
    const from = header + this.#unmasked;
    if (this.#filled > from) {
      const piece = partial.subarray(from, this.#filled);
      unmask(piece, partial, header - 4, this.#unmasked);
      this.#unmasked += piece.length;
      if (this.#partialText && !this.#utf8!.push(piece)) {
        this.#fail(1007, 'text message is not valid UTF-8');
        return;
      }
    }
    if (this.#filled < this.#need) return;
    this.#partial = null;
    this.#frame(this.#partialOpcode, this.#partialFin, partial.subarray(header, this.#need), this.#partialText);
  }

  #check(b0: number, b1: number, opcode: number, fin: boolean, length: number): { code: number; message: string } | null {
    if ((b0 & 0x70) !== 0) {
      // RSV1 marks a compressed message, on its first frame only (RFC 7692 §6).
      if ((b0 & 0x70) !== RSV1 || this.#negotiated === null || (opcode !== OP_TEXT && opcode !== OP_BINARY)) {
        return { code: 1002, message: 'RSV bits set without an extension' };
      }
    }
    if ((b1 & 0x80) === 0) return { code: 1002, message: 'client frames must be masked' };
    if (opcode >= OP_CLOSE) {
      if (opcode > OP_PONG) return { code: 1002, message: `unknown opcode ${opcode}` };
      if (!fin) return { code: 1002, message: 'fragmented control frame' };
      if (length > 125) return { code: 1002, message: 'control frame payload over 125 bytes' };
      return null;
    }
    if (opcode === OP_CONTINUATION) {
      if (this.#fragments === null) return { code: 1002, message: 'continuation frame with no message to continue' };
      // Each frame costs a header and a call however small: the count is bounded as the bytes are.
      if (this.#fragmentCount >= this.#maxFragments) return { code: 1009, message: `message in more than ${this.#maxFragments} fragments` };
    } else if (opcode === OP_TEXT || opcode === OP_BINARY) {
      if (this.#fragments !== null) return { code: 1002, message: 'new message before the fragmented one ended' };
    } else {
      return { code: 1002, message: `unknown opcode ${opcode}` };
    }
    if (this.#fragmentBytes + length > this.#maxPayload) return { code: 1009, message: `message over ${this.#maxPayload} bytes` };
    return null;
  }

  /** A whole frame; `checked` when its text was already checked as UTF-8 as it arrived. */
  #frame(opcode: number, fin: boolean, payload: Buffer, checked: boolean): void {
    switch (opcode) {
      case OP_TEXT:
      case OP_BINARY:
        if (fin) {
          this.#message(payload, opcode === OP_BINARY, checked);
          return;
        }
        this.#fragmentBinary = opcode === OP_BINARY;
        if (!checked && !this.#fragmentBinary && !this.#compressed && !this.#utf8!.push(payload)) {
          this.#fail(1007, 'text message is not valid UTF-8');
          return;
        }
        this.#fragments = Buffer.allocUnsafe(Math.min(this.#maxPayload, Math.max(payload.length * 2, 256)));
        this.#append(payload);
        return;
      case OP_CONTINUATION: {
        if (!checked && !this.#fragmentBinary && !this.#compressed && !this.#utf8!.push(payload)) {
          this.#fail(1007, 'text message is not valid UTF-8');
          return;
        }
        this.#append(payload);
        if (!fin) return;
        const message = this.#fragments!.subarray(0, this.#fragmentBytes);
        this.#fragments = null;
        this.#fragmentBytes = 0;
        this.#message(message, this.#fragmentBinary, true);
        return;
      }
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

  /** A complete message; `streamed` when its text went through the UTF-8 stream piece by piece. */
  #message(data: Buffer, isBinary: boolean, streamed: boolean): void {
    if (this.#compressed) {
      this.#inflate(data, isBinary);
      return;
    }
    if (!isBinary && (streamed ? !this.#utf8!.end() : !isUtf8(data))) {
      this.#fail(1007, 'text message is not valid UTF-8');
      return;
    }
    this.#listener.receive(data, isBinary);
  }

  /** Inflates a compressed message; reading waits until it is delivered, so messages keep their order. */
  #inflate(data: Buffer, isBinary: boolean): void {
    this.#inflating = true;
    this.#inflatingBinary = isBinary;
    this.#socket.pause();
    // `data` may be a view of a read buffer: only later frames' bytes in it are touched meanwhile.
    (this.#inflater ??= new Inflater(this.#maxPayload, this.#negotiated!)).inflate(data, this);
  }

  /** @internal The inflater's answer for the message being inflated. */
  inflated(failure: InflateFailure | null, message: Buffer | null): void {
    this.#inflating = false;
    if (!this.#reading) return;
    if (failure !== null) {
      this.#fail(failure.code, failure.message);
      return;
    }
    if (!this.#inflatingBinary && !isUtf8(message!)) {
      this.#fail(1007, 'text message is not valid UTF-8');
      return;
    }
    this.#listener.receive(message!, this.#inflatingBinary);
    const stash = this.#stash;
    this.#stash = null;
    if (stash !== null) this.read(stash);
    if (!this.#inflating && !this.#ownerPaused && this.#reading) this.#socket.resume();
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
    this.#release();
    this.#listener.protocolError(code, message);
    if (this.#closeSent && !this.#socket.writableEnded) this.#socket.end();
    // A wire paused for inflation must still see the peer's FIN.
    if (!this.#ownerPaused) this.#socket.resume();
  }

  #release(): void {
    this.#partial = null;
    this.#fragments = null;
    this.#stash = null;
    this.#inflater?.close();
    this.#inflater = null;
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
    this.#release();
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

/**
 * Unmasks `payload` in place with the 4-byte key at `buf[at]` (RFC 6455 §5.3); `phase` is the
 * payload offset of `payload[0]` when a frame is unmasked piece by piece as it arrives.
 */
function unmask(payload: Buffer, buf: Buffer, at: number, phase = 0): void {
  const m0 = buf[at + (phase & 3)]!;
  const m1 = buf[at + ((phase + 1) & 3)]!;
  const m2 = buf[at + ((phase + 2) & 3)]!;
  const m3 = buf[at + ((phase + 3) & 3)]!;
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
