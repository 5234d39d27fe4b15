/**
 * RFC 6455 on the wire, spoken byte by byte from a raw TCP socket: the opening handshake, frames
 * split and joined across reads, fragmentation, control frames, and every protocol violation
 * closing with its code (1002, 1007, 1009) without touching other connections.
 */
import { createHash } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import type { BrokerOptions } from 'switchyard';
import { connectAs, type Running, startEnvelope, until } from './helpers.js';
import { closePayload, frame, json, KEY, landed, Raw, request, rng, upgradeRequest } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

async function broker(extra: Partial<BrokerOptions> = {}): Promise<Running> {
  running = await startEnvelope(extra);
  return running;
}

describe('opening handshake', () => {
  it('answers 101 with the RFC 6455 accept value and the subprotocol it selects', async () => {
    const r = await broker();
    const { socket, status, headers } = await request(r.port, upgradeRequest('/ws?token=a', ['Sec-WebSocket-Protocol: chat, superchat']));
    socket.destroy();
    expect(status).toBe(101);
    expect(headers['sec-websocket-accept']).toBe('s3pPLMBiTxaQ9kYGzzhZRbK+xOo=');
    expect(headers['sec-websocket-accept']).toBe(createHash('sha1').update(KEY + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest('base64'));
    expect(headers['sec-websocket-protocol']).toBe('chat');
    expect(headers.upgrade?.toLowerCase()).toBe('websocket');
  });

  it('refuses a malformed handshake with an HTTP status and a body naming what is wrong, before asking the host', async () => {
    let asked = 0;
    const r = await broker({
      authenticate: () => {
        asked++;
        return { id: 'u' };
      },
    });
    const cases: Array<[string[], number, string, Record<string, string>?]> = [
      [upgradeRequest('/ws').map((l) => l.replace('GET', 'POST')), 405, 'invalid HTTP method'],
      [upgradeRequest('/ws').map((l) => l.replace('Upgrade: websocket', 'Upgrade: h2c')), 400, 'invalid Upgrade header'],
      [upgradeRequest('/ws').map((l) => l.replace(KEY, 'short')), 400, 'missing or invalid Sec-WebSocket-Key header'],
      [upgradeRequest('/ws').map((l) => l.replace('Version: 13', 'Version: 12')), 400, 'missing or invalid Sec-WebSocket-Version header', { 'sec-websocket-version': '13, 8' }],
      [upgradeRequest('/ws', ['Sec-WebSocket-Protocol: a b']), 400, 'invalid Sec-WebSocket-Protocol header'],
      [upgradeRequest('/ws', ['Sec-WebSocket-Protocol: a, a']), 400, 'invalid Sec-WebSocket-Protocol header'],
    ];
    for (const [lines, expected, message, headers] of cases) {
      const { socket, status, headers: got, rest } = await request(r.port, lines);
      // The body (text/plain) is what a developer reads when a handshake fails: the whole of it.
      const chunks = [rest];
      socket.on('data', (c: Buffer) => chunks.push(c));
      socket.resume();
      await new Promise((resolve) => socket.once('close', resolve));
      expect(status, lines.join(' | ')).toBe(expected);
      expect(Buffer.concat(chunks).toString(), lines.join(' | ')).toBe(`${message}\n`);
      for (const [name, value] of Object.entries(headers ?? {})) expect(got[name]).toBe(value);
    }
    expect(asked).toBe(0);
    expect(r.broker.stats().connections).toBe(0);
  });
});

describe('frames', () => {
  it('reads frames however the bytes are split or joined across reads', async () => {
    const r = await broker();
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    const bytes = Buffer.concat([
      frame(1, json({ type: 'Ping', data: {}, id: 'a' })),
      frame(1, json({ type: 'Ping', data: { pad: 'x'.repeat(300) }, id: 'b' })), // 16-bit length
      frame(1, json({ type: 'Ping', data: {}, id: 'c' })),
    ]);
    // One byte per read: the broker runs in this process, so each write is read before the next.
    for (let i = 0; i < 40; i++) await landed(raw.socket, bytes.subarray(i, i + 1));
    raw.write(bytes.subarray(40)); // the rest, joined, in one write
    await until(() => raw.frames.filter((f) => f.opcode === 1 && f.payload.includes('"Ack"')).length === 3, 'three acks');
    const acks = raw.frames.filter((f) => f.payload.includes('"Ack"')).map((f) => JSON.parse(f.payload.toString()).data.message_id);
    expect(acks).toEqual(['a', 'b', 'c']);
    raw.socket.destroy();
  });

  it('reassembles a fragmented message, answering a ping sent between its fragments', async () => {
    const r = await broker();
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    const text = json({ type: 'Ping', data: { note: 'héllo wörld' }, id: 'frag' });
    const bytes = Buffer.from(text);
    const cut = bytes.indexOf(Buffer.from('é')) + 1; // inside a two-byte character
    raw.write(frame(1, bytes.subarray(0, cut), { fin: false }));
    raw.write(frame(9, 'are you there'));
    raw.write(frame(0, bytes.subarray(cut, cut + 10), { fin: false }), frame(0, Buffer.alloc(0), { fin: false }), frame(0, bytes.subarray(cut + 10)));
    const pong = await raw.next((f) => f.opcode === 10, 'a pong');
    expect(pong.payload.toString()).toBe('are you there');
    const ack = JSON.parse((await raw.text('Ack')).payload.toString());
    expect(ack.data.message_id).toBe('frag');
    raw.socket.destroy();
  });

  it('takes a binary message', async () => {
    const r = await broker();
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    raw.write(frame(2, Buffer.from([0xff, 0x00, 0xfe]))); // the envelope protocol answers binary with an Error
    const error = JSON.parse((await raw.text('Error')).payload.toString());
    expect(error.data.code).toBe(400);
    raw.socket.destroy();
  });
});

describe('protocol violations', () => {
  // The close reason says what was wrong (checked where the wire itself finds it).
  const violations: Array<[string, (raw: Raw) => void, number, string?]> = [
    ['an unmasked frame', (raw) => raw.write(frame(1, json({ type: 'Ping', data: {} }), { mask: false })), 1002],
    ['a reserved bit without an extension', (raw) => raw.write(frame(1, '{}', { rsv: 4 })), 1002],
    ['an unknown opcode', (raw) => raw.write(frame(3, '{}')), 1002],
    ['a control frame over 125 bytes', (raw) => raw.write(frame(9, 'x'.repeat(126))), 1002],
    ['a fragmented ping', (raw) => raw.write(frame(9, 'x', { fin: false })), 1002],
    ['a continuation with nothing to continue', (raw) => raw.write(frame(0, '{}')), 1002],
    ['a new message inside a fragmented one', (raw) => raw.write(frame(1, '{', { fin: false }), frame(1, '{}')), 1002],
    ['a close frame of one byte', (raw) => raw.write(frame(8, Buffer.from([3]))), 1002, 'close frame payload of 1 byte'],
    ['a close code reserved for the API (1005)', (raw) => raw.write(frame(8, closePayload(1005))), 1002, 'invalid close code 1005'],
    ['text that is not UTF-8', (raw) => raw.write(frame(1, Buffer.from([0x22, 0xc3, 0x28, 0x22]))), 1007],
    ['fragments that end inside a character', (raw) => raw.write(frame(1, Buffer.from([0x22, 0xc3]), { fin: false }), frame(0, Buffer.from([0x22]))), 1007],
    ['a close reason that is not UTF-8', (raw) => raw.write(frame(8, Buffer.concat([closePayload(1000), Buffer.from([0xff])]))), 1007, 'close reason is not valid UTF-8'],
    // Only the header is sent: the broker must refuse on the declared length, not buffer for it.
    ['a frame declaring more than maxMessageBytes', (raw) => raw.write(frame(1, Buffer.alloc(0), { declared: 1_000_000 }).subarray(0, 14)), 1009],
    ['fragments adding up to more than maxMessageBytes', (raw) => raw.write(frame(1, 'x'.repeat(600), { fin: false }), frame(0, 'x'.repeat(600), { fin: false })), 1009],
  ];

  for (const [what, send, code, reason] of violations) {
    it(`closes ${code} on ${what}, and stops reading that connection only`, async () => {
      const r = await broker({ limits: { maxMessageBytes: 1024 } });
      const bystander = await connectAs(r, 'bystander');
      const raw = await Raw.open(r.port);
      await raw.text('Status');
      send(raw);
      const close = await raw.closeFrame();
      expect(close.code).toBe(code);
      if (reason !== undefined) expect(close.reason).toBe(reason);
      // Whatever follows the violation is not read as frames: no answer comes back.
      raw.write(frame(1, json({ type: 'Ping', data: {}, id: 'after' })));
      raw.write(frame(8, closePayload(1000)));
      await raw.ended;
      expect(raw.frames.some((f) => f.payload.includes('"after"'))).toBe(false);
      expect((await bystander.request('Ping', {})).type).toBe('Ack');
      await until(() => r.broker.stats().connections === 1, 'the raw connection gone');
      await bystander.close();
    });
  }
});

describe('closing handshake', () => {
  it("echoes the client's close code, ends TCP, and reports the code and reason", async () => {
    const r = await broker();
    const gone: Array<{ code: number; reason: string }> = [];
    r.broker.on('disconnect', (d) => gone.push({ code: d.code, reason: d.reason }));
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    raw.write(frame(8, closePayload(4321, 'bye now')));
    expect(await raw.closeFrame()).toEqual({ code: 4321, reason: '' });
    await raw.ended;
    await until(() => gone.length === 1, 'disconnect');
    expect(gone[0]).toEqual({ code: 4321, reason: 'bye now' });
  });

  it('answers an empty close frame with an empty one and reports 1005', async () => {
    const r = await broker();
    const gone: number[] = [];
    r.broker.on('disconnect', (d) => gone.push(d.code));
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    raw.write(frame(8, Buffer.alloc(0)));
    expect((await raw.closeFrame()).code).toBeUndefined();
    await raw.ended;
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([1005]);
  });

  it('reports 1006 when the client drops TCP without a close frame, and forgets the connection', async () => {
    const r = await broker();
    const gone: number[] = [];
    r.broker.on('disconnect', (d) => gone.push(d.code));
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    raw.write(frame(1, json({ type: 'Subscribe', data: { topics: ['a/b'] }, id: 's' })));
    await raw.text('Ack');
    raw.socket.end();
    await until(() => gone.length === 1, 'disconnect');
    expect(gone).toEqual([1006]);
    expect(r.broker.stats()).toMatchObject({ connections: 0, subscriptions: 0 });
  });
});

describe('arbitrary input', () => {
  it('reads a long stream of mixed frames, cut at random places, as the same messages in order', async () => {
    const r = await broker({ limits: { rate: false } });
    const raw = await Raw.open(r.port);
    await raw.text('Status');
    const random = rng(20261130);
    const parts: Buffer[] = [];
    const ids: string[] = [];
    for (let i = 0; i < 300; i++) {
      const id = `m${i}`;
      ids.push(id);
      // 7-bit and 16-bit lengths; every fifth message fragmented around a ping.
      const text = Buffer.from(json({ type: 'Ping', data: { pad: 'é'.repeat(Math.floor(random() * 400)) }, id }));
      if (i % 5 === 0) {
        const a = Math.floor(random() * text.length);
        const b = a + Math.floor(random() * (text.length - a));
        parts.push(frame(1, text.subarray(0, a), { fin: false }), frame(9, `p${i}`), frame(0, text.subarray(a, b), { fin: false }), frame(0, text.subarray(b)));
      } else {
        parts.push(frame(1, text));
      }
    }
    const stream = Buffer.concat(parts);
    for (let at = 0; at < stream.length; ) {
      const n = 1 + Math.floor(random() * (random() < 0.3 ? 8 : 3000));
      await landed(raw.socket, stream.subarray(at, at + n));
      at += n;
    }
    await until(() => raw.frames.filter((f) => f.opcode === 1 && f.payload.includes('"Ack"')).length === ids.length, `${ids.length} acks`);
    const acks = raw.frames.filter((f) => f.opcode === 1 && f.payload.includes('"Ack"')).map((f) => JSON.parse(f.payload.toString()).data.message_id);
    expect(acks).toEqual(ids);
    expect(raw.frames.filter((f) => f.opcode === 10).map((f) => f.payload.toString())).toEqual(ids.filter((_, i) => i % 5 === 0).map((id) => `p${id.slice(1)}`));
    raw.socket.destroy();
  });

  it('survives random bytes: each connection ends with a protocol close code or a clean TCP close, and the broker serves on', async () => {
    const r = await broker();
    const random = rng(42);
    const codes = new Set<number>();
    for (let c = 0; c < 40; c++) {
      const raw = await Raw.open(r.port);
      await raw.text('Status');
      // Random bytes, biased towards plausible headers (mask bit set, small lengths) so the
      // parser gets past the first checks as often as it fails them.
      const bytes = Buffer.alloc(64 + Math.floor(random() * 2000));
      for (let i = 0; i < bytes.length; i++) bytes[i] = Math.floor(random() * 256);
      if (c % 2 === 0) {
        bytes[0] = (bytes[0]! & 0x8f) | 0x80;
        bytes[1] = 0x80 | (bytes[1]! & 0x7f);
      }
      await landed(raw.socket, bytes);
      raw.socket.end();
      await raw.ended;
      const close = raw.frames.find((f) => f.opcode === 8);
      if (close !== undefined) codes.add(close.payload.readUInt16BE(0));
    }
    expect([...codes].every((code) => [1002, 1007, 1009].includes(code))).toBe(true);
    expect(codes.size).toBeGreaterThan(0);
    await until(() => r.broker.stats().connections === 0, 'every connection gone');
    const after = await connectAs(r, 'after');
    expect((await after.request('Ping', {})).type).toBe('Ack');
    await after.close();
  });
});
