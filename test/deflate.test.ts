/**
 * permessage-deflate end to end: `ws` clients in the configurations Autobahn 12.* and 13.* cover
 * (payload sizes from 16 bytes to 128 KiB, whole and fragmented, each context-takeover and
 * window-bits combination) publish through the broker to subscribers byte-exact; a publish is
 * compressed once per endpoint however many subscribe; a zip bomb closes 1009 without its
 * inflated size ever being allocated; the raw frames carry RSV1 only where they should.
 */
import { constants, createDeflateRaw, deflateRawSync, inflateRawSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import type { PerMessageDeflateOptions } from 'ws';
import { envelope, type BrokerOptions, type CompressionOptions } from 'switchyard';
import { connect, type Client, type Running, startEnvelope, until } from './helpers.js';
import { frame, json, Raw } from './wire-raw.js';

let running: Running | undefined;
afterEach(async () => {
  await running?.stop();
  running = undefined;
});

const MiB = 1024 * 1024;

async function broker(compression: boolean | CompressionOptions = true, extra: Partial<BrokerOptions> = {}): Promise<Running> {
  running = await startEnvelope({
    endpoints: [{ path: '/ws', protocol: envelope(), compression }],
    limits: { maxMessageBytes: 1 * MiB, rate: false },
    ...extra,
  });
  return running;
}

function client(token: string, perMessageDeflate: PerMessageDeflateOptions | false): Promise<Client> {
  return connect(running!.url(`/ws?token=${token}`), undefined, { perMessageDeflate });
}

/** Text that compresses about as well as JSON does (Autobahn sends random words). */
function text(size: number, seed: number): string {
  const words = ['alpha', 'bravo', 'charlie', 'delta', 'écho', 'foxtrot', 'golf', 'hôtel', 'india', 'κόσμε', '𝄞'];
  let out = '';
  let x = seed;
  while (out.length < size) {
    x = (x * 1103515245 + 12345) >>> 0;
    out += words[x % words.length] + (x % 7 === 0 ? '\n' : ' ');
  }
  return out.slice(0, size);
}

/** Publishes through `ws.send` in `pieces` fragments (the first one carries RSV1 when ws compresses). */
function sendFragmented(c: Client, body: string, pieces: number): void {
  const bytes = Buffer.from(body);
  for (let i = 0; i < pieces; i++) {
    const part = bytes.subarray(Math.floor((i * bytes.length) / pieces), Math.floor(((i + 1) * bytes.length) / pieces));
    c.ws.send(part, { fin: i === pieces - 1, binary: false, compress: true });
  }
}

const SIZES = [16, 64, 256, 1024, 4096, 16_384, 65_536, 131_072];

// Autobahn 13.*: the client's offer (window bits and context takeover, each side).
const CONFIGS: Array<[string, PerMessageDeflateOptions]> = [
  ['defaults (12.*, 13.1)', { threshold: 0 }],
  ['client_no_context_takeover (13.2)', { threshold: 0, clientNoContextTakeover: true }],
  ['server_max_window_bits=8 (13.3)', { threshold: 0, serverMaxWindowBits: 8 }],
  ['server_max_window_bits=15 (13.4)', { threshold: 0, serverMaxWindowBits: 15 }],
  ['both no context takeover, window 8 (13.5)', { threshold: 0, clientNoContextTakeover: true, serverNoContextTakeover: true, serverMaxWindowBits: 8, clientMaxWindowBits: 8 }],
  ['both no context takeover, window 15 (13.6)', { threshold: 0, clientNoContextTakeover: true, serverNoContextTakeover: true, serverMaxWindowBits: 15, clientMaxWindowBits: 15 }],
  ['client window 9, server window 10', { threshold: 0, clientMaxWindowBits: 9, serverMaxWindowBits: 10 }],
];

describe('messages round-trip compressed, byte-exact', () => {
  for (const [name, offer] of CONFIGS) {
    it(name, async () => {
      await broker({ threshold: 0 });
      const pub = await client('pub', offer);
      const subs = [await client('s1', offer), await client('s2', false), await client('s3', { threshold: 0 })];
      for (const s of subs) expect((await s.request('Subscribe', { topics: ['t'] })).type).toBe('Ack');
      const sent: string[] = [];
      let n = 0;
      for (const size of SIZES) {
        for (const pieces of [1, 3]) {
          const payload = text(size, ++n);
          sent.push(payload);
          const body = json({ type: 'Broadcast', data: { topic: 't', payload }, id: `m${n}` });
          if (pieces === 1) pub.ws.send(body);
          else sendFragmented(pub, body, pieces);
        }
      }
      // Acks come back in order: inflation is asynchronous but each connection's messages keep it.
      await until(() => pub.frames.filter((f) => f.type === 'Ack').length === sent.length, 'every ack', 15_000);
      expect(pub.frames.filter((f) => f.type === 'Ack').map((f) => f.data.message_id)).toEqual(sent.map((_, i) => `m${i + 1}`));
      for (const s of subs) {
        await until(() => s.frames.filter((f) => f.type === 'Broadcast').length === sent.length, 'every delivery', 15_000);
        const got = s.frames.filter((f) => f.type === 'Broadcast').map((f) => f.data.payload);
        expect(got.length).toBe(sent.length);
        for (let i = 0; i < sent.length; i++) expect(got[i] === sent[i], `message ${i + 1} (${sent[i]!.length} chars)`).toBe(true);
      }
      for (const c of [pub, ...subs]) await c.close();
    });
  }

  it('takes a compressed binary message and interleaved uncompressed ones, in order', async () => {
    await broker();
    const pub = await client('pub', { threshold: 512 }); // ws compresses only from 512 bytes
    for (let i = 0; i < 40; i++) pub.ws.send(json({ type: 'Ping', data: { pad: text(i % 2 === 0 ? 10 : 2000, i) }, id: `p${i}` }));
    await until(() => pub.frames.filter((f) => f.type === 'Ack').length === 40, 'forty acks');
    expect(pub.frames.filter((f) => f.type === 'Ack').map((f) => f.data.message_id)).toEqual(Array.from({ length: 40 }, (_, i) => `p${i}`));
    // Binary: the envelope protocol answers a malformed binary frame with Error 400, after inflating it.
    pub.ws.send(Buffer.alloc(5000, 7), { binary: true, compress: true });
    expect((await pub.nextOf('Error')).data.code).toBe(400);
    await pub.close();
  });
});

describe('compressed once per endpoint', () => {
  it('deflates a publish once for every subscriber that shares a window size; small ones not at all', async () => {
    await broker({ threshold: 256 });
    const compressed = await Promise.all(Array.from({ length: 10 }, (_, i) => client(`c${i}`, {})));
    const narrow = await Promise.all(Array.from({ length: 3 }, (_, i) => client(`w${i}`, { serverMaxWindowBits: 10 })));
    const plain = await Promise.all(Array.from({ length: 3 }, (_, i) => client(`p${i}`, false)));
    const all = [...compressed, ...narrow, ...plain];
    for (const c of all) await c.request('Subscribe', { topics: ['news'] });
    const base = running!.broker.stats().deflated;
    const payload = text(8000, 1);
    expect((await running!.broker.publish('news', { payload })).recipients).toBe(all.length);
    for (const c of all) expect((await c.nextOf('Broadcast')).data.payload.payload).toBe(payload);
    // One compression for the ten 2^15-window connections, one for the three 2^10 ones.
    expect(running!.broker.stats().deflated - base).toBe(2);
    await running!.broker.publish('news', { small: 'under the threshold' });
    for (const c of all) expect((await c.nextOf('Broadcast')).data.payload.small).toBe('under the threshold');
    expect(running!.broker.stats().deflated - base).toBe(2);
    for (const c of all) await c.close();
  });

  it('sends RSV1 frames that inflate to the uncompressed delivery, and small frames as they are', async () => {
    await broker({ threshold: 1024 });
    const raw = await Raw.open(running!.port, '/ws?token=raw', ['Sec-WebSocket-Extensions: permessage-deflate']);
    await raw.text('Status');
    raw.write(frame(1, json({ type: 'Subscribe', data: { topics: ['r'] }, id: 's' })));
    await raw.text('Ack');
    const big = text(5000, 9);
    await running!.broker.publish('r', big);
    await running!.broker.publish('r', 'small');
    await until(() => raw.frames.filter((f) => f.opcode === 1).length >= 4, 'two deliveries');
    const [a, b] = raw.frames.filter((f) => f.opcode === 1).slice(-2);
    expect(a!.rsv1).toBe(true);
    expect(a!.payload.length).toBeLessThan(Buffer.byteLength(big) / 2);
    const inflated = inflateRawSync(Buffer.concat([a!.payload, Buffer.from([0, 0, 0xff, 0xff])]), { finishFlush: constants.Z_SYNC_FLUSH });
    expect(JSON.parse(inflated.toString()).data.payload).toBe(big);
    expect(b!.rsv1).toBe(false);
    expect(JSON.parse(b!.payload.toString()).data.payload).toBe('small');
    raw.socket.destroy();
  });
});

describe('bounded inflation', () => {
  /** Deflate output for `total` bytes of zeros, fed to zlib 1 MiB at a time (the test never holds `total`). */
  async function bomb(total: number): Promise<Buffer> {
    const deflate = createDeflateRaw({ level: 9 });
    const out: Buffer[] = [];
    deflate.on('data', (c: Buffer) => out.push(c));
    const zeros = Buffer.alloc(MiB);
    for (let i = 0; i < total / MiB; i++) if (!deflate.write(zeros)) await new Promise((r) => deflate.once('drain', r));
    await new Promise<void>((resolve) => deflate.flush(constants.Z_SYNC_FLUSH, () => resolve()));
    deflate.close();
    const all = Buffer.concat(out);
    return all.subarray(0, all.length - 4); // RFC 7692 §7.2.1: without the 00 00 ff ff tail
  }

  it('closes 1009 on a zip bomb without allocating what it would inflate to', async () => {
    await broker(true, { limits: { maxMessageBytes: 256 * 1024 } });
    const bystander = await client('bystander', {});
    const payload = await bomb(256 * MiB);
    expect(payload.length).toBeLessThan(256 * 1024); // it passes the size check compressed
    const raw = await Raw.open(running!.port, '/ws?token=bomb', ['Sec-WebSocket-Extensions: permessage-deflate']);
    await raw.text('Status');
    let peak = 0;
    const before = process.memoryUsage().arrayBuffers;
    const sampler = setInterval(() => (peak = Math.max(peak, process.memoryUsage().arrayBuffers - before)), 1);
    raw.write(frame(1, payload, { rsv: 4 }));
    const close = await raw.closeFrame();
    clearInterval(sampler);
    peak = Math.max(peak, process.memoryUsage().arrayBuffers - before);
    expect(close.code).toBe(1009);
    expect(peak).toBeLessThan(32 * MiB);
    expect((await bystander.request('Ping', {})).type).toBe('Ack');
    raw.socket.destroy();
    await bystander.close();
  });

  it('closes 1009 on a fragmented compressed message that inflates past the limit', async () => {
    await broker(true, { limits: { maxMessageBytes: 64 * 1024 } });
    const raw = await Raw.open(running!.port, '/ws?token=frag', ['Sec-WebSocket-Extensions: permessage-deflate']);
    await raw.text('Status');
    const payload = deflateRawSync(Buffer.alloc(100_000, 0x61), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4);
    raw.write(frame(1, payload.subarray(0, 20), { fin: false, rsv: 4 }), frame(0, payload.subarray(20)));
    expect((await raw.closeFrame()).code).toBe(1009);
    raw.socket.destroy();
  });

  it('closes 1007 on data that is not deflate, and 1002 on RSV1 where RFC 7692 forbids it', async () => {
    await broker();
    const cases: Array<[Buffer[], number, string?]> = [
      [[frame(1, Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff]), { rsv: 4 })], 1007],
      [[frame(1, deflateRawSync(Buffer.from([0xc3, 0x28]), { finishFlush: constants.Z_SYNC_FLUSH }).subarray(0, -4), { rsv: 4 })], 1007, 'text message is not valid UTF-8'],
      [[frame(1, 'ab', { fin: false }), frame(0, 'cd', { rsv: 4 })], 1002],
      [[frame(9, 'x', { rsv: 4 })], 1002],
      [[frame(1, 'x', { rsv: 2 })], 1002],
    ];
    for (const [frames, code, reason] of cases) {
      const raw = await Raw.open(running!.port, '/ws?token=broken', ['Sec-WebSocket-Extensions: permessage-deflate']);
      await raw.text('Status');
      raw.write(...frames);
      const close = await raw.closeFrame();
      expect(close.code).toBe(code);
      // The close reason says what was wrong.
      if (reason !== undefined) expect(close.reason).toBe(reason);
      raw.socket.destroy();
    }
    // Without the extension negotiated, RSV1 is a protocol error too.
    const plain = await Raw.open(running!.port, '/ws?token=plain');
    await plain.text('Status');
    plain.write(frame(1, deflateRawSync(Buffer.from('{}')), { rsv: 4 }));
    expect((await plain.closeFrame()).code).toBe(1002);
    plain.socket.destroy();
  });
});
