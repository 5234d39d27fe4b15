/**
 * Presence (seed 001): a principal is online while it has a connection. Changes are published
 * on the topic `$presence<sep><id>`, so who may watch whom is an ordinary subscribe permission,
 * and wildcards (`$presence/+`) watch many. MQTT keeps `$` topics out of `#` and `+` at the
 * first level, so a catch-all grant does not leak presence by accident.
 */
import { LRUCache } from 'lru-cache';
import type { PresenceInfo } from './protocol.js';
import type { TopicSyntax } from './topics.js';
import type { Principal } from './types.js';

export const PRESENCE_ROOT = '$presence';

export class PresenceTracker {
  readonly #prefix: string;
  /** When principals that went offline were last seen; bounded. */
  readonly #lastSeen = new LRUCache<string, number>({ max: 100_000 });

  constructor(syntax: TopicSyntax) {
    this.#prefix = PRESENCE_ROOT + syntax.separator;
  }

  topicOf(principalId: string): string {
    return this.#prefix + principalId;
  }

  isPresenceTopic(topic: string): boolean {
    return topic.startsWith(this.#prefix);
  }

  /** Records what `current()` reads later (when a principal went offline); returns the time. */
  seen(principal: Principal, online: boolean): number {
    const now = Date.now();
    if (!online) this.#lastSeen.set(principal.id, now);
    return now;
  }

  /** The event for a principal that just came online (`principal` set) or went offline. */
  event(principal: Principal, online: boolean): PresenceInfo {
    const now = this.seen(principal, online);
    return { user_id: principal.id, status: online ? 'online' : 'offline', last_seen: now, metadata: metadataOf(principal) };
  }

  /** Current presence; `connected` is one of the principal's live connections, if any. */
  current(principalId: string, connected: Principal | undefined): PresenceInfo {
    if (connected !== undefined) {
      return { user_id: principalId, status: 'online', last_seen: Date.now(), metadata: metadataOf(connected) };
    }
    return { user_id: principalId, status: 'offline', last_seen: this.#lastSeen.get(principalId) ?? null, metadata: {} };
  }
}

function metadataOf(principal: Principal): Record<string, unknown> {
  const meta = principal.data?.presence;
  return meta !== null && typeof meta === 'object' && !Array.isArray(meta) ? (meta as Record<string, unknown>) : {};
}
