/**
 * The bench's load-generator clients for the peer brokers (bench/lib/peers.mjs): their stream
 * parsers must count every delivery and answer every control message however the byte stream is
 * cut into WebSocket messages (a message may hold several protocol messages, one protocol message
 * may span several), and they must speak to the real nats-server and mosquitto binaries started
 * the way bench/run.mjs starts them (bench/servers/*.mjs, spare ports, generated config).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterEach, describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
// Plain .mjs modules without declarations: loaded by URL, typed loosely here.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = any;
const load = (p: string): Promise<Any> => import(pathToFileURL(`${ROOT}${p}`).href);

function sink(sampleEvery = 1): Any {
  return { count: 0, sampleEvery, sampled: 0, bad: 0, badExamples: [], onT: null, onCount: null };
}

/** Every way to cut `stream` in two, plus one byte at a time. */
function cuts(stream: Buffer): Buffer[][] {
  const out: Buffer[][] = [];
  for (let i = 1; i < stream.length; i++) out.push([stream.subarray(0, i), stream.subarray(i)]);
  out.push(Array.from({ length: stream.length }, (_, i) => stream.subarray(i, i + 1)));
  return out;
}

/** Feed chunks the way LightWs does: each from a reused buffer, so a kept reference would be overwritten. */
function feed(conn: Any, chunks: Buffer[]): void {
  const shared = Buffer.alloc(70_000);
  for (const c of chunks) {
    c.copy(shared, 0);
    conn.onBytes(shared, 0, c.length);
    shared.fill(0x41); // 'A': stale bytes must never be parsed
  }
}

const payload = (seq: number, pad = 0) => JSON.stringify({ seq, t: 1.5, body: 'x'.repeat(pad) });

describe('bench NATS client parser', () => {
  it('counts MSGs and answers PING however the stream is split', async () => {
    const { NatsConn } = await load('bench/lib/peers.mjs');
    const msgs = [payload(1), payload(2, 300), payload(3)];
    const stream = Buffer.from(
      'INFO {"server_id":"x","max_payload":1048576}\r\n' +
        `MSG bench.topics.7 1 ${Buffer.byteLength(msgs[0]!)}\r\n${msgs[0]}\r\n` +
        'PING\r\n' +
        `MSG bench.topics.7 1 _INBOX.reply ${Buffer.byteLength(msgs[1]!)}\r\n${msgs[1]}\r\n` +
        '+OK\r\n' +
        `MSG bench.topics.7 1 ${Buffer.byteLength(msgs[2]!)}\r\n${msgs[2]}\r\n`,
    );
    for (const chunks of cuts(stream)) {
      const s = sink();
      const conn = new NatsConn({ system: 'nats' }, { sink: s, expectTopic: (t: string) => t === 'bench/topics/7' });
      const sent: string[] = [];
      conn.ws = { send: (t: string) => sent.push(t) };
      feed(conn, chunks);
      expect(s.count).toBe(3);
      expect(s.sampled).toBe(3);
      expect(s.badExamples).toEqual([]);
      expect(sent).toEqual(['PONG\r\n']);
      expect(conn.welcome?.server_id).toBe('x');
      expect(conn.rest).toBeNull();
      expect(conn.other).toBe(0);
    }
  });

  it('writes bench payloads exactly as JSON.stringify does', async () => {
    const { payloadJson } = await load('bench/lib/peers.mjs');
    const { payload: make } = await load('bench/lib/harness.mjs');
    for (let i = 0; i < 2000; i++) {
      const p = make(i);
      expect(payloadJson(p)).toBe(JSON.stringify(p));
    }
    for (const p of [{ seq: 1, t: 1e-7, body: 'a"\\b\u2028' }, { seq: 2, t: -0, body: '' }, { seq: 3, t: 4, body: 'x', extra: 1 }, { seq: NaN, t: 1, body: 'x' }, 'text', null]) {
      expect(payloadJson(p)).toBe(JSON.stringify(p));
    }
  });

  it('maps MQTT-style filters to NATS subjects', async () => {
    const { natsSubject } = await load('bench/lib/peers.mjs');
    expect(natsSubject('bench/wild/7/x')).toBe('bench.wild.7.x');
    expect(natsSubject('bench/+/7/x')).toBe('bench.*.7.x');
    expect(natsSubject('bench/wild/7/#')).toBe('bench.wild.7.>');
  });
});

describe('bench MQTT client parser', () => {
  it('encodes remaining lengths as MQTT 3.1.1 §2.2.3 does', async () => {
    const { encodeRemainingLength } = await load('bench/lib/peers.mjs');
    expect(encodeRemainingLength(0)).toEqual([0x00]);
    expect(encodeRemainingLength(127)).toEqual([0x7f]);
    expect(encodeRemainingLength(128)).toEqual([0x80, 0x01]);
    expect(encodeRemainingLength(16_383)).toEqual([0xff, 0x7f]);
    expect(encodeRemainingLength(16_384)).toEqual([0x80, 0x80, 0x01]);
    expect(encodeRemainingLength(2_097_151)).toEqual([0xff, 0xff, 0x7f]);
    expect(encodeRemainingLength(2_097_152)).toEqual([0x80, 0x80, 0x80, 0x01]);
    expect(encodeRemainingLength(268_435_455)).toEqual([0xff, 0xff, 0xff, 0x7f]);
    expect(() => encodeRemainingLength(268_435_456)).toThrow();
  });

  it('counts PUBLISH packets and reads SUBACK / PINGRESP however the stream is split', async () => {
    const { MqttConn, encodeRemainingLength } = await load('bench/lib/peers.mjs');
    const publish = (topic: string, body: string, qos = 0) => {
      const t = Buffer.from(topic);
      const parts = [Buffer.from([t.length >> 8, t.length & 0xff]), t, ...(qos ? [Buffer.from([0, 9])] : []), Buffer.from(body)];
      const b = Buffer.concat(parts);
      return Buffer.concat([Buffer.from([0x30 | (qos << 1), ...encodeRemainingLength(b.length)]), b]);
    };
    const stream = Buffer.concat([
      Buffer.from([0x90, 0x03, 0x00, 0x05, 0x00]), // SUBACK id 5, granted QoS 0
      publish('bench/topics/3', payload(1)),
      publish('bench/topics/3', payload(2, 200)), // 2-byte remaining length
      Buffer.from([0xd0, 0x00]), // PINGRESP
      publish('bench/topics/3', payload(3, 17_000)), // 3-byte remaining length
      publish('bench/topics/3', payload(4), 1), // QoS 1 carries a packet id before the payload
    ]);
    const splits = cuts(stream).filter((_, i, all) => i % 97 === 0 || i === all.length - 1);
    for (const chunks of splits) {
      const s = sink();
      const conn = new MqttConn({ system: 'mosquitto' }, { sink: s, expectTopic: (t: string) => t === 'bench/topics/3' });
      let suback: number[] | null = null;
      conn.subacks.set(5, { resolve: (codes: number[]) => (suback = codes), reject: () => {} });
      let pongs = 0;
      conn.pingresps.add().then(() => pongs++);
      feed(conn, chunks);
      await Promise.resolve();
      expect(s.count).toBe(4);
      expect(s.sampled).toBe(4);
      expect(s.badExamples).toEqual([]);
      expect(suback).toEqual([0]);
      expect(pongs).toBe(1);
      expect(conn.rest).toBeNull();
    }
  });
});

// The real brokers, started as bench/run.mjs starts them. Skipped only where a binary is missing
// outside CI (the bench itself reports such a peer as "not installed").
const servers: ChildProcess[] = [];
afterEach(() => {
  for (const c of servers.splice(0)) c.kill('SIGKILL');
});

function startPeer(file: string): Promise<{ port: number; pid: number }> {
  const child = fork(`${ROOT}bench/servers/${file}`, [JSON.stringify({ host: '127.0.0.1', port: 0, options: {} })], { stdio: ['ignore', 'ignore', 'ignore', 'ipc'] });
  servers.push(child);
  return new Promise((resolve, reject) => {
    child.on('message', (m: Any) => {
      if (m?.type === 'ready' && m.info?.peerSupported) resolve({ port: m.port, pid: m.pid });
      else if (m?.type === 'ready') reject(new Error(m.info?.peerError ?? 'unsupported'));
      else if (m?.type === 'failed') reject(new Error(m.error));
    });
    child.once('exit', (code) => reject(new Error(`${file} exited ${code}`)));
  });
}

for (const [system, file, binary] of [
  ['nats', 'nats.mjs', '/usr/sbin/nats-server'],
  ['mosquitto', 'mosquitto.mjs', '/usr/sbin/mosquitto'],
] as const) {
  const missing = !existsSync(binary) && !process.env.CI;
  it.skipIf(missing)(`${system}: subscribes, publishes and counts every delivery over WebSocket on its own port`, async () => {
    const { makeDriver, createSink } = await load('bench/lib/drivers.mjs');
    const { port, pid } = await startPeer(file);
    expect([4222, 1883]).not.toContain(port);
    const driver = await makeDriver(system, { host: '127.0.0.1', port });
    expect(driver.acks).toBe(false);
    const s = createSink(1);
    const subs = await Promise.all([0, 1, 2].map((i) => driver.connect({ token: `s${i}`, sink: s, expectTopic: (t: string) => t.startsWith('bench/peers/') })));
    await subs[0].subscribe(['bench/peers/a']);
    await subs[1].subscribe(['bench/peers/+']); // wildcard, matched by the broker
    await subs[2].subscribe(['bench/peers/#']);
    const pub = await driver.connect({ token: 'pub' });
    const n = 500;
    // mosquitto 2.0.11 drops some QoS 0 messages of 8-20 KB in a burst to WebSocket subscribers
    // (a TCP subscriber gets them all; so does nothing else, the `ws` package included): big
    // messages for NATS only. The bench's payloads are ~100 bytes, and its runs report losses.
    const big = system === 'nats' ? 20_000 : 1000;
    for (let i = 1; i <= n; i++) pub.publish('bench/peers/a', { seq: i, t: 0, body: 'y'.repeat(i % 3 === 0 ? big : 50) });
    await pub.ping(); // the broker has read every publish
    const until = Date.now() + 10_000;
    while (s.count < 3 * n && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(s.count).toBe(3 * n);
    expect(s.sampled).toBe(3 * n);
    expect(s.badExamples).toEqual([]);
    for (const c of [...subs, pub]) c.close();
    servers[0]!.kill('SIGKILL');
    // the broker goes with its wrapper
    const gone = Date.now() + 5000;
    let alive = true;
    while (alive && Date.now() < gone) {
      try {
        process.kill(pid, 0);
        await new Promise((r) => setTimeout(r, 20));
      } catch {
        alive = false;
      }
    }
    expect(alive).toBe(false);
  }, 30_000);
}
