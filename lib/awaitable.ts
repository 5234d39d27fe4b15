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
