/**
 * UTF-8 checked as it arrives, for text messages that come in pieces (fragments, or one frame
 * split across reads). RFC 6455 §8.1 lets an endpoint fail a connection as soon as the bytes
 * seen so far cannot begin valid UTF-8 (Autobahn 6.4.1–6.4.4): a codepoint split across two
 * pieces is fine, a sequence no continuation could complete is not.
 *
 * Complete codepoints are checked with `isUtf8` (native); only the up-to-3 bytes of a codepoint
 * still incomplete at the end of a piece are kept and checked byte by byte.
 */
import { isUtf8 } from 'node:buffer';

/** Bytes in the sequence a lead byte starts, or 0 for a byte no sequence starts with. */
function sequenceLength(lead: number): number {
  if (lead < 0x80) return 1;
  if (lead < 0xc2) return 0; // continuation bytes, and the overlong leads C0 and C1
  if (lead < 0xe0) return 2;
  if (lead < 0xf0) return 3;
  if (lead < 0xf5) return 4;
  return 0;
}

/** Whether `byte` may follow `lead` as its first continuation byte (RFC 3629 §4: no overlongs, surrogates or > U+10FFFF). */
function validSecond(lead: number, byte: number): boolean {
  switch (lead) {
    case 0xe0:
      return byte >= 0xa0 && byte <= 0xbf;
    case 0xed:
      return byte >= 0x80 && byte <= 0x9f;
    case 0xf0:
      return byte >= 0x90 && byte <= 0xbf;
    case 0xf4:
      return byte >= 0x80 && byte <= 0x8f;
    default:
      return byte >= 0x80 && byte <= 0xbf;
  }
}

export class Utf8Stream {
  /** The bytes of a codepoint begun but not finished (at most 3). */
  readonly #tail = Buffer.alloc(4);
  #tailLength = 0;

  /** Starts a new text. */
  reset(): void {
    this.#tailLength = 0;
  }

  /** Takes the next piece. False as soon as the text so far cannot be the start of valid UTF-8. */
  push(piece: Buffer): boolean {
    let start = 0;
    const end = piece.length;
    // Finish the codepoint the previous piece left open.
    while (this.#tailLength > 0 && start < end) {
      if (!this.#extend(piece[start]!)) return false;
      start++;
    }
    if (start === end) return true;
    // Find a codepoint left incomplete at the end of this piece.
    let cut = end;
    for (let i = end - 1; i >= start && i >= end - 3; i--) {
      const byte = piece[i]!;
      if (byte < 0x80) break;
      if (byte >= 0xc0) {
        if (end - i < sequenceLength(byte)) cut = i;
        break;
      }
    }
    if (!isUtf8(piece.subarray(start, cut))) return false;
    for (let i = cut; i < end; i++) if (!this.#extend(piece[i]!)) return false;
    return true;
  }

  /** True if the text ended on a codepoint boundary. */
  end(): boolean {
    return this.#tailLength === 0;
  }

  /** Adds one byte to the open codepoint (or opens one); false if no valid codepoint starts so. */
  #extend(byte: number): boolean {
    const tail = this.#tail;
    if (this.#tailLength === 0) {
      const length = sequenceLength(byte);
      if (length === 0) return false;
      if (length === 1) return true;
      tail[0] = byte;
      this.#tailLength = 1;
      return true;
    }
    const lead = tail[0]!;
    if (this.#tailLength === 1 ? !validSecond(lead, byte) : byte < 0x80 || byte > 0xbf) return false;
    tail[this.#tailLength++] = byte;
    if (this.#tailLength === sequenceLength(lead)) this.#tailLength = 0;
    return true;
  }
}
