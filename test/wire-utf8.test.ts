/** The streaming UTF-8 check (lib/utf8.ts) against Node's own `isUtf8`, over random text cut at random places. */
import { isUtf8 } from 'node:buffer';
import { describe, expect, it } from 'vitest';
import { Utf8Stream } from '../lib/utf8.js';
import { rng } from './wire-raw.js';

/** Bytes that are mostly UTF-8, with some broken sequences (overlongs, surrogates, > U+10FFFF, stray continuations). */
function sample(random: () => number): Buffer {
  const pieces: Buffer[] = [];
  const chars = ['a', 'é', '€', '𝄞', 'κόσμε', '\u{10FFFF}', '\uFFFD'];
  const broken = [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x80], [0xe2, 0x82], [0xf5], [0xe0, 0x80, 0xaf], [0xf0, 0x8f, 0xbf, 0xbf]];
  const n = 1 + Math.floor(random() * 12);
  for (let i = 0; i < n; i++) {
    if (random() < 0.12) pieces.push(Buffer.from(broken[Math.floor(random() * broken.length)]!));
    else pieces.push(Buffer.from(chars[Math.floor(random() * chars.length)]!));
  }
  return Buffer.concat(pieces);
}

describe('Utf8Stream', () => {
  it('agrees with isUtf8 however the bytes are cut, and never fails a prefix of valid text', () => {
    const random = rng(7);
    const stream = new Utf8Stream();
    for (let round = 0; round < 5000; round++) {
      const bytes = sample(random);
      stream.reset();
      let ok = true;
      let failedAt = -1;
      for (let at = 0; at < bytes.length && ok; ) {
        const n = 1 + Math.floor(random() * 4);
        ok = stream.push(bytes.subarray(at, at + n));
        if (!ok) failedAt = at;
        at += n;
      }
      const valid = isUtf8(bytes);
      expect(ok && stream.end(), bytes.toString('hex')).toBe(valid);
      // Fail fast, never early: a failure means no continuation could make the bytes so far valid.
      if (failedAt >= 0) expect(valid).toBe(false);
    }
  });
});
