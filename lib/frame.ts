/**
 * Server-to-client WebSocket frames (RFC 6455 §5.2). Frames the server sends are never masked,
 * so a frame built once can be written, unchanged, to every subscriber's socket: that is what
 * lets a publish be serialised and framed exactly once however many connections receive it.
 *
 * A frame is a Buffer or, for a small all-ASCII text frame, a string whose characters are the
 * frame's bytes (header included), written with the 'latin1' encoding. Node writes such a string
 * from the string itself, with no Buffer to allocate and collect, and a burst of them can be
 * joined into one write: most frames (deliveries, acks, statuses) take that path.
 */

const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

/** One complete, final frame holding `payload` (text when `binary` is false). */
export function encodeFrame(payload: Buffer, binary: boolean): Buffer {
  const frame = allocFrame(payload.length, binary ? OPCODE_BINARY : OPCODE_TEXT);
  payload.copy(frame, frame.length - payload.length);
  return frame;
}

/** A complete frame: its bytes, or a string of them to be written as 'latin1' (see above). */
export type Frame = Buffer | string;

/**
 * Text shorter than this may be a string frame. Each write of a string copies it (Node writes
 * strings up to 16 KiB from stack storage), while a Buffer is shared by every subscriber's
 * write: above a few KiB, a frame fanned out to many sockets is cheaper as a Buffer.
 */
export const MAX_STRING_FRAME = 4 * 1024;

/**
 * Frames of one delivery per endpoint: slot 0 uncompressed, slots 1–8 compressed with a window
 * of 2^8 … 2^15 bytes (permessage-deflate, lib/deflate.ts). A connection's slot is fixed at its
 * handshake; the router builds each frame once and shares it by slot.
 */
export const FRAME_VARIANTS = 9;

/** A connection's slot: its endpoint's, and the window it compresses with (0: no compression). */
export function frameSlot(endpointIndex: number, deflateWindowBits: number): number {
  return endpointIndex * FRAME_VARIANTS + (deflateWindowBits === 0 ? 0 : deflateWindowBits - 7);
}

/** The bytes of a frame (for tests and callers that need a Buffer). */
export function frameBytes(frame: Frame): Buffer {
  return typeof frame === 'string' ? Buffer.from(frame, 'latin1') : frame;
}

/** A text frame for a string: the UTF-8 bytes are written once, straight into the frame. */
export function textFrame(text: string): Frame {
  const length = Buffer.byteLength(text, 'utf8');
  // As many UTF-8 bytes as UTF-16 units means every character is ASCII: one byte in latin1 too.
  if (length === text.length && length < MAX_STRING_FRAME) {
    const header = length < 126 ? String.fromCharCode(0x81, length) : String.fromCharCode(0x81, 126, length >> 8, length & 0xff);
    return header + text;
  }
  const frame = allocFrame(length, OPCODE_TEXT);
  frame.write(text, frame.length - length, 'utf8');
  return frame;
}

/** A frame buffer with its header written and room for `length` payload bytes after it. */
function allocFrame(length: number, opcode: number): Buffer {
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x80 | opcode; // FIN + opcode
  if (length < 126) {
    frame[1] = length;
  } else if (length < 0x10000) {
    frame[1] = 126;
    frame.writeUInt16BE(length, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt32BE(Math.floor(length / 0x100000000), 2);
    frame.writeUInt32BE(length >>> 0, 6);
  }
  return frame;
}

// ── control frames (unmasked, payload up to 125 bytes) ───────────────────────

/** Close codes an endpoint may send, and so may receive (RFC 6455 §7.4). */
export function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1014 && code !== 1004 && code !== 1005 && code !== 1006) || (code >= 3000 && code <= 4999);
}

/** An unmasked control frame (payload up to 125 bytes). */
export function controlFrame(opcode: number, payload: Buffer): Buffer {
  const frame = Buffer.allocUnsafe(2 + payload.length);
  frame[0] = 0x80 | opcode;
  frame[1] = payload.length;
  payload.copy(frame, 2);
  return frame;
}

/** A close frame: empty, or a code and a reason of at most 123 bytes. */
export function closeFrame(code?: number, reason = ''): Buffer {
  if (code === undefined) return controlFrame(0x8, Buffer.alloc(0));
  const payload = Buffer.allocUnsafe(2 + Buffer.byteLength(reason));
  payload.writeUInt16BE(code, 0);
  payload.write(reason, 2);
  return controlFrame(0x8, payload);
}

/** Close reasons are limited to 123 bytes of UTF-8 (RFC 6455 §5.5): longer ones are cut and end in '...'. */
export function truncateReason(reason: string): string {
  if (Buffer.byteLength(reason) <= 123) return reason;
  let out = reason.slice(0, 120);
  while (Buffer.byteLength(out) > 120) out = out.slice(0, -1);
  // A cut between the halves of a surrogate pair leaves a lone half, which UTF-8 turns into U+FFFD.
  if (isHighSurrogate(out.charCodeAt(out.length - 1))) out = out.slice(0, -1);
  return out + '...';
}

function isHighSurrogate(unit: number): boolean {
  return unit >= 0xd800 && unit <= 0xdbff;
}
