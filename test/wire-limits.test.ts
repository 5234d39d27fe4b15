/**
 * The frame reader's limits over raw TCP: no memory reserved for bytes only announced (issue 16
 * item 4), a bounded number of fragments per message, and UTF-8 checked piece by piece so a bad
 * text message closes 1007 at the first bad fragment (item 11; Autobahn 6.4.1–6.4.4).
 */
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from 'switchyard';
import { connectAs, type Running, startEnvelope, until } from './helpers.js';
import { frame, json, landed, Raw } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}): Promise<Running> {
  running = await startEnvelope(extra);
  return running;
}

const MiB = 1024 * 1024;

describe('a frame split across reads', () => {
  it('reserves nothing for bytes announced but not sent: 20 half-sent 16 MiB frames', async () => {
    const r = await broker({ limits: { maxMessageBytes: 32 * MiB } });
    const raws: Raw[] = [];
    for (let i = 0; i < 20; i++) {
      const raw = await Raw.open(r.port, `/ws?token=m${i}`);
      await raw.text('Status');
      raws.push(raw);
    }
    const before = process.memoryUsage().arrayBuffers;
    // A 16 MiB text frame's header (10 bytes + mask) and its first 100 payload bytes.
    const head = frame(1, Buffer.alloc(100, 0x20), { declared: 16 * MiB }).subarray(0, 14 + 100);
    for (const raw of raws) await landed(raw.socket, head);
    const grown = process.memoryUsage().arrayBuffers - before;
    console.info(`arrayBuffers growth for 20 half-sent 16 MiB frames: ${(grown / 1024).toFixed(1)} KiB (${(grown / 20 / 1024).toFixed(2)} KiB per frame)`);
    // Reserving the declared size would be 320 MiB; what arrived is 2 KiB.
    expect(grown).toBeLessThan(4 * MiB);
    expect(r.broker.stats().connections).toBe(20);
    for (const raw of raws) raw.socket.destroy();
  });

  it('grows the frame as its bytes arrive and reads it whole, however it trickles in', async () => {
    const r = await broker({ limits: { maxMessageBytes: 1 * MiB } });
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    const pad = 'é'.repeat(150_000); // 300 KB of two-byte characters
    const bytes = frame(1, json({ type: 'Ping', data: { pad }, id: 'big' }));
    // Uneven pieces, some cutting a character in two.
    for (let at = 0, n = 7; at < bytes.length; at += n, n = Math.min(n * 3, 40_001)) await landed(raw.socket, bytes.subarray(at, at + n));
    const ack = JSON.parse((await raw.text('Ack')).payload.toString());
    expect(ack.data.message_id).toBe('big');
    raw.socket.destroy();
  });
});

describe('fragments per message', () => {
  it('closes 1009 past maxFragments, and takes a message at the limit', async () => {
    const r = await broker({ limits: { maxFragments: 8 } });
    const text = Buffer.from(json({ type: 'Ping', data: {}, id: 'eight' }));
    const pieces = (n: number): Buffer[] =>
      Array.from({ length: n }, (_, i) => frame(i === 0 ? 1 : 0, text.subarray(Math.floor((i * text.length) / n), Math.floor(((i + 1) * text.length) / n)), { fin: i === n - 1 }));
    const ok = await Raw.open(r.port);
    await ok.text('Status');
    ok.write(...pieces(8));
    expect(JSON.parse((await ok.text('Ack')).payload.toString()).data.message_id).toBe('eight');
    const over = await Raw.open(r.port);
    await over.text('Status');
    over.write(...pieces(9));
    expect((await over.closeFrame()).code).toBe(1009);
    ok.socket.destroy();
    over.socket.destroy();
  });

  it('has a default: a stream of empty continuation frames is closed, not read forever', async () => {
    const r = await broker();
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    const empty = frame(0, Buffer.alloc(0), { fin: false });
    raw.write(frame(1, '{', { fin: false }), ...Array.from({ length: 1100 }, () => empty));
    const close = await raw.closeFrame();
    expect(close.code).toBe(1009);
    expect(close.reason).toContain('1024 fragments');
    raw.socket.destroy();
  });
});

// Autobahn 6.4.x: "κόσμε", then U+10FFFF + 1 (F4 90 80 80, invalid), then "edited".
const KOSME = Buffer.from('κόσμε');
const BAD = Buffer.from([0xf4, 0x90, 0x80, 0x80]);
const EDITED = Buffer.from('edited');

describe('UTF-8 checked as it arrives', () => {
  /** Sends the parts one read at a time and returns the close code seen before the last part is sent. */
  async function closedBeforeTheEnd(parts: Buffer[]): Promise<number | undefined> {
    const r = await broker();
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    for (const part of parts.slice(0, -1)) await landed(raw.socket, part);
    const code = (await raw.closeFrame()).code;
    raw.socket.destroy();
    return code;
  }

  it('6.4.1: closes 1007 on the fragment holding an invalid codepoint, before the message ends', async () => {
    const parts = [frame(1, KOSME, { fin: false }), frame(0, BAD, { fin: false }), frame(0, EDITED)];
    expect(await closedBeforeTheEnd(parts)).toBe(1007);
  });

  it('6.4.2: closes 1007 when a codepoint begun in one fragment cannot go on in the next', async () => {
    const parts = [frame(1, Buffer.concat([KOSME, BAD.subarray(0, 1)]), { fin: false }), frame(0, BAD.subarray(1, 2), { fin: false }), frame(0, Buffer.concat([BAD.subarray(2), EDITED]))];
    expect(await closedBeforeTheEnd(parts)).toBe(1007);
  });

  it('6.4.3: closes 1007 inside one frame, at the read holding the invalid codepoint', async () => {
    const whole = frame(1, Buffer.concat([KOSME, BAD, EDITED]));
    const header = whole.length - (KOSME.length + BAD.length + EDITED.length);
    const parts = [whole.subarray(0, header + KOSME.length), whole.subarray(header + KOSME.length, header + KOSME.length + 4), whole.subarray(header + KOSME.length + 4)];
    expect(await closedBeforeTheEnd(parts)).toBe(1007);
  });

  it('6.4.4: closes 1007 inside one frame when a codepoint split across reads cannot go on', async () => {
    const whole = frame(1, Buffer.concat([KOSME, BAD, EDITED]));
    const at = whole.length - (BAD.length + EDITED.length);
    const parts = [whole.subarray(0, at + 1), whole.subarray(at + 1, at + 2), whole.subarray(at + 2)];
    expect(await closedBeforeTheEnd(parts)).toBe(1007);
  });

  it('takes valid text whose codepoints are split across fragments and across reads', async () => {
    const r = await broker();
    const bystander = await connectAs(r, 'bystander');
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    const text = Buffer.from(json({ type: 'Ping', data: { s: 'κόσμε 𝄞 €' }, id: 'split' }));
    const clef = text.indexOf(Buffer.from('𝄞'));
    // A four-byte character over three fragments; then the same text as one frame cut inside a character.
    raw.write(frame(1, text.subarray(0, clef + 1), { fin: false }), frame(0, text.subarray(clef + 1, clef + 2), { fin: false }), frame(0, text.subarray(clef + 2)));
    const single = frame(1, text);
    const cut = single.length - text.length + clef + 3;
    await landed(raw.socket, single.subarray(0, cut));
    await landed(raw.socket, single.subarray(cut));
    await until(() => raw.frames.filter((f) => f.opcode === 1 && f.payload.includes('"Ack"')).length === 2, 'two acks');
    expect(raw.frames.some((f) => f.opcode === 8)).toBe(false);
    expect((await bystander.request('Ping', {})).type).toBe('Ack');
    raw.socket.destroy();
    await bystander.close();
  });
});
