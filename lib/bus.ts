/**
 * The Bus extension point: fan-out between broker nodes. Each node delivers to its own
 * connections itself and hands the message to the bus for the others; a bus never returns a
 * node's own messages to it. The memory implementation is in memory-bus.ts.
 */

import type { Principal } from './types.js';

/** Version of the cluster message format; nodes ignore (and report) versions they do not know. */
export const BUS_PROTOCOL_VERSION = 1;

interface BusEnvelope {
  /** Format version. */
  v: number;
  /** Sending node's id. */
  node: string;
}

export type BusMessage = BusEnvelope &
  (
    | {
        kind: 'publish';
        topic: string;
        payload: unknown;
        /** Base64 of binary data, for binary broadcasts. */
        binary?: string;
        messageId: string;
        sentAt: number;
        offset?: number;
        /** Epoch of the topic's history the offset belongs to (sent with offset). */
        epoch?: string;
        from: string | null;
        /** Set when the publishing node waits for every node's count (cluster-wide acks): answer with a 'recipients'. */
        ack?: true;
      }
    | { kind: 'direct'; target: string; payload: unknown; binary?: string; messageId: string; sentAt: number; from: string | null }
    | { kind: 'notify'; target: 'all' | { principal: string } | { topic: string }; data: unknown; sentAt: number }
    | { kind: 'revoke'; principal?: string; tokenId?: string; reason?: string }
    | { kind: 'reauthorize'; principal: string; replacement?: Principal }
    /**
     * Membership (lib/membership.ts): a node announces itself every `intervalMs` while some node
     * of the cluster counts recipients cluster-wide (`acks`: this one does); unseen for 3 of its
     * intervals, it is gone. `bye` when it closes. `reply`: an answer to a newcomer's hello (not
     * answered again).
     */
    | { kind: 'hello'; intervalMs: number; acks: boolean; reply?: true }
    | { kind: 'bye' }
    /** Cluster-wide acks (lib/cluster-acks.ts): this node's recipients of publishes `to` sent, `[messageId, count]`. */
    | { kind: 'recipients'; to: string; counts: Array<[string, number]> }
  );

export type BusHandler = (message: BusMessage) => void;

/** A time when this node received nothing from the bus: what other nodes sent then is lost to it. */
export interface BusGap {
  /** When the loss was noticed (ms since the Unix epoch). */
  since: number;
  /** When the bus was receiving again, resubscribed (ms since the Unix epoch). */
  until: number;
  /** `until - since`, in ms. */
  durationMs: number;
  /** What was noticed: the connection closed, or a probe did not come back in time. */
  reason: string;
}

/**
 * What a bus tells its node about its link, beside the messages. Optional: the memory bus never
 * loses its link. A network bus calls `down` once when it stops receiving, then `gap` once when it
 * receives again (it resubscribes by itself), so the node can report the gap and, later, catch up
 * history topics from the store.
 */
export interface BusObserver {
  /** The bus stopped receiving at `since` (ms since the Unix epoch). */
  down?(info: { since: number; reason: string }): void;
  /** The bus receives again after a loss. */
  gap?(gap: BusGap): void;
  /** Something the bus could not handle and carried on past (an unreadable frame, a failed probe). */
  error?(error: Error): void;
}

export interface Bus {
  /**
   * Starts receiving other nodes' messages. Called once by the broker. `observer` hears about
   * losses of the link (a network bus reports each one; see BusObserver).
   */
  start(nodeId: string, handler: BusHandler, observer?: BusObserver): Promise<void>;
  /**
   * Sends a message to every other node. Never throws synchronously (failures reject), and
   * passes messages on unchanged, unknown versions and kinds included: checking them is the
   * receiving broker's job (lib/cluster.ts).
   */
  publish(message: BusMessage): Promise<void>;
  /** Stops receiving and releases connections. Idempotent. A publish after close rejects. */
  close(): Promise<void>;
}
