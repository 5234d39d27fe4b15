/**
 * The server side of RFC 6455 on a socket the host's HTTP server upgraded: checking the opening
 * handshake, answering it, and reading the client's frames. Data frames going out are built by
 * lib/frame.ts and written by the session; this module writes only control frames.
 *
 * Reading is the broker's hot path, so it is ours rather than `ws`'s: lib/reader.ts turns bytes
 * into messages with no stream write, event emit or array per message. (`ws` allocates an array
 * per message at one allocation site; once many quiet connections keep theirs alive, V8
 * pretenures that site and every later message is promoted to the old generation:
 * bench/PROFILING.md.)
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
import { FrameReader, OP_PING, OP_PONG, type ReaderOwner, type WireLimits } from './reader.js';

export type { WireLimits } from './reader.js';

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
export function checkUpgrade(request: IncomingMessage, schemeToken: boolean): UpgradeRefusal | null {
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

/** An empty ping, shared by every connection (written as latin1, never modified). */
const PING = String.fromCharCode(0x80 | OP_PING, 0);

/**
 * Why a wire is closing; the close handshake and the FIN handling differ with it:
 * - `sent`: this side's close frame went first. The peer's frames are still read (no pong
 *   follows a close frame) until its close frame, then TCP closes once our side is flushed.
 * - `received`: the peer's close frame came; it was answered with its code unless ours crossed
 *   it. Nothing more is read; our side is ended and TCP closes once flushed (RFC 6455 §7.1.1).
 * - `failed`: the peer broke the protocol, so what follows is not read as frames. The owner's
 *   close frame ends our side at once (§7.1.7); the socket goes when the peer ends, not before,
 *   so our reset cannot destroy the close frame unread.
 * - `dropped`: TCP is going without a close handshake (the peer's FIN first, or terminate()).
 */
export type CloseWhy = 'sent' | 'received' | 'failed' | 'dropped';

/** A wire's phase: open → closing (why) → closed (the socket is gone). */
export interface WirePhase {
  readonly name: 'open' | 'closing' | 'closed';
  readonly why: CloseWhy | null;
  /** The peer's frames are still read. */
  readonly reading: boolean;
  /** No close frame written yet: data frames, pings and pongs may still go. */
  readonly writable: boolean;
}

const OPEN: WirePhase = { name: 'open', why: null, reading: true, writable: true };
const SENT: WirePhase = { name: 'closing', why: 'sent', reading: true, writable: false };
const RECEIVED: WirePhase = { name: 'closing', why: 'received', reading: false, writable: false };
/** Failed, the owner's close frame still to come (what is queued may go before it). */
const FAILED: WirePhase = { name: 'closing', why: 'failed', reading: false, writable: true };
const FAILED_SENT: WirePhase = { name: 'closing', why: 'failed', reading: false, writable: false };
const DROPPED: WirePhase = { name: 'closing', why: 'dropped', reading: false, writable: false };
const CLOSED: WirePhase = { name: 'closed', why: null, reading: false, writable: false };

/** The transitions a wire may make; any other is refused. A FIN after a failure keeps `failed`: it is what the socket waits on. */
const NEXT = new Map<WirePhase, readonly WirePhase[]>([
  [OPEN, [SENT, RECEIVED, FAILED, DROPPED, CLOSED]],
  [SENT, [RECEIVED, FAILED_SENT, DROPPED, CLOSED]],
  [RECEIVED, [CLOSED]],
  [FAILED, [FAILED_SENT, CLOSED]],
  [FAILED_SENT, [CLOSED]],
  [DROPPED, [CLOSED]],
  [CLOSED, []],
]);

const WIRE = Symbol('switchyard.wire');
const NEGOTIATED = Symbol('switchyard.negotiated');
type WiredSocket = Duplex & { [WIRE]?: Wire; [NEGOTIATED]?: Negotiated };

/** One upgraded connection's framing: reads frames, answers pings and closes, writes control frames. */
export class Wire implements ReaderOwner {
  readonly #socket: WiredSocket;
  readonly #listener: WireListener;
  readonly #reader: FrameReader;
  readonly #maxPayload: number;
  readonly #negotiated: Negotiated | null;
  #inflater: Inflater | null = null;
  /** A message is being inflated: the reader is held and the socket paused until it is delivered. */
  #inflating = false;
  #inflatingBinary = false;
  #ownerPaused = false;
  #phase = OPEN;
  #code = 1006;
  #reason = '';

  /** Takes over `socket`; `head` is what the client sent after its request (frames already). */
  constructor(socket: Duplex, head: Buffer, limits: WireLimits, listener: WireListener) {
    this.#socket = socket;
    this.#listener = listener;
    this.#maxPayload = limits.maxMessageBytes;
    this.#negotiated = (socket as WiredSocket)[NEGOTIATED] ?? null;
    this.#reader = new FrameReader(limits, this.#negotiated !== null, this);
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
    return this.#phase.writable && !this.#socket.destroyed;
  }

  /** Where the wire is in its close (the constants above; compare by identity). */
  get phase(): WirePhase {
    return this.#phase;
  }

  /** The permessage-deflate window this side compresses with (8–15), or 0 without compression. */
  get deflateWindowBits(): number {
    return this.#negotiated === null ? 0 : this.#negotiated.serverWindowBits;
  }

  /** Sends a close frame, or ends the socket if the peer's came first. Throws on a code not allowed on the wire. */
  close(code: number, reason = ''): void {
    if (!isValidCloseCode(code)) throw new TypeError(`invalid close code ${code}`);
    if (this.#socket.destroyed) return;
    const failed = this.#phase === FAILED;
    if (!this.#to(failed ? FAILED_SENT : SENT)) return;
    this.#socket.write(closeFrame(code, truncateReason(reason)));
    if (failed && !this.#socket.writableEnded) this.#socket.end();
  }

  /** Ends the connection at once, without a close handshake. */
  terminate(): void {
    this.#to(DROPPED);
    this.#socket.destroy();
  }

  ping(): void {
    if (this.#phase.writable && !this.#socket.destroyed) this.#socket.write(PING, 'latin1');
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
    this.#reader.push(chunk);
  }

  /** @internal A complete data message from the reader. */
  message(data: Buffer, isBinary: boolean, compressed: boolean): void {
    if (!compressed) {
      this.#listener.receive(data, isBinary);
      return;
    }
    // Inflated asynchronously; nothing after it is read until it is delivered, so order is kept.
    this.#inflating = true;
    this.#inflatingBinary = isBinary;
    this.#reader.hold();
    this.#socket.pause();
    // `data` may be a view of a read buffer: only later frames' bytes in it are touched meanwhile.
    (this.#inflater ??= new Inflater(this.#maxPayload, this.#negotiated!)).inflate(data, this);
  }

  /** @internal The inflater's answer for the message being inflated. */
  inflated(failure: InflateFailure | null, message: Buffer | null): void {
    this.#inflating = false;
    if (!this.#phase.reading) return;
    if (failure !== null) return this.fail(failure.code, failure.message);
    if (!this.#inflatingBinary && !isUtf8(message!)) return this.fail(1007, 'text message is not valid UTF-8');
    this.#listener.receive(message!, this.#inflatingBinary);
    this.#reader.release();
    if (!this.#inflating && !this.#ownerPaused && this.#phase.reading) this.#socket.resume();
  }

  /** @internal A control frame from the reader. */
  control(opcode: number, payload: Buffer): void {
    if (opcode === OP_PING) {
      // Frames are read while open and after our close frame; no pong may follow a close frame.
      if (this.#phase === OPEN) this.#socket.write(controlFrame(OP_PONG, payload));
    } else if (opcode === OP_PONG) {
      this.#listener.pong();
    } else {
      this.#closeFrame(payload);
    }
  }

  /** The peer's close frame: answer it (if this side has not closed yet) and end the socket. */
  #closeFrame(payload: Buffer): void {
    let code = 1005;
    let reason = '';
    if (payload.length === 1) return this.fail(1002, 'close frame payload of 1 byte');
    if (payload.length >= 2) {
      code = payload.readUInt16BE(0);
      if (!isValidCloseCode(code)) return this.fail(1002, `invalid close code ${code}`);
      const text = payload.subarray(2);
      if (!isUtf8(text)) return this.fail(1007, 'close reason is not valid UTF-8');
      reason = text.toString();
    }
    this.#code = code;
    this.#reason = reason;
    // Replies to the frames read with this one are still queued (issue 16): they go first.
    if (this.#phase === OPEN) this.#listener.peerClosing?.();
    const answer = this.#phase === OPEN;
    if (!this.#to(RECEIVED)) return;
    if (answer) this.#socket.write(code === 1005 ? closeFrame() : closeFrame(code, ''));
    // RFC 6455 §7.1.1: the closing handshake is done and the server closes TCP first. When the
    // kernel already holds everything written (the usual case), close it now: the kernel still
    // sends those bytes, then FIN. That skips a shutdown(), the 'finish' round and, when the
    // client ends its side as soon as it reads our Close (as `ws` and most clients do), reading
    // that FIN on a socket about to go (bench/PROFILING.md, "connect"). Bytes still queued in
    // user space, or a TLS socket (its records may still be on their way to the TCP socket),
    // take the old way: end, and close once flushed (finished()).
    if (this.#socket.writableLength === 0 && (this.#socket as { encrypted?: boolean }).encrypted !== true) this.#socket.destroy();
    else if (!this.#socket.writableEnded) this.#socket.end();
  }

  /**
   * @internal A protocol error: stop reading and let the owner close with `code`. What follows
   * cannot be trusted to be frames, so the peer's answer to our close frame is not read: our
   * side ends right after it (RFC 6455 §7.1.7), and the socket goes once the peer ends too.
   */
  fail(code: number, message: string): void {
    if (!this.#to(this.#phase === SENT ? FAILED_SENT : FAILED)) return;
    this.#listener.protocolError(code, message);
    if (this.#phase === FAILED_SENT && !this.#socket.writableEnded) this.#socket.end();
    // Nothing more is read as frames, but the socket must still see the peer's FIN, whether it
    // was paused for an inflation or by the owner: what it holds is dropped unread.
    this.#socket.resume();
  }

  /** @internal The peer ended its side, with or without a close frame first. */
  ended(): void {
    this.#to(DROPPED);
    if (this.#socket.writableEnded) this.#socket.destroy();
    else this.#socket.end();
  }

  /** @internal Our side is flushed and ended. */
  finished(): void {
    // RFC 6455 §7.1.1: once the closing handshake is done the server closes TCP at once, not
    // waiting on the peer's FIN. After a protocol error the peer may still be sending: wait for
    // its FIN, so our reset cannot destroy the close frame before it reads it.
    if (this.#phase.why !== 'failed') this.#socket.destroy();
  }

  /** @internal */
  closed(): void {
    if (this.#to(CLOSED)) this.#listener.socketClosed(this.#code, this.#reason);
  }

  /**
   * The one place the phase changes; false when the transition does not apply (NEXT). Leaving
   * the reading phases stops the reader and drops a message being inflated.
   */
  #to(next: WirePhase): boolean {
    const from = this.#phase;
    if (!NEXT.get(from)!.includes(next)) return false;
    this.#phase = next;
    if (from.reading && !next.reading) {
      this.#reader.stop();
      this.#inflater?.close();
      this.#inflater = null;
    }
    return true;
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
