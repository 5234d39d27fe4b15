/**
 * Requests in flight on one connection. The server answers a connection's requests one at a
 * time, in order, and sends a request's documented replies (Status, History, Presence, Pong)
 * before its Ack (README "The envelope protocol"), so a reply without an id belongs to the oldest
 * request still waiting. A request that timed out stays in the table (as dead) until its answer
 * comes, so that answer cannot be taken for the next request's.
 */
import type { AckData, ErrorData } from '../protocols/envelope-frames.js';
import { SwitchyardError } from './errors.js';

/** Which id-less frame answers a request (besides its Ack): `binary` is a `Status binary_received`, which is its only answer. */
export type ReplyKind = 'subscribed' | 'unsubscribed' | 'History' | 'Presence' | 'Pong' | 'binary';

export interface RequestResult {
  ack: AckData | undefined;
  replies: unknown[];
}

export interface Pending {
  /** Null for binary frames, which carry no id. */
  id: string | null;
  frame: string | Uint8Array;
  expects: ReplyKind | undefined;
  /** For Presence queries: the users asked about (other Presence frames are deliveries). */
  users?: ReadonlySet<string>;
  retry: boolean;
  replies: unknown[];
  dead: boolean;
  timer: ReturnType<typeof setTimeout> | undefined;
  resolve(result: RequestResult): void;
  reject(error: SwitchyardError): void;
}

export class RequestTable {
  #order: Pending[] = [];
  readonly #byId = new Map<string, Pending>();

  get size(): number {
    return this.#order.length;
  }

  add(pending: Pending): void {
    this.#order.push(pending);
    if (pending.id !== null) this.#byId.set(pending.id, pending);
  }

  /** Rejects a request now (timeout); its answer, when it comes, is still consumed. */
  expire(pending: Pending, error: SwitchyardError): void {
    if (pending.dead) return;
    pending.dead = true;
    pending.reject(error);
  }

  ack(data: AckData): boolean {
    const pending = this.#byId.get(data.message_id);
    if (pending === undefined) return false;
    this.#settle(pending);
    if (!pending.dead) pending.resolve({ ack: data, replies: pending.replies });
    return true;
  }

  /** An Error frame: for the request it names, else for the oldest binary frame. False when it answers none. */
  error(data: ErrorData): boolean {
    const id = data.details?.message_id;
    const pending = typeof id === 'string' ? this.#byId.get(id) : this.#order[0]?.expects === 'binary' ? this.#order[0] : undefined;
    if (pending === undefined) return false;
    this.#settle(pending);
    if (!pending.dead) pending.reject(new SwitchyardError(data.code, data.message, data.details ?? {}));
    return true;
  }

  /** An id-less reply frame: true when it belongs to the oldest request (and was taken). */
  reply(kind: ReplyKind, data: unknown, user?: string): boolean {
    const oldest = this.#order[0];
    if (oldest === undefined || oldest.expects !== kind) return false;
    if (kind === 'Presence' && (user === undefined || oldest.users?.has(user) !== true)) return false;
    if (kind === 'binary') {
      this.#settle(oldest);
      if (!oldest.dead) oldest.resolve({ ack: undefined, replies: [data] });
      return true;
    }
    oldest.replies.push(data);
    return true;
  }

  /** The connection dropped: every request fails, except the live ones asking for a retry, which are returned. */
  drop(error: SwitchyardError): Pending[] {
    const retry: Pending[] = [];
    for (const pending of this.#order) {
      if (pending.dead) continue;
      if (pending.retry) {
        pending.replies = [];
        retry.push(pending);
      } else {
        clearTimeout(pending.timer);
        pending.dead = true;
        pending.reject(error);
      }
    }
    this.#order = [];
    this.#byId.clear();
    return retry;
  }

  #settle(pending: Pending): void {
    clearTimeout(pending.timer);
    const at = this.#order.indexOf(pending);
    if (at !== -1) this.#order.splice(at, 1);
    if (pending.id !== null) this.#byId.delete(pending.id);
  }
}
