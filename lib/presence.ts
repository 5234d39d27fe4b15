/**
 * Presence (seed 001): a principal is online while it has a connection. Changes are published
 * on the topic `$presence<sep><id>`, so who may watch whom is an ordinary subscribe permission,
 * and wildcards (`$presence/+`) watch many. MQTT keeps `$` topics out of `#` and `+` at the
 * first level, so a catch-all grant does not leak presence by accident.
 */
import { LRUCache } from 'lru-cache';
import type { PresenceInfo } from './protocol.js';
import type { PresenceRecord } from './registry.js';
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

  /** Records what `current()` reads later (when a principal went offline, default now); returns the time. */
  seen(principal: Principal, online: boolean, lastSeen?: number): number {
    const at = lastSeen ?? Date.now();
    if (!online) this.#lastSeen.set(principal.id, at);
    return at;
  }

  /** The event for a principal that just came online or went offline (last seen `lastSeen`, default now). */
  event(principal: Principal, online: boolean, lastSeen?: number): PresenceInfo {
    const at = this.seen(principal, online, lastSeen);
    return { user_id: principal.id, status: online ? 'online' : 'offline', last_seen: at, metadata: metadataOf(principal) };
  }

  /**
   * Current presence; `connected` is one of the principal's live connections on this node, if
   * any; `cluster` what the registry knows (online elsewhere, last seen), if it answered.
   */
  current(principalId: string, connected: Principal | undefined, cluster?: PresenceRecord): PresenceInfo {
    if (connected !== undefined || cluster?.online === true) {
      return { user_id: principalId, status: 'online', last_seen: Date.now(), metadata: connected === undefined ? {} : metadataOf(connected) };
    }
    const here = this.#lastSeen.get(principalId);
    const there = cluster?.lastSeen ?? undefined;
    const lastSeen = here === undefined ? there : there === undefined ? here : Math.max(here, there);
    return { user_id: principalId, status: 'offline', last_seen: lastSeen ?? null, metadata: {} };
  }
}

function metadataOf(principal: Principal): Record<string, unknown> {
  const meta = principal.data?.presence;
  return meta !== null && typeof meta === 'object' && !Array.isArray(meta) ? (meta as Record<string, unknown>) : {};
}
