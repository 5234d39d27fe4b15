import { describe, expect, it } from 'vitest';
import * as ws from 'ws';
import { encodeFrame, frameBytes, MAX_STRING_FRAME, textFrame } from '../lib/frame.js';

/** ws's frame parser, as a client uses it (exported by ws, not described by @types/ws). */
interface FrameReceiver {
  on(event: 'message', fn: (data: Buffer, binary: boolean) => void): void;
  on(event: 'error', fn: (err: Error) => void): void;
  write(chunk: Buffer): void;
}
const { Receiver } = ws as unknown as { Receiver: new (options: object) => FrameReceiver };

/** Decodes with ws's own parser (the client side of a real connection). */
function decode(frame: Buffer): Promise<{ data: Buffer; binary: boolean }> {
  return new Promise((resolve, reject) => {
    const receiver = new Receiver({ isServer: false, maxPayload: 0 });
    receiver.on('message', (data: Buffer, binary: boolean) => resolve({ data, binary }));
    receiver.on('error', reject);
    receiver.write(frame);
  });
}

describe('server frames (RFC 6455 §5.2)', () => {
  it.each([0, 1, 125, 126, 65535, 65536, 200_000])('encodes a %i-byte payload every length form', async (n) => {
    const text = 'é'.repeat(Math.floor(n / 2)) + 'x'.repeat(n % 2); // multi-byte UTF-8
    const decoded = await decode(frameBytes(textFrame(text)));
    expect(decoded.binary).toBe(false);
    expect(decoded.data.toString('utf8')).toBe(text);
    const bytes = Buffer.alloc(n, 7);
    const bin = await decode(encodeFrame(bytes, true));
    expect(bin.binary).toBe(true);
    expect(bin.data.equals(bytes)).toBe(true);
  });

  // Small ASCII text frames are strings of their bytes (written as latin1); others are Buffers.
  it.each([0, 1, 125, 126, MAX_STRING_FRAME - 1, MAX_STRING_FRAME, 65535, 65536])('encodes %i bytes of ASCII text', async (n) => {
    const text = Array.from({ length: n }, (_, i) => String.fromCharCode(32 + (i % 95))).join('');
    const frame = textFrame(text);
    expect(typeof frame === 'string').toBe(n < MAX_STRING_FRAME);
    const decoded = await decode(frameBytes(frame));
    expect(decoded.binary).toBe(false);
    expect(decoded.data.toString('utf8')).toBe(text);
  });

  it('never makes a string frame of text outside ASCII', () => {
    for (const text of ['é', 'x\u0080', 'ok \u{1F600}', '\uD800 lone surrogate']) {
      expect(Buffer.isBuffer(textFrame(text)), text).toBe(true);
    }
  });
});
