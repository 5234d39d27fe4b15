/**
 * Access checks: the host's `authorize` (or the built-in grants) for a connection's action, and
 * which topics keep history. Both answer synchronously whenever they can, so a Broadcast with
 * the default authorizer costs no promise.
 */
import { LRUCache } from 'lru-cache';
import { isThenable, type Awaitable } from './awaitable.js';
import { BrokerError } from './errors.js';
import { grantsAllow } from './grants.js';
import type { ResolvedOptions } from './options.js';
import type { Session } from './session.js';
import { covers } from './topics.js';
import type { Action, Authorize } from './types.js';

const MAX_TARGET_LENGTH = 256;

export class Access {
  readonly #options: ResolvedOptions;
  readonly #authorize: Authorize | undefined;
  readonly #report: (error: unknown, context: Record<string, unknown>) => void;
  readonly #historyTopics = new LRUCache<string, boolean>({ max: 10_000 });

  constructor(options: ResolvedOptions, authorize: Authorize | undefined, report: (error: unknown, context: Record<string, unknown>) => void) {
    this.#options = options;
    this.#authorize = authorize;
    this.#report = report;
  }

  /** The verdict, synchronously when the grants model or a synchronous `authorize` decides. */
  allowed(session: Session, action: Action, topic: string): Awaitable<boolean> {
    const authorize = session.endpoint.authorize ?? this.#authorize;
    const principal = session.principal;
    if (authorize === undefined) return grantsAllow(this.#options.syntax, principal.grants, action, topic);
    const failed = (err: unknown): never => {
      this.#report(err, { during: 'authorize', action, topic, principal: principal.id });
      throw new BrokerError('SY_ERR_HOOK', 'authorization failed', { cause: err });
    };
    try {
      const verdict = authorize(principal, action, topic, { params: session.params, syntax: this.#options.syntax });
      return isThenable(verdict) ? Promise.resolve(verdict).then((v) => v === true, failed) : verdict === true;
    } catch (err) {
      return failed(err);
    }
  }

  /** Whether a topic keeps history; the verdict depends on the topic alone, so it is cached (bounded). */
  keepsHistory(topic: string): boolean {
    const history = this.#options.history;
    if (history === undefined) return false;
    let keeps = this.#historyTopics.get(topic);
    if (keeps === undefined) {
      keeps = history.topics.some((p) => covers(this.#options.syntax, p, topic));
      this.#historyTopics.set(topic, keeps);
    }
    return keeps;
  }
}

/** A principal id as a direct message, notify or presence target. */
export function assertTarget(target: unknown): asserts target is string {
  if (typeof target !== 'string' || target === '' || target.length > MAX_TARGET_LENGTH) {
    throw new BrokerError('SY_ERR_BAD_FRAME', `target must be a non-empty string of at most ${MAX_TARGET_LENGTH} characters`);
  }
}
