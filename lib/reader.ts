/**
 * Client frames from bytes (RFC 6455 §5), with no socket in it: the wire feeds it each read and
 * it hands on whole messages and control frames. A frame that arrives whole in one read is
 * unmasked in place and handed on as a view of that read (no copy, no object per message).
 *
 * Nothing is reserved for bytes the peer has only announced: a frame split across reads is kept
 * in a buffer that starts at what arrived (at least 4 KiB) and doubles, capped at the frame's
 * size, as more arrives: a slow trickle costs a few copies, never one object per read. A
 * fragmented message is gathered into one growing buffer, bounded by `maxMessageBytes` and its
 * frames by `maxFragments`. Text that comes in pieces is checked as UTF-8 piece by piece, so a
 * bad fragment fails at once (RFC 6455 §8.1; Autobahn 6.4.1–6.4.4).
 */
import { isUtf8 } from 'node:buffer';
import { Utf8Stream } from './utf8.js';

export const OP_CONTINUATION = 0x0;
export const OP_TEXT = 0x1;
export const OP_BINARY = 0x2;
export const OP_CLOSE = 0x8;
export const OP_PING = 0x9;
export const OP_PONG = 0xa;
const RSV1 = 0x40;

/** The first allocation for a frame split across reads, before it grows as bytes arrive. */
const FIRST_PARTIAL = 4096;

/** The limits a reader enforces (a broker's resolved limits fit). */
export interface WireLimits {
  /** Largest message, in bytes (compressed and, once inflated, uncompressed). */
  maxMessageBytes: number;
  /** Most frames one message may come in. */
  maxFragments: number;
}

/** What a reader hands on. Methods, not callbacks: one object per connection, no closures. */
export interface ReaderOwner {
  /** A complete data message; text is valid UTF-8 unless `compressed` (RSV1: the owner inflates and checks). */
  message(data: Buffer, isBinary: boolean, compressed: boolean): void;
  /** A ping, pong or close frame (its payload unmasked). */
  control(opcode: number, payload: Buffer): void;
  /** The peer broke the protocol (1002, 1007, 1009); the reader has stopped. */
  fail(code: number, message: string): void;
}

export class FrameReader {
  readonly #maxPayload: number;
  readonly #maxFragments: number;
  /** RSV1 is allowed (permessage-deflate was negotiated). */
  readonly #compression: boolean;
  readonly #owner: ReaderOwner;
  /** A frame split across reads: its header so far (`#need` 0), or its bytes so far, growing up to `#need`. */
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
  /** The message being read has RSV1 set. */
  #compressed = false;
  /** UTF-8 of a text message that arrives in pieces; allocated on first use. */
  #utf8: Utf8Stream | null = null;
  /** The owner asked to wait (`hold`): bytes pushed meanwhile are kept here. */
  #held = false;
  #stash: Buffer | null = null;
  #reading = true;

  constructor(limits: WireLimits, compression: boolean, owner: ReaderOwner) {
    this.#maxPayload = limits.maxMessageBytes;
    this.#maxFragments = limits.maxFragments;
    this.#compression = compression;
    this.#owner = owner;
  }

  /** Stops handing on frames (from inside `message`, e.g. while one is inflated) until `release`. */
  hold(): void {
    this.#held = true;
  }

  /** Hands on what arrived while held. */
  release(): void {
    this.#held = false;
    const stash = this.#stash;
    this.#stash = null;
    if (stash !== null) this.push(stash);
  }

  /** Reads nothing more and lets go of what it kept. */
  stop(): void {
    this.#reading = false;
    this.#partial = null;
    this.#fragments = null;
    this.#stash = null;
  }

  /** The next bytes from the peer. */
  push(chunk: Buffer): void {
    if (!this.#reading) return;
    if (this.#held) {
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
      }
    }
    this.#parse(buf, offset);
  }

  /** Handles the frames in `buf` from `offset`, keeping an incomplete last one for the next read. */
  #parse(buf: Buffer, offset: number): void {
    const end = buf.length;
    while (this.#reading && offset < end) {
      if (this.#held) {
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
      if ((b0 & 0x70) !== RSV1 || !this.#compression || (opcode !== OP_TEXT && opcode !== OP_BINARY)) {
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
      default:
        this.#owner.control(opcode, payload);
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
      this.#owner.message(data, isBinary, true);
      return;
    }
    if (!isBinary && (streamed ? !this.#utf8!.end() : !isUtf8(data))) {
      this.#fail(1007, 'text message is not valid UTF-8');
      return;
    }
    this.#owner.message(data, isBinary, false);
  }

  #fail(code: number, message: string): void {
    this.stop();
    this.#owner.fail(code, message);
  }
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
