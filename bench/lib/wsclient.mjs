// A deliberately small RFC 6455 client for the load generator.
//
// Why not `ws`? The load generator has to receive hundreds of thousands of frames per second in
// one process on a 2-core box. This client does not copy, decode or UTF-8-validate a frame unless
// the caller asks: it walks frame headers in the socket's chunks and hands the caller
// (buffer, start, end) offsets, so counting a delivery costs a few integer operations.
// `--client=ws` in run.mjs swaps in the `ws` package behind the same interface to cross-check.
//
// Supports: HTTP/1.1 upgrade (RFC 6455 §4.1), unmasked server frames of any length, fragmented
// messages (counted once, on FIN), ping → pong, close handshake. Offers an extension only when
// asked (o.extensions) and never decodes one: frames are counted as they come.
import net from 'node:net';
import crypto from 'node:crypto';

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const CRLFCRLF = Buffer.from('\r\n\r\n');
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

// Mask keys come from a pool refilled from crypto, so a frame costs no syscall (RFC 6455 §5.3).
const maskPool = Buffer.alloc(4096);
let maskOffset = maskPool.length;
function nextMask() {
  if (maskOffset + 4 > maskPool.length) {
    crypto.randomFillSync(maskPool);
    maskOffset = 0;
  }
  const m = maskPool.subarray(maskOffset, maskOffset + 4);
  maskOffset += 4;
  return m;
}

/** Encode one masked client frame (opcode 1 text, 2 binary, 8 close, 10 pong). */
export function encodeFrame(opcode, payload) {
  const len = payload.length;
  const headerLen = len < 126 ? 2 : len < 65536 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLen + 4 + len);
  frame[0] = 0x80 | opcode;
  if (len < 126) {
    frame[1] = 0x80 | len;
  } else if (len < 65536) {
    frame[1] = 0x80 | 126;
    frame.writeUInt16BE(len, 2);
  } else {
    frame[1] = 0x80 | 127;
    frame.writeUInt32BE(0, 2);
    frame.writeUInt32BE(len, 6);
  }
  const mask = nextMask();
  mask.copy(frame, headerLen);
  const off = headerLen + 4;
  for (let i = 0; i < len; i++) frame[off + i] = payload[i] ^ mask[i & 3];
  return frame;
}

export class LightWs {
  /**
   * @param {object} o
   * @param {string} o.host
   * @param {number} o.port
   * @param {string} o.path  path with query, e.g. /ws?token=abc
   * @param {string} [o.localAddress]
   * @param {string} [o.extensions]  a Sec-WebSocket-Extensions offer (messages then arrive as sent, compressed or not)
   * @param {string} [o.protocol]  a Sec-WebSocket-Protocol to ask for (e.g. `mqtt`); the answer must name it
   * @param {(buf: Buffer, start: number, end: number) => void} o.onMessage  one call per complete data message
   * @param {(code: number, reason: string) => void} [o.onClose]
   */
  constructor(o) {
    this.o = o;
    this.onMessage = o.onMessage;
    this.onClose = o.onClose ?? (() => {});
    this.socket = null;
    this.pending = null; // unparsed tail of the previous chunk
    this.fragments = null; // data frames of a fragmented message, until FIN
    this.open = false;
    this.closed = false;
    this.closeSent = false;
    this.received = 0;
  }

  /** Resolves once the 101 answer has been read; rejects on HTTP error, socket error or timeout. */
  connect(timeoutMs = 10_000) {
    return new Promise((resolve, reject) => {
      const key = crypto.randomBytes(16).toString('base64');
      const expectedAccept = crypto.createHash('sha1').update(key + GUID).digest('base64');
      // `onread` with one shared buffer skips the Readable-stream machinery and a Buffer
      // allocation per read; everything below consumes the bytes synchronously (and copies the
      // unparsed tail), so sharing is safe.
      const socket = net.connect({
        host: this.o.host,
        port: this.o.port,
        localAddress: this.o.localAddress,
        noDelay: true,
        onread: { buffer: READ_BUFFER, callback: (n, buf) => this.#onRead(buf, n) },
      });
      this.socket = socket;
      let head = null;
      let settled = false;
      const timer = setTimeout(() => fail(new Error(`handshake timeout after ${timeoutMs} ms`)), timeoutMs);
      const fail = (err) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        socket.destroy();
        this.closed = true;
        reject(err);
      };
      const onHandshakeData = (chunk) => {
        head = head ? Buffer.concat([head, chunk]) : Buffer.from(chunk);
        const idx = head.indexOf(CRLFCRLF);
        if (idx === -1) {
          if (head.length > 16_384) fail(new Error('oversized handshake response'));
          return;
        }
        const text = head.toString('latin1', 0, idx);
        const firstLine = text.slice(0, text.indexOf('\r\n'));
        if (!/^HTTP\/1\.1 101/.test(firstLine)) {
          return fail(Object.assign(new Error(`upgrade refused: ${firstLine}`), { status: Number(firstLine.split(' ')[1]) }));
        }
        const m = /\r\nsec-websocket-accept:\s*(\S+)/i.exec(text);
        if (!m || m[1] !== expectedAccept) return fail(new Error('bad Sec-WebSocket-Accept'));
        if (this.o.protocol) {
          const pm = /\r\nsec-websocket-protocol:\s*(\S+)/i.exec(text);
          if (!pm || pm[1].toLowerCase() !== this.o.protocol.toLowerCase()) return fail(new Error(`server did not accept subprotocol ${this.o.protocol}`));
        }
        settled = true;
        clearTimeout(timer);
        this.handshakeData = null;
        this.open = true;
        resolve(this);
        const rest = head.subarray(idx + 4);
        if (rest.length > 0) this.#onData(rest);
      };
      this.handshakeData = onHandshakeData;
      socket.on('error', (err) => {
        if (!settled) fail(err);
      });
      socket.on('close', () => {
        if (!settled) fail(new Error('socket closed during handshake'));
        this.#finish(1006, '');
      });
      socket.on('connect', () => {
        socket.write(
          `GET ${this.o.path} HTTP/1.1\r\n` +
            `Host: ${this.o.host}:${this.o.port}\r\n` +
            'Upgrade: websocket\r\nConnection: Upgrade\r\n' +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n` +
            // bench/compression.mjs offers permessage-deflate: frames are still counted by header.
            (this.o.extensions ? `Sec-WebSocket-Extensions: ${this.o.extensions}\r\n` : '') +
            (this.o.protocol ? `Sec-WebSocket-Protocol: ${this.o.protocol}\r\n` : '') +
            '\r\n',
        );
      });
    });
  }

  #onRead(shared, n) {
    const chunk = shared.subarray(0, n);
    if (this.handshakeData) this.handshakeData(chunk);
    else this.#onData(chunk, true);
  }

  #onData(chunk, isShared = false) {
    let buf = chunk;
    if (this.pending) {
      buf = Buffer.concat([this.pending, chunk]);
      this.pending = null;
      isShared = false;
    }
    let off = 0;
    const n = buf.length;
    while (n - off >= 2) {
      const b0 = buf[off];
      const b1 = buf[off + 1];
      let len = b1 & 0x7f;
      let hdr = 2;
      if (len === 126) {
        if (n - off < 4) break;
        len = buf.readUInt16BE(off + 2);
        hdr = 4;
      } else if (len === 127) {
        if (n - off < 10) break;
        len = buf.readUInt32BE(off + 2) * 2 ** 32 + buf.readUInt32BE(off + 6);
        hdr = 10;
      }
      if (b1 & 0x80) hdr += 4; // servers must not mask, but stay robust
      if (n - off < hdr + len) break;
      const start = off + hdr;
      const end = start + len;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      off = end;
      if (opcode === 1 || opcode === 2 || opcode === 0) {
        if (fin && opcode !== 0 && this.fragments === null) {
          this.received++;
          this.onMessage(buf, start, end);
        } else {
          (this.fragments ??= []).push(Buffer.from(buf.subarray(start, end)));
          if (fin) {
            const whole = Buffer.concat(this.fragments);
            this.fragments = null;
            this.received++;
            this.onMessage(whole, 0, whole.length);
          }
        }
      } else if (opcode === 9) {
        this.#write(encodeFrame(10, buf.subarray(start, end)));
      } else if (opcode === 8) {
        const code = len >= 2 ? buf.readUInt16BE(start) : 1005;
        const reason = len > 2 ? buf.toString('utf8', start + 2, end) : '';
        if (!this.closeSent) {
          this.closeSent = true;
          this.#write(encodeFrame(8, buf.subarray(start, Math.min(end, start + 2))));
        } else if (this.closeMode === 'echo') {
          this.socket.end();
        }
        // RFC 6455 §7.1.1: the server closes the TCP connection first, so TIME_WAIT stays on
        // the server side. We answer its FIN (allowHalfOpen is off) and only force the issue
        // if it never comes (mode `echo` ended our side above, as the `ws` client does).
        // Client-side TIME_WAIT piles up over a connect-heavy run and makes every later
        // connect() slower.
        this.#armDestroy(2000);
        this.#finish(code, reason);
        return;
      }
    }
    if (off < n) this.pending = isShared ? Buffer.from(buf.subarray(off)) : buf.subarray(off);
  }

  #write(frame) {
    if (this.socket && !this.socket.destroyed && this.socket.writable) this.socket.write(frame);
  }

  #finish(code, reason) {
    if (this.closed) return;
    this.closed = true;
    this.open = false;
    this.onClose(code, reason);
  }

  /** Send one text frame. */
  send(text) {
    this.#write(encodeFrame(1, Buffer.from(text)));
  }

  /** Send one binary frame (MQTT over WebSocket requires binary frames). */
  sendBinary(buf) {
    this.#write(encodeFrame(2, buf));
  }

  /** Bytes queued in user space (socket.writableLength), for back-pressure checks. */
  get bufferedAmount() {
    return this.socket ? this.socket.writableLength : 0;
  }

  cork() {
    this.socket?.cork();
  }

  uncork() {
    this.socket?.uncork();
  }

  /**
   * Start the close handshake (code 1000); the socket is destroyed if not closed after graceMs.
   * `mode` says how TCP ends: `server` waits for the server's FIN (RFC 6455 §7.1.1's SHOULD);
   * `echo` ends this side once the server's Close arrives (as the `ws` client does); `client`
   * ends it right behind the Close frame; `drop` destroys the socket without a Close frame.
   */
  close(mode = 'server', graceMs = 1000) {
    if (!this.socket || this.socket.destroyed) return;
    this.closeMode = mode;
    if (mode === 'drop') return void this.socket.destroy();
    if (!this.closeSent) {
      this.closeSent = true;
      const p = Buffer.alloc(2);
      p.writeUInt16BE(1000, 0);
      this.#write(encodeFrame(8, p));
      if (mode === 'client') this.socket.end();
    }
    this.#armDestroy(graceMs);
  }

  #armDestroy(ms) {
    const s = this.socket;
    if (!s || s.destroyed || this.destroyTimer) return;
    this.destroyTimer = setTimeout(() => s.destroy(), ms);
    this.destroyTimer.unref();
    s.once('close', () => clearTimeout(this.destroyTimer));
  }

  destroy() {
    this.socket?.destroy();
  }
}
