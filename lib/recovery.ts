/**
 * Recovery: a client that subscribes with the last offset it saw gets what it missed from the
 * store, then live messages, with no gap and no duplicate. Live deliveries of the topic are held
 * in the connection's outbox from the moment the subscription exists and released after the
 * replay, keeping only offsets the replay did not cover.
 */
import type { EventSink } from './events.js';
import type { ResolvedOptions } from './options.js';
import type { Router } from './router.js';
import type { Session } from './session.js';
import type { HistoryPosition, Store } from './store.js';
import { guardStore } from './store-guard.js';

export class Recovery {
  readonly #history: NonNullable<ResolvedOptions['history']> | undefined;
  readonly #timeoutMs: number;
  readonly #store: Store;
  readonly #router: Router;
  readonly #events: EventSink;

  constructor(options: ResolvedOptions, store: Store, router: Router, events: EventSink) {
    this.#history = options.history;
    this.#timeoutMs = options.storeTimeoutMs;
    this.#store = store;
    this.#router = router;
    this.#events = events;
  }

  /** Starts holding live deliveries of `topics` for `session`; call before subscribing it. */
  hold(session: Session, topics: string[]): void {
    session.outbox.hold(topics);
  }

  /**
   * Replays a topic's history after `since` to one connection. `complete` is false if some of it
   * is gone, or `since` is of another epoch (never a silent gap); `position` is where the
   * connection is after the replay (absent when the store could not be read).
   */
  async replay(session: Session, topic: string, since: HistoryPosition | number): Promise<{ complete: boolean; position?: HistoryPosition }> {
    let last = typeof since === 'number' ? since : since.offset;
    try {
      const page = await guardStore('recover', this.#timeoutMs, this.#store.readHistory(topic, { since }, this.#history!));
      // Offsets of another epoch say nothing about this one: held live messages are kept by this epoch's.
      if (typeof since !== 'number' && since.epoch !== page.epoch) last = 0;
      for (const record of page.records) {
        const { binary, ...rest } = record;
        this.#router.deliverTo(session, { kind: 'publish', ...rest, ...(binary && { binary }) });
        last = record.offset;
      }
      const offset = page.records.length > 0 ? last : page.latestOffset;
      return { complete: page.complete, position: { offset, epoch: page.epoch } };
    } catch (err) {
      this.#events.reportError(err, { during: 'recover', topic });
      return { complete: false };
    } finally {
      session.outbox.release(topic, last);
    }
  }
}
