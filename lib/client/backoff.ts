/** Reconnect delays: "full jitter" capped exponential backoff (AWS architecture blog, 2015). */
export interface BackoffOptions {
  /** First delay's upper bound, in ms. Default 500. */
  minMs?: number;
  /** Largest delay, in ms. Default 20 000. */
  maxMs?: number;
}

/**
 * The delay before reconnect attempt `attempt` (0 for the first): uniform in
 * [0, min(maxMs, minMs · 2^attempt)], so a fleet cut off together does not return in lockstep.
 */
export function backoffDelay(attempt: number, options: BackoffOptions = {}, random: () => number = Math.random): number {
  const min = options.minMs ?? 500;
  const max = options.maxMs ?? 20_000;
  return Math.floor(random() * Math.min(max, min * 2 ** Math.min(attempt, 30)));
}
