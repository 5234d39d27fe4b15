/**
 * permessage-deflate (RFC 7692): negotiating it in the handshake, compressing outgoing frames,
 * inflating the client's messages.
 *
 * The server never takes its compression context over from one message to the next (it always
 * answers `server_no_context_takeover`), so a message compresses the same way for every
 * connection: the router compresses a publish once per endpoint and every subscriber's socket
 * is handed that one frame. Compression is synchronous (one `deflateRawSync` per compressed
 * delivery, whatever the subscriber count); inflation is asynchronous, through one zlib stream
 * per connection that is kept only while the client's context takeover needs it.
 */
import { constants, createInflateRaw, deflateRawSync, type InflateRaw } from 'node:zlib';
import type { Frame } from './frame.js';

/** The endpoint option, as the host writes it. */
export interface CompressionOptions {
  /** Messages with fewer payload bytes are sent uncompressed. Default 1024 bytes. */
  threshold?: number;
  /** zlib compression level for outgoing messages, 0 (none) to 9 (smallest). Default 6. */
  level?: number;
  /** Largest LZ77 window the server compresses with, as 2^n bytes, n from 8 to 15. Default 15. */
  serverMaxWindowBits?: number;
  /**
   * Largest window a client may compress with (8–15). Below 15, offers that cannot be bounded
   * (no `client_max_window_bits`) are declined. Default 15.
   */
  clientMaxWindowBits?: number;
  /** Ask every client to compress each message on its own (no inflate state kept per connection). Default false. */
  clientNoContextTakeover?: boolean;
}

export interface ResolvedCompression {
  threshold: number;
  level: number;
  serverMaxWindowBits: number;
  clientMaxWindowBits: number;
  clientNoContextTakeover: boolean;
}

/** What one connection negotiated. */
export interface Negotiated {
  /** The header value of the 101's `Sec-WebSocket-Extensions`. */
  answer: string;
  /** The window this server compresses with for this connection (8–15). */
  serverWindowBits: number;
  /** The window the client compresses with (8–15), which the inflater must hold. */
  clientWindowBits: number;
  /** The client starts every message with an empty context (no inflate state to keep). */
  clientNoContextTakeover: boolean;
}

/** Resolves the endpoint option; throws a message for the caller's option error. */
export function resolveCompression(value: boolean | CompressionOptions | undefined, name: string): ResolvedCompression | null {
  if (value === undefined || value === false) return null;
  const o: CompressionOptions = value === true ? {} : value;
  if (o === null || typeof o !== 'object') throw new TypeError(`${name} must be true, false or an object`);
  const int = (key: keyof CompressionOptions, min: number, max: number, fallback: number): number => {
    const v = o[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) throw new TypeError(`${name}.${key} must be an integer from ${min} to ${max}`);
    return v;
  };
  return {
    threshold: int('threshold', 0, Number.MAX_SAFE_INTEGER, 1024),
    level: int('level', 0, 9, 6),
    serverMaxWindowBits: int('serverMaxWindowBits', 8, 15, 15),
    clientMaxWindowBits: int('clientMaxWindowBits', 8, 15, 15),
    clientNoContextTakeover: o.clientNoContextTakeover === true,
  };
}

type Params = Map<string, string | true>;
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

/**
 * Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1) into offers, in order; null if it
 * does not follow the grammar (answered 400). A parameter named twice is kept as a duplicate
 * marker so the offer can be declined (RFC 7692 §7.1).
 */
export function parseExtensions(header: string): Array<{ name: string; params: Params; duplicate: boolean }> | null {
  const offers: Array<{ name: string; params: Params; duplicate: boolean }> = [];
  let i = 0;
  const n = header.length;
  const skipSpace = (): void => {
    while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
  };
  const token = (): string | null => {
    const start = i;
    while (i < n && !' \t,;="'.includes(header[i]!)) i++;
    const t = header.slice(start, i);
    return TOKEN.test(t) ? t : null;
  };
  for (;;) {
    skipSpace();
    if (i < n && header[i] === ',') {
      i++; // empty list elements are allowed by the #rule (RFC 7230 §7)
      continue;
    }
    if (i >= n) break;
    const name = token();
    if (name === null) return null;
    const offer = { name, params: new Map() as Params, duplicate: false };
    skipSpace();
    while (i < n && header[i] === ';') {
      i++;
      skipSpace();
      const key = token();
      if (key === null) return null;
      skipSpace();
      let value: string | true = true;
      if (header[i] === '=') {
        i++;
        skipSpace();
        if (header[i] === '"') {
          let text = '';
          i++;
          while (i < n && header[i] !== '"') {
            if (header[i] === '\\') i++;
            text += header[i] ?? '';
            i++;
          }
          if (i >= n) return null;
          i++;
          if (!TOKEN.test(text)) return null;
          value = text;
        } else {
          const v = token();
          if (v === null) return null;
          value = v;
        }
        skipSpace();
      }
      if (offer.params.has(key)) offer.duplicate = true;
      offer.params.set(key, value);
    }
    offers.push(offer);
    skipSpace();
    if (i >= n) break;
    if (header[i] !== ',') return null;
    i++;
  }
  return offers;
}

const WINDOW = /^(?:8|9|1[0-5])$/;

/**
 * Picks the first permessage-deflate offer this endpoint can accept (RFC 7692 §7.1): null when
 * none can be (the connection goes on uncompressed), 'malformed' when the header breaks the
 * grammar. Offers with unknown, duplicate or invalid parameters are declined.
 */
export function negotiate(header: string | undefined, config: ResolvedCompression): Negotiated | null | 'malformed' {
  if (header === undefined) return null;
  const offers = parseExtensions(header);
  if (offers === null) return 'malformed';
  for (const { name, params, duplicate } of offers) {
    if (name.toLowerCase() !== 'permessage-deflate' || duplicate) continue;
    const accepted = accept(params, config);
    if (accepted !== null) return accepted;
  }
  return null;
}

function accept(params: Params, config: ResolvedCompression): Negotiated | null {
  let serverWindowBits = config.serverMaxWindowBits;
  let clientWindowBits = 15;
  let clientNoContextTakeover = config.clientNoContextTakeover;
  let answerServerBits = false;
  let answerClientBits = false;
  for (const [key, value] of params) {
    switch (key) {
      case 'server_no_context_takeover':
        if (value !== true) return null;
        break;
      case 'client_no_context_takeover':
        if (value !== true) return null;
        clientNoContextTakeover = true;
        break;
      case 'server_max_window_bits':
        if (value === true || !WINDOW.test(value)) return null;
        serverWindowBits = Math.min(serverWindowBits, Number(value));
        answerServerBits = true;
        break;
      case 'client_max_window_bits':
        if (value !== true && !WINDOW.test(value)) return null;
        clientWindowBits = Math.min(config.clientMaxWindowBits, value === true ? 15 : Number(value));
        answerClientBits = true;
        break;
      default:
        return null;
    }
  }
  // Without client_max_window_bits in the offer the client compresses with up to 2^15: declined
  // if this endpoint bounds the client's window lower.
  if (!answerClientBits && config.clientMaxWindowBits < 15) return null;
  let answer = 'permessage-deflate; server_no_context_takeover';
  if (clientNoContextTakeover) answer += '; client_no_context_takeover';
  if (answerServerBits) answer += `; server_max_window_bits=${serverWindowBits}`;
  if (answerClientBits && clientWindowBits < 15) answer += `; client_max_window_bits=${clientWindowBits}`;
  return { answer, serverWindowBits, clientWindowBits, clientNoContextTakeover };
}

// ── outgoing ────────────────────────────────────────────────────────────────

const RSV1 = 0x40;

/**
 * The compressed form of a complete unfragmented data frame (RSV1 set), or the frame itself
 * when its payload is under the threshold or would not shrink. The result is shared by every
 * connection of the same window size, as the frame it came from.
 */
export function deflateFrame(frame: Frame, windowBits: number, config: ResolvedCompression): Frame {
  const bytes = typeof frame === 'string' ? Buffer.from(frame, 'latin1') : frame;
  const b1 = bytes[1]! & 0x7f;
  const header = b1 < 126 ? 2 : b1 === 126 ? 4 : 10;
  const length = bytes.length - header;
  if (length < config.threshold || length === 0) return frame;
  const compressed = deflateRawSync(bytes.subarray(header), {
    level: config.level,
    // zlib cannot deflate raw data with a 256-byte window: for 8, no back-references at all
    // (Huffman coding only), which any window decodes.
    windowBits: windowBits === 8 ? 9 : windowBits,
    strategy: windowBits === 8 ? constants.Z_HUFFMAN_ONLY : constants.Z_DEFAULT_STRATEGY,
    finishFlush: constants.Z_SYNC_FLUSH,
  });
  // RFC 7692 §7.2.1: the sync flush's empty stored block ends in 00 00 ff ff, which is dropped.
  const size = compressed.length - 4;
  if (size >= length) return frame;
  const out = Buffer.allocUnsafe((size < 126 ? 2 : size < 0x10000 ? 4 : 10) + size);
  out[0] = bytes[0]! | RSV1;
  let at = 2;
  if (size < 126) {
    out[1] = size;
  } else if (size < 0x10000) {
    out[1] = 126;
    out.writeUInt16BE(size, 2);
    at = 4;
  } else {
    out[1] = 127;
    out.writeUInt32BE(Math.floor(size / 0x100000000), 2);
    out.writeUInt32BE(size >>> 0, 6);
    at = 10;
  }
  compressed.copy(out, at, 0, size);
  return out;
}

// ── incoming ────────────────────────────────────────────────────────────────

const TRAILER = Buffer.from([0x00, 0x00, 0xff, 0xff]);

/** Why inflating failed: the close code to send and a reason. */
export interface InflateFailure {
  code: number;
  message: string;
}

/** Who is told when a message is inflated (one object per connection, no closure per message). */
export interface InflateDone {
  inflated(failure: InflateFailure | null, message: Buffer | null): void;
}

const INFLATER = Symbol('switchyard.inflater');
type OwnedInflate = InflateRaw & { [INFLATER]?: Inflater };

/**
 * One connection's inflation. Messages are inflated one at a time (the wire waits for each), with
 * the output counted as zlib produces it: past `limit` the stream is dropped at once, so a small
 * message that would inflate to gigabytes costs at most `limit` plus one zlib chunk.
 */
export class Inflater {
  readonly #limit: number;
  readonly #windowBits: number;
  readonly #keepContext: boolean;
  #zlib: OwnedInflate | null = null;
  #chunks: Buffer[] = [];
  #bytes = 0;
  #done: InflateDone | null = null;
  #failure: InflateFailure | null = null;

  constructor(limit: number, negotiated: Negotiated) {
    this.#limit = limit;
    this.#windowBits = negotiated.clientWindowBits;
    this.#keepContext = !negotiated.clientNoContextTakeover;
  }

  /** Inflates one whole compressed message; `done` is called once, asynchronously. */
  inflate(data: Buffer, done: InflateDone): void {
    let zlib = this.#zlib;
    if (zlib === null) {
      zlib = this.#zlib = createInflateRaw({ windowBits: this.#windowBits }) as OwnedInflate;
      zlib[INFLATER] = this;
      zlib.on('data', onInflated);
      zlib.on('error', onInflateError);
    }
    this.#done = done;
    this.#chunks = [];
    this.#bytes = 0;
    this.#failure = null;
    zlib.write(data);
    zlib.write(TRAILER);
    zlib.flush(constants.Z_SYNC_FLUSH, () => this.#flushed(zlib));
  }

  /** Frees the zlib stream (the connection is gone). */
  close(): void {
    this.#done = null;
    this.#drop();
  }

  /** @internal */
  chunk(chunk: Buffer): void {
    if (this.#failure !== null) return;
    this.#bytes += chunk.length;
    if (this.#bytes > this.#limit) {
      this.#fail({ code: 1009, message: `message over ${this.#limit} bytes once inflated` });
      return;
    }
    this.#chunks.push(chunk);
  }

  /** @internal */
  error(err: Error): void {
    this.#fail({ code: 1007, message: `invalid compressed data: ${err.message}` });
  }

  #fail(failure: InflateFailure): void {
    this.#failure = failure;
    this.#chunks = [];
    this.#drop();
    const done = this.#done;
    this.#done = null;
    done?.inflated(failure, null);
  }

  #flushed(zlib: OwnedInflate): void {
    const done = this.#done;
    if (done === null || this.#zlib !== zlib) return;
    this.#done = null;
    const chunks = this.#chunks;
    this.#chunks = [];
    const message = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks, this.#bytes);
    // Without context takeover the next message starts afresh: no reason to keep a window per
    // idle connection.
    if (!this.#keepContext) this.#drop();
    done.inflated(null, message);
  }

  #drop(): void {
    const zlib = this.#zlib;
    if (zlib === null) return;
    this.#zlib = null;
    zlib[INFLATER] = undefined;
    zlib.removeListener('data', onInflated);
    zlib.close();
  }
}

function onInflated(this: OwnedInflate, chunk: Buffer): void {
  this[INFLATER]?.chunk(chunk);
}
function onInflateError(this: OwnedInflate, err: Error): void {
  this[INFLATER]?.error(err);
}
