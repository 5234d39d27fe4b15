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
