/**
 * Which server frames take the cheap string path (frame.ts): small ASCII text only, so a
 * delivery is one latin1 write with no Buffer. Written from `npm run mutate` survivors (issue 19).
 */
import { describe, expect, it } from 'vitest';
import { encodeFrame, frameBytes, textFrame } from '../lib/frame.js';

describe('string frames', () => {
  it('are used for small ASCII text, up to 4 KiB', () => {
    expect(textFrame('{"type":"Pong"}')).toBe('\x81\x0f{"type":"Pong"}');
    const text = 'x'.repeat(4095);
    expect(textFrame(text)).toBe(`\x81\x7e\x0f\xff${text}`); // 126 → 16-bit length 0x0fff
    expect(Buffer.isBuffer(textFrame('x'.repeat(4096)))).toBe(true);
  });

  it('hold exactly the bytes of the equivalent Buffer frame', () => {
    for (const n of [0, 125, 126, 300, 4095]) {
      const text = 'a'.repeat(n);
      expect(frameBytes(textFrame(text)).equals(encodeFrame(Buffer.from(text), false)), String(n)).toBe(true);
    }
  });
});
