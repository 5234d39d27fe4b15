/**
 * Hot paths stay synchronous while every step is (grants, the memory store) and become
 * asynchronous only where a host hook or a backend returns a promise: a Broadcast with the
 * default authorizer costs no promise and no microtask.
 */
export type Awaitable<T> = T | PromiseLike<T>;

export function isThenable<T>(value: Awaitable<T> | unknown): value is PromiseLike<T> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<T>).then === 'function';
}

/** `fn(value)`, after `value` settles if it is a promise. */
export function andThen<T, R>(value: Awaitable<T>, fn: (value: T) => Awaitable<R>): Awaitable<R> {
  return isThenable(value) ? Promise.resolve(value).then(fn) : fn(value);
}

/** Promises of frames that need not hold back the frames after them (see `pipelined`). */
const PIPELINED = new WeakSet<object>();

/**
 * Marks `promise` as pipelined: a publish that waits only on the store's append. The inbox goes
 * on with the connection's next frames meanwhile (bounded by `limits.maxInflight`); the
 * dispatcher keeps deliveries of each topic in the order the appends were issued.
 */
export function pipelined<T>(promise: Promise<T>): Promise<T> {
  PIPELINED.add(promise);
  return promise;
}

export function isPipelined(value: unknown): boolean {
  return typeof value === 'object' && value !== null && PIPELINED.has(value);
}
