/**
 * Publishes what seed 003's "Topics" section shows, one of each per tick: `device_update` on
 * `devices`, `alert_created` on `alerts`, `system_status` on `system_status`. Values cycle
 * deterministically (every severity comes round every four ticks), so tests can rely on them.
 */
import type { Broker } from 'switchyard';

export const SEVERITIES = ['low', 'medium', 'high', 'critical'] as const;
const TITLES = ['Security Alert', 'Disk Almost Full', 'Unusual Login', 'Service Restarted'];

export interface SimulatorOptions {
  /** Time between ticks in ms. Default 2,000. */
  intervalMs?: number;
  /** Device ids to cycle through. Default device_1 … device_3. */
  devices?: string[];
}

export class Simulator {
  readonly #broker: Broker;
  readonly #intervalMs: number;
  readonly #devices: string[];
  #timer: NodeJS.Timeout | undefined;
  #tick = 0;

  constructor(broker: Broker, options: SimulatorOptions = {}) {
    this.#broker = broker;
    this.#intervalMs = options.intervalMs ?? 2_000;
    this.#devices = options.devices ?? ['device_1', 'device_2', 'device_3'];
    if (!(this.#intervalMs > 0)) throw new TypeError('intervalMs must be positive');
    if (this.#devices.length === 0) throw new TypeError('devices must not be empty');
  }

  get running(): boolean {
    return this.#timer !== undefined;
  }

  /** Starts ticking. The timer is unref'd: it never keeps the process alive on its own. */
  start(): this {
    if (this.#timer !== undefined) return this;
    this.#timer = setInterval(() => {
      this.tick().catch((err: unknown) => {
        if (this.#broker.closed) this.stop();
        else console.error('simulator tick failed:', err);
      });
    }, this.#intervalMs);
    this.#timer.unref();
    return this;
  }

  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Publishes one message on each topic; resolves once all three are handed to subscribers. */
  async tick(): Promise<void> {
    const n = this.#tick++;
    const deviceId = this.#devices[n % this.#devices.length]!;
    const now = new Date().toISOString();
    await this.#broker.publish('devices', {
      type: 'device_update',
      data: { id: deviceId, status: n % 3 === 2 ? 'offline' : 'online', last_seen: now },
    });
    await this.#broker.publish('alerts', {
      type: 'alert_created',
      data: { id: `alert_${n + 1}`, title: TITLES[n % TITLES.length], severity: SEVERITIES[n % SEVERITIES.length], device_id: deviceId },
    });
    const cpu = 30 + ((n * 17) % 60);
    await this.#broker.publish('system_status', {
      type: 'system_status',
      data: { status: cpu > 80 ? 'degraded' : 'healthy', metrics: { cpu_usage: cpu, memory_usage: 40 + ((n * 11) % 50) } },
    });
  }
}
