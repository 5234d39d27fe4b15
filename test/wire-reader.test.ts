/** lib/reader.ts driven by bytes alone, no socket: splits, hold/release ordering, and limits. */
import { describe, expect, it } from 'vitest';
import { FrameReader, type ReaderOwner } from '../lib/reader.js';
import { frame } from './wire-raw.js';

class Recorder implements ReaderOwner {
  readonly events: string[] = [];
  onMessage: ((data: Buffer, compressed: boolean) => void) | null = null;
  message(data: Buffer, isBinary: boolean, compressed: boolean): void {
    this.events.push(`${isBinary ? 'binary' : 'text'}${compressed ? '+z' : ''}:${data.toString()}`);
    this.onMessage?.(data, compressed);
  }
  control(opcode: number, payload: Buffer): void {
    this.events.push(`control ${opcode}:${payload.toString()}`);
  }
  fail(code: number, message: string): void {
    this.events.push(`fail ${code}: ${message}`);
  }
}

const limits = { maxMessageBytes: 1 << 20, maxFragments: 16 };

describe('FrameReader', () => {
  it('reads the same messages one byte at a time as all at once', () => {
    const bytes = Buffer.concat([
      frame(1, 'héllo', { fin: false }),
      frame(9, 'ping'),
      frame(0, ' wörld'),
      frame(2, Buffer.alloc(300, 0x41)),
      frame(1, 'x'.repeat(70_000)),
    ]);
    const whole = new Recorder();
    new FrameReader(limits, false, whole).push(Buffer.from(bytes));
    const trickle = new Recorder();
    const reader = new FrameReader(limits, false, trickle);
    for (let i = 0; i < bytes.length; i++) reader.push(bytes.subarray(i, i + 1));
    expect(whole.events).toEqual(['control 9:ping', 'text:héllo wörld', `binary:${'A'.repeat(300)}`, `text:${'x'.repeat(70_000)}`]);
    expect(trickle.events).toEqual(whole.events);
  });

  it('keeps what arrives while held, and hands it on in order on release', () => {
    const owner = new Recorder();
    const reader = new FrameReader(limits, true, owner);
    owner.onMessage = (_data, compressed) => {
      if (compressed) reader.hold();
    };
    reader.push(Buffer.concat([frame(1, 'a'), frame(1, 'zz', { rsv: 4 }), frame(1, 'b'), frame(8, Buffer.alloc(0))]));
    reader.push(frame(1, 'c'));
    expect(owner.events).toEqual(['text:a', 'text+z:zz']);
    reader.release();
    expect(owner.events).toEqual(['text:a', 'text+z:zz', 'text:b', 'control 8:', 'text:c']);
  });

  it('fails on RSV1 unless compression was negotiated, and past maxFragments', () => {
    const a = new Recorder();
    new FrameReader(limits, false, a).push(frame(1, 'zz', { rsv: 4 }));
    expect(a.events).toEqual(['fail 1002: RSV bits set without an extension']);
    const b = new Recorder();
    new FrameReader(limits, false, b).push(Buffer.concat([frame(1, '', { fin: false }), ...Array.from({ length: 16 }, () => frame(0, '', { fin: false }))]));
    expect(b.events).toEqual(['fail 1009: message in more than 16 fragments']);
  });
});
