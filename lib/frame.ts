/**
 * Server-to-client WebSocket frames (RFC 6455 §5.2). Frames the server sends are never masked,
 * so a frame built once can be written, unchanged, to every subscriber's socket: that is what
 * lets a publish be serialised and framed exactly once however many connections receive it.
 */

const OPCODE_TEXT = 0x1;
const OPCODE_BINARY = 0x2;

/** One complete, final frame holding `payload` (text when `binary` is false). */
export function encodeFrame(payload: Buffer, binary: boolean): Buffer {
  const length = payload.length;
  const headerLength = length < 126 ? 2 : length < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(headerLength + length);
  frame[0] = 0x80 | (binary ? OPCODE_BINARY : OPCODE_TEXT); // FIN + opcode
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
  payload.copy(frame, headerLength);
  return frame;
}

/** A text frame for a string (UTF-8). */
export function textFrame(text: string): Buffer {
  return encodeFrame(Buffer.from(text, 'utf8'), false);
}
