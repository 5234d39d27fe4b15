/**
 * Local delivery: the topic index, fan-out of one delivery to every matching connection, and
 * the once-per-turn flush. A delivery is encoded at most once per protocol and the same frame
 * (Buffer or string) is queued on every connection; nothing per subscriber allocates. With
 * permessage-deflate, the compressed frame is one more per endpoint (and window size), built
 * from the uncompressed one and shared the same way.
 */
import { deflateFrame } from './deflate.js';
import { encodeFrame, FRAME_VARIANTS, textFrame, type Frame } from './frame.js';
import { passesFilter, type CompiledFilter } from './filter.js';
import type { Delivery } from './protocol.js';
import type { FlushScheduler, Outbox } from './outbox.js';
import type { Session } from './session.js';
import { TopicIndex } from './topic-index.js';
import type { TopicSyntax } from './topics.js';

export class Router implements FlushScheduler {
  readonly #index: TopicIndex<Session, CompiledFilter | null>;
  #seq = 0;
  #dirty: Outbox[] = [];
  #flushScheduled = false;
  /** Deliveries handed to connections so far. */
  delivered = 0;
  /** Frames compressed so far (once per delivery per endpoint and window size, not per connection). */
  deflated = 0;

  readonly #onError: (error: unknown, context: Record<string, unknown>) => void;

  constructor(syntax: TopicSyntax, onError: (error: unknown, context: Record<string, unknown>) => void) {
    this.#index = new TopicIndex(syntax);
    this.#onError = onError;
  }

  /** Distinct patterns subscribed. */
  get patterns(): number {
    return this.#index.size;
  }

  add(pattern: string, session: Session, filter: CompiledFilter | null): void {
    this.#index.add(pattern, session, filter);
  }

  remove(pattern: string, session: Session): void {
    this.#index.remove(pattern, session);
  }

  /** Whether a connection here subscribes to something matching the concrete `topic`. */
  has(topic: string): boolean {
    return this.#index.has(topic);
  }

  /**
   * Hands a delivery to every local subscription matching `topic` except `exclude`'s; a
   * connection with overlapping subscriptions gets it once. Returns the connections reached.
   */
  fanout(topic: string, delivery: Delivery, exclude: Session | null): number {
    const seq = ++this.#seq;
    const frames: Array<Frame | null | undefined> = [];
    const payload = delivery.kind === 'publish' ? delivery.payload : undefined;
    const offset = delivery.kind === 'publish' ? delivery.offset : undefined;
    let recipients = 0;
    this.#index.match(topic, (session, filter) => {
      if (session === exclude || session.marked(seq)) return;
      if (filter !== null && !passesFilter(filter, payload)) return;
      session.mark(seq);
      const slot = session.frameSlot;
      let frame = frames[slot];
      if (frame === undefined) {
        frame = slot % FRAME_VARIANTS === 0 ? this.#encode(session, delivery) : this.#compressed(session, delivery, frames);
        frames[slot] = frame;
      }
      if (frame !== null && session.outbox.deliver(frame, topic, offset)) recipients++;
    });
    this.delivered += recipients;
    return recipients;
  }

  /** Sends one delivery to one connection (direct messages, notifications, replays). */
  deliverTo(session: Session, delivery: Delivery): boolean {
    const frame = session.frameSlot % FRAME_VARIANTS === 0 ? this.#encode(session, delivery) : this.#compressed(session, delivery, []);
    const sent = frame !== null && session.outbox.enqueue(frame);
    if (sent) this.delivered++;
    return sent;
  }

  /**
   * A protocol's frame for a delivery. One that throws loses that delivery for its endpoint
   * only (reported), never the fan-out to other endpoints or the publisher's answer.
   */
  #encode(session: Session, delivery: Delivery): Frame | null {
    try {
      return frameOf(session.endpoint.protocol.encode(delivery));
    } catch (err) {
      this.#onError(err, { during: 'encode', protocol: session.endpoint.protocol.name, kind: delivery.kind });
      return null;
    }
  }

  /** The compressed frame for a connection's slot, from the endpoint's uncompressed one (built here if not yet). */
  #compressed(session: Session, delivery: Delivery, frames: Array<Frame | null | undefined>): Frame | null {
    const slot = session.frameSlot;
    const plainSlot = slot - (slot % FRAME_VARIANTS);
    let plain = frames[plainSlot];
    if (plain === undefined) {
      plain = this.#encode(session, delivery);
      frames[plainSlot] = plain;
    }
    if (plain === null) return null;
    const frame = deflateFrame(plain, (slot % FRAME_VARIANTS) + 7, session.endpoint.compression!);
    if (frame !== plain) this.deflated++;
    return frame;
  }

  /** Called by a connection's outbox when its queue goes from empty to not empty. */
  scheduleFlush(outbox: Outbox): void {
    this.#dirty.push(outbox);
    if (this.#flushScheduled) return;
    this.#flushScheduled = true;
    // After the current I/O phase, so a burst of frames read in one chunk leaves as one write,
    // with no timer in between.
    setImmediate(this.#flushAll);
  }

  readonly #flushAll = (): void => {
    this.#flushScheduled = false;
    const dirty = this.#dirty;
    this.#dirty = [];
    for (const outbox of dirty) outbox.flush();
  };
}

function frameOf(body: string | Buffer | null): Frame | null {
  if (body === null) return null;
  return typeof body === 'string' ? textFrame(body) : encodeFrame(body, true);
}
