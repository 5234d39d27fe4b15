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
import type { Store } from './store.js';

export class Recovery {
  readonly #history: NonNullable<ResolvedOptions['history']> | undefined;
  readonly #store: Store;
  readonly #router: Router;
  readonly #events: EventSink;

  constructor(options: ResolvedOptions, store: Store, router: Router, events: EventSink) {
    this.#history = options.history;
    this.#store = store;
    this.#router = router;
    this.#events = events;
  }

  /** Starts holding live deliveries of `topics` for `session`; call before subscribing it. */
  hold(session: Session, topics: string[]): void {
    session.outbox.hold(topics);
  }

  /** Replays a topic's history after `since` to one connection; false if some of it is gone. */
  async replay(session: Session, topic: string, since: number): Promise<boolean> {
    let last = since;
    try {
      const page = await this.#store.readHistory(topic, { since }, this.#history!);
      for (const record of page.records) {
        const { binary, ...rest } = record;
        this.#router.deliverTo(session, { kind: 'publish', ...rest, ...(binary && { binary }) });
        last = record.offset;
      }
      return page.complete;
    } catch (err) {
      this.#events.reportError(err, { during: 'recover', topic });
      return false;
    } finally {
      session.outbox.release(topic, last);
    }
  }
}
