// Load-generator clients for the peer brokers, behind the same connection interface as the
// envelope and Socket.IO clients in drivers.mjs (connect, subscribe, publish, ready, cork/uncork,
// close, destroy), carried by the frame-walking WebSocket client in wsclient.mjs.
//
//   NatsConn  NATS client protocol (text) over nats-server's WebSocket listener:
//             INFO → CONNECT + PING → PONG; SUB + PING → PONG; PUB; MSG counted; PING answered.
//   MqttConn  MQTT 3.1.1 over mosquitto's WebSocket listener (subprotocol `mqtt`, binary frames):
//             CONNECT → CONNACK; SUBSCRIBE → SUBACK; PUBLISH QoS 0; PINGREQ → PINGRESP.
//
// Both protocols are byte streams carried in WebSocket messages: a message may hold several
// protocol messages, and one protocol message may be split across WebSocket messages. Each
// connection parses the stream in place and keeps only an unparsed tail (copied, since the
// WebSocket client reads into a shared buffer). Deliveries are counted from their headers alone
// (NATS: the byte count at the end of the MSG line; MQTT: the remaining length); one in
// `sink.sampleEvery` is decoded and checked (topic, JSON payload with seq), as for the others.
//
// Neither protocol acknowledges a QoS-0 / core publish, so `publish(topic, payload, onAck)` never
// calls onAck: the drivers say `acks: false` and the scenarios pace such publishers by deliveries
// counted (lib/closedloop.mjs). Topics are written MQTT-style everywhere in bench/
// (`bench/topics/7`, `+`, `#`); NatsConn maps them to subjects (`bench.topics.7`, `*`, `>`).
import { LightWs } from './wsclient.mjs';
import { checkDelivery, noteBad, readT } from './drivers.mjs';

const LF = 0x0a;

/** MQTT-style topic or filter → NATS subject: `/` → `.`, `+` → `*`, a trailing `#` → `>`. */
export function natsSubject(topic) {
  let s = subjects.get(topic);
  if (s === undefined) {
    s = topic
      .split('/')
      .map((level) => (level === '+' ? '*' : level === '#' ? '>' : level))
      .join('.');
    if (subjects.size < 100_000) subjects.set(topic, s);
  }
  return s;
}
const subjects = new Map();

/**
 * JSON of a bench payload ({seq, t, body}, see harness.payload) without the generic
 * JSON.stringify walk: the same text, at a third of the cost, so the load generator stays light.
 * Anything else goes through JSON.stringify.
 */
const bodies = new Map();
export function payloadJson(p) {
  if (p !== null && typeof p === 'object' && Number.isFinite(p.seq) && Number.isFinite(p.t) && typeof p.body === 'string') {
    let b = bodies.get(p.body);
    if (b === undefined) {
      b = JSON.stringify(p.body);
      if (bodies.size < 16) bodies.set(p.body, b);
    }
    if (Object.keys(p).length === 3) return `{"seq":${p.seq},"t":${p.t},"body":${b}}`;
  }
  return JSON.stringify(p);
}

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** A FIFO of promises answered in order (PONG after PING, PINGRESP after PINGREQ). */
class Waiters {
  constructor() {
    this.q = [];
  }
  add() {
    return new Promise((resolve, reject) => this.q.push({ resolve, reject }));
  }
  resolve(v) {
    this.q.shift()?.resolve(v);
  }
  rejectAll(err) {
    for (const w of this.q.splice(0)) w.reject(err);
  }
}

class StreamConn {
  constructor(driver, o) {
    this.driver = driver;
    this.o = o;
    this.sink = o.sink ?? null;
    this.expectTopic = o.expectTopic ?? null;
    this.rest = null; // unparsed tail of the stream (a copy)
    this.closedWith = null;
    this.welcome = null;
    this.lastError = null;
    this.other = 0;
  }

  /** Feed one WebSocket message's bytes [start, end) of buf (possibly the shared read buffer). */
  onBytes(buf, start, end) {
    let b = buf;
    let i = start;
    let n = end;
    if (this.rest !== null) {
      b = Buffer.concat([this.rest, buf.subarray(start, end)]);
      i = 0;
      n = b.length;
      this.rest = null;
    }
    const used = this.parse(b, i, n);
    if (used < n) this.rest = Buffer.from(b.subarray(used, n));
  }

  /** A delivery counted; `decode()` returns { topic, payload } for the 1-in-N check. */
  delivered(b, payloadStart, payloadEnd, decode) {
    const sink = this.sink;
    if (sink === null) {
      this.other++;
      return;
    }
    if (++sink.count % sink.sampleEvery === 0) {
      let d;
      try {
        d = decode();
      } catch {
        sink.sampled++;
        noteBad(sink, 'undecodable delivery');
        d = undefined;
      }
      if (d !== undefined) checkDelivery(sink, d, this.expectTopic);
    }
    if (sink.onT !== null) sink.onT(readT(b, payloadStart, payloadEnd));
    if (sink.onCount !== null) sink.onCount();
  }

  ready() {}

  async request(type) {
    return { error: { code: 501, message: `${this.driver.system} has no ${type}` }, frames: [] };
  }

  get bufferedAmount() {
    return this.ws?.bufferedAmount ?? 0;
  }

  cork() {
    this.ws?.cork();
  }

  uncork() {
    this.ws?.uncork();
  }

  destroy() {
    clearInterval(this.keepalive);
    this.ws?.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// NATS

export class NatsConn extends StreamConn {
  constructor(driver, o) {
    super(driver, o);
    this.pongs = new Waiters();
    this.infoWaiter = null;
    this.nextSid = 0;
  }

  async connect(timeoutMs) {
    const { host, port } = this.driver;
    const info = new Promise((resolve, reject) => {
      this.infoWaiter = { resolve, reject };
    });
    info.catch(() => {});
    this.ws = new LightWs({
      host,
      port,
      path: '/',
      localAddress: this.o.localAddress,
      onMessage: (buf, start, end) => this.onBytes(buf, start, end),
      onClose: (code) => {
        this.closedWith = code;
        const err = new Error(`connection closed (${code})${this.lastError ? `: ${this.lastError}` : ''}`);
        this.pongs.rejectAll(err);
        this.infoWaiter?.reject(err);
      },
    });
    await this.ws.connect(timeoutMs);
    await withTimeout(info, timeoutMs, 'NATS INFO');
    // The token goes in as the client name (nats-server here runs without auth, as configured).
    const connect = { verbose: false, pedantic: false, lang: 'switchyard-bench', version: '1', protocol: 1, echo: false, headers: false, name: this.o.token };
    const pong = this.pongs.add();
    this.ws.send(`CONNECT ${JSON.stringify(connect)}\r\nPING\r\n`);
    await withTimeout(pong, timeoutMs, 'NATS CONNECT (PING → PONG)');
    return this;
  }

  parse(b, i, n) {
    while (i < n) {
      const lf = b.indexOf(LF, i);
      if (lf === -1 || lf >= n) return i; // (b may be the larger shared buffer: stop at n)
      // MSG <subject> <sid> [reply-to] <#bytes>\r\n<payload>\r\n
      if (b[i] === 0x4d && b[i + 1] === 0x53 && b[i + 2] === 0x47 && b[i + 3] === 0x20) {
        let k = lf - 2; // last digit of the byte count (the line ends in \r\n)
        let size = 0;
        let mul = 1;
        while (k > i && b[k] >= 48 && b[k] <= 57) {
          size += (b[k] - 48) * mul;
          mul *= 10;
          k--;
        }
        const ps = lf + 1;
        const pe = ps + size;
        if (pe + 2 > n) return i;
        const lineStart = i;
        this.delivered(b, ps, pe, () => {
          const line = b.toString('latin1', lineStart + 4, k);
          const subject = line.slice(0, line.indexOf(' '));
          return { topic: subject.replaceAll('.', '/'), payload: JSON.parse(b.toString('utf8', ps, pe)) };
        });
        i = pe + 2;
        continue;
      }
      const line = b.toString('latin1', i, b[lf - 1] === 0x0d ? lf - 1 : lf);
      i = lf + 1;
      this.#control(line);
    }
    return i;
  }

  #control(line) {
    if (line === 'PING') this.ws.send('PONG\r\n');
    else if (line === 'PONG') this.pongs.resolve();
    else if (line.startsWith('INFO ')) {
      try {
        this.welcome = JSON.parse(line.slice(5));
      } catch {
        this.welcome = {};
      }
      this.infoWaiter?.resolve();
      this.infoWaiter = null;
    } else if (line.startsWith('-ERR')) {
      this.lastError ??= line;
      this.pongs.rejectAll(new Error(line));
    } else if (line !== '+OK') this.other++;
  }

  /** SUB each topic (MQTT-style filters map to subjects), then PING: the PONG confirms them. */
  async subscribe(topics, timeoutMs = 10_000) {
    let out = '';
    for (const t of topics) out += `SUB ${natsSubject(t)} ${++this.nextSid}\r\n`;
    const pong = this.pongs.add();
    this.ws.send(`${out}PING\r\n`);
    await withTimeout(pong, timeoutMs, 'NATS SUB (PING → PONG)');
    return { status: 'ok' };
  }

  /** Core NATS PUB: no acknowledgement exists, so onAck is never called. */
  publish(topic, payload) {
    const body = payloadJson(payload);
    this.ws.send(`PUB ${natsSubject(topic)} ${Buffer.byteLength(body)}\r\n${body}\r\n`);
  }

  /** PING → PONG round trip (everything sent before it has been processed). */
  ping(timeoutMs = 10_000) {
    const pong = this.pongs.add();
    this.ws.send('PING\r\n');
    return withTimeout(pong, timeoutMs, 'NATS PING');
  }

  /** Close 1000; `mode` (when given) says how TCP ends, as for the envelope client (LightWs.close). */
  close(mode) {
    if (mode === undefined) this.ws?.close();
    else this.ws?.close(mode);
  }
}

// ---------------------------------------------------------------------------------------------
// MQTT 3.1.1

const PINGREQ = Buffer.from([0xc0, 0x00]);
const DISCONNECT = Buffer.from([0xe0, 0x00]);
const KEEPALIVE_S = 60;

/** Remaining length, MQTT 3.1.1 §2.2.3: 7 bits per byte, continuation bit 0x80, at most 4 bytes. */
export function encodeRemainingLength(n) {
  const out = [];
  do {
    let byte = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) byte |= 0x80;
    out.push(byte);
  } while (n > 0);
  if (out.length > 4) throw new Error('MQTT packet too large');
  return out;
}

function packet(firstByte, body) {
  const rl = encodeRemainingLength(body.length);
  const p = Buffer.allocUnsafe(1 + rl.length + body.length);
  p[0] = firstByte;
  for (let i = 0; i < rl.length; i++) p[1 + i] = rl[i];
  body.copy(p, 1 + rl.length);
  return p;
}

function utf8Field(s) {
  const b = Buffer.from(s, 'utf8');
  const f = Buffer.allocUnsafe(2 + b.length);
  f.writeUInt16BE(b.length, 0);
  b.copy(f, 2);
  return f;
}

const topicCache = new Map();
function topicField(topic) {
  let f = topicCache.get(topic);
  if (f === undefined) {
    f = utf8Field(topic);
    if (topicCache.size < 100_000) topicCache.set(topic, f);
  }
  return f;
}

export class MqttConn extends StreamConn {
  constructor(driver, o) {
    super(driver, o);
    this.connack = null;
    this.subacks = new Map(); // packet id → { resolve, reject }
    this.pingresps = new Waiters();
    this.nextPacketId = 0;
  }

  async connect(timeoutMs) {
    const { host, port } = this.driver;
    const connack = new Promise((resolve, reject) => {
      this.connack = { resolve, reject };
    });
    connack.catch(() => {});
    this.ws = new LightWs({
      host,
      port,
      path: '/mqtt',
      protocol: 'mqtt',
      localAddress: this.o.localAddress,
      onMessage: (buf, start, end) => this.onBytes(buf, start, end),
      onClose: (code) => {
        this.closedWith = code;
        clearInterval(this.keepalive);
        const err = new Error(`connection closed (${code})`);
        this.connack?.reject(err);
        for (const w of this.subacks.values()) w.reject(err);
        this.subacks.clear();
        this.pingresps.rejectAll(err);
      },
    });
    await this.ws.connect(timeoutMs);
    // CONNECT: protocol name "MQTT", level 4 (3.1.1), flags: user name + clean session,
    // keep alive, client id, user name (the token; mosquitto here allows anonymous clients).
    const token = String(this.o.token ?? 'bench');
    const clientId = `sy${process.pid.toString(36)}-${token}`.slice(0, 64);
    const body = Buffer.concat([utf8Field('MQTT'), Buffer.from([4, 0x80 | 0x02, KEEPALIVE_S >> 8, KEEPALIVE_S & 0xff]), utf8Field(clientId), utf8Field(token)]);
    this.ws.sendBinary(packet(0x10, body));
    const code = await withTimeout(connack, timeoutMs, 'MQTT CONNECT (CONNACK)');
    this.connack = null;
    if (code !== 0) throw new Error(`CONNACK refused the connection (return code ${code})`);
    this.welcome = { clientId };
    // Subscribers only receive: a PINGREQ well inside the keep-alive keeps the broker from
    // dropping them (MQTT 3.1.1 §3.1.2.10). One timer per connection, unref'd.
    this.keepalive = setInterval(() => this.ws.sendBinary(PINGREQ), (KEEPALIVE_S * 1000) / 2);
    this.keepalive.unref();
    return this;
  }

  parse(b, i, n) {
    while (n - i >= 2) {
      const h = b[i];
      // remaining length: up to 4 bytes
      let rl = 0;
      let mul = 1;
      let j = i + 1;
      let byte;
      do {
        if (j >= n) return i;
        byte = b[j++];
        rl += (byte & 0x7f) * mul;
        mul *= 128;
      } while (byte & 0x80 && j - i <= 4);
      if (byte & 0x80) throw new Error('malformed MQTT remaining length');
      const end = j + rl;
      if (end > n) return i;
      const type = h >> 4;
      if (type === 3) {
        // PUBLISH: topic (length-prefixed), a packet id when QoS > 0, then the payload.
        const tl = b.readUInt16BE(j);
        const qos = (h >> 1) & 3;
        const ps = j + 2 + tl + (qos > 0 ? 2 : 0);
        const ts = j + 2;
        this.delivered(b, ps, end, () => ({ topic: b.toString('utf8', ts, ts + tl), payload: JSON.parse(b.toString('utf8', ps, end)) }));
      } else {
        this.#control(type, b, j, end);
      }
      i = end;
    }
    return i;
  }

  #control(type, b, start, end) {
    if (type === 2) {
      // CONNACK: session-present flags, return code
      this.connack?.resolve(end - start >= 2 ? b[start + 1] : 255);
    } else if (type === 9) {
      // SUBACK: packet id, one return code per filter (0x80 = failure)
      const id = b.readUInt16BE(start);
      const w = this.subacks.get(id);
      if (!w) return void this.other++;
      this.subacks.delete(id);
      w.resolve(Array.from(b.subarray(start + 2, end)));
    } else if (type === 13) {
      this.pingresps.resolve();
    } else {
      this.other++;
    }
  }

  /** SUBSCRIBE every filter at QoS 0; resolves once the SUBACK grants them all. */
  async subscribe(topics, timeoutMs = 10_000) {
    this.nextPacketId = (this.nextPacketId % 65535) + 1;
    const id = this.nextPacketId;
    const parts = [Buffer.from([id >> 8, id & 0xff])];
    for (const t of topics) parts.push(utf8Field(t), Buffer.from([0]));
    const suback = new Promise((resolve, reject) => this.subacks.set(id, { resolve, reject }));
    this.ws.sendBinary(packet(0x82, Buffer.concat(parts)));
    const codes = await withTimeout(suback, timeoutMs, 'MQTT SUBSCRIBE (SUBACK)').finally(() => this.subacks.delete(id));
    if (codes.length !== topics.length || codes.some((c) => c === 0x80)) throw new Error(`SUBACK refused: ${codes.join(',')}`);
    return { status: 'ok', codes };
  }

  /** PUBLISH at QoS 0: no acknowledgement exists, so onAck is never called. */
  publish(topic, payload) {
    const tf = topicField(topic);
    const body = payloadJson(payload);
    const bl = Buffer.byteLength(body);
    const rl = encodeRemainingLength(tf.length + bl);
    const p = Buffer.allocUnsafe(1 + rl.length + tf.length + bl);
    p[0] = 0x30;
    for (let k = 0; k < rl.length; k++) p[1 + k] = rl[k];
    tf.copy(p, 1 + rl.length);
    p.write(body, 1 + rl.length + tf.length, 'utf8');
    this.ws.sendBinary(p);
  }

  /** PINGREQ → PINGRESP round trip. */
  ping(timeoutMs = 10_000) {
    const r = this.pingresps.add();
    this.ws.sendBinary(PINGREQ);
    return withTimeout(r, timeoutMs, 'MQTT PINGREQ');
  }

  /** DISCONNECT, then Close 1000; `mode` (when given) says how TCP ends (LightWs.close). */
  close(mode) {
    clearInterval(this.keepalive);
    if (this.ws?.open) this.ws.sendBinary(DISCONNECT);
    if (mode === undefined) this.ws?.close();
    else this.ws?.close(mode);
  }
}
