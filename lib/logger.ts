/**
 * The broker's logger: `{debug, info, warn, error}(msg, ctx)`. pino (Fastify's `app.log`) and
 * bunyan take `(obj, msg)` instead and would read our context as a format argument and drop it,
 * so a pino logger is recognised and adapted, and `objectFirst()` adapts any other such logger.
 * The Fastify plugin makes the app's logger the broker's when the host gave none (`adoptLogger`).
 */
import type { Logger } from './types.js';

type Level = 'debug' | 'info' | 'warn' | 'error';

/** A logger whose methods take the context object first: pino, bunyan. */
export interface ObjectFirstLogger {
  debug(obj: Record<string, unknown>, msg?: string): void;
  info(obj: Record<string, unknown>, msg?: string): void;
  warn(obj: Record<string, unknown>, msg?: string): void;
  error(obj: Record<string, unknown>, msg?: string): void;
}

export const silentLogger: Logger = { debug() {}, info() {}, warn() {}, error() {} };

/** Adapts a `(obj, msg)` logger; an `error` in the context becomes `err`, which pino serialises. */
export function objectFirst(target: ObjectFirstLogger): Logger {
  const method =
    (level: Level) =>
    (msg: string, ctx?: Record<string, unknown>): void => {
      if (ctx === undefined) return target[level]({}, msg);
      const { error, ...rest } = ctx;
      target[level](error === undefined ? rest : { ...rest, err: error }, msg);
    };
  return { debug: method('debug'), info: method('info'), warn: method('warn'), error: method('error') };
}

/** pino's shape (and so Fastify's `app.log`): `child`, `bindings` and a `levels` table. */
function isPino(logger: object): logger is ObjectFirstLogger {
  const l = logger as { child?: unknown; bindings?: unknown; levels?: unknown };
  return typeof l.child === 'function' && typeof l.bindings === 'function' && typeof l.levels === 'object' && l.levels !== null;
}

/** The logger the broker calls: the host's, adapted when it is pino, or silent. */
export function toLogger(logger: Logger | ObjectFirstLogger | undefined): Logger {
  if (logger === undefined) return silentLogger;
  if (isPino(logger)) return objectFirst(logger);
  return logger as Logger;
}

/** The broker's logger behind one level of indirection, so an adapter can supply a default later. */
export class LoggerSlot implements Logger {
  #target: Logger;
  readonly #given: boolean;

  constructor(logger: Logger | ObjectFirstLogger | undefined) {
    this.#target = toLogger(logger);
    this.#given = logger !== undefined;
  }

  /** Uses `logger` unless the host gave the broker one. Returns whether it was adopted. */
  adopt(logger: Logger | ObjectFirstLogger): boolean {
    if (this.#given) return false;
    this.#target = toLogger(logger);
    return true;
  }

  debug(msg: string, ctx?: Record<string, unknown>): void {
    this.#target.debug(msg, ctx);
  }
  info(msg: string, ctx?: Record<string, unknown>): void {
    this.#target.info(msg, ctx);
  }
  warn(msg: string, ctx?: Record<string, unknown>): void {
    this.#target.warn(msg, ctx);
  }
  error(msg: string, ctx?: Record<string, unknown>): void {
    this.#target.error(msg, ctx);
  }
}

const slots = new WeakMap<object, LoggerSlot>();

/** Records a broker's logger slot (the broker's constructor does). */
export function registerLoggerSlot(broker: object, slot: LoggerSlot): void {
  slots.set(broker, slot);
}

/**
 * Makes `logger` the broker's logger if the broker was created without one (the Fastify plugin
 * adopts `app.log`). pino loggers are adapted. Returns whether it was adopted.
 */
export function adoptLogger(broker: object, logger: Logger | ObjectFirstLogger): boolean {
  return slots.get(broker)?.adopt(logger) ?? false;
}
