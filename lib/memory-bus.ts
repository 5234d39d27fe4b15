/**
 * The in-memory Bus. Alone it connects a broker to nobody (one process needs no bus); brokers
 * given the same `MemoryHub` exchange messages as separate nodes would, which is how the
 * cluster behaviour is tested without a network.
 */
import type { Bus, BusHandler, BusMessage } from './bus.js';
import { BrokerError } from './errors.js';

export class MemoryHub {
  readonly #nodes = new Map<string, BusHandler>();

  join(nodeId: string, handler: BusHandler): void {
    this.#nodes.set(nodeId, handler);
  }

  leave(nodeId: string): void {
    this.#nodes.delete(nodeId);
  }

  deliver(message: BusMessage): void {
    for (const [nodeId, handler] of this.#nodes) {
      // Delivered on a later turn, as a network bus would, so no caller depends on re-entrancy.
      if (nodeId !== message.node) queueMicrotask(() => handler(message));
    }
  }
}

export class MemoryBus implements Bus {
  readonly #hub: MemoryHub;
  #nodeId: string | null = null;
  #closed = false;

  constructor(hub: MemoryHub = new MemoryHub()) {
    this.#hub = hub;
  }

  async start(nodeId: string, handler: BusHandler): Promise<void> {
    this.#nodeId = nodeId;
    this.#hub.join(nodeId, handler);
  }

  async publish(message: BusMessage): Promise<void> {
    if (this.#closed) throw new BrokerError('SY_ERR_CLOSED', 'bus is closed');
    this.#hub.deliver(message);
  }

  async close(): Promise<void> {
    if (this.#nodeId !== null) this.#hub.leave(this.#nodeId);
    this.#nodeId = null;
    this.#closed = true;
  }
}
