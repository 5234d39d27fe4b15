/**
 * Close codes, close frames and their reasons, control frames and frame slots (frame.ts), at the
 * exact bounds RFC 6455 sets. Written from `npm run mutate` survivors (issue 19).
 */
import { describe, expect, it } from 'vitest';
import { closeFrame, controlFrame, FRAME_VARIANTS, frameSlot, isValidCloseCode, truncateReason } from '../lib/frame.js';

describe('isValidCloseCode (RFC 6455 §7.4)', () => {
  it.each([1000, 1001, 1002, 1003, 1007, 1008, 1011, 1013, 1014, 3000, 3999, 4000, 4999])('accepts %i', (code) => {
    expect(isValidCloseCode(code)).toBe(true);
  });

  it.each([0, 999, 1004, 1005, 1006, 1015, 1016, 2000, 2999, 5000, 65535])('refuses %i (reserved, never on the wire, or out of range)', (code) => {
    expect(isValidCloseCode(code)).toBe(false);
  });
});

describe('closeFrame', () => {
  it('is two bytes without a code', () => {
    expect([...closeFrame()]).toEqual([0x88, 0x00]);
  });

  it('holds the code big-endian, then the reason in UTF-8, unmasked and final', () => {
    expect([...closeFrame(1000)]).toEqual([0x88, 0x02, 0x03, 0xe8]);
    expect(closeFrame(4001, 'bye')).toEqual(Buffer.from([0x88, 0x05, 0x0f, 0xa1, 0x62, 0x79, 0x65]));
    const frame = closeFrame(1008, 'né');
    expect(frame[1]).toBe(5); // 2 code bytes + 3 bytes of UTF-8
    expect(frame.subarray(4).toString('utf8')).toBe('né');
  });
});

describe('controlFrame', () => {
  it('is FIN + opcode, the payload length, then the payload', () => {
    expect(controlFrame(0x9, Buffer.from('ping'))).toEqual(Buffer.from([0x89, 4, 0x70, 0x69, 0x6e, 0x67]));
    expect(controlFrame(0xa, Buffer.alloc(0))).toEqual(Buffer.from([0x8a, 0]));
    const full = controlFrame(0x9, Buffer.alloc(125, 1));
    expect(full.length).toBe(127);
    expect(full[1]).toBe(125);
  });
});

describe('truncateReason (close reasons are at most 123 bytes)', () => {
  it('keeps a reason of 123 bytes as it is', () => {
    expect(truncateReason('a'.repeat(123))).toBe('a'.repeat(123));
    expect(truncateReason('é'.repeat(61) + 'a')).toBe('é'.repeat(61) + 'a'); // 123 bytes, 62 characters
    expect(truncateReason('')).toBe('');
  });

  it("cuts a longer one to 120 bytes and ends it in '...'", () => {
    expect(truncateReason('a'.repeat(124))).toBe('a'.repeat(120) + '...');
    expect(truncateReason('b'.repeat(1000))).toBe('b'.repeat(120) + '...');
  });

  it('never cuts a multi-byte character in half, and keeps as much as fits in 120 bytes', () => {
    expect(truncateReason('é'.repeat(62))).toBe('é'.repeat(60) + '...'); // 124 bytes → 120 + 3
    expect(truncateReason('a' + 'é'.repeat(62))).toBe('a' + 'é'.repeat(59) + '...'); // 119 bytes: one more é would be 121
    expect(truncateReason('😀'.repeat(40))).toBe('😀'.repeat(30) + '...');
    // Regression: a cut between the halves of a surrogate pair left a lone high surrogate, which
    // goes on the wire as U+FFFD ('\ufffd...' at the end of the reason the client reads).
    expect(truncateReason('a'.repeat(117) + '😀'.repeat(5))).toBe('a'.repeat(117) + '...');
    expect(truncateReason('a'.repeat(116) + '😀'.repeat(5))).toBe('a'.repeat(116) + '😀...'); // 120 bytes fit
    expect(truncateReason('a'.repeat(117) + '\u{10000}'.repeat(5))).toBe('a'.repeat(117) + '...'); // high half \ud800
    expect(truncateReason('a'.repeat(117) + '\u{10FFFF}'.repeat(5))).toBe('a'.repeat(117) + '...'); // high half \udbff
    expect(truncateReason('a'.repeat(117) + '\ud7ff'.repeat(3))).toBe('a'.repeat(117) + '\ud7ff...'); // not a surrogate
    for (const reason of ['a'.repeat(117) + '😀'.repeat(5), 'é'.repeat(62), 'a' + 'é'.repeat(62), '😀'.repeat(40), 'x😀'.repeat(30)]) {
      expect(Buffer.byteLength(truncateReason(reason))).toBeLessThanOrEqual(123);
      expect(truncateReason(reason).isWellFormed()).toBe(true);
    }
  });
});

describe('frameSlot', () => {
  it('gives each endpoint FRAME_VARIANTS slots: 0 uncompressed, 1..8 for windows 2^8..2^15', () => {
    expect(FRAME_VARIANTS).toBe(9);
    expect(frameSlot(0, 0)).toBe(0);
    expect(frameSlot(0, 8)).toBe(1);
    expect(frameSlot(0, 15)).toBe(8);
    expect(frameSlot(1, 0)).toBe(9);
    expect(frameSlot(2, 9)).toBe(20);
    const slots = new Set<number>();
    for (let e = 0; e < 3; e++) for (const bits of [0, 8, 9, 10, 11, 12, 13, 14, 15]) slots.add(frameSlot(e, bits));
    expect(slots.size).toBe(27); // no two (endpoint, window) pairs share a slot
  });
});
