/**
 * What RedisBus and NatsBus share: the frame on the wire, the own-message filter, the probe of an
 * idle subscription, and the down → gap bookkeeping a BusObserver hears. Transport only: which
 * messages mean what is the broker's business (lib/cluster.ts).
 *
 * Frame: `<node id>\n<body>`, one UTF-8 string. The body is a BusMessage as JSON (serialised
 * once per publish, whatever the number of nodes), a JSON array of them, or `?<n>` for a probe.
 * Every node hears every frame on the channel, its own included (Redis and NATS both echo); the
 * node id in front lets a node drop its own frames and other nodes' probes without parsing JSON.
 * Binary data travels as the message's base64 `binary` field, so the frame stays valid UTF-8.
 *
 * Messages a node publishes in one turn of the event loop leave in one frame (an array, up to
 * BATCH_CHARS; a lone message as itself), at the end of the turn: one bus publish, one write and,
 * on every receiving node, one pub/sub message to take apart instead of one per message. Order is
 * kept (a frame's messages are handled in array order, frames in the order they were sent).
 */
import type { BusHandler, BusMessage, BusObserver } from 'switchyard';

export interface ProbeOptions {
  /**
   * How long the subscription may stay silent before the node publishes a probe to itself, in ms.
   * 0 turns probing off. Default 5000.
   */
  probeIntervalMs?: number;
  /** How long a probe may take to come back before the subscribing connection is rebuilt, in ms. Default 3000. */
  probeTimeoutMs?: number;
}

/** A frame holds at most this many characters of messages (one bigger message goes alone). */
export const BATCH_CHARS = 64 * 1024;

export interface LinkTransport {
  /** Publishes one frame; rejects when it cannot. */
  send(frame: string): Promise<void>;
  /** Drops the subscribing connection and connects it again (the transport resubscribes and calls `up`). */
  rebuild(): void;
}

function positive(name: string, value: number | undefined, fallback: number, zeroAllowed: boolean): number {
  const v = value ?? fallback;
  if (!Number.isFinite(v) || v < 0 || (v === 0 && !zeroAllowed)) throw new TypeError(`${name} must be a ${zeroAllowed ? 'non-negative' : 'positive'} number of ms, got ${String(value)}`);
  return v;
}

export function resolveProbe(options: ProbeOptions): { intervalMs: number; timeoutMs: number } {
  return {
    intervalMs: positive('probeIntervalMs', options.probeIntervalMs, 5000, true),
    timeoutMs: positive('probeTimeoutMs', options.probeTimeoutMs, 3000, false),
  };
}

/** One started bus's link: frames in and out, probes, and the state its observer hears about. */
export class Link {
  readonly #prefix: string;
  readonly #handler: BusHandler;
  readonly #observer: BusObserver;
  readonly #transport: LinkTransport;
  readonly #probe: { intervalMs: number; timeoutMs: number };
  /** Starting until the first subscription is confirmed; then up or down. */
  #state: 'starting' | 'up' | 'down' = 'starting';
  /** When the link went down (ms since the epoch), while down. */
  #downSince = 0;
  #downReason = '';
  #lastHeard = Date.now();
  #probeSeq = 0;
  /** The probe in flight: its number and the timer that gives up on it. */
  #pending: { seq: number; timer: NodeJS.Timeout } | null = null;
  #ticker: NodeJS.Timeout | undefined;
  #closed = false;
  /** Messages of this turn not sent yet (JSON each), their length, and the promise they share. */
  #batch: string[] = [];
  #batchChars = 0;
  #batchSent: { promise: Promise<void>; resolve: () => void; reject: (err: unknown) => void } | null = null;

  constructor(nodeId: string, handler: BusHandler, observer: BusObserver, transport: LinkTransport, probe: { intervalMs: number; timeoutMs: number }) {
    // The id ends at the first newline, so one inside it would cut it short.
    this.#prefix = `${nodeId.replaceAll('\n', ' ')}\n`;
    this.#handler = handler;
    this.#observer = observer;
    this.#transport = transport;
    this.#probe = probe;
    if (probe.intervalMs > 0) {
      // Checked a few times per interval so a silent subscription is probed within ~1.25 intervals.
      this.#ticker = setInterval(() => this.#tick(), Math.max(10, Math.floor(probe.intervalMs / 4)));
      this.#ticker.unref();
    }
  }

  /**
   * Publishes a message with the others of this turn, in one frame at the end of the turn.
   * Resolves once that frame is published; rejects (every message of it) if it cannot be.
   */
  post(message: BusMessage): Promise<void> {
    const json = JSON.stringify(message);
    if (this.#batchChars + json.length > BATCH_CHARS && this.#batch.length > 0) this.#flush();
    this.#batch.push(json);
    this.#batchChars += json.length + 1;
    if (this.#batchSent === null) {
      let resolve!: () => void;
      let reject!: (err: unknown) => void;
      const promise = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      this.#batchSent = { promise, resolve, reject };
      setImmediate(() => this.#flush());
    }
    return this.#batchSent.promise;
  }

  #flush(): void {
    const batch = this.#batch;
    const sent = this.#batchSent;
    if (batch.length === 0 || sent === null) return;
    this.#batch = [];
    this.#batchChars = 0;
    this.#batchSent = null;
    const frame = batch.length === 1 ? this.#prefix + batch[0] : `${this.#prefix}[${batch.join(',')}]`;
    this.#transport.send(frame).then(sent.resolve, sent.reject);
  }

  /** A frame arrived on the subscription. */
  receive(frame: string): void {
    this.#lastHeard = Date.now();
    if (frame.startsWith(this.#prefix)) {
      if (frame.charCodeAt(this.#prefix.length) === 0x3f /* ? */) this.#probeBack(frame.slice(this.#prefix.length + 1));
      return; // our own message: a bus never returns it to its node
    }
    const nl = frame.indexOf('\n');
    if (nl === -1) {
      this.#report(new Error(`unreadable bus frame (no node id): ${frame.slice(0, 40)}`));
      return;
    }
    if (frame.charCodeAt(nl + 1) === 0x3f) return; // another node's probe
    let message: BusMessage | BusMessage[];
    try {
      message = JSON.parse(frame.slice(nl + 1)) as BusMessage | BusMessage[];
    } catch (err) {
      this.#report(new Error(`unreadable bus frame from ${frame.slice(0, nl)}`, { cause: err }));
      return;
    }
    if (!Array.isArray(message)) {
      this.#handler(message);
      return;
    }
    for (const m of message) {
      try {
        this.#handler(m);
      } catch (err) {
        // One message's failure does not cost the ones after it in the frame.
        this.#report(err instanceof Error ? err : new Error(String(err)));
      }
    }
  }

  /** The subscribing connection is lost: the first call after being up starts a gap. */
  down(reason: string): void {
    if (this.#closed || this.#state !== 'up') return;
    this.#goDown(reason);
  }

  /** start() gave up waiting for the first subscription: the node runs alone until it comes. */
  startFailed(reason: string): void {
    if (this.#closed || this.#state !== 'starting') return;
    this.#goDown(reason);
  }

  #goDown(reason: string): void {
    this.#state = 'down';
    this.#downSince = Date.now();
    this.#downReason = reason;
    this.#cancelProbe();
    this.#guard(() => this.#observer.down?.({ since: this.#downSince, reason }));
  }

  /** The subscription is confirmed (again): ends the gap, if there was one. */
  up(): void {
    this.#lastHeard = Date.now();
    const was = this.#state;
    if (this.#closed || was === 'up') return;
    this.#state = 'up';
    if (was === 'starting') return;
    const since = this.#downSince;
    const until = Date.now();
    this.#guard(() => this.#observer.gap?.({ since, until, durationMs: until - since, reason: this.#downReason }));
  }

  /**
   * A transport error. While the link is down, connection errors repeat on every reconnect
   * attempt and say nothing new (`down` said it): only errors while up are passed on.
   */
  error(err: unknown): void {
    if (this.#state === 'up' && !this.#closed) this.#report(err instanceof Error ? err : new Error(String(err)));
  }

  /** Sends what this turn queued now (before the transport closes). */
  drain(): void {
    this.#flush();
  }

  close(): void {
    this.#flush();
    this.#closed = true;
    clearInterval(this.#ticker);
    this.#cancelProbe();
  }

  #tick(): void {
    if (this.#closed || this.#pending !== null || this.#state !== 'up') return;
    if (Date.now() - this.#lastHeard < this.#probe.intervalMs) return;
    const seq = ++this.#probeSeq;
    const timer = setTimeout(() => {
      if (this.#pending?.seq !== seq) return;
      this.#pending = null;
      // A publish that never came back: the subscription is silent although the socket may look
      // open. Rebuild it; the transport resubscribes and calls up(), which reports the gap.
      this.down(`probe not back within ${this.#probe.timeoutMs} ms`);
      this.#transport.rebuild();
    }, this.#probe.timeoutMs);
    timer.unref();
    this.#pending = { seq, timer };
    this.#transport.send(`${this.#prefix}?${seq}`).catch((err: unknown) => {
      // The publishing side failed: that says nothing of the subscription. Try again next tick.
      if (this.#pending?.seq === seq) this.#cancelProbe();
      this.#lastHeard = Date.now();
      this.#report(new Error('bus probe could not be published', { cause: err }));
    });
  }

  #probeBack(seq: string): void {
    if (this.#pending !== null && String(this.#pending.seq) === seq) this.#cancelProbe();
  }

  #cancelProbe(): void {
    if (this.#pending !== null) clearTimeout(this.#pending.timer);
    this.#pending = null;
  }

  #report(err: Error): void {
    this.#guard(() => this.#observer.error?.(err));
  }

  /** Observer code is the host's: a throw there must not stop the bus. */
  #guard(call: () => void): void {
    try {
      call();
    } catch {
      // Nothing to report it to: the observer is the reporting channel.
    }
  }
}
