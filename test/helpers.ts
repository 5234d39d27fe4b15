/** Real servers on port 0 and real `ws` clients; every wait is on an event, never a fixed delay. */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import WebSocket, { type ClientOptions } from 'ws';
import { createBroker, envelope, type Broker, type BrokerOptions, type Principal, type Protocol } from 'switchyard';
import { attach } from 'switchyard/http';

export interface Running {
  broker: Broker;
  server: http.Server;
  port: number;
  url: (path?: string) => string;
  stop: () => Promise<void>;
}

/** A broker attached to a fresh http.Server on an ephemeral port. */
export async function start(options: BrokerOptions, onRequest?: http.RequestListener): Promise<Running> {
  const broker = createBroker(options);
  const server = http.createServer(onRequest ?? ((_req, res) => res.writeHead(404).end()));
  attach(broker, server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    broker,
    server,
    port,
    url: (path = '/ws') => `ws://127.0.0.1:${port}${path}`,
    stop: async () => {
      await broker.close();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

export interface Frame {
  type: string;
  data: any;
  [key: string]: unknown;
}

/** A `ws` client that records every frame and lets a test wait for the one it expects. */
export class Client {
  readonly ws: WebSocket;
  readonly frames: Frame[] = [];
  readonly binary: Buffer[] = [];
  readonly opened: Promise<void>;
  readonly closed: Promise<{ code: number; reason: string }>;
  #waiters: Array<{ test: (f: Frame) => boolean; resolve: (f: Frame) => void; reject: (e: Error) => void }> = [];
  #untaken: Frame[] = [];
  #ids = 0;

  constructor(url: string, protocols?: string | string[], options?: ClientOptions) {
    this.ws = new WebSocket(url, protocols, options);
    this.opened = new Promise((resolve, reject) => {
      this.ws.once('open', () => resolve());
      this.ws.once('error', reject);
      this.ws.once('unexpected-response', (_req, res) => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode })));
    });
    this.opened.catch(() => {});
    this.closed = new Promise((resolve) => {
      this.ws.once('close', (code, reason) => {
        for (const w of this.#waiters.splice(0)) w.reject(new Error(`closed ${code} ${reason.toString()} while waiting`));
        resolve({ code, reason: reason.toString() });
      });
    });
    this.ws.on('error', () => {});
    this.ws.on('message', (data, isBinary) => {
      if (isBinary) {
        this.binary.push(data as Buffer);
        return;
      }
      let frame: Frame;
      try {
        frame = JSON.parse(data.toString());
      } catch {
        frame = { type: '__raw__', data: data.toString() };
      }
      this.frames.push(frame);
      const waiter = this.#waiters.findIndex((w) => w.test(frame));
      if (waiter === -1) this.#untaken.push(frame);
      else this.#waiters.splice(waiter, 1)[0]!.resolve(frame);
    });
  }

  /**
   * Resolves with the first frame not yet taken (received or to come) that passes `test`, and
   * takes it. Frames it passes over stay available to later calls.
   */
  next(test: (f: Frame) => boolean = () => true, what = 'frame'): Promise<Frame> {
    const i = this.#untaken.findIndex(test);
    if (i !== -1) return Promise.resolve(this.#untaken.splice(i, 1)[0]!);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}; got ${JSON.stringify(this.frames.slice(-5))}`)), 5000);
      this.#waiters.push({
        test,
        resolve: (f) => {
          clearTimeout(timer);
          resolve(f);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
    });
  }

  nextOf(type: string, extra: (f: Frame) => boolean = () => true): Promise<Frame> {
    return this.next((f) => f.type === type && extra(f), type);
  }

  sendJson(value: unknown): void {
    this.ws.send(JSON.stringify(value));
  }

  /** Sends a request with a fresh id and resolves with its Ack or Error. */
  async request(type: string, data: unknown): Promise<Frame> {
    const id = `r${++this.#ids}`;
    this.sendJson({ type, data, id });
    return this.next((f) => (f.type === 'Ack' && f.data?.message_id === id) || (f.type === 'Error' && f.data?.details?.message_id === id), `reply to ${id}`);
  }

  /**
   * A WebSocket ping answered by its pong, on this connection: every frame the server wrote
   * before the pong has arrived and is in `frames`. To show that nothing was sent, call it once
   * the server has flushed what it queued in that turn (e.g. after another connection received
   * the message): the pong is written at once, frames leave at the end of the turn.
   */
  roundTrip(): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('no pong')), 5000);
      this.ws.once('pong', () => {
        clearTimeout(timer);
        resolve();
      });
      this.ws.ping();
    });
  }

  close(): Promise<{ code: number; reason: string }> {
    if (this.ws.readyState === WebSocket.OPEN || this.ws.readyState === WebSocket.CONNECTING) this.ws.close();
    return this.closed;
  }
}

/** Opens a client and waits for the envelope welcome. */
export async function connect(url: string, protocols?: string | string[], options?: ClientOptions): Promise<Client> {
  const client = new Client(url, protocols, options);
  await client.opened;
  await client.nextOf('Status', (f) => f.data.status === 'connected');
  return client;
}

/** Resolves once `fn` returns true, checking on each turn of the event loop (bounded). */
export async function until(fn: () => boolean, what = 'condition', timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setImmediate(r));
  }
}

/** A plain authenticate callback for tests: token "<id>:<grant>[,<grant>…]". */
export const tokenAuth: BrokerOptions['authenticate'] = ({ credentials }) => {
  if (credentials === undefined) return null;
  const [id, grants] = credentials.token.split(':');
  if (!id || id === 'bad') return null;
  return {
    id,
    grants: (grants ?? '#').split(',').map((g) => {
      const [topic, access] = g.split('=');
      return { topic: topic!, access: access === 'r' ? 'read' : 'readwrite' };
    }),
  };
};

/** An authenticate callback for tests: token `<id>@<expiresAt>`, that principal, expiring then. */
export const expiringAuth = ({ credentials }: { credentials?: { token: string } }) => {
  if (credentials === undefined) return null;
  const [id, at] = credentials.token.split('@');
  return { id: id!, expiresAt: Number(at) };
};

/** Sends `text` and resolves with the next text frame the client receives. */
export function ask(client: Client, text: string): Promise<string> {
  const reply = new Promise<string>((resolve) => client.ws.once('message', (d) => resolve(d.toString())));
  client.ws.send(text);
  return reply;
}

/** An authenticate that holds every handshake open until `release(principal)` decides them all. */
export function heldAuthenticate(): { authenticate: BrokerOptions['authenticate']; release: (principal: Principal | null) => void } {
  let release!: (principal: Principal | null) => void;
  const decided = new Promise<Principal | null>((resolve) => (release = resolve));
  return { authenticate: () => decided, release };
}

/** A broker serving `protocol` (default: the envelope) on /ws, authenticating with tokenAuth. */
export function startEnvelope(extra: Partial<BrokerOptions> = {}, protocol: Protocol = envelope()): Promise<Running> {
  return start({ endpoints: [{ path: '/ws', protocol }], authenticate: tokenAuth, ...extra });
}

/** Connects to /ws with token "<id>:<grants>" (see tokenAuth) and waits for the welcome. */
export function connectAs(running: Running, token: string): Promise<Client> {
  return connect(running.url(`/ws?token=${encodeURIComponent(token)}`));
}
