/** Token bucket, refilled lazily on each take: no timer per connection. */
export class TokenBucket {
  readonly #rate: number;
  readonly #burst: number;
  #tokens: number;
  #last: number;

  /** `rate` tokens per second, holding at most `burst`. */
  constructor(rate: number, burst: number, now = Date.now()) {
    this.#rate = rate;
    this.#burst = burst;
    this.#tokens = burst;
    this.#last = now;
  }

  /** Takes one token; returns 0 on success, else the milliseconds until one is available. */
  take(now = Date.now()): number {
    const elapsed = now - this.#last;
    if (elapsed > 0) {
      this.#tokens = Math.min(this.#burst, this.#tokens + (elapsed * this.#rate) / 1000);
      this.#last = now;
    }
    if (this.#tokens >= 1) {
      this.#tokens -= 1;
      return 0;
    }
    return Math.ceil(((1 - this.#tokens) * 1000) / this.#rate);
  }
}

/** Slots the abuse window is cut into: memory and judging cost are fixed by this. */
const SLOTS = 10;

/**
 * Judges rate-limit abuse over a sliding window (DESIGN.md: close 1008 on sustained abuse).
 * Counting refusals in a row, reset by every accepted frame, never closed a client at 10× the
 * limit: the refill lets one frame in every so often (issue 16). A connection is abusive when,
 * over the last `windowMs`, at least half of its frames were refused, at least `strikes` of
 * them, and the refusals fall in at least half of the window's slots: sustained, not one burst.
 * Created on a connection's first refusal; times are passed in, so tests drive the clock.
 */
export class AbuseMeter {
  readonly #slotMs: number;
  readonly #strikes: number;
  readonly #accepted = new Uint32Array(SLOTS);
  readonly #refused = new Uint32Array(SLOTS);
  /** The newest slot, as a count of slots since the epoch. */
  #slot: number;

  constructor(windowMs: number, strikes: number, now: number) {
    this.#slotMs = Math.max(1, windowMs / SLOTS);
    this.#strikes = strikes;
    this.#slot = Math.floor(now / this.#slotMs);
  }

  /** Counts one frame; returns true when the connection is to be closed for abuse. */
  record(refused: boolean, now: number): boolean {
    const slot = Math.floor(now / this.#slotMs);
    if (slot > this.#slot) {
      // Clear the slots that fell out of the window since the last frame.
      for (let s = Math.max(this.#slot + 1, slot - SLOTS + 1); s <= slot; s++) {
        this.#accepted[s % SLOTS] = 0;
        this.#refused[s % SLOTS] = 0;
      }
      this.#slot = slot;
    }
    const i = this.#slot % SLOTS;
    if (!refused) {
      this.#accepted[i]!++;
      return false;
    }
    this.#refused[i]!++;
    let refusedTotal = 0;
    let total = 0;
    let slotsRefused = 0;
    for (let k = 0; k < SLOTS; k++) {
      const r = this.#refused[k]!;
      refusedTotal += r;
      total += r + this.#accepted[k]!;
      if (r > 0) slotsRefused++;
    }
    return refusedTotal >= this.#strikes && refusedTotal * 2 >= total && slotsRefused * 2 >= SLOTS;
  }
}
