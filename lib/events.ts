/**
 * The broker's events and the one guarded path host listeners are called through: host code is
 * untrusted code, so a listener that throws is reported (as `error`, or to the logger when the
 * `error` listener is the one that threw) and changes nothing in the broker.
 */
import type { EventEmitter } from 'node:events';
import { redactContext, redactError } from './auth.js';
import type { Logger, Principal } from './types.js';

export interface ConnectionInfo {
  id: string;
  principal: Principal;
  path: string;
  params: Record<string, string>;
}

export interface BrokerEvents {
  connection: [ConnectionInfo];
  disconnect: [ConnectionInfo & { code: number; reason: string }];
  publish: [{ topic: string; messageId: string; recipients: number; from: string | null }];
  error: [Error & { context?: Record<string, unknown> }];
  close: [];
}

/** What the broker's parts use to tell the host: cheap to ask whether anyone listens. */
export interface EventSink {
  wants(event: keyof BrokerEvents): boolean;
  emit<K extends keyof BrokerEvents>(event: K, ...args: BrokerEvents[K]): void;
  reportError(error: unknown, context: Record<string, unknown>): void;
}

/** An EventSink over the façade's emitter: every listener called on its own, each throw reported. */
export class GuardedEvents implements EventSink {
  readonly #emitter: EventEmitter<BrokerEvents>;
  readonly #logger: Logger;

  constructor(emitter: EventEmitter<BrokerEvents>, logger: Logger) {
    this.#emitter = emitter;
    this.#logger = logger;
  }

  wants(event: keyof BrokerEvents): boolean {
    return this.#emitter.listenerCount(event) > 0;
  }

  emit<K extends keyof BrokerEvents>(event: K, ...args: BrokerEvents[K]): void {
    // rawListeners: calling a `once` wrapper also removes it, as emit() would.
    for (const listener of this.#emitter.rawListeners(event) as Array<(...a: BrokerEvents[K]) => unknown>) {
      try {
        listener.apply(this.#emitter, args);
      } catch (err) {
        if (event === 'error') this.#log(err, { during: 'error listener' });
        else this.reportError(err, { during: `${event} listener` });
      }
    }
  }

  reportError(error: unknown, context: Record<string, unknown>): void {
    // Redacted before it leaves: nothing switchyard reports carries a credential (issue 16).
    const err = redactError(error instanceof Error ? error : new Error(String(error))) as Error & { context?: Record<string, unknown> };
    err.context = redactContext(context);
    if (this.wants('error')) this.emit('error', err);
    else this.#log(err, err.context);
  }

  #log(error: unknown, context: Record<string, unknown>): void {
    const err = redactError(error instanceof Error ? error : new Error(String(error)));
    try {
      this.#logger.error(err.message, { ...redactContext(context), error: err });
    } catch {
      // A logger that throws has nowhere left to report to.
    }
  }
}
