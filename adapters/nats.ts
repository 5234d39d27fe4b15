/**
 * NatsBus: the Bus (lib/bus.ts) on core NATS, through the `nats` package.
 *
 * - One subject per broker cluster (`subject`, default `switchyard.bus`), published to and
 *   subscribed by every node: each publisher's messages stay in order across kinds, and topic
 *   matching stays in the node's own index (MQTT wildcards are never mapped onto NATS `*`/`>`).
 * - One connection does both (NATS multiplexes subscriptions on it). It can be passed in; the bus
 *   closes only a connection it opened, and opens it to reconnect forever.
 * - A reconnect is a gap: `down` when the client reports a disconnect (or a stale connection),
 *   `gap` with its duration once it is connected again and the server has confirmed the
 *   resubscription (a flush round trip). Publishes made while disconnected are buffered by the
 *   client (its `reconnectBufSize`) and sent on reconnect; what other nodes published meanwhile is
 *   not received (core NATS keeps nothing).
 * - The same probe as RedisBus finds a silent subscription and forces a reconnect.
 * - Frames as in adapters/bus-link.ts: UTF-8 JSON behind the sender's node id, the messages of one
 *   turn of the event loop in one frame (BATCH_CHARS keeps a frame far below NATS's default
 *   1 MB max_payload unless one message alone is bigger).
 */
import { connect, type ConnectionOptions, type NatsConnection, type Subscription } from 'nats';
import { BrokerError, type Bus, type BusHandler, type BusMessage, type BusObserver } from 'switchyard';
import { Link, resolveProbe, type ProbeOptions } from './bus-link.js';

export interface NatsBusOptions extends ProbeOptions {
  /**
   * How the bus connects when it opens its own connection: `nats` connection options. Default
   * `{ servers: '127.0.0.1:4222' }`; the bus adds `maxReconnectAttempts: -1` unless given.
   */
  connection?: ConnectionOptions;
  /** A connection to use instead of opening one. The bus does not close it. */
  nats?: NatsConnection;
  /** The subject shared by the nodes of one cluster. Default `switchyard.bus`. */
  subject?: string;
}

export class NatsBus implements Bus {
  readonly #options: NatsBusOptions;
  readonly #subject: string;
  readonly #probe: { intervalMs: number; timeoutMs: number };
  #nc: NatsConnection | null = null;
  #owned = false;
  #sub: Subscription | null = null;
  #link: Link | null = null;
  #starting: Promise<void> | null = null;
  #closed = false;

  constructor(options: NatsBusOptions = {}) {
    const subject = options.subject ?? 'switchyard.bus';
    if (typeof subject !== 'string' || subject.length === 0 || /[\s*>]/.test(subject)) {
      throw new TypeError('NatsBus: subject must be a non-empty NATS subject without wildcards or spaces');
    }
    this.#options = options;
    this.#subject = subject;
    this.#probe = resolveProbe(options);
  }

  start(nodeId: string, handler: BusHandler, observer: BusObserver = {}): Promise<void> {
    if (this.#closed) return Promise.reject(new BrokerError('SY_ERR_CLOSED', 'NatsBus is closed'));
    if (this.#starting !== null) return Promise.reject(new BrokerError('SY_ERR_OPTIONS', 'NatsBus started twice'));
    this.#starting = this.#start(nodeId, handler, observer);
    return this.#starting;
  }

  async #start(nodeId: string, handler: BusHandler, observer: BusObserver): Promise<void> {
    let nc = this.#options.nats;
    if (nc === undefined) {
      nc = await connect({ servers: '127.0.0.1:4222', maxReconnectAttempts: -1, ...this.#options.connection });
      this.#owned = true;
    }
    this.#nc = nc;
    if (this.#closed) {
      // close() ran while connecting: it could not see the connection, so release it here.
      if (this.#owned) await nc.close();
      return;
    }
    const conn = nc;
    const link = new Link(nodeId, handler, observer, {
      send: (frame) => this.#send(frame),
      rebuild: () => void conn.reconnect().catch((err: unknown) => link.error(err)),
    }, this.#probe);
    this.#link = link;
    this.#sub = conn.subscribe(this.#subject, {
      callback: (err, msg) => {
        if (err !== null) link.error(err);
        else link.receive(msg.string());
      },
    });
    void this.#watch(conn, link);
    // The server has the subscription once a round trip has come back.
    await conn.flush();
    link.up();
  }

  async #watch(nc: NatsConnection, link: Link): Promise<void> {
    for await (const status of nc.status()) {
      if (this.#closed) return;
      switch (status.type) {
        case 'disconnect':
          link.down('connection lost');
          break;
        case 'staleConnection':
          link.down('stale connection (pings not answered)');
          break;
        case 'reconnect':
          nc.flush().then(
            () => link.up(),
            (err: unknown) => link.error(err),
          );
          break;
        case 'error':
          link.error(new Error(`NATS: ${String(status.data)}`));
          break;
        default:
      }
    }
  }

  publish(message: BusMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new BrokerError('SY_ERR_CLOSED', 'NatsBus is closed'));
    if (this.#link === null) return Promise.reject(new BrokerError('SY_ERR_BACKEND', 'NatsBus is not started'));
    return this.#link.post(message);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#link?.close();
    await this.#starting?.catch(() => undefined);
    this.#sub?.unsubscribe();
    if (this.#owned) await this.#nc?.close();
  }

  async #send(frame: string): Promise<void> {
    // Synchronous in the client (it buffers); a closed connection throws, which rejects here.
    this.#nc!.publish(this.#subject, Buffer.from(frame, 'utf8'));
  }
}
