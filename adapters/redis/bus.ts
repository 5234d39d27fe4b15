/**
 * RedisBus: the Bus (lib/bus.ts) on Redis pub/sub, through ioredis.
 *
 * - One channel per broker cluster (`channel`, default `switchyard:bus`): every node publishes to
 *   it and subscribes to it. One channel keeps each publisher's messages in order across kinds (a
 *   revoke never overtakes the publish sent before it), and a node never changes its Redis
 *   subscriptions when clients subscribe: topic matching (MQTT wildcards included) stays in the
 *   node's own index, never in PSUBSCRIBE patterns. The cost: every node hears every cluster
 *   message, and drops those it has no subscriber for with one index lookup.
 * - Two connections: one publishes, one is dedicated to the subscription (Redis puts a
 *   subscribing connection in a mode where it can do nothing else). Either can be passed in; the
 *   bus closes only the connections it opened.
 * - A reconnect is a gap: the bus tells its observer `down` when the subscribing connection
 *   closes, resubscribes by itself when it is back, then tells `gap` with its duration. What
 *   other nodes published meanwhile is not received (Redis pub/sub keeps nothing).
 * - A silent connection (the socket looks open, nothing arrives) is found by a probe: when the
 *   subscription has heard nothing for `probeIntervalMs`, the node publishes a probe to itself;
 *   if it is not back within `probeTimeoutMs`, the subscribing connection is rebuilt.
 * - Frames are UTF-8 JSON behind the sender's node id (adapters/bus-link.ts); binary data is the
 *   message's base64 `binary` field. The messages of one turn of the event loop leave in one
 *   frame, so one PUBLISH carries them all.
 */
import { Redis, type RedisOptions } from 'ioredis';
import { BrokerError, type Bus, type BusHandler, type BusMessage, type BusObserver } from 'switchyard';
import { Link, resolveProbe, type ProbeOptions } from '../bus-link.js';

export interface RedisBusOptions extends ProbeOptions {
  /**
   * Where the bus connects when it opens its own connections: a `redis://` URL or ioredis options.
   * Default `redis://127.0.0.1:6379`.
   */
  connection?: string | RedisOptions;
  /** A client to publish with instead of opening one. The bus does not close it. */
  publisher?: Redis;
  /**
   * A client to subscribe with instead of opening one; it must be dedicated to this bus (Redis
   * allows nothing else on a subscribing connection). The bus does not close it, but it does
   * drop and reconnect it when a probe finds it silent.
   */
  subscriber?: Redis;
  /** The pub/sub channel shared by the nodes of one cluster. Default `switchyard:bus`. */
  channel?: string;
  /** CLIENT SETNAME of the connections the bus opens (shown by CLIENT LIST). Default `switchyard-bus`. */
  connectionName?: string;
  /** How long start() waits for both connections to be ready, in ms. Default 10000. */
  startTimeoutMs?: number;
}

interface Conn {
  redis: Redis;
  owned: boolean;
}

export class RedisBus implements Bus {
  readonly #options: RedisBusOptions;
  readonly #channel: string;
  readonly #probe: { intervalMs: number; timeoutMs: number };
  #pub: Conn | null = null;
  #sub: Conn | null = null;
  #link: Link | null = null;
  #detach: (() => void) | null = null;
  #closed = false;

  constructor(options: RedisBusOptions = {}) {
    const channel = options.channel ?? 'switchyard:bus';
    if (typeof channel !== 'string' || channel.length === 0) throw new TypeError('RedisBus: channel must be a non-empty string');
    this.#options = options;
    this.#channel = channel;
    this.#probe = resolveProbe(options);
  }

  async start(nodeId: string, handler: BusHandler, observer: BusObserver = {}): Promise<void> {
    if (this.#closed) throw new BrokerError('SY_ERR_CLOSED', 'RedisBus is closed');
    if (this.#link !== null) throw new BrokerError('SY_ERR_OPTIONS', 'RedisBus started twice');
    // Both connections exist from here on, synchronously, so a publish right after start() is
    // answered (rejected until ready, never lost in a queue) and close() always finds them.
    this.#pub = this.#options.publisher ? { redis: this.#options.publisher, owned: false } : { redis: this.#open(false), owned: true };
    this.#sub = this.#options.subscriber ? { redis: this.#options.subscriber, owned: false } : { redis: this.#open(true), owned: true };
    const sub = this.#sub.redis;
    const link = new Link(nodeId, handler, observer, {
      send: (frame) => this.#send(frame),
      rebuild: () => sub.disconnect(true),
    }, this.#probe);
    this.#link = link;

    const onMessage = (channel: string, frame: string) => {
      if (channel === this.#channel) link.receive(frame);
    };
    const onClose = () => link.down('subscribing connection closed');
    // ioredis resubscribes by itself too; subscribing again is harmless and tells us when it is done.
    const onReady = () => void this.#subscribe().then(() => link.up(), (err: unknown) => link.error(err));
    const onError = (err: unknown) => link.error(err);
    const onPubError = (err: unknown) => link.error(err);
    sub.on('message', onMessage);
    sub.on('close', onClose);
    sub.on('error', onError);
    this.#pub.redis.on('error', onPubError);
    const pub = this.#pub.redis;
    this.#detach = () => {
      sub.off('message', onMessage);
      sub.off('close', onClose);
      sub.off('ready', onReady);
      sub.off('error', onError);
      pub.off('error', onPubError);
    };

    const timeoutMs = this.#options.startTimeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new BrokerError('SY_ERR_BACKEND', `RedisBus: not connected within ${timeoutMs} ms (it keeps trying)`)), timeoutMs);
    });
    try {
      await Promise.race([Promise.all([this.#subscribe(), ready(pub)]), timeout]);
    } catch (err) {
      // Not connected yet: the node runs alone until the connection comes, then hears of the gap.
      link.startFailed('not connected at start');
      if (!this.#closed) sub.on('ready', onReady);
      throw err;
    } finally {
      clearTimeout(timer);
    }
    link.up();
    if (!this.#closed) sub.on('ready', onReady);
  }

  publish(message: BusMessage): Promise<void> {
    if (this.#closed) return Promise.reject(new BrokerError('SY_ERR_CLOSED', 'RedisBus is closed'));
    if (this.#link === null) return Promise.reject(new BrokerError('SY_ERR_BACKEND', 'RedisBus is not started'));
    return this.#link.post(message);
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#link?.close();
    this.#detach?.();
    const sub = this.#sub;
    const pub = this.#pub;
    if (sub !== null) {
      if (sub.owned) sub.redis.disconnect();
      else await sub.redis.unsubscribe(this.#channel).catch(() => undefined);
    }
    if (pub?.owned) pub.redis.disconnect();
  }

  async #send(frame: string): Promise<void> {
    await this.#pub!.redis.publish(this.#channel, frame);
  }

  async #subscribe(): Promise<void> {
    await this.#sub!.redis.subscribe(this.#channel);
  }

  #open(subscriber: boolean): Redis {
    const base = this.#options.connection ?? 'redis://127.0.0.1:6379';
    const extra: RedisOptions = {
      connectionName: this.#options.connectionName ?? 'switchyard-bus',
      // A publish while Redis is away fails at once (and the broker reports it) rather than
      // queueing without bound; the subscriber's SUBSCRIBE waits for the connection.
      enableOfflineQueue: subscriber,
      maxRetriesPerRequest: subscriber ? null : 1,
      // The link already sends one frame per turn (adapters/bus-link.ts); ioredis's own
      // auto-pipelining would only add a pipeline object per turn.
      enableAutoPipelining: false,
    };
    return typeof base === 'string' ? new Redis(base, extra) : new Redis({ ...base, ...extra });
  }
}

function ready(redis: Redis): Promise<void> {
  if (redis.status === 'ready') return Promise.resolve();
  return new Promise((resolve) => redis.once('ready', () => resolve()));
}
