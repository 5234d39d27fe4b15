/**
 * Knowing when a connection is dead before TCP says so. Browsers do not surface the server's
 * WebSocket pings, so after `idleMs` with no frame at all the client sends an application-level
 * Ping; no answer within `timeoutMs` drops the connection. The browser's `offline` event drops it
 * at once and `online` reconnects without waiting out the backoff.
 */
import { SwitchyardError } from './errors.js';
import type { ClientOptions } from './types.js';

export interface LivenessHost {
  ping(timeoutMs: number): Promise<unknown>;
  connected(): boolean;
  drop(reason: string): void;
  online(): void;
}

type Listening = { addEventListener?: (t: string, f: () => void) => void; removeEventListener?: (t: string, f: () => void) => void };

export class Liveness {
  readonly #options: ClientOptions;
  readonly #host: LivenessHost;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #lastFrameAt = 0;
  #pinging = false;
  #unlisten: (() => void) | undefined;

  constructor(options: ClientOptions, host: LivenessHost) {
    this.#options = options;
    this.#host = host;
  }

  /** A socket was opened: the idle clock starts. */
  start(): void {
    this.#lastFrameAt = Date.now();
    this.#arm();
  }

  /** A frame arrived. */
  heard(): void {
    this.#lastFrameAt = Date.now();
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#pinging = false;
  }

  /** Follows the browser's online/offline events (where they exist and `network` is not false). */
  listen(): void {
    const g = globalThis as Listening;
    if (this.#unlisten !== undefined || this.#options.network === false || typeof g.addEventListener !== 'function') return;
    const online = () => this.#host.online();
    const offline = () => this.#host.drop('offline');
    g.addEventListener('online', online);
    g.addEventListener('offline', offline);
    this.#unlisten = () => {
      g.removeEventListener?.('online', online);
      g.removeEventListener?.('offline', offline);
    };
  }

  unlisten(): void {
    this.#unlisten?.();
    this.#unlisten = undefined;
  }

  #arm(): void {
    const beat = this.#options.heartbeat;
    if (beat === false) return;
    const idleMs = beat?.idleMs ?? 25_000;
    clearTimeout(this.#timer);
    this.#timer = setTimeout(() => {
      if (Date.now() - this.#lastFrameAt < idleMs || this.#pinging) return this.#arm();
      if (!this.#host.connected()) return this.#host.drop('no welcome from the server');
      this.#pinging = true;
      this.#host.ping(beat?.timeoutMs ?? 10_000).then(
        () => {
          this.#pinging = false;
        },
        (error: unknown) => {
          this.#pinging = false;
          if (error instanceof SwitchyardError && error.code === 'TIMEOUT') this.#host.drop('heartbeat timeout');
        },
      );
      this.#arm();
    }, Math.max(10, idleMs - (Date.now() - this.#lastFrameAt)));
  }
}
