/**
 * Store calls a client waits on are bounded: a store that fails, or does not answer within
 * `storeTimeoutMs`, gets the client Error 503 with `retry_after_ms` at once, instead of a request
 * that hangs while the backend reconnects. What does not need the store keeps flowing.
 */
import { isThenable, type Awaitable } from './awaitable.js';
import { BrokerError } from './errors.js';

/** What a client is told to wait before trying again, in milliseconds. */
export const STORE_RETRY_AFTER_MS = 1000;

export function storeUnavailable(during: string, cause: unknown): BrokerError {
  return new BrokerError('SY_ERR_STORE_UNAVAILABLE', `store unavailable (${during}), try again later`, {
    details: { retry_after_ms: STORE_RETRY_AFTER_MS },
    cause,
  });
}

/**
 * `value` as it is when the store answered synchronously (the memory store: no promise, no
 * timer, and a synchronous throw is left as it is); otherwise a promise that rejects with SY_ERR_STORE_UNAVAILABLE on the store's failure
 * or after `timeoutMs`.
 */
export function guardStore<T>(during: string, timeoutMs: number, value: Awaitable<T>): Awaitable<T> {
  // A synchronous answer (or throw) is the store's own: nothing to wait for.
  if (!isThenable(value)) return value;
  const pending = value;
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(storeUnavailable(during, new Error(`no answer within ${timeoutMs} ms`))), timeoutMs);
    pending.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (err: unknown) => {
        clearTimeout(timer);
        reject(storeUnavailable(during, err));
      },
    );
  });
}
