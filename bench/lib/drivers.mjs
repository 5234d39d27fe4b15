// Client drivers: one interface, two wire formats.
//
//   envelope  (raw ws baseline and switchyard): seed 001 JSON envelope over /ws?token=…,
//             carried by the small frame-counting client (default) or by `ws` (--client=ws).
//   socketio  (Socket.IO baseline): socket.io-client, websocket transport only.
//   nats, mqtt  (peer brokers nats-server and mosquitto): see peers.mjs. They have no publish
//             acknowledgement (`driver.acks` is false): scenarios pace them by deliveries counted.
//
// A connection is a control path (welcome, subscribe, publish, acks: every frame parsed) until it
// is `ready()`; from then on the driver only counts frames into the shared `sink` and parses one
// in `sink.sampleEvery` to check its content (type, topic, payload). Scenarios that need a value
// from every frame (latency) set `sink.onT`, and the driver pulls the payload's "t" out of the raw
// bytes without a JSON.parse.
import { LightWs } from './wsclient.mjs';

// Loaded only when used: importing socket.io-client costs ~150 ms per load-generator start.
let WebSocket = null;
let ioClient = null;

/**
 * Counters shared by every subscriber of a scenario (all in this one process).
 * @typedef {object} Sink
 * @property {number} count         deliveries counted
 * @property {number} sampleEvery   parse 1 in N
 * @property {number} sampled
 * @property {number} bad           sampled deliveries whose content was wrong
 * @property {string[]} badExamples
 * @property {((t: number) => void) | null} onT   called with payload.t for every delivery
 * @property {(() => void) | null} onCount        called after each counted delivery (flow control)
 */
export function createSink(sampleEvery = 100) {
  return { count: 0, sampleEvery, sampled: 0, bad: 0, badExamples: [], onT: null, onCount: null };
}

export function noteBad(sink, why) {
  sink.bad++;
  if (sink.badExamples.length < 5) sink.badExamples.push(why);
}

const T_KEY = Buffer.from('"t":');
// A publish's Ack as switchyard and raw ws write it: read without JSON.parse (see #fastAck).
const ACK_HEAD = Buffer.from('{"type":"Ack","data":{"message_id":"');
const RECIPIENTS_KEY = Buffer.from('"recipients":');

/** Read the number after the first `"t":` in buf[start, end), or NaN. */
export function readT(buf, start, end) {
  const at = buf.indexOf(T_KEY, start);
  if (at === -1 || at >= end) return NaN;
  let i = at + 4;
  const s = i;
  while (i < end) {
    const c = buf[i];
    if ((c >= 48 && c <= 57) || c === 46 || c === 45 || c === 101 || c === 43) i++;
    else break;
  }
  return i === s ? NaN : Number(buf.toString('latin1', s, i));
}

export function checkDelivery(sink, d, expectTopic) {
  sink.sampled++;
  if (!d || typeof d !== 'object') return noteBad(sink, 'not an object');
  if (typeof d.topic !== 'string') return noteBad(sink, 'no topic');
  if (expectTopic && !expectTopic(d.topic)) return noteBad(sink, `unexpected topic ${d.topic}`);
  if (!d.payload || typeof d.payload.seq !== 'number') return noteBad(sink, 'payload without seq');
}

// ---------------------------------------------------------------------------------------------
// envelope

class EnvelopeConn {
  constructor(driver, o) {
    this.driver = driver;
    this.o = o;
    this.sink = o.sink ?? null;
    this.expectTopic = o.expectTopic ?? null;
    this.counting = false;
    this.pending = new Map(); // request id -> { resolve, reject, frames, timer }
    this.acks = new Map(); // publish id -> callback(ackData)
    this.nextId = 0;
    this.welcome = null;
    this.welcomeWaiter = null;
    this.closedWith = null;
    this.other = 0; // control frames nobody asked for
  }

  async connect(timeoutMs) {
    const { host, port } = this.driver;
    const path = `/ws?token=${encodeURIComponent(this.o.token)}`;
    const onMessage = (buf, start, end) => this.#onMessage(buf, start, end);
    const onClose = (code) => {
      this.closedWith = code;
      for (const p of this.pending.values()) p.reject(new Error(`connection closed (${code})`));
      this.pending.clear();
      this.welcomeWaiter?.reject(new Error(`closed (${code}) before the welcome`));
    };
    const welcome = new Promise((resolve, reject) => {
      this.welcomeWaiter = { resolve, reject };
    });
    welcome.catch(() => {});
    if (this.driver.clientKind === 'ws') {
      const ws = new WebSocket(`ws://${host}:${port}${path}`, {
        perMessageDeflate: false,
        skipUTF8Validation: true,
        localAddress: this.o.localAddress,
        handshakeTimeout: timeoutMs,
      });
      this.ws = ws;
      ws.on('message', (data) => onMessage(data, 0, data.length));
      ws.on('close', (code) => onClose(code));
      await new Promise((resolve, reject) => {
        ws.once('open', resolve);
        ws.once('error', reject);
        ws.once('unexpected-response', (_req, res) => reject(new Error(`upgrade refused: ${res.statusCode}`)));
      });
      ws.on('error', () => {});
    } else {
      this.ws = new LightWs({ host, port, path, localAddress: this.o.localAddress, onMessage, onClose });
      await this.ws.connect(timeoutMs);
    }
    const timer = setTimeout(() => this.welcomeWaiter?.reject(new Error('no welcome frame')), timeoutMs);
    try {
      await welcome;
    } finally {
      clearTimeout(timer);
    }
    return this;
  }

  #onMessage(buf, start, end) {
    if (this.counting) {
      const sink = this.sink;
      // 1 in sampleEvery deliveries overall (not per connection: in `topics` a subscriber
      // may see only a handful) is parsed and checked.
      if (++sink.count % sink.sampleEvery === 0) this.#sample(buf, start, end);
      if (sink.onT !== null) sink.onT(readT(buf, start, end));
      if (sink.onCount !== null) sink.onCount();
      return;
    }
    if (this.acks.size > 0 && this.#fastAck(buf, start, end)) return;
    let m;
    try {
      m = JSON.parse(buf.toString('utf8', start, end));
    } catch {
      this.other++;
      return;
    }
    this.#onControl(m);
  }

  /**
   * A publish's Ack (`{"type":"Ack","data":{"message_id":"p…",…"recipients":N…}}`) read from the
   * bytes: JSON.parse would intern the short id, a cost of the load generator's own (issue 17).
   * Anything else, or an id not awaited, goes the parsed way.
   */
  #fastAck(buf, start, end) {
    const idStart = start + ACK_HEAD.length;
    if (end <= idStart || buf.compare(ACK_HEAD, 0, ACK_HEAD.length, start, idStart) !== 0) return false;
    const idEnd = buf.indexOf(0x22, idStart);
    if (idEnd === -1 || idEnd >= end) return false;
    const id = buf.toString('latin1', idStart, idEnd);
    const cb = this.acks.get(id);
    if (cb === undefined) return false;
    const at = buf.indexOf(RECIPIENTS_KEY, idEnd);
    if (at === -1 || at >= end) return false;
    let i = at + RECIPIENTS_KEY.length;
    let recipients = 0;
    const first = i;
    for (; i < end && buf[i] >= 48 && buf[i] <= 57; i++) recipients = recipients * 10 + buf[i] - 48;
    if (i === first) return false;
    this.acks.delete(id);
    cb({ recipients });
    return true;
  }

  #sample(buf, start, end) {
    const sink = this.sink;
    let m;
    try {
      m = JSON.parse(buf.toString('utf8', start, end));
    } catch {
      sink.sampled++;
      noteBad(sink, 'invalid JSON');
      return;
    }
    if (m.type !== 'Broadcast') {
      sink.sampled++;
      noteBad(sink, `type ${m.type}: ${JSON.stringify(m.data).slice(0, 120)}`);
    } else checkDelivery(sink, m.data, this.expectTopic);
  }

  #onControl(m) {
    const d = m.data ?? {};
    if (m.type === 'Ack') {
      const id = d.message_id;
      const cb = this.acks.get(id);
      if (cb !== undefined) {
        this.acks.delete(id);
        cb(d);
        return;
      }
      const p = this.pending.get(id);
      if (p) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.resolve({ ack: d, frames: p.frames });
        return;
      }
      this.other++;
      return;
    }
    if (m.type === 'Error') {
      const id = d.details?.message_id;
      const cb = id !== undefined ? this.acks.get(id) : undefined;
      if (cb !== undefined) {
        this.acks.delete(id);
        cb({ error: d });
        return;
      }
      const p = id !== undefined ? this.pending.get(id) : undefined;
      if (p) {
        this.pending.delete(id);
        clearTimeout(p.timer);
        p.resolve({ error: d, frames: p.frames });
        return;
      }
      this.other++;
      if (!this.lastError) this.lastError = d;
      return;
    }
    if (m.type === 'Status' && d.status === 'connected' && !this.welcome) {
      this.welcome = d.details ?? {};
      this.welcomeWaiter?.resolve();
      this.welcomeWaiter = null;
      return;
    }
    if (m.type === 'Broadcast' && this.sink) {
      // A delivery that raced ahead of the subscribe Ack: still a delivery.
      this.sink.count++;
      return;
    }
    // Replies that precede an Ack (Status subscribed, a History answer…) go to the open request.
    for (const p of this.pending.values()) p.frames.push(m);
    if (this.pending.size === 0) this.other++;
  }

  /** Send a request with an id; resolves with { ack, frames } or { error, frames }. */
  request(type, data, timeoutMs = 10_000) {
    const id = `r${++this.nextId}`;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`${type} ${id}: no Ack/Error within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, frames: [], timer });
      this.ws.send(JSON.stringify({ type, data, id }));
    });
  }

  async subscribe(topics, timeoutMs) {
    const r = await this.request('Subscribe', { topics }, timeoutMs);
    if (r.error) throw new Error(`subscribe refused: ${JSON.stringify(r.error)}`);
    return r.ack;
  }

  /** Publish; `onAck(ackData)` gets { recipients } or { error }. Without `onAck` the publish carries no id (no Ack). */
  publish(topic, payload, onAck) {
    const head = `{"type":"Broadcast","data":{"topic":${JSON.stringify(topic)},"payload":${JSON.stringify(payload)}}`;
    if (onAck === undefined || onAck === null) {
      this.ws.send(`${head}}`);
      return;
    }
    const id = `p${++this.nextId}`;
    this.acks.set(id, onAck);
    this.ws.send(`${head},"id":"${id}"}`);
  }

  /** From now on frames are deliveries: count, sample, don't parse. */
  ready() {
    this.counting = this.sink !== null;
  }

  get bufferedAmount() {
    return this.ws?.bufferedAmount ?? 0;
  }

  cork() {
    this.ws?.cork?.();
  }

  uncork() {
    this.ws?.uncork?.();
  }

  /** Close 1000; `mode` says how TCP ends (LightWs.close; the `ws` client always ends once the answer arrives). */
  close(mode) {
    if (this.driver.clientKind === 'ws') this.ws?.close(1000);
    else this.ws?.close(mode);
  }

  destroy() {
    if (this.driver.clientKind === 'ws') this.ws?.terminate();
    else this.ws?.destroy();
  }
}

// ---------------------------------------------------------------------------------------------
// Socket.IO

class SocketIoConn {
  constructor(driver, o) {
    this.driver = driver;
    this.o = o;
    this.sink = o.sink ?? null;
    this.expectTopic = o.expectTopic ?? null;
    this.welcome = {};
    this.closedWith = null;
  }

  connect(timeoutMs) {
    const { host, port } = this.driver;
    const socket = ioClient(`http://${host}:${port}`, {
      transports: ['websocket'],
      forceNew: true,
      reconnection: false,
      timeout: timeoutMs,
      auth: { token: this.o.token },
      perMessageDeflate: false,
      localAddress: this.o.localAddress,
    });
    this.socket = socket;
    if (this.sink) {
      const sink = this.sink;
      socket.on('message', (m) => {
        if (++sink.count % sink.sampleEvery === 0) checkDelivery(sink, m, this.expectTopic);
        if (sink.onT !== null) sink.onT(m?.payload?.t);
        if (sink.onCount !== null) sink.onCount();
      });
    }
    socket.on('disconnect', (reason) => {
      this.closedWith = reason;
    });
    return new Promise((resolve, reject) => {
      socket.once('connect', () => resolve(this));
      socket.once('connect_error', (err) => {
        socket.close();
        reject(err);
      });
    });
  }

  subscribe(topics, timeoutMs = 10_000) {
    return this.socket.timeout(timeoutMs).emitWithAck('subscribe', topics);
  }

  publish(topic, payload, onAck) {
    if (onAck === undefined || onAck === null) this.socket.emit('publish', { topic, payload });
    else this.socket.emit('publish', { topic, payload }, onAck);
  }

  async request(type) {
    return { error: { code: 501, message: `Socket.IO baseline has no ${type}` }, frames: [] };
  }

  ready() {}

  get bufferedAmount() {
    return 0;
  }

  cork() {}

  uncork() {}

  /** `server`: ask the server to disconnect this socket (it starts the close); otherwise disconnect. */
  close(mode) {
    if (mode === 'server' && this.socket?.connected) this.socket.emit('bye');
    else this.socket?.disconnect();
  }

  destroy() {
    this.socket?.disconnect();
  }
}

/** Wire protocol of each system the load generator can drive. */
const KINDS = { raw: 'envelope', switchyard: 'envelope', socketio: 'socketio', nats: 'nats', mosquitto: 'mqtt' };

/**
 * @param {'raw'|'switchyard'|'socketio'|'nats'|'mosquitto'} system
 * @param {{host: string, port: number, clientKind?: 'light'|'ws'}} target
 */
export async function makeDriver(system, target) {
  const kind = KINDS[system];
  if (!kind) throw new Error(`no client for system ${system}`);
  if (system === 'socketio') ioClient ??= (await import('socket.io-client')).io;
  if (target.clientKind === 'ws') WebSocket ??= (await import('ws')).WebSocket;
  const peers = kind === 'nats' || kind === 'mqtt' ? await import('./peers.mjs') : null;
  const Conn = kind === 'socketio' ? SocketIoConn : kind === 'nats' ? peers.NatsConn : kind === 'mqtt' ? peers.MqttConn : EnvelopeConn;
  const driver = {
    system,
    host: target.host,
    port: target.port,
    clientKind: target.clientKind ?? 'light',
    kind,
    /** Whether each publish is acknowledged (with its recipient count); false: pace by deliveries. */
    acks: kind === 'envelope' || kind === 'socketio',
    // NATS (`*`, `>`) and MQTT (`+`, `#`) match wildcards themselves.
    wildcards: system === 'switchyard' || kind === 'nats' || kind === 'mqtt',
    /**
     * Open one connection and wait for it to be usable (welcome frame / Socket.IO connect).
     * @param {{token: string, sink?: object, expectTopic?: (t: string) => boolean, localAddress?: string}} o
     */
    connect(o, timeoutMs = 10_000) {
      const c = new Conn(driver, o);
      return c.connect(timeoutMs).catch((err) => {
        c.destroy();
        throw err;
      });
    },
  };
  return driver;
}
