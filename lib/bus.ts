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
      }
    | { kind: 'direct'; target: string; payload: unknown; binary?: string; messageId: string; sentAt: number; from: string | null }
    | { kind: 'notify'; target: 'all' | { principal: string } | { topic: string }; data: unknown; sentAt: number }
    | { kind: 'revoke'; principal?: string; tokenId?: string; reason?: string }
    | { kind: 'reauthorize'; principal: string; replacement?: Principal }
  );

export type BusHandler = (message: BusMessage) => void;

export interface Bus {
  /** Starts receiving other nodes' messages. Called once by the broker. */
  start(nodeId: string, handler: BusHandler): Promise<void>;
  /**
   * Sends a message to every other node. Never throws synchronously (failures reject), and
   * passes messages on unchanged, unknown versions and kinds included: checking them is the
   * receiving broker's job (lib/cluster.ts).
   */
  publish(message: BusMessage): Promise<void>;
  /** Stops receiving and releases connections. Idempotent. */
  close(): Promise<void>;
}
