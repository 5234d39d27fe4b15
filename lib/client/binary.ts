/**
 * Binary frames as the server speaks them (seed 001, README "The envelope protocol"):
 * `[1 byte type][4 bytes big-endian length][payload]`; for broadcast (0x01) and direct (0x02)
 * the payload starts with a 2-byte length and the UTF-8 topic (or target / sender), then the data.
 */
const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeBinary(type: number, name: string, data: Uint8Array): Uint8Array {
  const nameBytes = encoder.encode(name);
  const out = new Uint8Array(7 + nameBytes.length + data.length);
  const view = new DataView(out.buffer);
  out[0] = type;
  view.setUint32(1, 2 + nameBytes.length + data.length);
  view.setUint16(5, nameBytes.length);
  out.set(nameBytes, 7);
  out.set(data, 7 + nameBytes.length);
  return out;
}

/** A received broadcast or direct binary frame, or null when it is not one. */
export function decodeBinary(frame: Uint8Array): { type: number; name: string; data: Uint8Array } | null {
  if (frame.length < 7) return null;
  const view = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const nameEnd = 7 + view.getUint16(5);
  if (view.getUint32(1) !== frame.length - 5 || nameEnd > frame.length) return null;
  return { type: frame[0]!, name: decoder.decode(frame.subarray(7, nameEnd)), data: frame.slice(nameEnd) };
}
