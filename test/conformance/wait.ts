/** Bounded waits shared by the conformance suites: they poll state, they do not sleep and hope. */

/**
 * Resolves with the first value of `read` that `done` accepts, reading again every millisecond or
 * so (a backend's I/O progresses in between, and the CPU is not spun); rejects after `timeoutMs`.
 */
export async function eventually<T>(read: () => T | Promise<T>, done: (value: T) => boolean, what: string, timeoutMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await read();
    if (done(value)) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise<void>((resolve) => setTimeout(resolve, 1));
  }
}

/**
 * Resolves once the clock has passed `deadline` (ms since the epoch). Only for what nothing can be
 * observed about before it happens, such as the expiry of a queued message that reading would remove.
 */
export async function clockPast(deadline: number): Promise<void> {
  const left = deadline - Date.now();
  if (left >= 0) await new Promise<void>((resolve) => setTimeout(resolve, left + 1));
}
