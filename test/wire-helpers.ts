/** Helpers for the protocols with no welcome frame (tagged, events): open, refuse, wait on counts. */
import type { Broker } from 'switchyard';
import { Client, until } from './helpers.js';

export interface OpenOptions {
  /** Request headers (Authorization, Tag…). */
  headers?: Record<string, string>;
  protocols?: string | string[];
}

/** Opens a client (the 101 arrived) without waiting for any frame. */
export async function open(url: string, options: OpenOptions = {}): Promise<Client> {
  const client = new Client(url, options.protocols, options.headers && { headers: options.headers });
  await client.opened;
  return client;
}

/** Connects expecting a refusal by close code; resolves with the code, the reason and the frames read before it. */
export async function refused(url: string, options: OpenOptions = {}): Promise<{ code: number; reason: string; frames: unknown[] }> {
  const client = new Client(url, options.protocols, options.headers && { headers: options.headers });
  const { code, reason } = await client.closed;
  return { code, reason, frames: client.frames };
}

/**
 * Waits until the broker holds `count` subscriptions in total. Subscriptions taken in a
 * protocol's `open()` land after the 101, so a test that publishes right away waits on this.
 */
export function subscriptions(broker: Broker, count: number): Promise<void> {
  return until(() => broker.stats().subscriptions === count, `${count} subscriptions (have ${broker.stats().subscriptions})`);
}

/** Waits until the broker has `count` open connections. */
export function connections(broker: Broker, count: number): Promise<void> {
  return until(() => broker.stats().connections === count, `${count} connections (have ${broker.stats().connections})`);
}
